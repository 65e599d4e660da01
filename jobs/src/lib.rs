//! Tally's post-order processing: the apalis job enqueued with every order
//! (and with every cancellation), the bulk SQL that counts orders into the
//! figures exactly once and takes cancelled ones back out exactly once, and
//! the workers that run it.

pub mod admin;
pub mod analytics;
#[cfg(feature = "bench")]
pub mod bench;
pub mod enqueue;
mod error;
pub mod fail_points;
pub mod figures_changed;
pub mod metrics;
pub mod post_order;
pub mod rebuild;
pub mod retention;
pub mod sales_rollup;
pub mod schema;
pub mod worker;

pub use enqueue::{JobKind, JobOptions, PostOrderJob, QUEUE};
pub use error::JobError;
pub use worker::{Wakeup, WorkerPool, WorkerSettings};
