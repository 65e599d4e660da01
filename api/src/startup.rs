//! One way to put Tally together. `tally serve`, `tally worker` and the tests
//! all [`build`] an [`App`] from a [`Config`] and run it until it is stopped,
//! so what the tests drive is what the binary runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use jobs::fail_points::FailPoints;
use jobs::metrics::JobMetrics;
use jobs::sales_rollup::SalesRetention;
use jobs::{Wakeup, WorkerPool};
use sea_orm::DatabaseConnection;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::auth::Tokens;
use crate::config::Config;
use crate::db::{self, PoolKind};
use crate::domain::orders::placer::PlacerHooks;
use crate::domain::{self, users};
use crate::live::LiveFigures;
use crate::state::AppState;
use crate::{board, http};

/// How often finished jobs past `JOB_RETENTION`, and sign-in rates back to
/// their full burst, are deleted, and sales past `SALES_HOURS_RETENTION`
/// rolled into days.
const RETENTION_INTERVAL: Duration = Duration::from_secs(600);

/// What a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `tally serve`: the API, the board when configured, and post-order
    /// workers unless `WORKER_CONCURRENCY` is 0.
    Serve,
    /// `tally worker`: post-order workers only; with `board`, the board too.
    Worker { board: bool },
}

/// Called with each statement: its text and the values bound to it.
pub type StatementWatcher = Arc<dyn Fn(&sea_orm::Statement) + Send + Sync>;

/// What tests watch or change in an app. The binary runs the default.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Sees each SQL statement the requests' and the workers' connections run.
    pub on_statement: Option<StatementWatcher>,
    /// Failures the workers inject (only with the jobs crate's `test-hooks`).
    pub fail_points: FailPoints,
    /// Starts none of the app's own workers: the test starts them, from
    /// [`App::workers`], when it is ready for its jobs to run.
    pub hold_workers: bool,
    /// Holds or breaks the coalescing of `placeOrder` requests.
    pub placer: PlacerHooks,
}

impl Hooks {
    fn orm(&self, pool: &PgPool) -> DatabaseConnection {
        let mut orm = db::orm(pool);
        if let Some(seen) = self.on_statement.clone() {
            orm.set_metric_callback(move |info| seen(info.statement));
        }
        orm
    }
}

/// A built Tally: connected, migrated, its listeners bound, nothing running
/// until [`App::run_until_stopped`].
pub struct App {
    api: Option<Api>,
    board: Option<Listener>,
    /// The process's own workers, when it runs any.
    workers: Option<WorkerPool>,
    factory: Workers,
    /// Tally's own connection, for retention and the board.
    db: DatabaseConnection,
    job_retention: Duration,
    sales: SalesRetention,
    shutdown: CancellationToken,
}

struct Api {
    http: Listener,
    state: AppState,
}

/// A bound listener and what it serves, under the same limits on slow and
/// crowding clients whichever it is: the board's sockets take file
/// descriptors from the same process as the API's.
struct Listener {
    listener: TcpListener,
    router: Router,
    connections: crate::config::ConnectionLimits,
}

/// How this process's post-order workers are made. More pools can be
/// started from it, each as another `tally worker` process would run.
#[derive(Clone)]
pub struct Workers {
    config: Config,
    wakeup: Wakeup,
    metrics: JobMetrics,
    hooks: Hooks,
}

