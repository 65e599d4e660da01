//! The JSON that Tally's script on the board's pages calls: a job with the
//! error of its last attempt, the jobs of an order, and retries.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use jobs::QUEUE;
use jobs::admin::{self, JobStatus, JobSummary};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::warn;

use crate::http::ForwardedHost;

use super::{Board, CROSS_SITE, DATABASE_DOWN, same_origin};

/// Order numbers are `ORD-` and eight digits; anything much longer is no
/// order number.
const MAX_ORDER_NUMBER_LEN: usize = 32;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Job {
    id: String,
    status: &'static str,
    attempts: i32,
    max_attempts: i32,
    order_number: Option<String>,
    /// The job of the order's cancellation, not its own.
    cancellation: bool,
    last_error: Option<String>,
    /// Its page in the board.
    url: String,
}

impl From<JobSummary> for Job {
    fn from(job: JobSummary) -> Self {
        Self {
            url: format!("/queues/{QUEUE}/tasks/{}", job.id),
            status: job.status.as_str(),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            order_number: job.order_number,
            cancellation: job.cancellation,
            last_error: job.last_error,
            id: job.id,
        }
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn database_down(e: jobs::JobError) -> Response {
    warn!(error = %e, "a board request could not read or change jobs");
    error(StatusCode::SERVICE_UNAVAILABLE, DATABASE_DOWN)
}

pub(super) async fn show(State(board): State<Board>, Path(id): Path<String>) -> Response {
    match admin::find_job(&board.db, &id).await {
        Ok(Some(job)) => Json(Job::from(job)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no job {id} in {QUEUE}")),
        Err(e) => database_down(e),
    }
}

#[derive(Deserialize)]
pub(super) struct Search {
    order: Option<String>,
}

/// The jobs of one order, by its number (`ORD-00000042`, or just `42`).
pub(super) async fn search(State(board): State<Board>, Query(search): Query<Search>) -> Response {
    let Some(order_number) = search.order.as_deref().and_then(order_number) else {
        return error(
            StatusCode::BAD_REQUEST,
            "give an order number, such as ORD-00000042",
        );
    };
    match admin::jobs_of_order(&board.db, &order_number).await {
        Ok(found) => Json(json!({
            "orderNumber": order_number,
            "jobs": found.into_iter().map(Job::from).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => database_down(e),
    }
}

/// An order number as operators type it: any case, with or without `ORD-`
/// and its leading zeros.
fn order_number(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > MAX_ORDER_NUMBER_LEN {
        return None;
    }
    let digits = match raw.get(..4) {
        Some(prefix) if prefix.eq_ignore_ascii_case("ord-") => &raw[4..],
        _ => raw,
    };
    let number: u64 = digits
        .chars()
        .all(|c| c.is_ascii_digit())
        .then(|| digits.parse().ok())??;
    Some(format!("ORD-{number:08}"))
}

pub(super) async fn retry(
    State(board): State<Board>,
    headers: HeaderMap,
    forwarded: Option<Extension<ForwardedHost>>,
    Path(id): Path<String>,
) -> Response {
    if !same_origin(&headers, forwarded) {
        return error(StatusCode::FORBIDDEN, CROSS_SITE);
    }
    let job = match admin::find_job(&board.db, &id).await {
        Ok(Some(job)) => job,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no job {id} in {QUEUE}")),
        Err(e) => return database_down(e),
    };
    if !matches!(job.status, JobStatus::Failed | JobStatus::Killed) {
        return error(
            StatusCode::CONFLICT,
            format!(
                "job {id} is {}: only failed or killed jobs are retried",
                job.status.as_str()
            ),
        );
    }
    match board.retry(Some(&id)).await {
        Ok(ids) if ids.is_empty() => error(
            StatusCode::CONFLICT,
            format!("job {id} changed meanwhile: it is no longer failed"),
        ),
        Ok(ids) => Json(json!({ "retried": ids })).into_response(),
        Err(e) => database_down(e),
    }
}

pub(super) async fn retry_failed(
    State(board): State<Board>,
    headers: HeaderMap,
    forwarded: Option<Extension<ForwardedHost>>,
) -> Response {
    if !same_origin(&headers, forwarded) {
        return error(StatusCode::FORBIDDEN, CROSS_SITE);
    }
    match board.retry(None).await {
        Ok(ids) => Json(json!({ "retried": ids })).into_response(),
        Err(e) => database_down(e),
    }
}

#[cfg(test)]
mod tests {
    use super::order_number;

    #[test]
    fn an_order_number_reads_as_operators_type_it() {
        for typed in ["ORD-00000042", "ord-00000042", " 42 ", "ORD-42", "0042"] {
            assert_eq!(
                order_number(typed).as_deref(),
                Some("ORD-00000042"),
                "{typed:?}"
            );
        }
        for typed in ["", "ORD-", "ORD-4x2", "-42", "ORD-+42", &"9".repeat(40)] {
            assert_eq!(order_number(typed), None, "{typed:?}");
        }
    }
}
