//! Worker wiring: apalis workers on PostgreSQL that run [`post_order::run`].

use std::future::Future;
use std::time::Duration;

use apalis::layers::retry::backoff::{ExponentialBackoffMaker, MakeBackoff};
use apalis::layers::retry::{HasherRng, RetryPolicy};
use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage};
use sea_orm::DatabaseConnection;
use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};
use tracing::{Instrument, info, info_span, warn};

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::JobError;
use crate::admin;
use crate::analytics::{self, Outcome};
use crate::enqueue::{JobOptions, PostOrderJob, QUEUE};
use crate::fail_points::FailPoints;
use crate::metrics::JobMetrics;
use crate::post_order::{self, JobContext};

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Jobs run at once by this process.
    pub concurrency: usize,
    /// Attempts per job, the first included; after the last the job stays Failed.
    pub max_attempts: u32,
    /// Orders one run may count together.
    pub batch_size: u32,
    /// How often idle workers look for jobs that no wake-up announced
    /// (jobs placed by other processes, retried or orphaned ones).
    pub poll_interval: Duration,
    /// A worker silent for `heartbeat_interval * missed_heartbeats` is dead,
    /// and its jobs go back to the queue. Keep it above the shutdown timeout.
    pub heartbeat_interval: Duration,
    pub missed_heartbeats: usize,
    /// How long a stopping worker may spend finishing its running jobs.
    pub shutdown_timeout: Duration,
    /// Count waiting orders right after this process's placements commit,
    /// without waiting for their jobs' turn (the jobs stay the guarantee).
    pub sweep_on_wakeup: bool,
}

impl WorkerSettings {
    /// Orders one run may count together unless `ANALYTICS_BATCH_SIZE` says.
    // past a few hundred the per-run work (its fetch and ack, claim, locks,
    // NOTIFY) no longer shows: BENCHMARKS.md, "Bigger batches"
    pub const DEFAULT_BATCH_SIZE: u32 = 500;

    /// How the jobs these workers run are enqueued.
    pub fn job_options(&self) -> JobOptions {
        JobOptions {
            max_attempts: self.max_attempts,
        }
    }
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_attempts: 5,
            batch_size: Self::DEFAULT_BATCH_SIZE,
            poll_interval: Duration::from_millis(250),
            heartbeat_interval: Duration::from_secs(3),
            missed_heartbeats: 5,
            shutdown_timeout: Duration::from_secs(10),
            sweep_on_wakeup: true,
        }
    }
}

/// Wakes this process's post-order work through memory: no per-row NOTIFY,
/// whose server-wide lock would serialise every placement.
#[derive(Clone, Debug)]
pub struct Wakeup {
    placed: broadcast::Sender<()>,
    /// Jobs a worker must run itself: retried ones, cancellations'.
    jobs: broadcast::Sender<()>,
}

impl Default for Wakeup {
    fn default() -> Self {
        Self {
            placed: broadcast::channel(16).0,
            jobs: broadcast::channel(16).0,
        }
    }
}

impl Wakeup {
    /// An order committed in this process.
    pub fn order_placed(&self) {
        // No receiver only means no worker runs in this process.
        let _ = self.placed.send(());
    }

    /// Jobs that only a worker runs are waiting: failed ones put back to
    /// pending, or a cancellation's, which takes its order back out of the
    /// figures (no sweep does).
    pub fn jobs_waiting(&self) {
        let _ = self.jobs.send(());
    }

    /// What wakes apalis's workers. With the sweep on, placements wake only
    /// the sweep: it counts the new orders and marks their jobs done before
    /// any worker fetches them, where a woken worker would fetch, run and
    /// acknowledge every order's job (three transactions each) in a race with
    /// it. Workers then find the jobs the sweep missed by polling.
    fn worker_stream(&self, sweep_on_wakeup: bool) -> impl Stream<Item = ()> + Send + 'static {
        let jobs = BroadcastStream::new(self.jobs.subscribe());
        let placed =
            BroadcastStream::new(self.placed.subscribe()).filter(move |_| !sweep_on_wakeup);
        // a lagged receiver only means several wake-ups in one
        jobs.merge(placed).map(|_| ())
    }

    fn placed_receiver(&self) -> broadcast::Receiver<()> {
        self.placed.subscribe()
    }
}

/// A process's post-order workers and what they need.
pub struct WorkerPool {
    pub pool: PgPool,
    pub db: DatabaseConnection,
    pub settings: WorkerSettings,
    pub wakeup: Wakeup,
    pub fail_points: FailPoints,
    pub metrics: JobMetrics,
}

impl WorkerPool {
    /// Runs the workers until `shutdown` resolves, then lets running jobs
    /// finish (up to the shutdown timeout) and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), JobError> {
        run_workers(self, shutdown).await
    }
}

