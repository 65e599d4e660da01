//! Counting orders into the figures, and taking cancelled orders back out:
//! one transaction, a fixed number of statements however many orders, lines
//! or products a run covers.

use std::collections::BTreeSet;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, QueryResult, Statement,
    TransactionTrait, Value,
};
use tracing::warn;

use crate::JobError;
use crate::fail_points::FailPoints;
use crate::figures_changed::{self, FiguresChanged};

/// How often a run that lost a deadlock or serialization race starts over
/// before the failure goes to apalis's retry with backoff.
const CONFLICT_RETRIES: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An earlier run (this job's own, or a batch of another) counted the
    /// order, and no other order was waiting.
    AlreadyApplied,
    Applied(Applied),
    /// The run's own order was cancelled: its contribution is taken back out.
    Reversed(Reversed),
    /// The run's own order was cancelled, and an earlier run settled it.
    AlreadyReversed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The order numbers this run counted: its own first (unless another run
    /// counted it), then the coalesced ones.
    pub order_numbers: Vec<String>,
    pub products_updated: usize,
    /// Customers whose preference figures changed.
    pub preference_user_ids: Vec<i64>,
    /// Jobs of the other counted orders, done by this run before any worker took them.
    pub jobs_retired: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reversed {
    pub order_number: String,
    /// False when the order was cancelled before any run counted it: there
    /// was nothing to take back, and nothing was.
    pub was_counted: bool,
    pub products_updated: usize,
    /// Customers whose preference figures changed.
    pub preference_user_ids: Vec<i64>,
}

/// Settles `order_id`. A placed order is counted unless it is counted already,
/// with other uncounted orders (up to `batch_size` in all), into product
/// figures and customer preferences. A cancelled order's contribution is
/// taken back out, if it was counted. Exactly once each way: the
/// `analytics_applied_at` and `analytics_reversed_at` markers commit with the
/// figures.
pub async fn apply_order(
    db: &DatabaseConnection,
    order_id: i64,
    batch_size: u32,
    fail_points: &FailPoints,
) -> Result<Outcome, JobError> {
    with_conflict_retries(|| apply_once(db, Some(order_id), batch_size, fail_points)).await
}

/// Counts up to `batch_size` waiting orders, oldest first, for no job in
/// particular: what a process does right after its own placements commit, so
/// their figures do not wait for their jobs' turn in the queue. The jobs stay
/// the guarantee: whatever this leaves or fails to count, they count.
pub async fn apply_waiting(
    db: &DatabaseConnection,
    batch_size: u32,
    fail_points: &FailPoints,
) -> Result<Outcome, JobError> {
    with_conflict_retries(|| apply_once(db, None, batch_size, fail_points)).await
}

async fn with_conflict_retries<F, Fut>(run: F) -> Result<Outcome, JobError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Outcome, JobError>>,
{
    let mut conflicts = 0;
    loop {
        match run().await {
            Err(e) if e.is_transient_conflict() && conflicts < CONFLICT_RETRIES => {
                conflicts += 1;
                warn!(conflicts, error = %e, "post-order run lost a lock race; running it again");
            }
            result => return result,
        }
    }
}

/// Order ids start at 1: this one matches no order.
const NO_ORDER: i64 = 0;

async fn apply_once(
    db: &DatabaseConnection,
    own: Option<i64>,
    batch_size: u32,
    fail_points: &FailPoints,
) -> Result<Outcome, JobError> {
    let txn = db.begin().await?;

    let (order_id, own_counted, own_number) = match own {
        None => (NO_ORDER, true, "the sweep after a placement".to_owned()),
        Some(order_id) => {
            let lock = txn
                .query_one_raw(statement(
                    include_str!("../sql/lock_order.sql"),
                    [order_id.into()],
                ))
                .await?;
            let Some(lock) = lock else {
                warn!(
                    order_id,
                    "post-order job for an order that does not exist; nothing to do"
                );
                txn.commit().await?;
                return Ok(Outcome::AlreadyApplied);
            };
            let number = lock.try_get::<String>("", "order_number")?;
            let applied = lock.try_get::<bool>("", "applied")?;
            if lock.try_get::<bool>("", "cancelled")? {
                let reversed = lock.try_get::<bool>("", "reversed")?;
                let outcome = match reversed {
                    true => Outcome::AlreadyReversed,
                    false => reverse(&txn, order_id, number, applied, fail_points).await?,
                };
                txn.commit().await?;
                return Ok(outcome);
            }
            (order_id, applied, number)
        }
    };

    let others = i64::from(batch_size) - i64::from(!own_counted);
    let claimed = txn
        .query_all_raw(statement(
            include_str!("../sql/claim_orders.sql"),
            [order_id.into(), others.into()],
        ))
        .await?;
    if claimed.is_empty() {
        txn.commit().await?;
        return Ok(Outcome::AlreadyApplied);
    }
    let mut order_ids = Vec::with_capacity(claimed.len());
    let mut order_numbers = Vec::with_capacity(claimed.len());
    for row in &claimed {
        let id: i64 = row.try_get("", "id")?;
        let number: String = row.try_get("", "order_number")?;
        // this run's own order leads the log line
        if id == order_id {
            order_numbers.insert(0, number);
        } else {
            order_numbers.push(number);
        }
        order_ids.push(id);
    }
    let ids = Value::from(order_ids.clone());

    txn.query_all_raw(statement(
        include_str!("../sql/lock_products.sql"),
        [ids.clone()],
    ))
    .await?;
    let products = txn
        .query_all_raw(statement(
            include_str!("../sql/apply_product_figures.sql"),
            [ids.clone(), COUNT_IN.into()],
        ))
        .await?;
    fail_points.check_after_product_update()?;

    let mut preference_user_ids = BTreeSet::new();
    for sql in [
        include_str!("../sql/apply_customer_products.sql"),
        include_str!("../sql/apply_customer_categories.sql"),
    ] {
        for row in txn.query_all_raw(statement(sql, [ids.clone()])).await? {
            preference_user_ids.insert(row.try_get::<i64>("", "user_id")?);
        }
    }

    // this run's own job is running: apalis acknowledges it
    let other_jobs: Vec<String> = order_ids
        .iter()
        .filter(|id| **id != order_id)
        .map(|id| format!("order-{id}"))
        .collect();
    let jobs_retired = txn
        .execute_raw(statement(
            include_str!("../sql/retire_jobs.sql"),
            [
                other_jobs.into(),
                crate::QUEUE.into(),
                format!("counted with {own_number}").into(),
            ],
        ))
        .await?
        .rows_affected();

    let product_ids = ids_of(&products)?;
    let products_updated = product_ids.len();
    notify(
        &txn,
        FiguresChanged {
            orders: order_ids,
            products: product_ids,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(Outcome::Applied(Applied {
        order_numbers,
        products_updated,
        preference_user_ids: preference_user_ids.into_iter().collect(),
        jobs_retired,
    }))
}

/// `apply_product_figures.sql`'s sign: add the orders' lines, or take them away.
const COUNT_IN: i64 = 1;
const TAKE_BACK: i64 = -1;

/// Takes a cancelled order's contribution back out of the figures, in the
/// run's transaction that holds the order's row lock, and marks it reversed.
/// Locks are taken in the order counting takes them (products, then customer
/// product totals, then category totals), so the two never deadlock.
async fn reverse(
    txn: &DatabaseTransaction,
    order_id: i64,
    order_number: String,
    was_counted: bool,
    fail_points: &FailPoints,
) -> Result<Outcome, JobError> {
    let mut product_ids = Vec::new();
    let mut preference_user_ids = BTreeSet::new();
    if was_counted {
        let ids = Value::from(vec![order_id]);
        txn.query_all_raw(statement(
            include_str!("../sql/lock_products.sql"),
            [ids.clone()],
        ))
        .await?;
        for sql in [
            include_str!("../sql/lock_customer_products.sql"),
            include_str!("../sql/lock_customer_categories.sql"),
        ] {
            txn.query_all_raw(statement(sql, [order_id.into()])).await?;
        }
        let products = txn
            .query_all_raw(statement(
                include_str!("../sql/apply_product_figures.sql"),
                [ids, TAKE_BACK.into()],
            ))
            .await?;
        product_ids = ids_of(&products)?;
        fail_points.check_after_product_update()?;
        for sql in [
            include_str!("../sql/reverse_customer_products.sql"),
            include_str!("../sql/reverse_customer_categories.sql"),
        ] {
            for row in txn.query_all_raw(statement(sql, [order_id.into()])).await? {
                preference_user_ids.insert(row.try_get::<i64>("", "user_id")?);
            }
        }
    }
    txn.execute_raw(statement(
        include_str!("../sql/mark_reversed.sql"),
        [order_id.into()],
    ))
    .await?;
    // the order's other job (its own, or its cancellation's) has nothing left
    // to do, even one that failed: done, unless a worker holds it
    let jobs = vec![format!("order-{order_id}"), format!("cancel-{order_id}")];
    txn.execute_raw(statement(
        include_str!("../sql/retire_jobs.sql"),
        [
            jobs.into(),
            crate::QUEUE.into(),
            format!("settled with the reversal of {order_number}").into(),
        ],
    ))
    .await?;
    let products_updated = product_ids.len();
    notify(
        txn,
        FiguresChanged {
            orders: vec![order_id],
            products: product_ids,
        },
    )
    .await?;
    Ok(Outcome::Reversed(Reversed {
        order_number,
        was_counted,
        products_updated,
        preference_user_ids: preference_user_ids.into_iter().collect(),
    }))
}

/// Queues the run's messages to API processes; PostgreSQL sends them at commit.
async fn notify(txn: &DatabaseTransaction, change: FiguresChanged) -> Result<(), JobError> {
    if change.is_empty() {
        return Ok(());
    }
    txn.execute_raw(statement(
        include_str!("../sql/notify_figures_changed.sql"),
        [figures_changed::CHANNEL.into(), change.payloads().into()],
    ))
    .await?;
    Ok(())
}

fn ids_of(rows: &[QueryResult]) -> Result<Vec<i64>, JobError> {
    Ok(rows
        .iter()
        .map(|row| row.try_get::<i64>("", "id"))
        .collect::<Result<_, _>>()?)
}

fn statement(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}
