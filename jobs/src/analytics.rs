//! Counting orders into the figures, and taking cancelled orders back out:
//! one transaction, a fixed number of statements however many orders, lines
//! or products a run covers.
//!
//! One order that cannot be counted (a row the figures cannot take, a
//! constraint or trigger an operator added) must not stop the others, though
//! a batch succeeds or fails as a whole. A batch that fails on its data is
//! run again without the others (the run's own order alone), and its other
//! orders are split in halves until the failing one stands alone; that order
//! is then held back: no batch, sweep or rebuild takes it again until an
//! operator retries its job.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, QueryResult, Statement,
    TransactionTrait, Value,
};
use tracing::{info, warn};

use crate::JobError;
use crate::enqueue::JobKind;
use crate::fail_points::FailPoints;
use crate::figures_changed::{self, FiguresChanged};

/// How often a run that lost a deadlock or serialization race starts over
/// before the failure goes to apalis's retry with backoff.
const CONFLICT_RETRIES: u32 = 3;

/// The advisory lock every run that writes figures shares, and that a
/// rebuild takes alone (`sql/lock_figures_shared.sql`); tests hold it to
/// keep a rebuild waiting.
pub const FIGURES_LOCK: i64 = 0x0074_616c_6c79; // "tally"

/// The statements that count a run's orders into the figures, in the order
/// a run makes them (after it has claimed its orders), each taking the
/// orders' ids as `$1`; the products' statement takes `+1` or `-1` as `$2`
/// (counting in or taking back). Public for the bench, whose straight SQL
/// runs the same texts.
pub mod statements {
    pub const LOCK_PRODUCTS: &str = include_str!("../sql/lock_products.sql");
    pub const APPLY_PRODUCT_FIGURES: &str = include_str!("../sql/apply_product_figures.sql");
    pub const APPLY_CUSTOMER_PRODUCTS: &str = include_str!("../sql/apply_customer_products.sql");
    pub const APPLY_CUSTOMER_CATEGORIES: &str =
        include_str!("../sql/apply_customer_categories.sql");
}

/// The result the sweep gives the jobs it settles.
const SWEEP_LABEL: &str = "the sweep after a placement";

/// `sql/retire_jobs.sql`, with the queue spelled out in its text (see there).
static RETIRE_JOBS_SQL: LazyLock<String> =
    LazyLock::new(|| include_str!("../sql/retire_jobs.sql").replace("{queue}", crate::QUEUE));

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

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// The order numbers this run counted: its own first (unless another run
    /// counted it), then the coalesced ones.
    pub order_numbers: Vec<String>,
    pub products_updated: usize,
    /// Customers whose preference figures changed.
    pub preference_user_ids: Vec<i64>,
    /// Ids of the jobs of the other counted orders, done by this run before
    /// any worker took them.
    pub retired_jobs: Vec<String>,
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

/// What a run is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// The job of this order: it settles the order, and counts what waits.
    Job(i64),
    /// Right after placements: counts what waits, for no job in particular.
    Sweep,
}

/// Which orders a counting transaction takes.
#[derive(Debug, Clone)]
enum Claim {
    /// The run's own order (if it still waits) and up to this many other
    /// waiting orders, oldest first.
    Waiting(i64),
    /// Those of these orders that still wait: part of a batch that failed.
    Listed(Vec<i64>),
}

/// A counting transaction that failed and was rolled back, with the orders
/// it had claimed (none when it failed before its claim).
#[derive(Debug)]
struct Failed {
    error: JobError,
    claimed: Vec<i64>,
}

impl From<JobError> for Failed {
    fn from(error: JobError) -> Self {
        Self {
            error,
            claimed: Vec::new(),
        }
    }
}

impl From<sea_orm::DbErr> for Failed {
    fn from(error: sea_orm::DbErr) -> Self {
        JobError::from(error).into()
    }
}

