//! Probes and metrics: `/healthz`, `/readyz`, `/metrics`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::caller;
use super::endpoint::Endpoint;

/// The process is up.
pub(super) async fn healthz() -> &'static str {
    "ok"
}

/// The database answers and every migration is applied.
pub(super) async fn readyz(State(endpoint): State<Endpoint>) -> impl IntoResponse {
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
pub(super) async fn metrics(State(endpoint): State<Endpoint>, headers: HeaderMap) -> Response {
    if let Some(expected) = &endpoint.metrics.token {
        let given = caller::bearer_token(&headers).unwrap_or_default();
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
