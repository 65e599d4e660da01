//! What operators do to jobs: list them, retry failed ones, prune history.
//! apalis-board 1.0 shows jobs but cannot retry them; these can. GraphQL,
//! Tally's additions to the board and the CLI all call these, on Tally's queue.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, QueryResult, Statement, Value};

use crate::JobError;
use crate::enqueue::{JobKind, PostOrderJob};

/// Where a post-order job stands, as apalis keeps it.
// The api crate shows these as a GraphQL enum (PENDING, …) and takes them on
// the command line (pending, …), through the features graphql and cli.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum JobStatus {
    /// Waiting for a worker (new, retried, or between attempts).
    Pending,
    /// Taken by a worker, not started yet.
    Queued,
    Running,
    /// Finished: its order is settled.
    Done,
    /// Its last attempt failed: it waits for an operator's retry.
    Failed,
    /// Aborted by apalis without retries: it waits for an operator's retry.
    Killed,
}

impl JobStatus {
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Queued,
        Self::Running,
        Self::Done,
        Self::Failed,
        Self::Killed,
    ];

    /// apalis's spelling, as `apalis.jobs.status` holds it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Queued => "Queued",
            Self::Running => "Running",
            Self::Done => "Done",
            Self::Failed => "Failed",
            Self::Killed => "Killed",
        }
    }
}

impl std::str::FromStr for JobStatus {
    type Err = String;

    /// A status in any case (`failed`, `FAILED`); the error names the choices.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(raw))
            .ok_or_else(|| {
                let choices: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "{raw:?} is not a job status: use one of {}",
                    choices.join(", ")
                )
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    pub id: String,
    pub status: JobStatus,
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

/// `sql` with the columns of a [`JobSummary`] filled in (`job_summaries.sql`).
fn job_summaries(sql: &str) -> String {
    sql.replace(
        "{job_summaries}",
        include_str!("../sql/job_summaries.sql").trim_end(),
    )
}

static LIST_JOBS_SQL: LazyLock<String> =
    LazyLock::new(|| job_summaries(include_str!("../sql/list_jobs.sql")));
static FIND_JOBS_SQL: LazyLock<String> =
    LazyLock::new(|| job_summaries(include_str!("../sql/find_jobs.sql")));

/// A row of `job_summaries.sql`.
#[derive(FromQueryResult)]
struct JobRow {
    id: String,
    status: String,
    attempts: i32,
    max_attempts: i32,
    run_at: DateTime<Utc>,
    done_at: Option<DateTime<Utc>>,
    job: Vec<u8>,
    idempotency_key: Option<String>,
    last_error: Option<String>,
}

impl TryFrom<JobRow> for JobSummary {
    type Error = JobError;

    fn try_from(row: JobRow) -> Result<Self, JobError> {
        Ok(Self {
            // apalis writes only its own statuses: anything else is a row
            // the queue cannot hold
            status: row.status.parse().map_err(sea_orm::DbErr::Type)?,
            cancellation: row.idempotency_key.as_deref().and_then(JobKind::of_key)
                == Some(JobKind::Reverse),
            id: row.id,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            run_at: row.run_at,
            done_at: row.done_at,
            // None for a payload that is not the JSON Tally writes (a row
            // written by hand, or damaged): listed all the same
            order_number: serde_json::from_slice::<PostOrderJob>(&row.job)
                .ok()
                .map(|job| job.order_number),
            last_error: row.last_error,
        })
    }
}

/// The newest `limit` jobs, of one status or all.
pub async fn list_jobs<C: ConnectionTrait>(
    db: &C,
    status: Option<JobStatus>,
    limit: u64,
) -> Result<Vec<JobSummary>, JobError> {
    JobRow::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        LIST_JOBS_SQL.as_str(),
        [
            crate::QUEUE.into(),
            status.map(|s| s.as_str().to_owned()).into(),
            (limit as i64).into(),
        ],
    ))
    .all(db)
    .await?
    .into_iter()
    .map(JobSummary::try_from)
    .collect()
}