async fn run_workers(
    WorkerPool {
        pool,
        db,
        settings,
        wakeup,
        fail_points,
        metrics,
    }: WorkerPool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), JobError> {
    let backoff = ExponentialBackoffMaker::new(
        Duration::from_millis(200),
        Duration::from_secs(30),
        0.5,
        HasherRng::default(),
    )
    .map_err(|e| JobError::Setup(e.to_string()))?
    .make_backoff();
    let context = JobContext {
        db,
        batch_size: settings.batch_size,
        fail_points,
        metrics,
    };
    let config = Config::default()
        .queue(QUEUE)
        // one fetch claims at most what this worker can run at once, so
        // claimed jobs never wait behind each other while other workers idle
        .batch_size(settings.concurrency)
        .heartbeat_interval(settings.heartbeat_interval)
        .missed_heartbeats(settings.missed_heartbeats);
    let name = format!(
        "post-order-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    info!(
        worker = %name,
        concurrency = settings.concurrency,
        batch_size = settings.batch_size,
        max_attempts = settings.max_attempts,
        "starting post-order workers"
    );

    let stop = CancellationToken::new();
    let sweeper = settings.sweep_on_wakeup.then(|| {
        tokio::spawn(sweep_after_placements(
            context.clone(),
            wakeup.placed_receiver(),
            stop.clone(),
        ))
    });

    let monitor = Monitor::new()
        .register(move |restarts| {
            // A restarted worker registers under a new name: its old name may
            // still hold its registration lock on a pooled connection, and the
            // jobs it held (lost with its database) come back to the queue
            // like those of a dead worker.
            let incarnation = |n: usize| match n {
                0 => name.clone(),
                n => format!("{name}-r{n}"),
            };
            let replaced = restarts.checked_sub(1).map(incarnation);
            let db = context.db.clone();
            let storage = PostgresStorage::<PostOrderJob>::new(&pool)
                .with_config(config.clone())
                .poll_with_strategy(
                    Strategy::new()
                        .apply(IntervalStrategy::new(settings.poll_interval))
                        .apply(StreamStrategy::new(
                            wakeup.worker_stream(settings.sweep_on_wakeup),
                        )),
                )
                .before_start(move |_| {
                    let (db, replaced) = (db.clone(), replaced.clone());
                    async move {
                        if let Some(replaced) = replaced {
                            // a worker restarted after losing its database
                            // waits a little longer each time instead of
                            // spinning
                            tokio::time::sleep(restart_delay(restarts)).await;
                            kill_unreadable_jobs(&db, &replaced).await;
                        }
                        Ok(())
                    }
                });
            WorkerBuilder::new(incarnation(restarts).as_str())
                .backend(storage)
                .data(context.clone())
                .concurrency(settings.concurrency)
                .retry(
                    RetryPolicy::retries(settings.max_attempts.saturating_sub(1) as usize)
                        .with_backoff(backoff.clone()),
                )
                .build(post_order::run)
        })
        // apalis ends a worker whose fetch fails (say, PostgreSQL restarted);
        // the monitor builds it again, so workers outlive database outages
        .should_restart(|worker, error| {
            warn!(worker = %worker.name(), restarts = worker.restarts(), error = %error, "post-order worker stopped on an error; restarting it");
            true
        })
        .shutdown_timeout(settings.shutdown_timeout);
    monitor
        .run_with_signal(async move {
            shutdown.await;
            stop.cancel();
            Ok(())
        })
        .await
        .map_err(|e| JobError::Setup(e.to_string()))?;
    if let Some(sweeper) = sweeper {
        let _ = sweeper.await;
    }
    info!("post-order workers stopped");
    Ok(())
}

/// After each wake-up (an order committed in this process), counts what is
/// waiting, up to a batch. One sweep answers all the placements that
/// committed while the previous one ran. A failed sweep only costs time: the
/// orders' own jobs count them.
async fn sweep_after_placements(
    context: JobContext,
    mut wakeups: broadcast::Receiver<()>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            received = wakeups.recv() => {
                if let Err(broadcast::error::RecvError::Closed) = received {
                    return;
                }
            }
        }
        while wakeups.try_recv().is_ok() {}
        let started = Instant::now();
        let span = info_span!("sweep_after_placement");
        let outcome =
            analytics::apply_waiting(&context.db, context.batch_size, &context.fail_points)
                .instrument(span.clone())
                .await;
        span.in_scope(|| match &outcome {
            Ok(Outcome::Applied(_)) => {
                context
                    .metrics
                    .record("swept", started.elapsed().as_secs_f64());
                post_order::log_outcome(&outcome, started, &"the sweep after a placement");
            }
            // nothing was waiting; a sweep has no order of its own to take back
            Ok(Outcome::AlreadyApplied | Outcome::Reversed(_) | Outcome::AlreadyReversed) => {}
            Err(e) => {
                warn!(error = %e, "sweep after a placement failed; the orders' jobs will count them")
            }
        });
    }
}

/// The worker `replaced` may have ended on a row apalis cannot decode, which
/// every fetch would hand out again once it came back as an orphan: such
/// rows are killed before its successor fetches ([`admin::kill_unreadable_jobs`]).
async fn kill_unreadable_jobs(db: &DatabaseConnection, replaced: &str) {
    match admin::kill_unreadable_jobs(db, replaced).await {
        Ok(killed) if killed.is_empty() => {}
        Ok(killed) => warn!(
            worker = %replaced,
            job_ids = ?killed,
            "killed jobs no worker can read, on which a worker ended: delete them"
        ),
        // the database is likely what ended the worker; if a row did, the
        // next worker to fetch it ends on it too, and its successor looks
        Err(error) => {
            warn!(worker = %replaced, error = %error, "could not look for jobs no worker can read")
        }
    }
}

/// 0.5 s after the first failure, growing to at most 5 s.
fn restart_delay(restarts: usize) -> Duration {
    Duration::from_millis(500 * restarts.min(10) as u64)
}
