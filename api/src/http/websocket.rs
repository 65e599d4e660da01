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
//!
//! What a socket may cost is bounded as for HTTP: `MAX_WEBSOCKETS` open in
//! all and `MAX_WEBSOCKETS_PER_ADDRESS` from one address; messages no larger
//! than the HTTP body limit; `connection_init` within
//! `WEBSOCKET_INIT_TIMEOUT` or the socket is closed with 4408; a ping every
//! `WEBSOCKET_PING_INTERVAL`, and a peer silent for two of them is taken
//! for dead and closed; when the caller's token expires the socket is
//! closed with 4403. Queries and mutations over it take a slot of
//! `MAX_REQUESTS_IN_FLIGHT` (see `graphql::limits`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::{Data, Result};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{FromRequestParts, Request, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::answer;
use super::caller::{bearer, bearer_token, client_addr};
use super::endpoint::{Endpoint, SocketLimits};
use crate::admission::Full;
use crate::auth::accounts;
use crate::auth::{ClientAddr, Verified};
use crate::config::Rate;
use crate::error::ApiError;
use crate::graphql::loaders::Loaders;
use crate::graphql::sockets::SocketBudget;
use crate::graphql::{SocketToken, SubscriptionSlots, TallySchema};
use crate::state::AppState;

/// What a socket reads into at first.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Whether `request` asks to become a WebSocket.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

pub async fn upgrade(endpoint: Endpoint, request: Request) -> Response {
    let client = client_addr(&request);
    // a subscription holds its connection for as long as the client likes:
    // past the limits, more are refused rather than queued
    let ip = client.map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), ClientAddr::ip);
    let permit = match endpoint.websockets.admit(ip) {
        Ok(permit) => permit,
        Err(Full::Total) => return answer::unavailable(ApiError::WEBSOCKETS_FULL),
        Err(Full::Address) => {
            return answer::refused(
                StatusCode::TOO_MANY_REQUESTS,
                ApiError::WEBSOCKETS_PER_ADDRESS,
            );
        }
    };
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
    let limits = endpoint.socket_limits.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        // tungstenite's default reserves 128 KiB a socket before its first
        // message: 640 idle sockets held 80 MiB. GraphQL messages are small;
        // the buffer grows for a larger one, up to the message limit
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(limits.max_message_bytes)
        .max_frame_size(limits.max_message_bytes)
        .on_upgrade(move |socket| async move {
            let open = endpoint.state.metrics.websocket_opened();
            let session = Session {
                state: endpoint.state.clone(),
                schema: endpoint.schema.clone(),
                in_flight: endpoint.in_flight.clone(),
                header_token,
                client,
                limits,
            };
            session.run(socket, protocol).await;
            drop((open, permit));
        })
        .into_response()
}

struct Session {
    state: AppState,
    schema: TallySchema,
    in_flight: Arc<tokio::sync::Semaphore>,
    header_token: Option<String>,
    client: Option<ClientAddr>,
    limits: SocketLimits,
}

/// Where a connection stands: waiting for `connection_init`, or accepted
/// (with its token and when that expires, if it has one).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stage {
    Waiting,
    Accepted(Option<(Verified, Instant)>),
}

impl Session {
    /// Relays between the socket and async-graphql's protocol handler, and
    /// closes the socket when a deadline passes.
    async fn run(self, socket: WebSocket, protocol: GraphQLProtocol) {
        let (mut to_client, from_client) = socket.split();
        let (outgoing, mut relayed) = futures::channel::mpsc::channel::<Message>(16);
        let (stage_tx, mut stage) = watch::channel(Stage::Waiting);
        let heard = Arc::new(Mutex::new(Instant::now()));
        let unreadable = Arc::new(AtomicBool::new(false));
        let (heard_from_client, unreadable_from_client) = (heard.clone(), unreadable.clone());
        let from_client = from_client.inspect(move |message| {
            *heard_from_client.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            // too large (the limit is the HTTP body limit), or no WebSocket frame
            if message.is_err() {
                unreadable_from_client.store(true, Ordering::Relaxed);
            }
        });
        let Self {
            state,
            schema,
            in_flight,
            header_token,
            client,
            limits,
        } = self;
        let db = state.db.clone();
        let budget = (in_flight, limits.operation_rate);
        let protocol_handler =
            GraphQLWebSocket::new_with_pair(outgoing, from_client, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let accepted =
                        connection_data(&state, header_token, client, budget, &payload).await;
                    if let Ok((_, token)) = &accepted {
                        let _ = stage_tx.send(Stage::Accepted(*token));
                    }
                    accepted.map(|(data, _)| data)
                })
                .serve();
        tokio::pin!(protocol_handler);

