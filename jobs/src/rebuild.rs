//! Recomputing every figure from the order history (say, after importing
//! old orders): nine set-based statements in one transaction, so memory
//! stays with PostgreSQL whatever the number of orders. The result equals
//! counting each order once through the job.
//!
//! It is safe while orders keep arriving and workers keep running: step 1
//! takes the figures' lock alone, which every run that writes figures shares,
//! so no run is half-way through its figures while we recompute them, and
//! none starts before we commit; step 2 leaves out the orders a cancellation
//! holds, and its job settles them after we commit. Placements and product
//! changes take no such lock, so ordering never stops, and a product created
//! meanwhile is in the recount or has no counted order yet.
//!
//! An order that cannot be counted (see `analytics`) would fail the whole
//! recount: the rebuild then counts the waiting orders through the jobs'
//! path first, which holds that order back, and recomputes without it.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use tracing::{info, warn};

use crate::JobError;
use crate::analytics::{self, FIGURES_LOCK, Outcome};
use crate::fail_points::FailPoints;
use crate::figures_changed::{self, FiguresChanged};

/// The advisory lock a recount holds, so that two never run at once.
const REBUILD_LOCK: i64 = 0x0072_6562_7569_6c64; // "rebuild"

/// Orders per transaction when the rebuild counts waiting orders the jobs' way.
const DRAIN_BATCH: u32 = 100;

/// One bigint: how many figures differ from a recount over the order lines
/// (0 when exact). What the rebuild must leave, and what every test and the
/// benchmark check after load.
pub const FIGURE_MISMATCHES_SQL: &str = include_str!("../sql/figure_mismatches.sql");

/// Empties the sales buckets: a rebuild's first step for them (and the
/// bench's, after a drain that left them alone).
pub const CLEAR_SALES_SQL: &str = include_str!("../sql/rebuild/clear_sales.sql");
/// Fills the emptied sales buckets from every counted order.
pub const SALES_SQL: &str = include_str!("../sql/rebuild/sales.sql");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RebuildReport {
    /// Orders that no job had settled yet, now settled by the rebuild:
    /// placed ones counted, cancelled ones marked taken back.
    pub orders_marked: u64,
    pub products_updated: u64,
    pub customer_product_rows: u64,
    pub customer_category_rows: u64,
}

pub async fn rebuild_analytics(db: &DatabaseConnection) -> Result<RebuildReport, JobError> {
    match recount(db).await {
        Err(e) if e.is_data_failure() => {
            warn!(error = %e, "the recount failed on an order's data; counting the waiting \
                  orders the jobs' way to hold back the ones that fail, then recounting");
            let drained = drain_waiting(db).await?;
            info!(
                orders_counted = drained,
                "counted the waiting orders before the recount"
            );
            recount(db).await
        }
        result => result,
    }
}

/// Counts every waiting order the way the sweep does (batches split until
/// the order that fails stands alone, then held back) until none waits.
async fn drain_waiting(db: &DatabaseConnection) -> Result<usize, JobError> {
    let mut counted = 0;
    while let Outcome::Applied(applied) =
        analytics::apply_waiting(db, DRAIN_BATCH, &FailPoints::default()).await?
    {
        counted += applied.order_numbers.len();
    }
    Ok(counted)
}

async fn recount(db: &DatabaseConnection) -> Result<RebuildReport, JobError> {
    let txn = db.begin().await?;
    let run = |sql: &'static str| {
        let txn = &txn;
        async move {
            txn.execute_raw(Statement::from_string(DbBackend::Postgres, sql))
                .await
                .map(|r| r.rows_affected())
        }
    };
    let free = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            include_str!("../sql/rebuild/one_at_a_time.sql"),
            [REBUILD_LOCK.into()],
        ))
        .await?
        .map(|row| row.try_get::<bool>("", "free"))
        .transpose()?;
    if free != Some(true) {
        return Err(JobError::RebuildRunning);
    }
    // a long history needs longer than any request's statement timeout
    run("set local statement_timeout = 0").await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        include_str!("../sql/rebuild/lock_figures.sql"),
        [FIGURES_LOCK.into()],
    ))
    .await?;
    let orders_marked = run(include_str!("../sql/rebuild/mark_orders.sql")).await?;
    let products_updated = run(include_str!("../sql/rebuild/products.sql")).await?;
    run(include_str!("../sql/rebuild/clear_customer_products.sql")).await?;
    let customer_product_rows = run(include_str!("../sql/rebuild/customer_products.sql")).await?;
    run(include_str!("../sql/rebuild/clear_customer_categories.sql")).await?;
    let customer_category_rows =
        run(include_str!("../sql/rebuild/customer_categories.sql")).await?;
    run(CLEAR_SALES_SQL).await?;
    run(SALES_SQL).await?;
    // subscribers read again, and API processes drop their public answers
    figures_changed::notify(&txn, &FiguresChanged::everything()).await?;
    txn.commit().await?;
    let report = RebuildReport {
        orders_marked,
        products_updated,
        customer_product_rows,
        customer_category_rows,
    };
    info!(?report, "rebuilt every figure from the order history");
    Ok(report)
}
