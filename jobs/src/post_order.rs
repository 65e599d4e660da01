//! A run of the post-order job (its contract is in [`crate::enqueue`]).

use std::time::Instant;

use apalis::prelude::{Attempt, Data};
use sea_orm::DatabaseConnection;
use tracing::{info, warn};

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

pub async fn run(
    job: PostOrderJob,
    ctx: Data<JobContext>,
    attempt: Attempt,
) -> Result<(), JobError> {
    let started = Instant::now();
    let outcome =
        analytics::apply_order(&ctx.db, job.order_id, ctx.batch_size, &ctx.fail_points).await;
    let seconds = started.elapsed().as_secs_f64();
    let duration_ms = seconds * 1000.0;
    ctx.metrics.record(
        match &outcome {
            Ok(Outcome::Applied(_)) => "applied",
            Ok(Outcome::AlreadyApplied) => "already_applied",
            Ok(Outcome::Reversed(_)) => "reversed",
            Ok(Outcome::AlreadyReversed) => "already_reversed",
            Err(_) => "failed",
        },
        seconds,
    );
    match outcome {
        Ok(Outcome::Applied(applied)) => info!(
            order_number = %job.order_number,
            orders_counted = applied.order_numbers.len(),
            order_numbers = ?applied.order_numbers,
            products_updated = applied.products_updated,
            preferences_user_ids = ?applied.preference_user_ids,
            jobs_retired = applied.jobs_retired,
            attempt = attempt.current(),
            duration_ms,
            "post-order figures applied"
        ),
        Ok(Outcome::Reversed(reversed)) => info!(
            order_number = %job.order_number,
            was_counted = reversed.was_counted,
            products_updated = reversed.products_updated,
            preferences_user_ids = ?reversed.preference_user_ids,
            attempt = attempt.current(),
            duration_ms,
            "cancelled order's figures taken back"
        ),
        Ok(Outcome::AlreadyReversed) => info!(
            order_number = %job.order_number,
            attempt = attempt.current(),
            duration_ms,
            "cancelled order already settled by an earlier run; nothing to take back"
        ),
        Ok(Outcome::AlreadyApplied) => info!(
            order_number = %job.order_number,
            attempt = attempt.current(),
            duration_ms,
            "order already counted by an earlier run; nothing to apply"
        ),
        Err(e) => {
            warn!(
                order_number = %job.order_number,
                attempt = attempt.current(),
                duration_ms,
                error = %e,
                "post-order run failed; its order was not counted (a failed batch counts the others without it)"
            );
            return Err(e);
        }
    }
    Ok(())
}
