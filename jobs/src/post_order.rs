//! A run of the post-order job (its contract is in [`crate::enqueue`]).

use std::time::Instant;

use apalis::prelude::{Attempt, Data, TaskId};
use sea_orm::DatabaseConnection;
use tracing::{Level, debug, info, warn};

use crate::JobError;
use crate::analytics::{self, Outcome};
use crate::enqueue::PostOrderJob;
use crate::fail_points::FailPoints;
use crate::metrics::JobMetrics;

/// What every run of the job needs, shared by a worker's runs.
#[derive(Clone)]
pub struct JobContext {
    pub db: DatabaseConnection,
    /// Orders one run may count together (its own included).
    pub batch_size: u32,
    pub fail_points: FailPoints,
    pub metrics: JobMetrics,
}

/// One attempt at an order's job; its span names the order, the task and
/// the attempt on every line the run logs (the board files a task's lines
/// by the last two).
#[tracing::instrument(
    name = "post_order_job",
    skip_all,
    fields(order_number = %job.order_number, task_id = %task_id, attempt = attempt.current())
)]
pub async fn run(
    job: PostOrderJob,
    ctx: Data<JobContext>,
    attempt: Attempt,
    task_id: TaskId,
) -> Result<(), JobError> {
    let started = Instant::now();
    let outcome =
        analytics::apply_order(&ctx.db, job.order_id, ctx.batch_size, &ctx.fail_points).await;
    ctx.metrics
        .record(label(&outcome), started.elapsed().as_secs_f64());
    log_outcome(&outcome, started, &format_args!("the job {task_id}"));
    outcome.map(drop)
}

/// The outcome as `tally_job_runs_total` counts it.
pub(crate) fn label(outcome: &Result<Outcome, JobError>) -> &'static str {
    match outcome {
        Ok(Outcome::Applied(_)) => "applied",
        Ok(Outcome::AlreadyApplied) => "already_applied",
        Ok(Outcome::Reversed(_)) => "reversed",
        Ok(Outcome::AlreadyReversed) => "already_reversed",
        Err(_) => "failed",
    }
}

/// Where a run tells the jobs it settled for their orders that it did; the
/// board shows each line on that job's page.
pub const SETTLED_TARGET: &str = "jobs::settled";

/// The one line a run logs about its outcome, a job's or the sweep's (the
/// span around it says which, and `run` names it for the jobs it settled).
pub(crate) fn log_outcome(
    outcome: &Result<Outcome, JobError>,
    started: Instant,
    run: &dyn std::fmt::Display,
) {
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(Outcome::Applied(applied)) => {
            info!(
                orders_counted = applied.order_numbers.len(),
                order_numbers = ?applied.order_numbers,
                products_updated = applied.products_updated,
                preferences_user_ids = ?applied.preference_user_ids,
                jobs_retired = applied.retired_jobs.len(),
                duration_ms,
                "post-order figures applied"
            );
            // a line per job: only while someone reads them
            if tracing::enabled!(target: SETTLED_TARGET, Level::DEBUG) {
                for job in &applied.retired_jobs {
                    debug!(
                        target: SETTLED_TARGET,
                        task_id = %job,
                        counted_by = %run,
                        "this job's order was counted with others' by another run: done without running"
                    );
                }
            }
        }
        Ok(Outcome::Reversed(reversed)) => info!(
            was_counted = reversed.was_counted,
            products_updated = reversed.products_updated,
            preferences_user_ids = ?reversed.preference_user_ids,
            duration_ms,
            "cancelled order's figures taken back"
        ),
        Ok(Outcome::AlreadyReversed) => info!(
            duration_ms,
            "cancelled order already settled by an earlier run; nothing to take back"
        ),
        Ok(Outcome::AlreadyApplied) => info!(
            duration_ms,
            "order already counted by an earlier run; nothing to apply"
        ),
        Err(e) => warn!(
            duration_ms,
            error = %e,
            "post-order run failed; its order was not counted (a failed batch counts the others without it)"
        ),
    }
}
