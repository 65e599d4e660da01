//! Long-running commands: `tally serve` (API and workers) and `tally worker`.

use jobs::Wakeup;
use jobs::fail_points::FailPoints;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::db;
use crate::domain::users;
use crate::http;
use crate::state::AppState;

/// Serves the API and runs this process's post-order workers until SIGTERM
/// or Ctrl-C; then stops taking requests and jobs, finishes running ones and returns.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let pool = db::connect_and_migrate(&config).await?;
    let orm = db::orm(&pool);
    bootstrap_admin(&orm, &config).await?;
    if !config.jwt_secret_configured {
        warn!("JWT_SECRET is not set: using a random secret, so tokens will not survive a restart");
    }

    let shutdown = shutdown_on_signal();
    let wakeup = Wakeup::default();
    let workers = tokio::spawn(jobs::worker::run_workers(
        pool,
        orm.clone(),
        config.workers.clone(),
        wakeup.clone(),
        FailPoints::default(),
        shutdown.clone().cancelled_owned(),
    ));

    let state = AppState::new(orm, &config, wakeup);
    let listener = TcpListener::bind(config.bind_addr).await?;
    let addr = listener.local_addr()?;
    info!("Tally is listening: GraphiQL at http://{addr}/graphql");
    axum::serve(listener, http::router(state, config.body_limit_bytes))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    info!("HTTP server stopped; waiting for running jobs");
    workers.await??;
    Ok(())
}

/// Runs post-order workers only, for operators who add worker processes.
pub async fn work(config: Config) -> anyhow::Result<()> {
    let pool = db::connect_and_migrate(&config).await?;
    let orm = db::orm(&pool);
    let shutdown = shutdown_on_signal();
    jobs::worker::run_workers(
        pool,
        orm,
        config.workers.clone(),
        // no order is placed in this process: workers find jobs by polling
        Wakeup::default(),
        FailPoints::default(),
        shutdown.cancelled_owned(),
    )
    .await?;
    Ok(())
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
