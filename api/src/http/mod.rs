//! The HTTP surface: GraphQL and GraphiQL on `/graphql` (see `graphql_http`),
//! probes and metrics, and what every request goes through: the body limit
//! and deadlines, load shedding, CORS, tracing and panics caught. `serve` is
//! the accept loop in front of it all.

mod deadlines;
pub(crate) mod gate;
mod serve;

pub use serve::serve;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::State;
use axum::handler::Handler;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use self::deadlines::Deadlines;
use self::gate::Gate;
use crate::config::{AllowedOrigins, HttpSettings};
use crate::error::ApiError;
use crate::graphiql;
use crate::graphql;
use crate::graphql_http::{self, Endpoint};
use crate::graphql_ws::SocketLimits;
use crate::state::AppState;

pub fn router(state: AppState, settings: HttpSettings) -> Router {
    let schema = graphql::schema(state.clone());
    // Past `max_in_flight` requests, more are refused at once rather than
    // queued: waiting ones would only pile up behind the database pool
    // (memory and latency without bound) and time out anyway.
    let in_flight = Arc::new(Semaphore::new(settings.max_in_flight));
    let shed = Arc::new(IntervalLog::new(
        "refusing requests: MAX_REQUESTS_IN_FLIGHT are in flight",
    ));
    let counted = state.metrics.clone();
    let shed_load = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |_: tower::BoxError| {
            counted.request_shed();
            shed.add(None);
            async { unavailable(ApiError::OVERLOADED) }
        }))
        .load_shed()
        // global: axum layers a handler anew for every request, and a plain
        // concurrency limit would then get a fresh semaphore each time
        .layer(GlobalConcurrencyLimitLayer::with_semaphore(
            in_flight.clone(),
        ));
    let mut router = Router::new()
        .route(
            "/graphql",
            get(graphql_http::get.layer(shed_load.clone()))
                .post(graphql_http::post.layer(shed_load)),
        )
        .merge(graphiql::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        // inside the body limit, whose 413 comes first
        .layer(middleware::from_fn_with_state(
            Deadlines::new(settings.body_timeout, settings.request_timeout),
            deadlines::enforce,
        ))
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
        .with_state(Endpoint {
            state,
            schema,
            websockets: Arc::new(Gate::new(
                settings.max_websockets,
                settings.max_websockets_per_address,
            )),
            in_flight,
            metrics: MetricsAccess {
                refresh: settings.metrics_refresh,
                token: settings.metrics_token.clone(),
            },
            socket_limits: SocketLimits {
                max_message_bytes: settings.body_limit_bytes,
                init_timeout: settings.websocket_init_timeout,
                ping_interval: settings.websocket_ping_interval,
            },
        })
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

/// While something is being refused, one line per interval with how many
/// (and the last client address), rather than a line per refusal when the
/// server can least afford it: a warning a second, or, for what also
/// happens in normal traffic, a line a minute at info.
pub(crate) struct IntervalLog {
    what: &'static str,
    every: Duration,
    warn: bool,
    count: AtomicU64,
    last_line: Mutex<Option<Instant>>,
}

impl IntervalLog {
    pub(crate) fn new(what: &'static str) -> Self {
        Self {
            what,
            every: Duration::from_secs(1),
            warn: true,
            count: AtomicU64::new(0),
            last_line: Mutex::new(None),
        }
    }

    /// For what clients also do in normal use (a keep-alive connection
    /// left idle).
    pub(crate) fn routine(what: &'static str) -> Self {
        Self {
            every: Duration::from_secs(60),
            warn: false,
            ..Self::new(what)
        }
    }

    pub(crate) fn add(&self, from: impl Into<Option<IpAddr>>) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= self.every) {
            *last = Some(Instant::now());
            let count = self.count.swap(0, Ordering::Relaxed);
            let last_address = from.into().map(|ip| ip.to_string()).unwrap_or_default();
            match self.warn {
                true => tracing::warn!(count, last_address, "{}", self.what),
                false => tracing::info!(count, last_address, "{}", self.what),
            }
        }
    }
}

/// How `/metrics` is served.
#[derive(Clone)]
pub struct MetricsAccess {
    pub refresh: Duration,
    pub token: Option<crate::config::Secret>,
}

/// 503 with `Retry-After` and a GraphQL-shaped body saying why, so clients
/// read it like any other error.
pub(crate) fn unavailable(error: ApiError) -> Response {
    let mut answer = refused(StatusCode::SERVICE_UNAVAILABLE, error);
    answer
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    answer
}

/// A request refused before GraphQL ran it: `status`, and a GraphQL-shaped
/// body with the error's code.
pub(crate) fn refused(status: StatusCode, error: ApiError) -> Response {
    let body = serde_json::json!({
        "data": null,
        "errors": [{ "message": error.message(), "extensions": { "code": error.code() } }],
    });
    (status, axum::Json(body)).into_response()
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok"
}

/// The database answers and every migration is applied.
async fn readyz(State(endpoint): State<Endpoint>) -> impl IntoResponse {
    match migration::is_current(&endpoint.state.db).await {
        Ok(true) => (StatusCode::OK, "ready"),
        Ok(false) => (StatusCode::SERVICE_UNAVAILABLE, "migrations pending"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// Prometheus's text format; behind `METRICS_TOKEN` when it is set.
async fn metrics(State(endpoint): State<Endpoint>, headers: HeaderMap) -> Response {
    if let Some(expected) = &endpoint.metrics.token {
        let given = graphql_http::bearer_token(&headers).unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "the metrics need METRICS_TOKEN as a bearer token",
            )
                .into_response();
        }
    }
    let rendered = endpoint
        .state
        .metrics
        .render(&endpoint.state.db, endpoint.metrics.refresh)
        .await;
    match rendered {
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
