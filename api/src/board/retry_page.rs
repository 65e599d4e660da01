//! `/retry`: failed and killed jobs with their last error, each with a Retry
//! button, as plain forms for operators without JavaScript. It wears the
//! board's colours (`/tally/board.css`) and links both ways with it.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use jobs::QUEUE;
use jobs::admin::{self, JobStatus, JobSummary};
use serde::Deserialize;
use tracing::warn;

use crate::http::ForwardedHost;

use super::{Board, CROSS_SITE, DATABASE_DOWN, same_origin};

/// Jobs listed per status; the CLI and GraphQL page through more.
const LISTED: u64 = 200;

#[derive(Deserialize)]
pub(super) struct Notice {
    retried: Option<usize>,
}

pub(super) async fn show(State(board): State<Board>, Query(notice): Query<Notice>) -> Response {
    let mut jobs = Vec::new();
    for status in [JobStatus::Failed, JobStatus::Killed] {
        match admin::list_jobs(&board.db, Some(status), LISTED).await {
            Ok(found) => jobs.extend(found),
            Err(e) => {
                warn!(error = %e, "listing failed jobs for the board");
                return (StatusCode::SERVICE_UNAVAILABLE, DATABASE_DOWN).into_response();
            }
        }
    }
    Html(render(&jobs, notice.retried)).into_response()
}

#[derive(Deserialize)]
pub(super) struct RetryForm {
    /// One job, or every failed job when absent.
    id: Option<String>,
}

pub(super) async fn retry(
    State(board): State<Board>,
    headers: HeaderMap,
    forwarded: Option<Extension<ForwardedHost>>,
    Form(form): Form<RetryForm>,
) -> Response {
    if !same_origin(&headers, forwarded) {
        return (StatusCode::FORBIDDEN, CROSS_SITE).into_response();
    }
    match board.retry(form.id.as_deref()).await {
        Ok(ids) => Redirect::to(&format!("/retry?retried={}", ids.len())).into_response(),
        Err(e) => {
            warn!(error = %e, "retrying from the board failed");
            (StatusCode::SERVICE_UNAVAILABLE, DATABASE_DOWN).into_response()
        }
    }
}

fn render(jobs: &[JobSummary], retried: Option<usize>) -> String {
    let notice = retried
        .map(|n| {
            format!(
                "<p class=\"tally-notice\" role=\"status\">{n} job(s) put back in the queue.</p>"
            )
        })
        .unwrap_or_default();
    let rows: String = jobs
        .iter()
        .map(|job| {
            format!(
                "<tr><td><a href=\"/queues/{QUEUE}/tasks/{id}\"><code>{id}</code></a></td><td>{order}</td>\
                 <td><span class=\"tally-status tally-status-{status}\">{status}</span></td><td>{attempts}/{max}</td>\
                 <td class=\"tally-error-cell\">{error}</td><td><form method=\"post\" action=\"/retry\">\
                 <input type=\"hidden\" name=\"id\" value=\"{id}\"><button class=\"tally-button\">Retry</button></form></td></tr>",
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
            "<form method=\"post\" action=\"/retry\"><button class=\"tally-button\">Retry all {count} failed jobs</button></form>\
             <table class=\"tally-table\"><thead><tr><th>Job</th><th>Order</th><th>Status</th><th>Attempts</th>\
             <th>Last error</th><th></th></tr></thead><tbody>{rows}</tbody></table>",
            count = jobs.len()
        )
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Failed jobs - Tally board</title>\
         <link rel=\"stylesheet\" href=\"/tally/board.css\"></head><body class=\"tally-page\">\
         <nav><a href=\"/\">&larr; Board</a> <a href=\"/queues/{QUEUE}\">Queue {QUEUE}</a></nav>\
         <h1>Failed post-order jobs</h1>\
         <p>Retrying puts a job back to pending with its attempts reset; it counts its order at most once.</p>\
         {notice}{body}</body></html>"
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
