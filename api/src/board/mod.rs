//! The operators' listener: the apalis board (its UI expects the root of its
//! host and its API under `/api/v1`), extended by Tally where the board
//! stops short: its logs ([`logs`]), the error and a Retry action on a failed
//! job's page and an order-number search ([`page`], over [`jobs_api`]), and
//! `/retry` for operators without JavaScript ([`retry_page`]). Everything
//! here sits behind HTTP basic auth.

mod jobs_api;
pub mod logs;
mod page;
mod retry_page;

use std::sync::Arc;

use apalis_board::axum::framework::{ApiBuilder, RegisterRoute};
use apalis_postgres::PostgresStorage;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::Engine;
use jobs::admin;
use jobs::{PostOrderJob, QUEUE, Wakeup};
use sea_orm::DatabaseConnection;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::BoardConfig;
use crate::http::ForwardedHost;

/// What Tally's own board routes share.
#[derive(Clone)]
struct Board {
    db: DatabaseConnection,
    wakeup: Wakeup,
    credentials: Arc<BoardConfig>,
}

impl Board {
    /// Puts the failed (or killed) job `id` back in the queue, or every one
    /// when `id` is None, wakes this process's workers for them, and logs
    /// who did it. Returns the ids of the jobs put back.
    async fn retry(&self, id: Option<&str>) -> Result<Vec<String>, jobs::JobError> {
        let ids = admin::retry_jobs(&self.db, id).await?.put_back;
        if !ids.is_empty() {
            self.wakeup.jobs_waiting();
        }
        info!(
            operator = %self.credentials.username,
            job_ids = ?ids,
            "failed jobs put back in the queue from the board"
        );
        Ok(ids)
    }
}

pub fn router(
    pool: &PgPool,
    db: DatabaseConnection,
    wakeup: Wakeup,
    credentials: BoardConfig,
    shutdown: CancellationToken,
) -> Router {
    let storage = PostgresStorage::<PostOrderJob>::new(pool)
        .with_config(apalis_postgres::Config::default().queue(QUEUE));
    let api = ApiBuilder::new(Router::new())
        .register(QUEUE, storage)
        .build()
        // apalis-board routes `/events` to its own broadcaster; Tally's
        // stream answers it instead (see logs.rs)
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            let shutdown = shutdown.clone();
            async move {
                match request.uri().path() {
                    "/events" => logs::events(shutdown).into_response(),
                    _ => next.run(request).await,
                }
            }
        }));
    let board = Board {
        db,
        wakeup,
        credentials: Arc::new(credentials),
    };
    let tally = Router::new()
        .route("/retry", get(retry_page::show).post(retry_page::retry))
        .route("/tally/api/jobs", get(jobs_api::search))
        .route("/tally/api/jobs/retry-failed", post(jobs_api::retry_failed))
        .route("/tally/api/jobs/{id}", get(jobs_api::show))
        .route("/tally/api/jobs/{id}/retry", post(jobs_api::retry))
        .route("/tally/board.js", get(page::script))
        .route("/tally/board.css", get(page::stylesheet))
        .with_state(board.clone());
    Router::new()
        .nest("/api/v1", api)
        .merge(tally)
        .fallback(page::ui)
        .layer(middleware::from_fn_with_state(board, basic_auth))
        .layer(middleware::map_response(never_framed))
}

/// No page of the board may be framed by another site's page (a Retry
/// button under a decoy is a click away).
async fn never_framed(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn basic_auth(State(board): State<Board>, request: Request, next: Next) -> Response {
    if authorized(request.headers(), &board.credentials) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"Tally board\", charset=\"UTF-8\"",
        )],
        "authentication required",
    )
        .into_response()
}

fn authorized(headers: &HeaderMap, credentials: &BoardConfig) -> bool {
    let Some((scheme, encoded)) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
    else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Some((user, password)) = std::str::from_utf8(&decoded)
        .ok()
        .and_then(|s| s.split_once(':'))
    else {
        return false;
    };
    // compare both, always, in constant time: digests, since a compare of
    // slices returns early when their lengths differ
    let digest = |s: &str| Sha256::digest(s.as_bytes());
    let user_ok = digest(user).ct_eq(&digest(&credentials.username));
    let password_ok = digest(password).ct_eq(&digest(credentials.password.expose()));
    (user_ok & password_ok).into()
}

/// Basic auth rides along with any request the browser sends here, so what
/// changes jobs must come from the board's own pages. Browsers send `Origin`
/// with every POST, forms and `fetch` alike; a POST without one is no page's
/// of this board, and is refused with the rest.
/// Behind a trusted proxy that rewrites `Host`, the host the browser asked
/// for is the proxy's `X-Forwarded-Host`.
fn same_origin(headers: &HeaderMap, forwarded: Option<Extension<ForwardedHost>>) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    let host = match &forwarded {
        Some(Extension(ForwardedHost(host))) => host.as_str(),
        None => headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default(),
    };
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

const CROSS_SITE: &str = "cross-site request refused";
const DATABASE_DOWN: &str = "the database is unavailable";
