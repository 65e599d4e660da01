//! What every request handler shares ([`AppState`]): the pools, the placer
//! and the account reads, the token keys, the metrics and the live figures.

use std::sync::Arc;
use std::time::Duration;

use jobs::{JobOptions, Wakeup};
use sea_orm::DatabaseConnection;

use crate::admission::IntervalLog;
use crate::auth::accounts::Accounts;
use crate::auth::{ClientAddr, Tokens};
use crate::config::{Config, SignInRates};
use crate::domain::orders::placer::{Placer, PlacerHooks};
use crate::error::ApiError;
use crate::live::LiveFigures;
use crate::metrics::Metrics;

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    /// Where `rebuildAnalytics` runs: not the requests' pool, nor their
    /// statement timeout (`PoolKind::Rebuilds`).
    pub rebuilds: DatabaseConnection,
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
    /// `STORE_TIME_ZONE`: whose hours and days sales reports show.
    pub store_time_zone: Arc<str>,
    pub metrics: Arc<Metrics>,
    /// What post-order runs changed, for subscriptions.
    pub live: LiveFigures,
    /// The rates of failed sign-ins and registrations (kept in the
    /// database, for every replica to count alike).
    pub sign_in: SignInRates,
    /// Sign-ins and registrations refused by those rates, logged at most
    /// once a second.
    sign_in_refusals: Arc<IntervalLog>,
}

impl AppState {
    /// Starts the placer and the account reads too: call it inside the
    /// runtime.
    pub fn new(
        db: DatabaseConnection,
        rebuilds: DatabaseConnection,
        config: &Config,
        tokens: Tokens,
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
            rebuilds,
            tokens,
            wakeup,
            jobs,
            cancel_window: config.order_cancel_window,
            store_time_zone: config.sales.time_zone.as_str().into(),
            metrics,
            live,
            sign_in: config.http.sign_in,
            sign_in_refusals: Arc::new(IntervalLog::new(
                "refusing sign-ins or registrations: a client address or an account is past its rate",
            )),
        }
    }
}

impl AppState {
    /// Counts a sign-in or registration the rates refused, for the log.
    pub fn note_refusal(&self, error: &ApiError, client: Option<ClientAddr>) {
        if let ApiError::TooManyRequests { .. } = error {
            self.sign_in_refusals.add(client.map(ClientAddr::ip));
        }
    }
}
