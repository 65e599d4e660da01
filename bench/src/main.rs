//! `tally-bench`: measures Tally against the raw-SQL limits of the machine it
//! runs on, side by side in one run, and prints one table (see BENCHMARKS.md).
//!
//! It creates its own database, spawns the real `tally` binary for the HTTP
//! and worker measurements, and drops the database at the end.

mod cpu;
mod drain;
mod fetch;
mod lag;
mod load;
mod processes;
mod reads;
mod report;
mod setup;
mod statements;
mod sustained;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use crate::drain::Sales;
use crate::processes::Tally;
use crate::report::Report;
use crate::setup::Bench;

/// Orders per run in `tally serve` and `tally worker` unless configured.
const DEFAULT_BATCH: u32 = jobs::WorkerSettings::DEFAULT_BATCH_SIZE;

/// Connections of the coalesced straight SQL: one per core, PostgreSQL's
/// best for a statement's serial work.
const RAW_WRITERS: usize = 2;

#[derive(Parser)]
#[command(about = "Measure Tally against this machine's raw-SQL limits")]
struct Args {
    /// A few seconds in all, to prove the tool works (CI); numbers mean little.
    #[arg(long)]
    smoke: bool,
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Uncounted orders each drain starts from.
    #[arg(long, default_value_t = 20_000)]
    backlog: i64,
    /// Finished jobs put in history for the fetch measurement.
    #[arg(long, default_value_t = 200_000)]
    history: i64,
    /// The sustained part: uncounted orders placeOrder leaves at saturation
    /// before the backlog is drained.
    #[arg(long, default_value_t = 500_000)]
    sustained_backlog: i64,
    /// The sustained part: finished jobs in history before the saturation.
    #[arg(long, default_value_t = 1_000_000)]
    sustained_history: i64,
    /// The `tally` binary (default: beside this one).
    #[arg(long)]
    tally_bin: Option<PathBuf>,
    /// Where the benchmark database is created. Both contenders use it as it
    /// is: on one machine TLS is only a cost, hence `sslmode=disable`.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
    )]
    database_url: String,
    /// Only these parts (lag also measures placement, for its rates); all when unset.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// Where plots go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Placement,
    Drain,
    Lag,
    Statements,
    History,
    Reads,
    Sustained,
}

impl Args {
    fn runs(&self, part: Part) -> bool {
        self.only.is_empty()
            || self.only.contains(&part)
            || (part == Part::Placement && self.only.contains(&Part::Lag))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.duration = 1;
        args.backlog = 300;
        args.history = 2_000;
        args.sustained_backlog = 2_000;
        args.sustained_history = 2_000;
    }
    let bin = processes::binary(args.tally_bin.clone())?;
    let bench = Arc::new(Bench::create(&args.database_url).await?);
    let result = run(&args, &bin, &bench).await;
    let bench = Arc::into_inner(bench).expect("no task holds the bench any more");
    bench.drop_database().await?;
    let report = result?;
    report.print(&args);
    report.plot(&args.out)?;
    Ok(())
}

async fn run(args: &Args, bin: &PathBuf, bench: &Arc<Bench>) -> anyhow::Result<Report> {
    let duration = Duration::from_secs(args.duration);
    let mut report = Report::default();

    if args.runs(Part::Placement) {
        placement(bin, bench, duration, &mut report).await?;
    }

    if args.runs(Part::Drain) {
        drains(bin, bench, args.backlog, &mut report).await?;
    }

    if args.runs(Part::Lag) {
        lags(bin, bench, duration, &mut report).await?;
    }

    if args.runs(Part::Statements) {
        eprintln!("5/8 statements per order");
        report.statements = statements::count(bench, &[1, 5, 20, 50]).await?;
    }

    if args.runs(Part::History) {
        eprintln!("6/8 job history: {} finished jobs", args.history);
        report.history = Some(fetch::measure(bench, args.history).await?);
    }

    if args.runs(Part::Reads) {
        eprintln!("7/8 reads: the menu, product(id) and me, by Tally and by straight SQL");
        reads::prepare(bench, bin).await?;
        report.reads = Some(reads::measure(bench, bin, duration).await?);
    }

    if args.runs(Part::Sustained) {
        eprintln!(
            "8/8 sustained: placeOrder at saturation, then a backlog of {} on a cluster of the bench's own",
            args.sustained_backlog
        );
        let sizes = sustained::Sizes {
            small: args.backlog,
            large: args.sustained_backlog,
            history: args.sustained_history,
            slice: if args.smoke {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(30)
            },
        };
        report.sustained = Some(sustained::measure(bin, &sizes).await?);
    }
    Ok(report)
}

