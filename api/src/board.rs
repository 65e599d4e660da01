//! The operators' listener: the apalis board (its UI expects the root of its
//! host and its API under `/api/v1`), and `/retry`, since the board itself
//! cannot retry a job. Everything here sits behind HTTP basic auth.

use std::sync::Arc;

use apalis_board::axum::framework::{ApiBuilder, RegisterRoute};
use apalis_board::axum::sse::TracingBroadcaster;
use apalis_board::axum::ui::ServeUI;
use apalis_postgres::PostgresStorage;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Form, Router};
use base64::Engine;
use jobs::admin::{self, JobStatus, JobSummary};
use jobs::{PostOrderJob, QUEUE, Wakeup};
use sea_orm::DatabaseConnection;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use crate::config::BoardConfig;

#[derive(Clone)]
struct Board {
    db: DatabaseConnection,
    wakeup: Wakeup,
    credentials: Arc<BoardConfig>,
}

pub fn router(
    pool: &PgPool,
    db: DatabaseConnection,
    wakeup: Wakeup,
    credentials: BoardConfig,
) -> Router {
    let storage = PostgresStorage::<PostOrderJob>::new(pool)
        .with_config(apalis_postgres::Config::default().queue(QUEUE));
    let api = ApiBuilder::new(Router::new())
        .register(QUEUE, storage)
        .build();
    let board = Board {
        db,
        wakeup,
        credentials: Arc::new(credentials),
    };
    let retry_routes = Router::new()
        .route("/retry", get(retry_page).post(retry))
        .with_state(board.clone());
    Router::new()
        .nest("/api/v1", api)
        .merge(retry_routes)
        .fallback_service(ServeUI::new())
        .layer(Extension(TracingBroadcaster::create()))
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

#[derive(Deserialize)]
struct Notice {
    retried: Option<usize>,
}

/// Failed and killed jobs with their last error, each with a Retry button.
async fn retry_page(State(board): State<Board>, Query(notice): Query<Notice>) -> Response {
    let mut jobs = Vec::new();
    for status in [JobStatus::Failed, JobStatus::Killed] {
        match admin::list_jobs(&board.db, Some(status), 200).await {
            Ok(found) => jobs.extend(found),
            Err(e) => {
                warn!(error = %e, "listing failed jobs for the board");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database is unavailable",
                )
                    .into_response();
            }
        }
    }
    Html(render_retry_page(&jobs, notice.retried)).into_response()
}

#[derive(Deserialize)]
struct RetryForm {
    /// One job, or every failed job when absent.
    id: Option<String>,
}

async fn retry(
    State(board): State<Board>,
    headers: HeaderMap,
    Form(form): Form<RetryForm>,
) -> Response {
    // basic auth rides along with any request the browser sends here, so a
    // form posted from another site must not count
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
    }
    let operator = &board.credentials.username;
    let retried = match form.id.as_deref() {
        Some(id) => admin::retry_job(&board.db, id).await.map(|ok| {
            info!(
                operator,
                job_id = id,
                retried = ok,
                "retry of a failed job requested on the board"
            );
            usize::from(ok)
        }),
        None => admin::retry_failed_jobs(&board.db).await.map(|ids| {
            info!(operator, job_ids = ?ids, "retry of every failed job requested on the board");
            ids.len()
        }),
    };
    match retried {
        Ok(n) => {
            board.wakeup.jobs_waiting();
            Redirect::to(&format!("/retry?retried={n}")).into_response()
        }
        Err(e) => {
            warn!(error = %e, "retrying from the board failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable",
            )
                .into_response()
        }
    }
}

/// Browsers send `Origin` with every form they post; a request without one
/// is no form of this page, and is refused with the rest.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

fn render_retry_page(jobs: &[JobSummary], retried: Option<usize>) -> String {
    let notice = retried
        .map(|n| format!("<p class=\"notice\">{n} job(s) put back in the queue.</p>"))
        .unwrap_or_default();
    let rows: String = jobs
        .iter()
        .map(|job| {
            format!(
                "<tr><td><code>{id}</code></td><td>{order}</td><td>{status}</td><td>{attempts}/{max}</td>\
                 <td>{error}</td><td><form method=\"post\" action=\"/retry\">\
                 <input type=\"hidden\" name=\"id\" value=\"{id}\"><button>Retry</button></form></td></tr>",
                id = escape(&job.id),
                order = escape(&job.order_label()),
                status = job.status.as_str(),
                attempts = job.attempts,
                max = job.max_attempts,
                error = escape(job.last_error.as_deref().unwrap_or("")),
            )
        })
        .collect();
    let body = if jobs.is_empty() {
        "<p>No failed jobs.</p>".to_owned()
    } else {
        format!(
            "<form method=\"post\" action=\"/retry\"><button>Retry all {count} failed jobs</button></form>\
             <table><thead><tr><th>Job</th><th>Order</th><th>Status</th><th>Attempts</th>\
             <th>Last error</th><th></th></tr></thead><tbody>{rows}</tbody></table>",
            count = jobs.len()
        )
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Tally: failed jobs</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em .8em;text-align:left}}\
         .notice{{color:#060}}</style></head><body><h1>Failed post-order jobs</h1>\
         <p>Queue <code>{QUEUE}</code>. Retrying puts a job back to pending with its attempts reset; \
         it counts its order at most once. <a href=\"/\">Board</a></p>{notice}{body}</body></html>"
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