impl Workers {
    fn on(&self, pool: PgPool) -> WorkerPool {
        WorkerPool {
            db: self.hooks.orm(&pool),
            pool,
            settings: self.config.workers.clone(),
            wakeup: self.wakeup.clone(),
            fail_points: self.hooks.fail_points.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// A pool of workers on connections of its own.
    pub async fn pool(&self) -> anyhow::Result<WorkerPool> {
        Ok(self.on(db::connect(&self.config, PoolKind::Workers).await?))
    }
}

/// Builds what `tally serve` or `tally worker` runs, to run until `shutdown`
/// is cancelled: then it stops taking requests and jobs, finishes the running
/// ones, and [`App::run_until_stopped`] returns. Cancelled while building, the
/// app stops as soon as it runs.
pub async fn build(config: Config, role: Role, shutdown: CancellationToken) -> anyhow::Result<App> {
    build_with(config, role, shutdown, Hooks::default()).await
}

/// [`build`], watched or changed by `hooks`.
pub async fn build_with(
    config: Config,
    role: Role,
    shutdown: CancellationToken,
    hooks: Hooks,
) -> anyhow::Result<App> {
    let runs_workers = config.workers.concurrency > 0;
    if !runs_workers && role != Role::Serve {
        anyhow::bail!("WORKER_CONCURRENCY is 0: a worker process needs at least 1");
    }
    let pool = db::connect_and_migrate(&config, PoolKind::Workers).await?;
    let orm = db::orm(&pool);
    db::check_time_zone(&orm, &config.sales.time_zone).await?;
    let wakeup = Wakeup::default();

    let api = match role {
        Role::Serve => Some(api(&config, &orm, &hooks, &wakeup, &shutdown).await?),
        Role::Worker { .. } => None,
    };
    let board = match role {
        Role::Serve | Role::Worker { board: true } => {
            board(&config, &pool, &orm, &wakeup, &shutdown).await?
        }
        Role::Worker { board: false } => None,
    };
    let factory = Workers {
        config: config.clone(),
        wakeup,
        // a worker process serves no /metrics
        metrics: api
            .as_ref()
            .map_or_else(JobMetrics::default, |api| api.state.metrics.jobs.clone()),
        hooks: hooks.clone(),
    };
    if !runs_workers {
        info!(
            "WORKER_CONCURRENCY is 0: this process runs no post-order workers; run `tally worker`"
        );
    }
    let workers = (runs_workers && !hooks.hold_workers).then(|| factory.on(pool));
    Ok(App {
        api,
        board,
        workers,
        factory,
        db: orm,
        job_retention: config.job_retention,
        sales: config.sales.clone(),
        shutdown,
    })
}

/// The API's connections, state and listener.
async fn api(
    config: &Config,
    db: &DatabaseConnection,
    hooks: &Hooks,
    wakeup: &Wakeup,
    shutdown: &CancellationToken,
) -> anyhow::Result<Api> {
    let requests = db::connect(config, PoolKind::Requests).await?;
    bootstrap_admin(db, config).await?;
    let secret = match &config.jwt_secret {
        Some(secret) => secret.clone(),
        None => {
            let secret = db::shared_token_secret(db).await?;
            info!(
                "JWT_SECRET is not set: signing tokens with the secret kept in the database, shared by every process on it"
            );
            secret
        }
    };
    // not watched: what subscribers read is no request's statement
    let live = LiveFigures::start(config, db::orm(&requests), shutdown.clone()).await?;
    let rebuilds = db::orm(&db::connect(config, PoolKind::Rebuilds).await?);
    let state = AppState::new(
        hooks.orm(&requests),
        rebuilds,
        config,
        Tokens::new(&secret),
        wakeup.clone(),
        live,
        hooks.placer.clone(),
    );
    Ok(Api {
        http: Listener {
            listener: http::bind(config.bind_addr)?,
            router: http::router(state.clone(), config.http.clone()),
            connections: config.http.connections.clone(),
        },
        state,
    })
}

/// The board's listener and routes, when credentials are configured.
async fn board(
    config: &Config,
    pool: &PgPool,
    db: &DatabaseConnection,
    wakeup: &Wakeup,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Listener>> {
    let Some(credentials) = config.board.clone() else {
        info!("the apalis board is off: set BOARD_USERNAME and BOARD_PASSWORD to serve it");
        return Ok(None);
    };
    Ok(Some(Listener {
        listener: http::bind(credentials.addr)?,
        router: board::router(
            pool,
            db.clone(),
            wakeup.clone(),
            credentials,
            shutdown.clone(),
        ),
        connections: config.http.connections.clone(),
    }))
}

async fn bootstrap_admin(db: &DatabaseConnection, config: &Config) -> anyhow::Result<()> {
    if let Some(admin) = &config.admin {
        let user = users::ensure_admin(db, &admin.email, admin.password.expose())
            .await
            .map_err(|e| e.into_anyhow().context("ADMIN_EMAIL/ADMIN_PASSWORD"))?;
        info!(user_id = user.id, email = %user.email, "admin account ready");
    }
    Ok(())
}

impl App {
    /// The API's address (None for a worker process).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.api.as_ref()?.http.listener.local_addr().ok()
    }

    /// The board's address, when it is served.
    pub fn board_addr(&self) -> Option<SocketAddr> {
        self.board.as_ref()?.listener.local_addr().ok()
    }

    /// What the API's handlers share (None for a worker process).
    pub fn state(&self) -> Option<&AppState> {
        self.api.as_ref().map(|api| &api.state)
    }

    /// How this app's workers are made, to start more of them.
    pub fn workers(&self) -> Workers {
        self.factory.clone()
    }

    /// Serves and works until the shutdown token is cancelled.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = self.shutdown;
        let board = self.board.map(|board| {
            if let Ok(addr) = board.listener.local_addr() {
                info!("apalis board at http://{addr}/ (failed jobs and retries at /retry)");
            }
            tokio::spawn(board.serve(shutdown.clone()))
        });
        let forgetting = tokio::spawn(forget_spent_sign_in_rates(
            self.db.clone(),
            shutdown.clone(),
        ));
        let sales_rollup = tokio::spawn(jobs::sales_rollup::run_sales_rollup(
            self.db.clone(),
            self.sales,
            RETENTION_INTERVAL,
            shutdown.clone(),
        ));
        let retention = tokio::spawn(jobs::retention::run_retention(
            self.db,
            self.job_retention,
            RETENTION_INTERVAL,
            shutdown.clone(),
        ));
        let workers = self
            .workers
            .map(|workers| tokio::spawn(workers.run(shutdown.clone().cancelled_owned())));
        if let Some(api) = self.api {
            let addr = api.http.listener.local_addr()?;
            info!("Tally is listening: GraphiQL at http://{addr}/graphql");
            api.http.serve(shutdown.clone()).await?;
            info!("HTTP server stopped; waiting for running jobs");
        }
        // a worker process runs until its workers stop: at shutdown, or on an
        // error that ends them
        if let Some(workers) = workers {
            workers.await??;
        }
        retention.await?;
        sales_rollup.await?;
        forgetting.await?;
        if let Some(board) = board {
            board.await??;
        }
        Ok(())
    }
}

impl Listener {
    async fn serve(self, shutdown: CancellationToken) -> std::io::Result<()> {
        http::serve(self.listener, self.router, self.connections, shutdown).await
    }
}

/// Cancels `token` on SIGTERM or Ctrl-C.
pub fn stop_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate => {}
        }
        info!("shutdown requested: finishing running work");
        token.cancel();
    });
}

/// Deletes now and then the sign-in rates that stand for a full burst
/// again: a client cycling through addresses or emails leaves a row for
/// each, and no row means the same.
async fn forget_spent_sign_in_rates(db: DatabaseConnection, shutdown: CancellationToken) {
    loop {
        match domain::sign_in::forget_spent(&db).await {
            Ok(0) => {}
            Ok(forgotten) => tracing::debug!(forgotten, "forgot sign-in rates back to their burst"),
            Err(e) => {
                warn!(error = ?e, "forgetting spent sign-in rates failed; trying again later")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RETENTION_INTERVAL) => {}
        }
    }
}
