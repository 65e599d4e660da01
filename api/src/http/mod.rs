//! The HTTP surface: GraphQL over HTTP (`graphql`) and WebSocket
//! (`websocket`) and GraphiQL on `/graphql`, probes and metrics (`probes`),
//! and what every request goes through: the body limit and deadlines, load
//! shedding, CORS, tracing and panics caught. `serve` is the accept loop in
//! front of it all; `answer` the one place an error becomes a refusal.
//!
//! Modules depend one way: the router on the handlers; `graphql` on
//! `websocket` (an upgrade arrives as a GET); both on `endpoint`, `caller`
//! and `answer`.

mod answer;
mod caching;
mod caller;
mod deadlines;
mod endpoint;
mod graphiql;
mod graphql;
mod probes;
mod serve;
mod websocket;

pub use caller::ForwardedHost;
pub use serve::{bind, serve};

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, header};
use axum::middleware;
use axum::routing::get;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use self::answer::unavailable;
use self::deadlines::Deadlines;
use self::endpoint::{Endpoint, MetricsAccess, SocketLimits};
use crate::admission::{Gate, IntervalLog};
use crate::config::{AllowedOrigins, HttpSettings};
use crate::error::ApiError;
use crate::graphql::{Documents, IntrospectionAnswers, PublicAnswers, introspection};
use crate::state::AppState;

pub fn router(state: AppState, settings: HttpSettings) -> Router {
    let introspection = IntrospectionAnswers::new(introspection::CACHE_BYTES);
    let documents = Documents::new();
    let public_answers = PublicAnswers::new(
        settings.public_cache_bytes,
        state.live.freshness.clone(),
        &state.metrics,
    );
    let schema = crate::graphql::schema(state.clone(), introspection.clone(), documents.clone());
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
            get(graphql::get.layer(shed_load.clone())).post(graphql::post.layer(shed_load)),
        )
        .merge(graphiql::routes())
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(probes::metrics))
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
        .with_state(Endpoint::new(endpoint::Shared {
            state,
            schema,
            introspection,
            documents,
            public_answers,
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
                operation_rate: settings.websocket_operation_rate,
            },
        }))
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
