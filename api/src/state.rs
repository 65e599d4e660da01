use std::sync::Arc;
use std::time::Duration;

use jobs::{JobOptions, Wakeup};
use sea_orm::DatabaseConnection;

use crate::accounts::Accounts;
use crate::auth::Tokens;
use crate::auth_throttle::AuthThrottle;
use crate::config::Config;
use crate::live::LiveFigures;
use crate::metrics::Metrics;
use crate::placer::{Placer, PlacerHooks};

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    /// Writes `placeOrder`'s orders, coalesced.
    pub placer: Placer,
    /// Reads the accounts of HTTP requests' tokens, coalesced.
    pub accounts: Accounts,
    pub tokens: Tokens,
    /// Wakes this process's workers after an order commits.
    pub wakeup: Wakeup,
    pub jobs: JobOptions,
    /// How long after placing it a customer may cancel an order.
    pub cancel_window: Duration,
    pub metrics: Arc<Metrics>,
    /// What post-order runs changed, for subscriptions.
    pub live: LiveFigures,
    /// Failed sign-ins and registrations, per client address and account.
    pub auth_throttle: Arc<AuthThrottle>,
}

impl AppState {
    /// Starts the placer and the account reads too: call it inside the
    /// runtime.
    pub fn new(
        db: DatabaseConnection,
        config: &Config,
        wakeup: Wakeup,
        live: LiveFigures,
        placer_hooks: PlacerHooks,
    ) -> Self {
        let jobs = config.workers.job_options();
        let metrics = Arc::<Metrics>::default();
        Self {
            placer: Placer::start(
                db.clone(),
                config.placement,
                jobs,
                metrics.clone(),
                placer_hooks,
            ),
            accounts: Accounts::start(db.clone()),
            db,
            tokens: Tokens::new(&config.jwt_secret),
            wakeup,
            jobs,
            cancel_window: config.order_cancel_window,
            metrics,
            live,
            auth_throttle: Arc::new(AuthThrottle::new(&config.http.auth)),
        }
    }
}