        let init_deadline = tokio::time::sleep(limits.init_timeout);
        tokio::pin!(init_deadline);
        let mut pings = tokio::time::interval(limits.ping_interval);
        pings.reset();
        // the stage is set once, by the init callback, which then drops it
        let mut stage_set = false;
        let close = loop {
            let accepted = *stage.borrow();
            let (token, expires_at) = match accepted {
                Stage::Accepted(Some((token, at))) => (Some(token), at),
                _ => (None, Instant::now() + Duration::from_secs(365 * 24 * 3600)),
            };
            tokio::select! {
                _ = &mut protocol_handler => {
                    break unreadable
                        .load(Ordering::Relaxed)
                        .then_some((1009, "a message was too large (64 KiB at most) or unreadable"));
                }
                message = relayed.next() => match message {
                    Some(message) => {
                        if to_client.send(message).await.is_err() {
                            return;
                        }
                    }
                    None => break None,
                },
                changed = stage.changed(), if !stage_set => stage_set = changed.is_err(),
                _ = &mut init_deadline, if accepted == Stage::Waiting => {
                    break Some((4408, "Connection initialisation timeout"));
                }
                _ = tokio::time::sleep_until(expires_at) => {
                    break Some((4403, "Forbidden: the token expired"));
                }
                _ = pings.tick() => {
                    let silent = heard.lock().unwrap_or_else(|e| e.into_inner()).elapsed();
                    if silent > 2 * limits.ping_interval {
                        break Some((1001, "no answer to pings"));
                    }
                    // a socket lives long: its account is asked again now
                    // and then (every operation asks too, see SocketViewer)
                    if let Some(token) = &token
                        && let Err(ApiError::InvalidToken) = accounts::current_viewer(&db, token).await
                    {
                        break Some((4403, "Forbidden: the token was revoked"));
                    }
                    if to_client.send(Message::Ping(Default::default())).await.is_err() {
                        return;
                    }
                }
            }
        };
        say_goodbye(to_client, relayed, close).await;
    }
}

/// Sends what the protocol handler said last (a close of its own, say),
/// then our close frame, if the session ended for a reason of ours.
async fn say_goodbye(
    mut to_client: SplitSink<WebSocket, Message>,
    mut relayed: futures::channel::mpsc::Receiver<Message>,
    close: Option<(u16, &'static str)>,
) {
    while let Ok(message) = relayed.try_recv() {
        if to_client.send(message).await.is_err() {
            return;
        }
    }
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = to_client.send(Message::Close(Some(frame))).await;
    }
}

/// What every operation of the connection sees: its loaders (they batch but
/// never cache, so a long-lived connection reads fresh rows), its room for
/// subscriptions, its share of the in-flight slots, the client's address
/// and the caller's token (each operation reads the caller from it again);
/// and the token with when it expires.
async fn connection_data(
    state: &AppState,
    header_token: Option<String>,
    client: Option<ClientAddr>,
    (in_flight, operation_rate): (Arc<tokio::sync::Semaphore>, Rate),
    payload: &serde_json::Value,
) -> Result<(Data, Option<(Verified, Instant)>)> {
    let mut data = Data::default();
    data.insert(Loaders::new(&state.db));
    data.insert(SubscriptionSlots::default());
    data.insert(SocketBudget::new(in_flight, operation_rate));
    if let Some(client) = client {
        data.insert(client);
    }
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
    let mut accepted = None;
    if let Some(token) = token {
        // with its code, for the protocol that sends it (`connection_error`)
        let refused = async_graphql::Error::from;
        let verified = state.tokens.verify(&token).map_err(refused)?;
        // refused now if the account is gone or the token revoked
        accounts::current_viewer(&state.db, &verified)
            .await
            .map_err(refused)?;
        data.insert(SocketToken(verified));
        accepted = Some((verified, Instant::now() + verified.valid_for));
    }
    Ok((data, accepted))
}
