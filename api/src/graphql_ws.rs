//! GraphQL over WebSocket on `/graphql` (an upgrade request), for
//! subscriptions: `graphql-transport-ws`, and the older `graphql-ws` protocol
//! of subscriptions-transport-ws clients.
//!
//! The caller's token comes in the `connection_init` payload as
//! `{"Authorization": "Bearer <token>"}` (what GraphiQL sends from its
//! Headers tab), or else in the upgrade request's own `Authorization` header.
//! A bad token closes the connection before any operation runs (code 1002,
//! reason "invalid or expired token": async-graphql has no way to send the
//! 4403 the protocol suggests).

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::{Data, Result};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::{FromRequestParts, Request, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::auth_throttle::ClientAddr;
use crate::error::ApiError;
use crate::graphql::SubscriptionSlots;
use crate::graphql::loaders::Loaders;
use crate::graphql_http::{Endpoint, bearer, bearer_token};
use crate::http;
use crate::state::AppState;

/// Whether `request` asks to become a WebSocket.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

pub async fn upgrade(endpoint: Endpoint, request: Request) -> Response {
    // a subscription holds its connection for as long as the client likes:
    // past `MAX_WEBSOCKETS` open ones, more are refused rather than queued
    let Ok(permit) = endpoint.websockets.clone().try_acquire_owned() else {
        return http::unavailable(ApiError::WEBSOCKETS_FULL);
    };
    let client = crate::graphql_http::client_addr(&request);
    let (mut parts, _) = request.into_parts();
    let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &()).await {
        Ok(protocol) => protocol,
        Err(status) => return status.into_response(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let header_token = bearer_token(&parts.headers).map(str::to_owned);
    let Endpoint { state, schema, .. } = endpoint;
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let open = state.metrics.websocket_opened();
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    connection_data(&state, header_token, client, &payload)
                })
                .serve()
                .await;
            drop((open, permit));
        })
        .into_response()
}

/// What every operation of the connection sees: its loaders (they batch but
/// never cache, so a long-lived connection reads fresh rows), its room for
/// subscriptions and the caller.
fn connection_data(
    state: &AppState,
    header_token: Option<String>,
    client: Option<ClientAddr>,
    payload: &serde_json::Value,
) -> Result<Data> {
    let mut data = Data::default();
    if let Some(client) = client {
        data.insert(client);
    }
    data.insert(Loaders::new(&state.db));
    data.insert(SubscriptionSlots::default());
    let from_payload = payload
        .as_object()
        .and_then(|fields| {
            fields
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        })
        .and_then(|(_, value)| value.as_str());
    let token = match from_payload {
        Some(value) => bearer(value).map(str::to_owned),
        None => header_token,
    };
    if let Some(token) = token {
        let viewer = state
            .tokens
            .verify(&token)
            .map_err(|e| async_graphql::Error::new(e.message()))?;
        data.insert(viewer);
    }
    Ok(data)
}