/// Placement: straight SQL, one order per statement and coalesced, then
/// placeOrder over HTTP at 1, 8 and 32 clients, and with other settings.
async fn placement(
    bin: &PathBuf,
    bench: &Arc<Bench>,
    duration: Duration,
    report: &mut Report,
) -> anyhow::Result<()> {
    eprintln!("1/8 placement: straight SQL, one order per statement");
    for clients in [16, 32] {
        let cpu = cpu::Sample::now();
        let placed = load::raw_placement(bench, clients, 1, duration).await?;
        report.cpu.push((
            format!("placement, straight SQL, {clients} connections"),
            cpu.per_order(placed.per_second * duration.as_secs_f64()),
        ));
        report.raw_placement.push((clients, placed));
    }
    eprintln!("1/8 placement: straight SQL, coalesced");
    // the form of Tally's placer at 32 clients: orders sent together,
    // as many as are waiting
    let (connections, batch) = (RAW_WRITERS, 16);
    let cpu = cpu::Sample::now();
    let placed = load::raw_placement(bench, connections, batch, duration).await?;
    report.cpu.push((
        format!(
            "placement, straight SQL, {connections} connections × {batch} orders per statement"
        ),
        cpu.per_order(placed.per_second * duration.as_secs_f64()),
    ));
    report.raw_coalesced = Some((connections, batch, placed));

    eprintln!("1/8 placement: placeOrder over HTTP (tally serve without workers)");
    let server = Tally::serve(bin, bench, 0, 100, &[]).await?;
    for clients in [1, 8, 32] {
        let cpu = cpu::Sample::now();
        let placed = load::graphql_placement(bench, &server.addr, clients, duration).await?;
        report.cpu.push((
            format!("placeOrder over HTTP, {clients} clients, coalesced"),
            cpu.per_order(placed.per_second * duration.as_secs_f64()),
        ));
        report.graphql_placement.push((clients, placed));
    }
    report.peak_rss_mib = server.peak_rss_mib();
    report.batch_sizes = server.order_batch_sizes().await.ok();
    server.stop()?;

    eprintln!("1/8 placement: placeOrder over HTTP, two writers and each order alone");
    let others = [
        // a second writer beside the first, as ORDER_WRITERS allows
        (
            "two writers (ORDER_WRITERS=2)",
            [("ORDER_WRITERS", "2"), ("ORDER_BATCH_SIZE", "64")],
        ),
        // as before coalescing: each request its own statement, as many
        // at once as the pool has connections
        (
            "each order alone (ORDER_BATCH_SIZE=1)",
            [("ORDER_WRITERS", "16"), ("ORDER_BATCH_SIZE", "1")],
        ),
    ];
    for (name, env) in others {
        let server = Tally::serve(bin, bench, 0, 100, &env).await?;
        let cpu = cpu::Sample::now();
        let placed = load::graphql_placement(bench, &server.addr, 32, duration).await?;
        report.cpu.push((
            format!("placeOrder over HTTP, 32 clients, {name}"),
            cpu.per_order(placed.per_second * duration.as_secs_f64()),
        ));
        report.graphql_other.push((name, placed));
        server.stop()?;
    }
    Ok(())
}