/// How many post-order jobs are in each status now, for `/metrics`: every
/// status, in [`JobStatus::ALL`]'s order, 0 where none is.
pub async fn count_by_status<C: ConnectionTrait>(db: &C) -> Result<Vec<(JobStatus, i64)>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            include_str!("../sql/jobs_by_status.sql"),
            [crate::QUEUE.into()],
        ))
        .await?;
    let mut counts = Vec::with_capacity(JobStatus::ALL.len());
    for status in JobStatus::ALL {
        let count = rows
            .iter()
            .find(|r| {
                r.try_get::<String>("", "status")
                    .is_ok_and(|s| s == status.as_str())
            })
            .map(|r| r.try_get::<i64>("", "jobs"))
            .transpose()?
            .unwrap_or(0);
        counts.push((status, count));
    }
    Ok(counts)
}

/// Jobs that still have work to do (see `unsettled_jobs.sql`): 0 once every
/// order is settled, as far as the workers can take it. What tests wait for.
pub async fn unsettled<C: ConnectionTrait>(db: &C) -> Result<i64, DbErr> {
    db.query_one_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        include_str!("../sql/unsettled_jobs.sql"),
        [crate::QUEUE.into()],
    ))
    .await?
    .ok_or_else(|| DbErr::Custom("a count without a row".into()))?
    .try_get("", "count")
}

/// How far counting is behind: see `analytics_lag.sql`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// Seconds since the oldest order still to be counted was placed; 0
    /// when none waits.
    pub seconds: f64,
    /// Orders held back because counting them failed (not lag: they wait
    /// for an operator).
    pub held_back: i64,
}

/// How far counting is behind now.
pub async fn lag<C: ConnectionTrait>(db: &C) -> Result<Lag, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            include_str!("../sql/analytics_lag.sql"),
        ))
        .await?;
    Ok(match row {
        Some(row) => Lag {
            seconds: row.try_get("", "lag_seconds")?,
            held_back: row.try_get("", "held_back")?,
        },
        None => Lag {
            seconds: 0.0,
            held_back: 0,
        },
    })
}

/// One job of the queue, by its id.
pub async fn find_job<C: ConnectionTrait>(
    db: &C,
    id: &str,
) -> Result<Option<JobSummary>, JobError> {
    Ok(find_jobs(db, Some(id), Vec::new()).await?.pop())
}

/// The jobs of the order with this number (`ORD-…`): its own, and its
/// cancellation's if it was cancelled; none for an unknown number.
pub async fn jobs_of_order<C: ConnectionTrait>(
    db: &C,
    order_number: &str,
) -> Result<Vec<JobSummary>, JobError> {
    let order = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select id from orders where order_number = $1",
            [order_number.into()],
        ))
        .await?;
    let Some(order) = order else {
        return Ok(Vec::new());
    };
    let order_id: i64 = order.try_get("", "id")?;
    let keys = [JobKind::Count, JobKind::Reverse].map(|kind| kind.key(order_id));
    find_jobs(db, None, keys.to_vec()).await
}

async fn find_jobs<C: ConnectionTrait>(
    db: &C,
    id: Option<&str>,
    keys: Vec<String>,
) -> Result<Vec<JobSummary>, JobError> {
    JobRow::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        FIND_JOBS_SQL.as_str(),
        [
            crate::QUEUE.into(),
            id.map(str::to_owned).into(),
            keys.into(),
        ],
    ))
    .all(db)
    .await?
    .into_iter()
    .map(JobSummary::try_from)
    .collect()
}

/// What a retry did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Retried {
    /// The jobs put back in the queue.
    pub put_back: Vec<String>,
    /// Failed jobs left failed: no worker could read them ([`retry_jobs`]).
    pub unreadable: Vec<String>,
}

/// Puts the failed or killed job `id` back, or every one when `id` is None.
/// A job no worker could read (its id no ULID, or its payload no
/// [`PostOrderJob`]: a row written by hand, or damaged) stays failed, with a
/// warning: apalis's fetch ends its worker's poll loop on such a row, and so
/// would stop the jobs fetched with it, again at each fetch.
pub async fn retry_jobs<C: ConnectionTrait>(db: &C, id: Option<&str>) -> Result<Retried, JobError> {
    let failed = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            include_str!("../sql/failed_jobs.sql"),
            [crate::QUEUE.into(), id.map(str::to_owned).into()],
        ))
        .await?;
    let (readable, unreadable) = by_readability(&failed)?;
    for id in &unreadable {
        tracing::warn!(job_id = %id, "{}", unreadable_job(id));
    }
    if readable.is_empty() {
        return Ok(Retried {
            put_back: Vec::new(),
            unreadable,
        });
    }
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            include_str!("../sql/retry_jobs.sql"),
            [crate::QUEUE.into(), readable.into()],
        ))
        .await?;
    Ok(Retried {
        put_back: ids(&rows)?,
        unreadable,
    })
}

