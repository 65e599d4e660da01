//! At scale and over time, as an operator tries it: on a PostgreSQL cluster
//! of the bench's own with production settings (autovacuum on), a backlog
//! drained small, then `placeOrder` at saturation for minutes until a large
//! backlog waits on top of a long job history, then that backlog drained.
//! The drain rate per order must not fall as the backlog and the history
//! grow.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tally::db::private::PrivateServer;

use crate::drain::{self, Drain};
use crate::load::{Throughput, graphql_placement};
use crate::processes::Tally;
use crate::setup::Bench;

/// Clients of the saturation, as in the operator's run.
pub const CLIENTS: usize = 64;

/// PostgreSQL settings a production server of this machine's size would
/// have; everything else (autovacuum on, its thresholds) is PostgreSQL's
/// default.
const SETTINGS: &[(&str, &str)] = &[
    ("max_connections", "200"),
    ("shared_buffers", "1GB"),
    ("max_wal_size", "4GB"),
];

pub struct Sizes {
    /// The small backlog the large one is compared with.
    pub small: i64,
    /// Uncounted orders placed by the saturation before it stops.
    pub large: i64,
    /// Finished jobs in history before the saturation.
    pub history: i64,
    /// One slice of the saturation, reported on its own.
    pub slice: Duration,
}

/// One slice of the saturation.
#[derive(Debug, Clone, Copy)]
pub struct Slice {
    /// Seconds since the saturation started, at the slice's end.
    pub at: f64,
    pub placed: Throughput,
    /// `tally serve`'s resident memory at the slice's end.
    pub rss_mib: f64,
}

pub struct Sustained {
    pub small: Drain,
    pub slices: Vec<Slice>,
    /// Finished jobs when the large drain started.
    pub history: i64,
    pub large: Drain,
    /// (seconds since the large drain started, orders counted per second
    /// over the last window)
    pub drain_series: Vec<(f64, f64)>,
}

/// The bench's own cluster, kept in the temporary directory between runs
/// (made the first time).
pub fn cluster_dir() -> PathBuf {
    std::env::temp_dir().join("tally-bench-postgres")
}

pub async fn measure(bin: &Path, sizes: &Sizes) -> anyhow::Result<Sustained> {
    let server = PrivateServer::open(&cluster_dir(), SETTINGS)
        .map_err(|e| anyhow::anyhow!("starting the bench's PostgreSQL: {e}"))?;
    let bench = Arc::new(Bench::create(&server.url("postgres")).await?);
    let result = run(bin, &bench, sizes).await;
    let bench = Arc::into_inner(bench).expect("no task holds the bench any more");
    bench.drop_database().await?;
    // the cluster stops with the last share in it: this one
    drop(server);
    result
}

async fn run(bin: &Path, bench: &Arc<Bench>, sizes: &Sizes) -> anyhow::Result<Sustained> {
    let bin = bin.to_path_buf();
    eprintln!("   a backlog of {} orders, drained", sizes.small);
    drain::fill_backlog(bench, sizes.small).await?;
    let small = drain::with_tally(&bin, bench, 1, 2, crate::DEFAULT_BATCH).await?;

    eprintln!("   {} finished jobs of history", sizes.history);
    history(bench, sizes.history).await?;

    eprintln!(
        "   placeOrder at {CLIENTS} clients until {} orders wait",
        sizes.large
    );
    let slices = saturate(&bin, bench, sizes).await?;

    let history = jobs::bench::finished(&bench.orm()).await?;
    eprintln!(
        "   the backlog drained ({} finished jobs in history)",
        history
    );
    let (large, drain_series) = drain_watched(&bin, bench).await?;
    Ok(Sustained {
        small,
        slices,
        history,
        large,
        drain_series,
    })
}

/// Finished jobs of the counting queue, as a week of orders leaves them
/// (their orders long gone from the bench's tables: only their weight in
/// the jobs table and its indexes matters here).
async fn history(bench: &Bench, n: i64) -> anyhow::Result<()> {
    jobs::bench::add_history(&bench.orm(), n, Duration::from_secs(3 * 24 * 3600)).await?;
    Ok(())
}

/// `placeOrder` from `CLIENTS` clients, slice after slice, until the
/// backlog reaches its size (at most 20 minutes).
async fn saturate(bin: &PathBuf, bench: &Arc<Bench>, sizes: &Sizes) -> anyhow::Result<Vec<Slice>> {
    let server = Tally::serve(bin, bench, 0, crate::DEFAULT_BATCH, &[]).await?;
    let started = Instant::now();
    let mut slices = Vec::new();
    loop {
        let placed = graphql_placement(bench, &server.addr, CLIENTS, sizes.slice).await?;
        slices.push(Slice {
            at: started.elapsed().as_secs_f64(),
            placed,
            rss_mib: server.rss_mib().unwrap_or_default(),
        });
        let waiting = bench
            .count("select count(*) from orders where analytics_applied_at is null")
            .await?;
        if waiting >= sizes.large || started.elapsed() > Duration::from_secs(20 * 60) {
            break;
        }
    }
    server.stop()?;
    Ok(slices)
}

/// [`drain::with_tally`] with one worker process, the orders counted
/// sampled every few seconds meanwhile.
async fn drain_watched(
    bin: &PathBuf,
    bench: &Arc<Bench>,
) -> anyhow::Result<(Drain, Vec<(f64, f64)>)> {
    let watching = {
        let bench = bench.clone();
        tokio::spawn(async move {
            let window = Duration::from_secs(5);
            let started = Instant::now();
            let mut series = Vec::new();
            let mut last = counted(&bench).await?;
            loop {
                tokio::time::sleep(window).await;
                let now = counted(&bench).await?;
                series.push((
                    started.elapsed().as_secs_f64(),
                    (now - last) as f64 / window.as_secs_f64(),
                ));
                last = now;
                if bench
                    .count("select count(*) from orders where analytics_applied_at is null")
                    .await?
                    == 0
                {
                    return anyhow::Ok(series);
                }
            }
        })
    };
    let drained = drain::with_tally(bin, bench, 1, 2, crate::DEFAULT_BATCH).await?;
    let series = watching.await??;
    Ok((drained, series))
}

async fn counted(bench: &Bench) -> anyhow::Result<i64> {
    bench
        .count("select count(*) from orders where analytics_applied_at is not null")
        .await
}