/// Settles `order_id`. A placed order is counted unless it is counted already,
/// with other uncounted orders (up to `batch_size` in all), into product
/// figures and customer preferences. A cancelled order's contribution is
/// taken back out, if it was counted. Exactly once each way: the
/// `analytics_applied_at` and `analytics_reversed_at` markers commit with the
/// figures.
///
/// A batch that fails on its data is run again with the order alone; if that
/// fails too the order is held back and the error returned (apalis retries
/// it, then keeps it Failed for an operator). Either way the batch's other
/// orders are counted but for the one that failed, which is held back.
pub async fn apply_order(
    db: &DatabaseConnection,
    order_id: i64,
    batch_size: u32,
    fail_points: &FailPoints,
) -> Result<Outcome, JobError> {
    let run = Run::Job(order_id);
    let failed =
        match with_conflict_retries(|| run_job(db, order_id, batch_size, fail_points)).await {
            Ok(outcome) => return Ok(outcome),
            Err(failed) if failed.error.is_data_failure() && !failed.claimed.is_empty() => failed,
            Err(failed) => return Err(failed.error),
        };
    let others: Vec<i64> = failed
        .claimed
        .iter()
        .copied()
        .filter(|id| *id != order_id)
        .collect();
    let own = match (failed.claimed.contains(&order_id), others.is_empty()) {
        // the order alone is what failed
        (true, true) => Err(hold_back(db, order_id, failed.error).await),
        (true, false) => {
            warn!(order_id, orders = failed.claimed.len(), error = %failed.error,
                  "a batch failed on its data; counting the run's own order alone");
            match with_conflict_retries(|| run_job(db, order_id, 1, fail_points)).await {
                Ok(outcome) => Ok(outcome),
                Err(alone) if alone.error.is_data_failure() && alone.claimed == [order_id] => {
                    Err(hold_back(db, order_id, alone.error).await)
                }
                Err(alone) => Err(alone.error),
            }
        }
        // counted earlier: the batch was of other orders only
        (false, _) => Ok(Outcome::AlreadyApplied),
    };
    if let Err(e) = isolate(db, run, others, fail_points).await {
        warn!(error = %e, "counting the rest of a failed batch stopped; their jobs will count them");
    }
    own
}

/// Counts up to `batch_size` waiting orders, oldest first, for no job in
/// particular: what a process does right after its own placements commit, so
/// their figures do not wait for their jobs' turn in the queue. The jobs stay
/// the guarantee: whatever this leaves or fails to count, they count. A batch
/// that fails on its data is split until the order that fails stands alone,
/// and that one is held back.
pub async fn apply_waiting(
    db: &DatabaseConnection,
    batch_size: u32,
    fail_points: &FailPoints,
) -> Result<Outcome, JobError> {
    let claim = Claim::Waiting(i64::from(batch_size));
    match with_conflict_retries(|| count(db, Run::Sweep, &claim, fail_points)).await {
        Ok(counted) => Ok(Counted::outcome(counted)),
        Err(failed) if failed.error.is_data_failure() && !failed.claimed.is_empty() => {
            warn!(orders = failed.claimed.len(), error = %failed.error,
                  "the sweep's batch failed on its data; splitting it to find the order that fails");
            let applied = isolate(db, Run::Sweep, failed.claimed, fail_points).await?;
            Ok(match applied.order_numbers.is_empty() {
                true => Outcome::AlreadyApplied,
                false => Outcome::Applied(applied),
            })
        }
        Err(failed) => Err(failed.error),
    }
}

async fn with_conflict_retries<T, F, Fut>(run: F) -> Result<T, Failed>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failed>>,
{
    let mut conflicts = 0;
    loop {
        match run().await {
            Err(f) if f.error.is_transient_conflict() && conflicts < CONFLICT_RETRIES => {
                conflicts += 1;
                warn!(conflicts, error = %f.error, "post-order run lost a lock race; running it again");
            }
            result => return result,
        }
    }
}

