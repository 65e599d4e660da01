//! Long-running commands: `tally serve` (API and workers) and `tally worker`.

use jobs::fail_points::FailPoints;
use jobs::metrics::JobMetrics;
use jobs::{Wakeup, WorkerPool};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::db::PoolKind;
use crate::domain::users;
use crate::http;
use crate::live::LiveFigures;
use crate::state::AppState;
use crate::{board, db};

/// Serves the API and runs this process's post-order workers until SIGTERM
/// or Ctrl-C; then stops taking requests and jobs, finishes running ones and returns.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let pool = db::connect_and_migrate(&config, PoolKind::Workers).await?;
    let orm = db::orm(&pool);
    let requests = db::orm(&db::connect(&config, PoolKind::Requests).await?);
    bootstrap_admin(&orm, &config).await?;
    if !config.jwt_secret_configured {
        warn!("JWT_SECRET is not set: using a random secret, so tokens will not survive a restart");
    }

    let shutdown = shutdown_on_signal();
    let wakeup = Wakeup::default();
    let board = start_board(&config, &pool, &orm, &wakeup, &shutdown).await?;
    let retention = start_retention(&config, &orm, &shutdown);
    let live = LiveFigures::start(&config, requests.clone(), shutdown.clone()).await?;
    let state = AppState::new(requests, &config, wakeup.clone(), live);
    let workers = worker_pool(&config, pool, orm, wakeup, state.metrics.jobs.clone());
    let workers = match config.workers.concurrency {
        0 => {
            info!(
                "WORKER_CONCURRENCY is 0: this process runs no post-order workers; run `tally worker`"
            );
            None
        }
        _ => Some(tokio::spawn(
            workers.run(shutdown.clone().cancelled_owned()),
        )),
    };

    let listener = TcpListener::bind(config.bind_addr).await?;
    let addr = listener.local_addr()?;
    info!("Tally is listening: GraphiQL at http://{addr}/graphql");
    http::serve(
        listener,
        http::router(state, config.http.clone()),
        config.http.connections.clone(),
        shutdown.clone(),
    )
    .await?;
    info!("HTTP server stopped; waiting for running jobs");
    if let Some(workers) = workers {
        workers.await??;
    }
    retention.await?;
    if let Some(board) = board {
        board.await??;
    }
    Ok(())
}

/// Runs post-order workers only, for operators who add worker processes;
/// with `with_board`, the board's listener too.
pub async fn work(config: Config, with_board: bool) -> anyhow::Result<()> {
    if config.workers.concurrency == 0 {
        anyhow::bail!("WORKER_CONCURRENCY is 0: a worker process needs at least 1");
    }
    let pool = db::connect_and_migrate(&config, PoolKind::Workers).await?;
    let orm = db::orm(&pool);
    let shutdown = shutdown_on_signal();
    // no order is placed in this process: its workers find jobs by polling
    let wakeup = Wakeup::default();
    let board = match with_board {
        true => start_board(&config, &pool, &orm, &wakeup, &shutdown).await?,
        false => None,
    };
    let retention = start_retention(&config, &orm, &shutdown);
    // this process serves no /metrics
    let workers = worker_pool(&config, pool, orm, wakeup, JobMetrics::default());
    workers.run(shutdown.clone().cancelled_owned()).await?;
    retention.await?;
    if let Some(board) = board {
        board.await??;
    }
    Ok(())
}

fn worker_pool(
    config: &Config,
    pool: sqlx::PgPool,
    db: sea_orm::DatabaseConnection,
    wakeup: Wakeup,
    metrics: JobMetrics,
) -> WorkerPool {
    WorkerPool {
        pool,
        db,
        settings: config.workers.clone(),
        wakeup,
        fail_points: FailPoints::default(),
        metrics,
    }
}

/// Serves the board on its own listener, when credentials are configured.
async fn start_board(
    config: &Config,
    pool: &sqlx::PgPool,
    db: &sea_orm::DatabaseConnection,
    wakeup: &Wakeup,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<JoinHandle<std::io::Result<()>>>> {
    let Some(credentials) = config.board.clone() else {
        info!("the apalis board is off: set BOARD_USERNAME and BOARD_PASSWORD to serve it");
        return Ok(None);
    };
    let listener = TcpListener::bind(credentials.addr).await?;
    info!(
        "apalis board at http://{}/ (failed jobs and retries at /retry)",
        listener.local_addr()?
    );
    let router = board::router(pool, db.clone(), wakeup.clone(), credentials);
    let stop = shutdown.clone();
    Ok(Some(tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    })))
}

/// Deletes finished jobs past `JOB_RETENTION` every ten minutes.
fn start_retention(
    config: &Config,
    db: &sea_orm::DatabaseConnection,
    shutdown: &CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(jobs::retention::run_retention(
        db.clone(),
        config.job_retention,
        Duration::from_secs(600),
        shutdown.clone(),
    ))
}

async fn bootstrap_admin(db: &sea_orm::DatabaseConnection, config: &Config) -> anyhow::Result<()> {
    if let Some(admin) = &config.admin {
        let user = users::ensure_admin(db, &admin.email, admin.password.expose())
            .await
            .map_err(|e| e.into_anyhow().context("ADMIN_EMAIL/ADMIN_PASSWORD"))?;
        info!(user_id = user.id, email = %user.email, "admin account ready");
    }
    Ok(())
}

/// A token cancelled on SIGTERM or Ctrl-C.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
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
        cancel.cancel();
    });
    token
}
