//! Live figures for subscriptions. Post-order runs announce what they changed
//! with PostgreSQL NOTIFY from their own transaction (see
//! `jobs::figures_changed`), in whichever process they ran. Each API process
//! listens on one connection of its own and relays every message to its
//! subscribers through memory, with the changed products read once for all
//! of them: a thousand subscribers of a popular product cost one query per
//! change, not a thousand.
//!
//! Every message, and every loss of the connection, also moves the
//! process's [`Freshness`] on: answers to public reads kept from before are
//! dropped (`graphql::public_answers`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use apalis::layers::retry::HasherRng;
use apalis::layers::retry::backoff::{
    Backoff, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff,
};
use entity::products;
use jobs::figures_changed::{CHANNEL, FiguresChanged};
use sea_orm::DatabaseConnection;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::db::{self, PoolKind};
use crate::domain::catalog;
use crate::error::{ApiError, ApiResult};

/// Messages a slow subscriber may fall behind by before it must look again.
const BACKLOG: usize = 1024;

#[derive(Clone, Debug)]
pub enum Change {
    Figures(Arc<RunChange>),
    /// Messages may have been missed (the listening connection was lost, or a
    /// subscriber fell behind): whatever a subscriber watches, it reads again.
    Resync,
}

/// What one run changed.
#[derive(Debug)]
pub struct RunChange {
    /// Orders counted in or taken back out.
    pub orders: Vec<i64>,
    /// The products whose figures changed, as they are after the change.
    pub products: Vec<products::Model>,
}

/// The process's relay of figure changes.
#[derive(Clone, Debug)]
pub struct LiveFigures {
    sender: broadcast::Sender<Change>,
    shutdown: CancellationToken,
    pub freshness: Arc<Freshness>,
}

/// How far the figures and the catalog have moved, as far as this process
/// has heard: a generation that every change moves on, and whether it can
/// hear changes at all (while the LISTEN connection is down, it cannot).
#[derive(Debug, Default)]
pub struct Freshness {
    generation: AtomicU64,
    deaf: AtomicBool,
}

impl Freshness {
    /// The generation an answer computed from now on may be kept under;
    /// `None` while changes may go unheard.
    pub fn current(&self) -> Option<u64> {
        let generation = self.generation.load(Ordering::SeqCst);
        (!self.deaf.load(Ordering::SeqCst)).then_some(generation)
    }

    /// Something changed (heard through NOTIFY, or done by this process).
    pub fn moved(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn hearing(&self, hearing: bool) {
        self.deaf.store(!hearing, Ordering::SeqCst);
        self.moved();
    }
}

impl LiveFigures {
    /// Listens on a connection of its own until `shutdown`; reads changed
    /// products through `db`.
    pub async fn start(
        config: &Config,
        db: DatabaseConnection,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let pool = db::connect(config, PoolKind::Listener).await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        let (sender, _) = broadcast::channel(BACKLOG);
        let freshness = Arc::new(Freshness::default());
        tokio::spawn(relay(
            listener,
            db,
            sender.clone(),
            freshness.clone(),
            shutdown.clone(),
        ));
        Ok(Self {
            sender,
            shutdown,
            freshness,
        })
    }