/// Counts the orders of a batch that failed on its data, in halves, and the
/// halves of a half that fails, until the order that fails stands alone: it
/// is held back, the others are counted. With one such order among n, about
/// 2·log2(n) short transactions. Stops at the first failure that is not the
/// data's (the database is unavailable, say): their jobs count what is left.
async fn isolate(
    db: &DatabaseConnection,
    run: Run,
    orders: Vec<i64>,
    fail_points: &FailPoints,
) -> Result<Applied, JobError> {
    let mut counted = Applied::default();
    if orders.is_empty() {
        return Ok(counted);
    }
    let mut products = BTreeSet::new();
    let mut preference_user_ids = BTreeSet::new();
    let mut held_back = Vec::new();
    let mut parts = match orders.len() {
        1 => vec![orders],
        n => {
            let mut orders = orders;
            let second = orders.split_off(n / 2);
            vec![second, orders]
        }
    };
    while let Some(mut part) = parts.pop() {
        let claim = Claim::Listed(part.clone());
        match with_conflict_retries(|| count(db, run, &claim, fail_points)).await {
            Ok(Some(Counted {
                applied,
                product_ids,
                ..
            })) => {
                counted.order_numbers.extend(applied.order_numbers);
                counted.retired_jobs.extend(applied.retired_jobs);
                products.extend(product_ids);
                preference_user_ids.extend(applied.preference_user_ids);
            }
            Ok(None) => {}
            Err(failed) if failed.error.is_data_failure() => match failed.claimed.as_slice() {
                [] => {}
                [order_id] => {
                    hold_back(db, *order_id, failed.error).await;
                    held_back.push(*order_id);
                }
                _ => {
                    // only what the failed part still had to count
                    part.retain(|id| failed.claimed.contains(id));
                    let second = part.split_off(part.len() / 2);
                    parts.push(second);
                    parts.push(part);
                }
            },
            Err(failed) => return Err(failed.error),
        }
    }
    counted.products_updated = products.len();
    counted.preference_user_ids = preference_user_ids.into_iter().collect();
    info!(
        orders_counted = counted.order_numbers.len(),
        order_numbers = ?counted.order_numbers,
        held_back = ?held_back,
        "counted a failed batch's orders but for the ones that fail"
    );
    Ok(counted)
}

/// Holds back an order whose counting failed on its own, and hands back the
/// error. If even that fails (the database went away), its job retries it.
async fn hold_back(db: &DatabaseConnection, order_id: i64, error: JobError) -> JobError {
    let held = db
        .query_one_raw(statement(
            include_str!("../sql/hold_back_order.sql"),
            [order_id.into(), error.to_string().into()],
        ))
        .await;
    match held {
        Ok(Some(row)) => warn!(
            order_id,
            order_number = row.try_get::<String>("", "order_number").unwrap_or_default(),
            error = %error,
            "order held back: counting it fails on its own, so no other batch takes it until \
             an operator retries its job"
        ),
        Ok(None) => {}
        Err(e) => warn!(order_id, error = %e, "could not hold back an order that fails"),
    }
    error
}

/// One run of an order's job: lock the order, then take it back out if it
/// was cancelled, or count it (and up to `batch_size - 1` other waiting
/// orders; `batch_size` of them if it is counted already).
async fn run_job(
    db: &DatabaseConnection,
    order_id: i64,
    batch_size: u32,
    fail_points: &FailPoints,
) -> Result<Outcome, Failed> {
    let txn = db.begin().await?;
    let ran = job_in(&txn, order_id, batch_size, fail_points).await;
    end(txn, ran, |(_, claimed)| claimed.clone())
        .await
        .map(|(outcome, _)| outcome)
}

/// `run_job`'s statements: its outcome, and the orders it claimed.
async fn job_in(
    txn: &DatabaseTransaction,
    order_id: i64,
    batch_size: u32,
    fail_points: &FailPoints,
) -> Result<(Outcome, Vec<i64>), Failed> {
    let lock = txn
        .query_one_raw(statement(
            include_str!("../sql/lock_order.sql"),
            [order_id.into(), FIGURES_LOCK.into()],
        ))
        .await?;
    let Some(lock) = lock else {
        warn!(
            order_id,
            "post-order job for an order that does not exist; nothing to do"
        );
        return Ok((Outcome::AlreadyApplied, Vec::new()));
    };
    let number = lock.try_get::<String>("", "order_number")?;
    let applied = lock.try_get::<bool>("", "applied")?;
    if lock.try_get::<bool>("", "cancelled")? {
        let outcome = match lock.try_get::<bool>("", "reversed")? {
            true => Outcome::AlreadyReversed,
            false => reverse(txn, order_id, number, applied, fail_points).await?,
        };
        return Ok((outcome, Vec::new()));
    }
    // a held-back order is counted alone: others must not fail with it
    let others = match lock.try_get::<bool>("", "held_back")? {
        true => 0,
        false => i64::from(batch_size) - i64::from(!applied),
    };
    if applied && others == 0 {
        return Ok((Outcome::AlreadyApplied, Vec::new()));
    }
    let counted = count_in(
        txn,
        Run::Job(order_id),
        &Claim::Waiting(others),
        &number,
        fail_points,
    )
    .await?;
    let claimed = counted
        .as_ref()
        .map_or_else(Vec::new, |c| c.order_ids.clone());
    Ok((Counted::outcome(counted), claimed))
}