/// Kills the jobs that the worker named `worker` held when it ended and that
/// no worker can read (see [`retry_jobs`]): apalis's fetch ended its poll
/// loop on such a row, and would hand it out again, to every worker in
/// turn, once the row came back as an orphan. Killed, it stays out of every
/// fetch and shows with its reason among the failed jobs. Returns their ids.
pub async fn kill_unreadable_jobs<C: ConnectionTrait>(
    db: &C,
    worker: &str,
) -> Result<Vec<String>, JobError> {
    let held = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            include_str!("../sql/held_jobs.sql"),
            [crate::QUEUE.into(), worker.into()],
        ))
        .await?;
    let (_, unreadable) = by_readability(&held)?;
    if unreadable.is_empty() {
        return Ok(unreadable);
    }
    let killed = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            include_str!("../sql/kill_jobs.sql"),
            [
                crate::QUEUE.into(),
                unreadable.into(),
                UNREADABLE_REASON.into(),
            ],
        ))
        .await?;
    ids(&killed)
}

/// The ids of rows of (id, job) that a worker can read, and of the others.
fn by_readability(rows: &[QueryResult]) -> Result<(Vec<String>, Vec<String>), JobError> {
    let mut readable = Vec::with_capacity(rows.len());
    let mut unreadable = Vec::new();
    for row in rows {
        let id: String = row.try_get("", "id")?;
        let payload: Vec<u8> = row.try_get("", "job")?;
        match a_worker_can_read(&id, &payload) {
            true => readable.push(id),
            false => unreadable.push(id),
        }
    }
    Ok((readable, unreadable))
}

fn ids(rows: &[QueryResult]) -> Result<Vec<String>, JobError> {
    Ok(rows
        .iter()
        .map(|row| row.try_get::<String>("", "id"))
        .collect::<Result<_, _>>()?)
}

/// The last error of a job killed by [`kill_unreadable_jobs`].
pub const UNREADABLE_REASON: &str = "no worker can read this job (its id is no ULID, or its \
                                     payload no post-order job's JSON): delete it";

/// Why the failed job `id`, which no worker could read, was not put back.
pub fn unreadable_job(id: &str) -> String {
    format!(
        "job {id} cannot be read by a worker (its id is no ULID, or its payload no post-order \
         job's JSON): it stays failed; delete it"
    )
}

/// Whether apalis can make a task of this row: it parses the id as a ULID
/// and the payload as the job's JSON.
fn a_worker_can_read(id: &str, payload: &[u8]) -> bool {
    ulid::Ulid::from_string(id).is_ok() && serde_json::from_slice::<PostOrderJob>(payload).is_ok()
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
    fn the_job_statements_have_their_columns_filled_in() {
        for sql in [&*LIST_JOBS_SQL, &*FIND_JOBS_SQL] {
            assert!(!sql.contains('{'), "a placeholder is left: {sql}");
            assert!(sql.contains("last_result ->> 'Err' as last_error"), "{sql}");
        }
    }

    #[test]
    fn a_cancellations_job_is_labelled_as_such() {
        let job = |cancellation| JobSummary {
            id: "01J".into(),
            status: JobStatus::Failed,
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

    #[test]
    fn a_status_reads_in_any_case_and_a_wrong_one_names_the_choices() {
        assert_eq!("failed".parse(), Ok(JobStatus::Failed));
        assert_eq!("KILLED".parse(), Ok(JobStatus::Killed));
        assert_eq!(JobStatus::Done.as_str(), "Done");
        assert_eq!(
            "stuck".parse::<JobStatus>(),
            Err("\"stuck\" is not a job status: use one of Pending, Queued, Running, Done, Failed, Killed".to_owned())
        );
    }
}
