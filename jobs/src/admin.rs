//! What operators do to jobs: list them, retry failed ones, prune history.
//! apalis-board 1.0 shows jobs but cannot retry them; these can.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, Value};

use crate::JobError;

/// apalis's job statuses.
pub const STATUSES: [&str; 6] = ["Pending", "Queued", "Running", "Done", "Failed", "Killed"];

/// apalis's spelling of a status given in any case (`failed` → `Failed`).
pub fn status_name(raw: &str) -> Option<&'static str> {
    STATUSES.into_iter().find(|s| s.eq_ignore_ascii_case(raw))
}

#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct JobSummary {
    pub id: String,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    pub order_number: Option<String>,
    /// The job of the order's cancellation (not the one every order gets).
    pub cancellation: bool,
    pub last_error: Option<String>,
}

impl JobSummary {
    /// The order number, marked for a cancellation's job, as operators read it.
    pub fn order_label(&self) -> String {
        let number = self.order_number.as_deref().unwrap_or_default();
        match self.cancellation {
            true => format!("{number} (cancellation)"),
            false => number.to_owned(),
        }
    }
}

/// The newest `limit` jobs of `queue`, of one status (`Failed`, `Done`, …) or all.
pub async fn list_jobs<C: ConnectionTrait>(
    db: &C,
    queue: &str,
    status: Option<&str>,
    limit: u64,
) -> Result<Vec<JobSummary>, JobError> {
    Ok(
        JobSummary::find_by_statement(Statement::from_sql_and_values(
            DbBackend::Postgres,
            include_str!("../sql/list_jobs.sql"),
            [
                queue.into(),
                status.map(str::to_owned).into(),
                (limit as i64).into(),
            ],
        ))
        .all(db)
        .await?,
    )
}

/// Puts one failed or killed job back in the queue; false if there was none by that id.
pub async fn retry_job<C: ConnectionTrait>(
    db: &C,
    queue: &str,
    id: &str,
) -> Result<bool, JobError> {
    Ok(!retry(db, queue, Some(id)).await?.is_empty())
}

/// Puts every failed or killed job of `queue` back; returns their ids.
pub async fn retry_failed_jobs<C: ConnectionTrait>(
    db: &C,
    queue: &str,
) -> Result<Vec<String>, JobError> {
    retry(db, queue, None).await
}

async fn retry<C: ConnectionTrait>(
    db: &C,
    queue: &str,
    id: Option<&str>,
) -> Result<Vec<String>, JobError> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            include_str!("../sql/retry_jobs.sql"),
            [queue.into(), id.map(str::to_owned).into()],
        ))
        .await?;
    Ok(rows
        .iter()
        .map(|row| row.try_get::<String>("", "id"))
        .collect::<Result<_, _>>()?)
}

/// Deletes jobs that finished successfully longer ago than `retention`, in
/// batches, and returns how many went.
pub async fn prune_finished_jobs<C: ConnectionTrait>(
    db: &C,
    retention: std::time::Duration,
) -> Result<u64, JobError> {
    let mut deleted = 0;
    loop {
        let batch = db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                include_str!("../sql/prune_jobs.sql"),
                [Value::from(retention.as_secs_f64())],
            ))
            .await?
            .rows_affected();
        deleted += batch;
        if batch == 0 {
            return Ok(deleted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancellations_job_is_labelled_as_such() {
        let job = |cancellation| JobSummary {
            id: "01J".into(),
            status: "Failed".into(),
            attempts: 5,
            max_attempts: 5,
            run_at: Utc::now(),
            done_at: None,
            order_number: Some("ORD-00000042".into()),
            cancellation,
            last_error: None,
        };
        assert_eq!(job(false).order_label(), "ORD-00000042");
        assert_eq!(job(true).order_label(), "ORD-00000042 (cancellation)");
    }
}