/// A counting transaction that takes no order lock first: the sweep's, and
/// the parts of a failed batch.
async fn count(
    db: &DatabaseConnection,
    run: Run,
    claim: &Claim,
    fail_points: &FailPoints,
) -> Result<Option<Counted>, Failed> {
    let label = match run {
        Run::Sweep => SWEEP_LABEL.to_owned(),
        Run::Job(order_id) => format!("the job of order {order_id}"),
    };
    let txn = db.begin().await?;
    let counted = match lock_figures(&txn).await {
        Ok(()) => count_in(&txn, run, claim, &label, fail_points).await,
        Err(e) => Err(e.into()),
    };
    end(txn, counted, |counted| {
        counted
            .as_ref()
            .map_or_else(Vec::new, |c| c.order_ids.clone())
    })
    .await
}

/// Commits a run's transaction if it succeeded, failing with the orders it
/// claimed if the commit does; rolls it back if it failed, and waits for
/// that. A dropped transaction's rollback is only queued (sqlx sends it once
/// the pool tends the connection, on a task of its own), and until then its
/// row locks stand: the next part of a failed batch, claiming with skip
/// locked, would pass over the very orders it is to count.
async fn end<T>(
    txn: DatabaseTransaction,
    result: Result<T, Failed>,
    claimed: impl FnOnce(&T) -> Vec<i64>,
) -> Result<T, Failed> {
    match result {
        Ok(done) => match txn.commit().await {
            Ok(()) => Ok(done),
            Err(e) => Err(Failed {
                error: e.into(),
                claimed: claimed(&done),
            }),
        },
        Err(failed) => {
            if let Err(e) = txn.rollback().await {
                warn!(error = %e, "could not roll back a failed post-order run; its connection will");
            }
            Err(failed)
        }
    }
}

async fn lock_figures(txn: &DatabaseTransaction) -> Result<(), JobError> {
    txn.query_one_raw(statement(
        include_str!("../sql/lock_figures_shared.sql"),
        [FIGURES_LOCK.into()],
    ))
    .await?;
    Ok(())
}

/// What one counting transaction counted.
struct Counted {
    applied: Applied,
    order_ids: Vec<i64>,
    product_ids: Vec<i64>,
}

impl Counted {
    fn outcome(counted: Option<Counted>) -> Outcome {
        counted.map_or(Outcome::AlreadyApplied, |c| Outcome::Applied(c.applied))
    }
}

/// Claims the orders and counts them, in the run's transaction; None when no
/// order was left to count. `label` names the run in the result of the jobs
/// it settles.
async fn count_in(
    txn: &DatabaseTransaction,
    run: Run,
    claim: &Claim,
    label: &str,
    fail_points: &FailPoints,
) -> Result<Option<Counted>, Failed> {
    let own = match run {
        Run::Job(order_id) => Some(order_id),
        Run::Sweep => None,
    };
    let claimed = match claim {
        Claim::Waiting(others) => {
            txn.query_all_raw(statement(
                include_str!("../sql/claim_orders.sql"),
                [own.into(), (*others).into()],
            ))
            .await?
        }
        Claim::Listed(ids) => {
            txn.query_all_raw(statement(
                include_str!("../sql/claim_listed_orders.sql"),
                [ids.clone().into()],
            ))
            .await?
        }
    };
    if claimed.is_empty() {
        return Ok(None);
    }
    let mut order_ids = Vec::with_capacity(claimed.len());
    let mut order_numbers = Vec::with_capacity(claimed.len());
    for row in &claimed {
        let id: i64 = row.try_get("", "id")?;
        let number: String = row.try_get("", "order_number")?;
        // this run's own order leads the log line
        if Some(id) == own {
            order_numbers.insert(0, number);
        } else {
            order_numbers.push(number);
        }
        order_ids.push(id);
    }
    // whatever fails from here fails the claim with it: say which orders
    let (product_ids, preference_user_ids, retired_jobs) =
        match count_claimed(txn, own, &order_ids, label, fail_points).await {
            Ok(counted) => counted,
            Err(error) => {
                return Err(Failed {
                    error,
                    claimed: order_ids,
                });
            }
        };
    Ok(Some(Counted {
        applied: Applied {
            order_numbers,
            products_updated: product_ids.len(),
            preference_user_ids,
            retired_jobs,
        },
        order_ids,
        product_ids,
    }))
}

