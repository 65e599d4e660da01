//! Lag: from an order's commit to the moment a worker counts it, under
//! steady placement. Read from the orders themselves: `created_at` is set by
//! the placing statement, `analytics_applied_at` by the counting transaction
//! (at its start, a few milliseconds before its commit). The first two
//! seconds after the server starts are a warm-up, not measured.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::load::{self, Throughput};
use crate::processes::Tally;
use crate::setup::Bench;

#[derive(Debug, Clone, Default)]
pub struct Lag {
    pub rate: f64,
    pub placed: Throughput,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// (second of the run, p50 ms, p99 ms), for the plot.
    pub series: Vec<(f64, f64, f64)>,
}

/// Counts what earlier parts left uncounted (with `--only lag`, the orders
/// of the placement part: no worker ran there), so each lag run starts from
/// no backlog: `tally rebuild-analytics`, then their jobs marked done.
pub async fn start_clean(bin: &PathBuf, bench: &Bench) -> anyhow::Result<()> {
    let waiting = bench
        .count("select count(*) from orders where analytics_applied_at is null")
        .await?;
    if waiting == 0 {
        return Ok(());
    }
    let status = std::process::Command::new(bin)
        .arg("rebuild-analytics")
        .env("DATABASE_URL", &bench.database_url)
        .env("RUST_LOG", "warn")
        .status()?;
    anyhow::ensure!(status.success(), "tally rebuild-analytics failed: {status}");
    jobs::bench::finish_all(&bench.orm()).await?;
    Ok(())
}

pub async fn measure(
    bin: &PathBuf,
    bench: &Arc<Bench>,
    rate: f64,
    duration: Duration,
    batch: u32,
) -> anyhow::Result<Lag> {
    let server = Tally::serve(bin, bench, 2, batch, &[]).await?;
    let start: DateTime<Utc> = sqlx::query_scalar("select now()")
        .fetch_one(&bench.pool)
        .await?;
    let placed = load::graphql_at_rate(bench, &server.addr, rate, duration).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while bench
        .count("select count(*) from orders where analytics_applied_at is null")
        .await?
        > 0
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "orders still uncounted 2 minutes after the load"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop()?;

    let (p50_ms, p99_ms, max_ms): (f64, f64, f64) = sqlx::query_as(
        "select percentile_cont(0.5) within group (order by ms),
                percentile_cont(0.99) within group (order by ms),
                max(ms)
         from (select extract(epoch from analytics_applied_at - created_at)::float8 * 1000 as ms
               from orders where created_at >= $1) lags",
    )
    .bind(start)
    .fetch_one(&bench.pool)
    .await?;
    let series: Vec<(f64, f64, f64)> = sqlx::query_as(
        "select extract(epoch from date_trunc('second', created_at) - date_trunc('second', $1::timestamptz))::float8,
                percentile_cont(0.5) within group (order by ms),
                percentile_cont(0.99) within group (order by ms)
         from (select created_at, extract(epoch from analytics_applied_at - created_at)::float8 * 1000 as ms
               from orders where created_at >= $1) lags
         group by 1 order by 1",
    )
    .bind(start)
    .fetch_all(&bench.pool)
    .await?;
    Ok(Lag {
        rate,
        placed,
        p50_ms,
        p99_ms,
        max_ms,
        series,
    })
}
