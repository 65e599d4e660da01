//! Draining a backlog of uncounted orders: Tally's workers (coalescing, or
//! one order per run) next to hand-written SQL doing the same work.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use jobs::analytics::statements;

use crate::cpu::{PerOrder, Sample};
use crate::load::place_raw;
use crate::processes::Tally;
use crate::setup::Bench;

#[derive(Debug, Clone, Copy, Default)]
pub struct Drain {
    pub orders: i64,
    /// Until every order was counted.
    pub seconds: f64,
    pub per_second: f64,
    /// Until no job had work left too (`jobs::admin::unsettled`; Tally's runs
    /// only).
    pub jobs_seconds: Option<f64>,
    pub exact: bool,
    /// Read before the workers stop: their time goes with them.
    pub cpu: PerOrder,
}

/// Tops the uncounted orders up to `n` (placed by straight SQL, with jobs).
pub async fn fill_backlog(bench: &Arc<Bench>, n: i64) -> anyhow::Result<()> {
    let missing = n - bench
        .count("select count(*) from orders where analytics_applied_at is null")
        .await?;
    let clients = 8;
    let results = join_all((0..clients).map(|client| {
        let bench = bench.clone();
        async move {
            let mut conn = bench.pool.acquire().await?;
            let mut k = client;
            while (k as i64) < missing {
                place_raw(&bench, &mut conn, k, 1).await?;
                k += clients;
            }
            anyhow::Ok(())
        }
    }))
    .await;
    results.into_iter().collect()
}

/// Every order uncounted again, every figure zero, every job pending: the
/// same backlog for the next contender.
pub async fn reset(bench: &Bench) -> anyhow::Result<()> {
    sqlx::raw_sql(
        "update orders set analytics_applied_at = null where analytics_applied_at is not null;
         update products set sales_count = 0, total_revenue_cents = 0, rating = 4.0;
         delete from customer_product_stats;
         delete from customer_category_stats;
         delete from product_sales;
         delete from category_sales;
         delete from shop_sales;",
    )
    .execute(&bench.pool)
    .await?;
    let db = bench.orm();
    jobs::bench::requeue_all(&db).await?;
    // the sales tables too: this machine's PostgreSQL runs without
    // autovacuum, and a drain's upserts left on the next drain's path (dead
    // rows and index entries of every run's buckets) cost it up to a third
    sqlx::raw_sql("vacuum analyze orders, products, product_sales, category_sales, shop_sales")
        .execute(&bench.pool)
        .await?;
    jobs::bench::vacuum(&db).await?;
    Ok(())
}

/// Starts `processes` × `tally worker` and times them until the backlog is counted.
pub async fn with_tally(
    bin: &PathBuf,
    bench: &Bench,
    processes: usize,
    concurrency: usize,
    batch: u32,
) -> anyhow::Result<Drain> {
    let orders = bench
        .count("select count(*) from orders where analytics_applied_at is null")
        .await?;
    let started = Instant::now();
    // orders counted before (an earlier drain's) are not this one's
    let since: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("select clock_timestamp()")
        .fetch_one(&bench.pool)
        .await?;
    let cpu = Sample::now();
    let workers = (0..processes)
        .map(|_| Tally::worker(bin, bench, concurrency, batch))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // timed from the first run's start (orders.analytics_applied_at), not the
    // processes' start-up, to the moment polling sees the last order counted
    let since_first_run = async || {
        sqlx::query_scalar::<_, f64>(
            "select extract(epoch from now() - min(analytics_applied_at))::float8
             from orders
             where analytics_applied_at >= $1",
        )
        .bind(since)
        .fetch_one(&bench.pool)
        .await
    };
    let mut seconds = None;
    let jobs_seconds = loop {
        if seconds.is_none()
            && bench
                .count("select count(*) from orders where analytics_applied_at is null")
                .await?
                == 0
        {
            seconds = Some(since_first_run().await?);
        }
        if seconds.is_some() && jobs::admin::unsettled(&bench.orm()).await? == 0 {
            break since_first_run().await?;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "drain took over 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cpu = cpu.per_order(orders as f64);
    for worker in workers {
        worker.stop()?;
    }
    let seconds = seconds.expect("counted");
    Ok(Drain {
        orders,
        seconds,
        per_second: orders as f64 / seconds,
        jobs_seconds: Some(jobs_seconds),
        exact: exact(bench).await?,
        cpu,
    })
}

/// Whether a straight-SQL drain keeps the sales per quarter hour as the job
/// does, or counts the figures alone (the counting run before #28).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sales {
    Kept,
    Left,
}

/// The same work by hand over `clients` connections: per transaction, claim
/// up to `batch` uncounted orders, lock their products in id order, then the
/// same bulk statements the job runs (figures with the sales per quarter
/// hour, customers' totals). No queue, no ORM. The lock is the job's too:
/// without it two connections whose batches share products update them in no
/// set order, and deadlock.
pub async fn by_hand(
    bench: &Arc<Bench>,
    clients: usize,
    batch: i64,
    sales: Sales,
) -> anyhow::Result<Drain> {
    let orders = bench
        .count("select count(*) from orders where analytics_applied_at is null")
        .await?;
    let started = Instant::now();
    let cpu = Sample::now();
    let results = join_all((0..clients).map(|_| {
        let bench = bench.clone();
        async move {
            loop {
                let mut tx = bench.pool.begin().await?;
                // as the job's transaction does (jobs/sql/lock_figures_shared.sql):
                // without statistics, compiling a batch's statements took
                // longer than running them
                sqlx::query("select set_config('jit', 'off', true)")
                    .execute(&mut *tx)
                    .await?;
                let ids: Vec<i64> = sqlx::query_scalar(
                    "update orders set analytics_applied_at = now()
                     where id = any (array(select id from orders where analytics_applied_at is null
                                           order by id limit $1 for no key update skip locked))
                     returning id",
                )
                .bind(batch)
                .fetch_all(&mut *tx)
                .await?;
                if ids.is_empty() {
                    return anyhow::Ok(());
                }
                sqlx::query(statements::LOCK_PRODUCTS)
                    .bind(&ids)
                    .execute(&mut *tx)
                    .await?;
                // 1: the orders' lines are added (-1 would take them back out)
                let products = match sales {
                    Sales::Kept => statements::APPLY_PRODUCT_FIGURES,
                    Sales::Left => include_str!("../sql/product_figures_alone.sql"),
                };
                sqlx::query(products)
                    .bind(&ids)
                    .bind(1_i64)
                    .execute(&mut *tx)
                    .await?;
                for sql in [
                    statements::APPLY_CUSTOMER_PRODUCTS,
                    statements::APPLY_CUSTOMER_CATEGORIES,
                ] {
                    sqlx::query(sql).bind(&ids).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
    }))
    .await;
    results.into_iter().collect::<anyhow::Result<()>>()?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu.per_order(orders as f64);
    if sales == Sales::Left {
        // outside the measurement: the buckets as the job would have kept
        // them, for the recount to hold the figures to
        for sql in [jobs::rebuild::CLEAR_SALES_SQL, jobs::rebuild::SALES_SQL] {
            sqlx::raw_sql(sql).execute(&bench.pool).await?;
        }
    }
    Ok(Drain {
        orders,
        seconds,
        per_second: orders as f64 / seconds,
        jobs_seconds: None,
        exact: exact(bench).await?,
        cpu,
    })
}

/// Figures equal a recount over the order lines, and every order is counted.
pub async fn exact(bench: &Bench) -> anyhow::Result<bool> {
    Ok(bench.count(jobs::rebuild::FIGURE_MISMATCHES_SQL).await? == 0)
}
