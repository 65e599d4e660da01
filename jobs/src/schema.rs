//! What Tally changes in apalis's tables, as SQL the migration crate
//! applies: the post-order queue's index on its keys (a migration), and the
//! adjustments made after every apalis setup (an upgrade of apalis may bring
//! back what they drop). Kept here, with every other statement that touches
//! apalis's tables.

/// Run after apalis-postgres's own setup, every time a process starts.
pub const APALIS_ADJUSTMENTS: &str = include_str!("../sql/schema/apalis_adjustments.sql");

/// Migration `m20251207_000012_order_job_keys`: the unique index on the
/// post-order queue's keys alone, which the retirement of a run's other jobs
/// reads (`sql/retire_jobs.sql`).
pub const ORDER_JOB_KEYS_UP: &str = include_str!("../sql/schema/order_job_keys.up.sql");
pub const ORDER_JOB_KEYS_DOWN: &str = include_str!("../sql/schema/order_job_keys.down.sql");
