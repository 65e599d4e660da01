//! Coalesced placement. The `placeOrder` requests a process receives while
//! its earlier placement is in flight wait in one queue ([`crate::coalesce`]);
//! the next free writer takes all of them (up to a batch) and writes them with
//! one statement and one commit ([`orders::write_orders`]), as the
//! post-order job coalesces its counting. Each request still gets its own
//! answer: its order, the earlier order its key names, or its own error. At
//! low load a writer is free when a request comes, so its batch is that one
//! order, written at once.
//!
//! A batch whose statement fails as a whole has written nothing. When the
//! database failed it (unreachable, or past the statement timeout), each of
//! its orders is answered `SERVICE_UNAVAILABLE` at once, which clients retry;
//! when something in the batch did (a row that breaks a constraint), each of
//! its orders is written alone, so one bad order never fails its neighbours.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use futures::future::join_all;
use jobs::JobOptions;
use sea_orm::DatabaseConnection;
use tracing::{debug, warn};

use crate::auth::ClientAddr;
use crate::coalesce::{self, Queued, Weigh};
use crate::config::PlacementSettings;
use crate::domain::orders::{self, NewOrder, PlacedOrder};
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;

/// Lines one batch holds at most, so that a batch of large orders stays one
/// statement of bounded size: an order that would pass it waits for the next.
pub const MAX_BATCH_LINES: usize = 1000;

/// Lines one address's orders may take of a batch while another address's
/// orders wait too: an address sending the largest orders as fast as they
/// are answered then fills at most half of each statement ahead of a small
/// order from elsewhere.
pub const ADDRESS_SHARE_LINES: usize = MAX_BATCH_LINES / 2;

/// What tests change in the placer. The binary runs the default.
#[derive(Clone, Debug, Default)]
pub struct PlacerHooks {
    /// When set (not 0), each batch waits until this many orders wait: a
    /// test's concurrent requests then share one statement, whatever the
    /// machine's timing.
    pub gather: Arc<AtomicUsize>,
    /// The next this-many batches are written and committed, and then no
    /// answer is sent, as when the process dies between write and answer.
    pub lose_answers: Arc<AtomicU32>,
}

impl PlacerHooks {
    fn answers_lost(&self) -> bool {
        self.lose_answers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// An order to place, and the address it came from.
struct Placement {
    order: NewOrder,
    client: Option<ClientAddr>,
}

impl Weigh for Placement {
    type Client = ClientAddr;

    fn weight(&self) -> usize {
        self.order.lines()
    }

    fn client(&self) -> Option<ClientAddr> {
        self.client
    }
}

/// Places orders through this process's queue. Cloning shares the queue.
#[derive(Clone)]
pub struct Placer {
    queue: coalesce::Queue<Placement, ApiResult<PlacedOrder>>,
}

impl Placer {
    pub fn start(
        db: DatabaseConnection,
        settings: PlacementSettings,
        job: JobOptions,
        metrics: Arc<Metrics>,
        hooks: PlacerHooks,
    ) -> Self {
        let limits = coalesce::Limits {
            max_batch: settings.max_batch,
            max_weight: MAX_BATCH_LINES,
            client_share: ADDRESS_SHARE_LINES,
            in_flight: settings.writers,
            gather: hooks.gather.clone(),
        };
        let writer = Arc::new(Writer {
            db,
            job,
            metrics,
            hooks,
        });
        let queue = coalesce::Queue::start(limits, move |batch| writer.clone().write(batch));
        Self { queue }
    }

    /// Places `order`, which came from `client`, with whatever else is
    /// queued, and answers for it alone.
    pub async fn place(
        &self,
        order: NewOrder,
        client: Option<ClientAddr>,
    ) -> ApiResult<PlacedOrder> {
        self.queue.submit(Placement { order, client }).await?
    }
}

/// Writes batches of orders.
struct Writer {
    db: DatabaseConnection,
    job: JobOptions,
    metrics: Arc<Metrics>,
    hooks: PlacerHooks,
}

impl Writer {
    async fn write(self: Arc<Self>, batch: Vec<Queued<Placement, ApiResult<PlacedOrder>>>) {
        // a client that left while its order waited gets none: it never saw
        // an answer, and a retry with its key places the order then
        let (orders, answers): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .filter(|queued| !queued.answer.is_closed())
            .map(|queued| (queued.item.order, queued.answer))
            .unzip();
        if orders.is_empty() {
            return;
        }
        self.metrics.order_batch_written(orders.len());
        match orders::write_orders(&self.db, &orders, self.job).await {
            Ok(placed) => {
                debug!(orders = orders.len(), "wrote a batch of orders");
                if self.hooks.answers_lost() {
                    return;
                }
                for (answer, placed) in answers.into_iter().zip(placed) {
                    // a client that left meanwhile: its order stands
                    let _ = answer.send(placed);
                }
            }
            Err(error) if orders.len() == 1 => {
                if let Some(answer) = answers.into_iter().next() {
                    let _ = answer.send(Err(error));
                }
            }
            Err(ApiError::Unavailable(reason)) => {
                // the database, not an order: unreachable or too slow, each
                // order alone would wait as long again before its answer
                warn!(
                    orders = orders.len(),
                    reason, "a batch of orders failed as the database did, and wrote nothing"
                );
                for answer in answers {
                    let _ = answer.send(Err(ApiError::Unavailable(reason)));
                }
            }
            Err(error) => {
                warn!(
                    orders = orders.len(),
                    error = ?error,
                    "a batch of orders failed as a whole, and wrote nothing: writing each alone"
                );
                let (db, job) = (&self.db, self.job);
                join_all(
                    orders
                        .into_iter()
                        .zip(answers)
                        .map(|(order, answer)| async move {
                            let _ = answer.send(orders::write_order(db, order, job).await);
                        }),
                )
                .await;
            }
        }
    }
}
