//! Recomputing every figure from the order history (say, after importing
//! old orders): seven set-based statements in one transaction, so memory
//! stays with PostgreSQL whatever the number of orders. The result equals
//! counting each order once through the job.
//!
//! It is safe while orders keep arriving and workers keep running: step 1
//! locks every product the way a job's product update does, so no job is
//! half-way through its figures while we recompute them; step 2 leaves out
//! the orders a blocked job has claimed, and that job adds them after we
//! commit. Placements only take key-share locks on products, which our
//! locks allow, so ordering never stops.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use tracing::info;

use crate::JobError;

/// One bigint: how many figures differ from a recount over the order lines
/// (0 when exact). What the rebuild must leave, and what every test and the
/// benchmark check after load.
pub const FIGURE_MISMATCHES_SQL: &str = include_str!("../sql/figure_mismatches.sql");

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
    let txn = db.begin().await?;
    let run = |sql: &'static str| {
        let txn = &txn;
        async move {
            txn.execute_raw(Statement::from_string(DbBackend::Postgres, sql))
                .await
                .map(|r| r.rows_affected())
        }
    };
    // An admin asked for it through the API, whose connections stop
    // statements after a few seconds: a long history needs longer.
    run("set local statement_timeout = 0").await?;
    run(include_str!("../sql/rebuild/lock_products.sql")).await?;
    let orders_marked = run(include_str!("../sql/rebuild/mark_orders.sql")).await?;
    let products_updated = run(include_str!("../sql/rebuild/products.sql")).await?;
    run(include_str!("../sql/rebuild/clear_customer_products.sql")).await?;
    let customer_product_rows = run(include_str!("../sql/rebuild/customer_products.sql")).await?;
    run(include_str!("../sql/rebuild/clear_customer_categories.sql")).await?;
    let customer_category_rows =
        run(include_str!("../sql/rebuild/customer_categories.sql")).await?;
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
