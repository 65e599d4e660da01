//! Post-order jobs and analytics rebuilds, as an admin sees them.

use async_graphql::{ID, SimpleObject};
use chrono::{DateTime, Utc};
use jobs::admin::{JobStatus, JobSummary};
use jobs::rebuild::RebuildReport;

/// A post-order job as apalis keeps it.
#[derive(SimpleObject)]
pub struct Job {
    pub id: ID,
    pub status: JobStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    /// The order this job counts (or, for a cancellation's, takes back out).
    pub order_number: Option<String>,
    /// True for the job a cancellation enqueues, which takes its order back
    /// out of the figures; false for the job every order gets.
    pub cancellation: bool,
    /// The error of the last attempt, for a failed job.
    pub last_error: Option<String>,
    pub run_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
}

impl From<JobSummary> for Job {
    fn from(job: JobSummary) -> Self {
        Self {
            id: job.id.into(),
            status: job.status,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            order_number: job.order_number,
            cancellation: job.cancellation,
            last_error: job.last_error,
            run_at: job.run_at,
            done_at: job.done_at,
        }
    }
}

/// What `rebuildAnalytics` did.
#[derive(SimpleObject)]
#[graphql(name = "RebuildReport")]
pub struct Rebuild {
    /// Orders no job had settled yet, settled by the rebuild: placed ones
    /// counted, cancelled ones taken back out.
    pub orders_marked: u64,
    /// Products whose figures changed.
    pub products_updated: u64,
    pub customer_product_rows: u64,
    pub customer_category_rows: u64,
}

impl From<RebuildReport> for Rebuild {
    fn from(r: RebuildReport) -> Self {
        Self {
            orders_marked: r.orders_marked,
            products_updated: r.products_updated,
            customer_product_rows: r.customer_product_rows,
            customer_category_rows: r.customer_category_rows,
        }
    }
}
