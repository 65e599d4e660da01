//! The HTTP surface: GraphQL (POST) and GraphiQL (GET) on `/graphql`, and probes.

use async_graphql::ServerError;
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::graphiql;
use crate::graphql::loaders::Loaders;
use crate::graphql::{self, TallySchema};
use crate::state::AppState;

#[derive(Clone)]
struct Http {
    state: AppState,
    schema: TallySchema,
}

pub fn router(state: AppState, body_limit_bytes: usize) -> Router {
    let schema = graphql::schema(state.clone());
    Router::new()
        .route("/graphql", get(graphiql::page).post(graphql_request))
        .merge(graphiql::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(RequestBodyLimitLayer::new(body_limit_bytes))
        .layer(TraceLayer::new_for_http())
        // a bug must cost one request a 500, not the connection
        .layer(CatchPanicLayer::new())
        .with_state(Http { state, schema })
}

async fn graphql_request(
    State(http): State<Http>,
    headers: HeaderMap,
    request: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    let request = match request {
        Ok(request) => request,
        Err(rejection) => return unreadable_request(rejection),
    };
    let mut request = request.into_inner().data(Loaders::new(&http.state.db));
    match bearer_token(&headers) {
        None => {}
        Some(token) => match http.state.tokens.verify(token) {
            Ok(viewer) => request = request.data(viewer),
            Err(e) => return GraphQLResponse::from(error_response(e)).into_response(),
        },
    }
    let mut response = http.schema.execute(request).await;
    for error in &mut response.errors {
        // Errors that no resolver coded come from the request itself: syntax,
        // validation, variable types, depth or complexity.
        let coded = error
            .extensions
            .as_ref()
            .is_some_and(|e| e.get("code").is_some());
        if !coded {
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", "BAD_USER_INPUT");
        }
    }
    GraphQLResponse::from(response).into_response()
}

fn error_response(err: ApiError) -> async_graphql::Response {
    let error = async_graphql::Error::from(err);
    let code = error.extensions.clone();
    let mut server_error = ServerError::new(error.message, None);
    server_error.extensions = code;
    async_graphql::Response::from_errors(vec![server_error])
}

/// A body that is no GraphQL request (bad JSON, a batch, a wrong content
/// type) gets its status, 400 or 413, with a GraphQL-shaped JSON error.
fn unreadable_request(rejection: GraphQLRejection) -> Response {
    let message = format!("the request is not a GraphQL request: {}", rejection.0);
    let status = rejection.into_response().status();
    let body = serde_json::json!({
        "data": null,
        "errors": [{ "message": message, "extensions": { "code": "BAD_USER_INPUT" } }],
    });
    (status, axum::Json(body)).into_response()
}

/// `Authorization: Bearer <token>`; any other scheme counts as no token.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok"
}

/// The database answers and every migration is applied.
async fn readyz(State(http): State<Http>) -> impl IntoResponse {
    match migration::is_current(&http.state.db).await {
        Ok(true) => (StatusCode::OK, "ready"),
        Ok(false) => (StatusCode::SERVICE_UNAVAILABLE, "migrations pending"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// Prometheus's text format.
async fn metrics(State(http): State<Http>) -> Response {
    match http.state.metrics.render(&http.state.db).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "rendering metrics failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}