/// Drains of the same backlog: Tally at several batch sizes and one order
/// per run, straight SQL, and Tally in 2 and 4 processes.
async fn drains(
    bin: &PathBuf,
    bench: &Arc<Bench>,
    backlog: i64,
    report: &mut Report,
) -> anyhow::Result<()> {
    eprintln!("2/8 drain: a backlog of {} orders", backlog);
    // the orders placed above are the start of the backlog
    drain::reset(bench).await?;
    drain::fill_backlog(bench, backlog).await?;
    trim_backlog(bench, backlog).await?;
    drain::reset(bench).await?;
    report.drain_coalesced = drain::with_tally(bin, bench, 1, 2, DEFAULT_BATCH).await?;
    report.cpu.push((
        format!("drain, Tally, coalescing ({DEFAULT_BATCH}/run), 1 process"),
        report.drain_coalesced.cpu,
    ));
    for batch in [100, 250, 1000] {
        drain::reset(bench).await?;
        report
            .drain_other_batches
            .push((batch, drain::with_tally(bin, bench, 1, 2, batch).await?));
    }
    drain::reset(bench).await?;
    report.drain_single = drain::with_tally(bin, bench, 1, 2, 1).await?;
    drain::reset(bench).await?;
    report.drain_by_hand_single = drain::by_hand(bench, 4, 1, Sales::Kept).await?;
    drain::reset(bench).await?;
    report.drain_by_hand_batched = drain::by_hand(bench, 2, 200, Sales::Kept).await?;
    // the same statements without the sales per quarter hour: what the
    // buckets cost the counting run, side by side
    drain::reset(bench).await?;
    report.drain_by_hand_figures_alone = drain::by_hand(bench, 2, 200, Sales::Left).await?;
    report.cpu.push((
        "drain, straight SQL, 200 orders per transaction".to_owned(),
        report.drain_by_hand_batched.cpu,
    ));
    drain::reset(bench).await?;
    report.drain_by_hand_1000 = drain::by_hand(bench, 2, 1000, Sales::Kept).await?;

    eprintln!("3/8 scaling: 2 and 4 worker processes");
    for processes in [2, 4] {
        drain::reset(bench).await?;
        let drained = drain::with_tally(bin, bench, processes, 1, DEFAULT_BATCH).await?;
        report.cpu.push((
            format!("drain, Tally, coalescing, {processes} processes"),
            drained.cpu,
        ));
        report.scaling.push((processes, drained));
    }
    Ok(())
}

/// The lag from commit to counting at 50 % and 90 % of what `tally serve`
/// with its workers carries.
async fn lags(
    bin: &PathBuf,
    bench: &Arc<Bench>,
    duration: Duration,
    report: &mut Report,
) -> anyhow::Result<()> {
    eprintln!("4/8 lag at 50% and 90% of what tally serve with its workers places");
    // the lag's server runs its workers on the same cores as the API:
    // its load is a share of what that server carries, not of what one
    // without workers does
    lag::start_clean(bin, bench).await?;
    let server = Tally::serve(bin, bench, 2, DEFAULT_BATCH, &[]).await?;
    let carried = load::graphql_placement(bench, &server.addr, 32, duration).await?;
    server.stop()?;
    let best = carried.per_second;
    report.placement_with_workers = Some(carried);
    for share in [0.5, 0.9] {
        lag::start_clean(bin, bench).await?;
        settle(bench).await?;
        report.lag.push((
            share,
            lag::measure(bin, bench, best * share, duration, DEFAULT_BATCH).await?,
        ));
    }
    // the old default (100 per run) beside it, at 90 %
    lag::start_clean(bin, bench).await?;
    settle(bench).await?;
    report.lag_small_batches = Some(lag::measure(bin, bench, best * 0.9, duration, 100).await?);
    Ok(())
}

/// Writes out what earlier phases left dirty and refreshes statistics, so a
/// checkpoint forced by their writes does not land inside the next
/// measurement (the drains rewrite every order six times).
async fn settle(bench: &Bench) -> anyhow::Result<()> {
    sqlx::raw_sql("vacuum analyze").execute(&bench.pool).await?;
    sqlx::raw_sql("checkpoint").execute(&bench.pool).await?;
    Ok(())
}

/// Leaves exactly `n` orders (and their lines and jobs), the oldest ones.
async fn trim_backlog(bench: &Bench, n: i64) -> anyhow::Result<()> {
    let extra: Vec<i64> = sqlx::query_scalar("select id from orders order by id offset $1")
        .bind(n)
        .fetch_all(&bench.pool)
        .await?;
    jobs::bench::delete_jobs_of(&bench.orm(), &extra).await?;
    sqlx::query("delete from orders where id = any ($1)")
        .bind(&extra)
        .execute(&bench.pool)
        .await?;
    Ok(())
}
