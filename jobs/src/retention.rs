//! apalis-postgres never deletes finished jobs, and its fetch slows as the
//! table grows: this keeps successful jobs for a while (the board shows
//! them), then deletes them in small batches. Failed jobs stay.

use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admin::prune_finished_jobs;

/// Prunes now and then every `every` until `shutdown`.
pub async fn run_retention(
    db: DatabaseConnection,
    retention: Duration,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match prune_finished_jobs(&db, retention).await {
            Ok(0) => {}
            Ok(deleted) => info!(
                deleted,
                ?retention,
                "pruned finished jobs past their retention"
            ),
            Err(e) => warn!(error = %e, "pruning finished jobs failed; trying again later"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
