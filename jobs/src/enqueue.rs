//! The post-order job's contract: its queue, its arguments, its keys and the
//! row that enqueues it. Orders and cancellations are written by the api
//! crate, which puts [`enqueue_sql`] into its own statement; no other crate
//! spells a key, the queue or a field of the job's row.

use sea_orm::Value;
use serde::{Deserialize, Serialize};

/// The apalis queue (`apalis.jobs.job_type`) of post-order jobs. Stored in
/// every job row, so renaming it would strand the jobs already queued.
pub const QUEUE: &str = "order_analytics";

/// The job's arguments, stored by apalis-postgres as JSON bytes. The rows
/// [`enqueue_sql`] writes carry these fields; a test decodes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostOrderJob {
    pub order_id: i64,
    pub order_number: String,
}

/// What a post-order job was enqueued for. Both kinds run the same code,
/// which settles the order as it finds it; the kind is in the job's key, so
/// that an order has at most one job of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Enqueued with every order: counts it into the figures.
    Count,
    /// Enqueued with a cancellation: takes the order back out.
    Reverse,
}

impl JobKind {
    fn key_prefix(self) -> &'static str {
        match self {
            Self::Count => "order-",
            Self::Reverse => "cancel-",
        }
    }

    /// The job's idempotency key (`apalis.jobs.idempotency_key`).
    pub fn key(self, order_id: i64) -> String {
        format!("{}{order_id}", self.key_prefix())
    }

    /// The kind of the job with this key; None for a key no post-order job has.
    pub fn of_key(key: &str) -> Option<Self> {
        [Self::Count, Self::Reverse].into_iter().find(|kind| {
            key.strip_prefix(kind.key_prefix())
                .is_some_and(|id| id.parse::<i64>().is_ok())
        })
    }
}

/// How the jobs of this deployment are enqueued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobOptions {
    /// Attempts per job, the first included; after the last the job stays Failed.
    pub max_attempts: u32,
}

/// Where a job row takes a value from, in the statement it is a part of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlValue {
    /// The statement's parameter `$n` (its value made by [`enqueue_values`]
    /// or its parts).
    Param(u8),
    /// A column of `o`, the order's row of the caller's CTE.
    Column(&'static str),
}

impl std::fmt::Display for SqlValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Param(n) => write!(f, "${n}"),
            Self::Column(name) => write!(f, "o.{name}"),
        }
    }
}

/// The job rows a statement writes: the `kind` job of each order the
/// caller's CTE `orders` returns (with its columns `id` and
/// `order_number`), with its id and attempts from where they say.
#[derive(Debug, Clone, Copy)]
pub struct JobRows {
    pub kind: JobKind,
    pub orders: &'static str,
    pub job_id: SqlValue,
    pub max_attempts: SqlValue,
}

/// The body of a CTE that writes `rows`, in the caller's statement.
pub fn enqueue_sql(rows: JobRows) -> String {
    include_str!("../sql/enqueue.sql")
        .replace("{orders}", rows.orders)
        .replace("{job_id}", &rows.job_id.to_string())
        .replace("{max_attempts}", &rows.max_attempts.to_string())
        .replace("{queue}", QUEUE)
        .replace("{key_prefix}", rows.kind.key_prefix())
}

/// The values of a job's id and the attempts it may take, in that order.
pub fn enqueue_values(options: JobOptions) -> [Value; 2] {
    [new_job_id().into(), max_attempts_value(options)]
}

/// The attempts a job may take, as [`enqueue_sql`]'s `max_attempts` reads it.
pub fn max_attempts_value(options: JobOptions) -> Value {
    i32::try_from(options.max_attempts)
        .unwrap_or(i32::MAX)
        .into()
}

/// A new job's id: apalis reads ids as ULIDs.
pub fn new_job_id() -> String {
    ulid::Ulid::generate().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_its_kind_and_order() {
        assert_eq!(JobKind::Count.key(42), "order-42");
        assert_eq!(JobKind::Reverse.key(42), "cancel-42");
        assert_eq!(JobKind::of_key("order-42"), Some(JobKind::Count));
        assert_eq!(JobKind::of_key("cancel-7"), Some(JobKind::Reverse));
        assert_eq!(JobKind::of_key("cancel-"), None);
        assert_eq!(JobKind::of_key("copy-order-7"), None);
    }

    #[test]
    fn the_enqueue_sql_reads_its_parameters_and_the_callers_orders() {
        let sql = enqueue_sql(JobRows {
            kind: JobKind::Reverse,
            orders: "cancelled",
            job_id: SqlValue::Param(3),
            max_attempts: SqlValue::Param(4),
        });
        assert!(sql.contains("select $3,"), "{sql}");
        assert!(sql.contains("       $4,"), "{sql}");
        assert!(sql.contains("from cancelled o"), "{sql}");
        assert!(sql.contains("'cancel-' || o.id"), "{sql}");
        assert!(sql.contains("'order_analytics'"), "{sql}");
        assert!(!sql.contains('{'), "a placeholder is left: {sql}");
        let sql = enqueue_sql(JobRows {
            kind: JobKind::Count,
            orders: "placed",
            job_id: SqlValue::Column("job_id"),
            max_attempts: SqlValue::Param(2),
        });
        assert!(sql.contains("select o.job_id,"), "{sql}");
        assert!(sql.contains("'order-' || o.id"), "{sql}");
    }
}
