//! The HTTP surface: GraphQL (POST) and GraphiQL (GET) on `/graphql`, and probes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_graphql::ServerError;
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::State;
use axum::handler::Handler;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use crate::config::{AllowedOrigins, HttpSettings};
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

pub fn router(state: AppState, settings: HttpSettings) -> Router {
    let schema = graphql::schema(state.clone());
    // Past `max_in_flight` requests, more are refused at once rather than
    // queued: waiting ones would only pile up behind the database pool
    // (memory and latency without bound) and time out anyway.
    let shed = Arc::new(ShedLog::default());
    let counted = state.metrics.clone();
    let shed_load = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |_: tower::BoxError| {
            counted.request_shed();
            shed.refused();
            async { overloaded() }
        }))
        .load_shed()
        // global: axum layers a handler anew for every request, and a plain
        // concurrency limit would then get a fresh semaphore each time
        .layer(GlobalConcurrencyLimitLayer::new(settings.max_in_flight));
    let mut router = Router::new()
        .route(
            "/graphql",
            get(graphiql::page).post(graphql_request.layer(shed_load)),
        )
        .merge(graphiql::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(RequestBodyLimitLayer::new(settings.body_limit_bytes));
    if let Some(cors) = cors(&settings.allowed_origins) {
        router = router.layer(cors);
    }
    router
        // 5xx answers are logged where they arise, with their cause (and
        // shedding at most once a second), not again for each response here
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::DEBUG)))
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

/// Lets the pages of `ALLOWED_ORIGINS` call the API from a browser: GET and
/// POST with a JSON body and a bearer token. Without origins, no CORS header
/// at all, so browsers keep other sites' pages out.
fn cors(origins: &AllowedOrigins) -> Option<CorsLayer> {
    let allow_origin = match origins {
        AllowedOrigins::SameOrigin => return None,
        AllowedOrigins::Any => AllowOrigin::any(),
        AllowedOrigins::List(origins) => AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        ),
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .max_age(Duration::from_secs(600)),
    )
}

/// While requests are being refused, one warning a second with their number,
/// rather than a line per request when the server can least afford it.
#[derive(Default)]
struct ShedLog {
    refused: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
}

impl ShedLog {
    fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            *last = Some(Instant::now());
            let refused = self.refused.swap(0, Ordering::Relaxed);
            tracing::warn!(
                refused,
                "refusing requests: MAX_REQUESTS_IN_FLIGHT are in flight"
            );
        }
    }
}

/// 503 with a GraphQL-shaped body, so clients read it like any other error.
fn overloaded() -> Response {
    let error = ApiError::OVERLOADED;
    let body = serde_json::json!({
        "data": null,
        "errors": [{ "message": error.message(), "extensions": { "code": error.code() } }],
    });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        axum::Json(body),
    )
        .into_response()
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