    /// Changes from now on. Subscribe before reading what you watch, so a
    /// change in between is seen twice rather than missed.
    pub fn subscribe(&self) -> Subscriber {
        Subscriber {
            changes: self.sender.subscribe(),
            shutdown: self.shutdown.clone(),
        }
    }
}

pub struct Subscriber {
    changes: broadcast::Receiver<Change>,
    shutdown: CancellationToken,
}

impl Subscriber {
    /// The next change; `None` once the process is shutting down.
    pub async fn next(&mut self) -> Option<Change> {
        match self.changes.recv().await {
            Ok(change) => Some(change),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Change::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// Drops the changes waiting, for a subscriber about to read what it
    /// watches anyway.
    pub fn skip_pending(&mut self) {
        while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = self.changes.try_recv() {
        }
    }

    /// What `read` reads after a change, once the database answers: while it
    /// is down or saturated (a restart, a burst of orders) the read is
    /// retried, backing off, rather than failed. A subscriber could do
    /// nothing with the error, and a read given up would lose it a change it
    /// must see. Other errors are returned; `None` once the process is
    /// shutting down.
    pub async fn read<T, F>(&self, mut read: impl FnMut() -> F) -> Option<ApiResult<T>>
    where
        F: Future<Output = ApiResult<T>>,
    {
        let mut backoff = backoff();
        loop {
            match read().await {
                Err(ApiError::Unavailable(reason)) => {
                    debug!(
                        reason,
                        "a subscription waits for the database to read again"
                    );
                    if !pause(&mut backoff, &self.shutdown).await {
                        return None;
                    }
                }
                done => return Some(done),
            }
        }
    }
}

async fn relay(
    mut listener: PgListener,
    db: DatabaseConnection,
    sender: broadcast::Sender<Change>,
    freshness: Arc<Freshness>,
    shutdown: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = listener.try_recv() => next,
        };
        match next {
            Ok(Some(message)) => {
                // first: a public answer kept from before is stale from now
                freshness.moved();
                match serde_json::from_str::<FiguresChanged>(message.payload()) {
                    // nobody to tell: no need to read anything
                    Ok(_) if sender.receiver_count() == 0 => {}
                    Ok(change) => {
                        let _ = sender.send(read_figures(&db, change).await);
                    }
                    Err(e) => warn!(
                        error = %e,
                        payload = message.payload(),
                        "ignored a figures notification that is not one"
                    ),
                }
            }
            // the connection was lost: what was sent meanwhile went unheard,
            // and what is sent until it listens again would too
            Ok(None) => {
                warn!("the subscriptions' LISTEN connection was lost; listening again");
                listen_again(&mut listener, &sender, &freshness, &shutdown).await;
            }
            Err(e) => {
                warn!(error = %e, "the subscriptions' LISTEN connection is down; reconnecting");
                listen_again(&mut listener, &sender, &freshness, &shutdown).await;
            }
        }
    }
}

/// Deaf until the listener is connected and listening again; then every
/// subscriber reads what it watches afresh.
async fn listen_again(
    listener: &mut PgListener,
    sender: &broadcast::Sender<Change>,
    freshness: &Freshness,
    shutdown: &CancellationToken,
) {
    freshness.hearing(false);
    if reconnect(listener, shutdown).await {
        info!("the subscriptions' LISTEN connection is back");
        freshness.hearing(true);
        let _ = sender.send(Change::Resync);
    }
}

/// The change with its products as they are now (committed before the
/// message was sent). If they cannot be read, subscribers read for
/// themselves what they watch.
async fn read_figures(db: &DatabaseConnection, change: FiguresChanged) -> Change {
    if change.all {
        return Change::Resync;
    }
    let products = match change.products.is_empty() {
        true => Vec::new(),
        false => match catalog::find_products(db, &change.products).await {
            Ok(products) => products,
            Err(e) => {
                warn!(error = ?e, "reading the changed products for subscribers failed");
                return Change::Resync;
            }
        },
    };
    Change::Figures(Arc::new(RunChange {
        orders: change.orders,
        products,
    }))
}

/// Retries, backing off, until the listener is connected and listening again
/// (true) or the process stops (false).
async fn reconnect(listener: &mut PgListener, shutdown: &CancellationToken) -> bool {
    let mut backoff = backoff();
    loop {
        if !pause(&mut backoff, shutdown).await {
            return false;
        }
        // any statement reconnects a listener, which then listens again
        if sqlx::query("select 1")
            .execute(&mut *listener)
            .await
            .is_ok()
        {
            return true;
        }
    }
}

/// The pauses between retries while the database is away: 100 ms, doubling
/// up to 5 s, each lengthened by up to half at random so that a process's
/// subscribers do not all retry in step.
fn backoff() -> ExponentialBackoff {
    ExponentialBackoffMaker::new(
        Duration::from_millis(100),
        Duration::from_secs(5),
        0.5,
        HasherRng::default(),
    )
    .expect("constant backoff settings are valid")
    .make_backoff()
}

/// Sleeps the next pause; false (at once) if the process stops meanwhile.
async fn pause(backoff: &mut ExponentialBackoff, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = backoff.next_backoff() => true,
    }
}