/// The figure statements for the claimed orders, in the claim's transaction:
/// the products they touch, the customers whose preferences changed, and the
/// jobs of theirs it retired.
async fn count_claimed(
    txn: &DatabaseTransaction,
    own: Option<i64>,
    order_ids: &[i64],
    label: &str,
    fail_points: &FailPoints,
) -> Result<(Vec<i64>, Vec<i64>, Vec<String>), JobError> {
    let ids = Value::from(order_ids.to_vec());
    txn.query_all_raw(statement(statements::LOCK_PRODUCTS, [ids.clone()]))
        .await?;
    let products = txn
        .query_all_raw(statement(
            statements::APPLY_PRODUCT_FIGURES,
            [ids.clone(), COUNT_IN.into()],
        ))
        .await?;
    fail_points.check_after_product_update()?;

    let mut preference_user_ids = BTreeSet::new();
    for sql in [
        statements::APPLY_CUSTOMER_PRODUCTS,
        statements::APPLY_CUSTOMER_CATEGORIES,
    ] {
        for row in txn.query_all_raw(statement(sql, [ids.clone()])).await? {
            preference_user_ids.insert(row.try_get::<i64>("", "user_id")?);
        }
    }

    // this run's own job is running: apalis acknowledges it
    let other_jobs: Vec<String> = order_ids
        .iter()
        .filter(|id| Some(**id) != own)
        .map(|id| JobKind::Count.key(*id))
        .collect();
    let retired = txn
        .query_all_raw(statement(
            &RETIRE_JOBS_SQL,
            [other_jobs.into(), format!("counted with {label}").into()],
        ))
        .await?;
    let retired_jobs = retired
        .iter()
        .map(|row| row.try_get::<String>("", "id"))
        .collect::<Result<_, _>>()?;

    let product_ids = ids_of(&products)?;
    notify(
        txn,
        FiguresChanged {
            orders: order_ids.to_vec(),
            products: product_ids.clone(),
            all: false,
        },
    )
    .await?;
    Ok((
        product_ids,
        preference_user_ids.into_iter().collect(),
        retired_jobs,
    ))
}

/// `apply_product_figures.sql`'s sign: add the orders' lines, or take them
/// away.
const COUNT_IN: i64 = 1;
const TAKE_BACK: i64 = -1;

/// Takes a cancelled order's contribution back out of the figures, in the
/// run's transaction that holds the order's row lock, and marks it reversed.
/// Locks are taken in the order counting takes them (products, then the sales
/// per quarter hour, then customer product totals, then category totals), so
/// the two never deadlock.
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
        txn.query_all_raw(statement(statements::LOCK_PRODUCTS, [ids.clone()]))
            .await?;
        let products = txn
            .query_all_raw(statement(
                statements::APPLY_PRODUCT_FIGURES,
                [ids, TAKE_BACK.into()],
            ))
            .await?;
        product_ids = ids_of(&products)?;
        fail_points.check_after_product_update()?;
        for sql in [
            include_str!("../sql/lock_customer_products.sql"),
            include_str!("../sql/lock_customer_categories.sql"),
        ] {
            txn.query_all_raw(statement(sql, [order_id.into()])).await?;
        }
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
    let jobs = vec![JobKind::Count.key(order_id), JobKind::Reverse.key(order_id)];
    txn.execute_raw(statement(
        &RETIRE_JOBS_SQL,
        [
            jobs.into(),
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
            all: false,
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
    Ok(figures_changed::notify(txn, &change).await?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retirement_names_the_queue_the_key_index_covers() {
        let named = format!("job_type = '{}'", crate::QUEUE);
        assert!(RETIRE_JOBS_SQL.contains(&named), "{}", *RETIRE_JOBS_SQL);
        assert!(!RETIRE_JOBS_SQL.contains('{'), "a placeholder is left");
        // the index PostgreSQL reads the keys through only when the
        // statement's own condition implies its predicate
        let index = crate::schema::ORDER_JOB_KEYS_UP;
        assert!(index.contains(&format!("where {named};")), "{index}");
    }
}
