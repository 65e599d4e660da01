use std::sync::Arc;

use jobs::Wakeup;
use sea_orm::DatabaseConnection;

use crate::auth::Tokens;
use crate::config::Config;
use crate::domain::orders::JobOptions;
use crate::metrics::Metrics;

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub tokens: Tokens,
    /// Wakes this process's workers after an order commits.
    pub wakeup: Wakeup,
    pub jobs: JobOptions,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(db: DatabaseConnection, config: &Config, wakeup: Wakeup) -> Self {
        Self {
            db,
            tokens: Tokens::new(&config.jwt_secret),
            wakeup,
            jobs: JobOptions {
                max_attempts: config.workers.max_attempts,
            },
            metrics: Arc::default(),
        }
    }
}
