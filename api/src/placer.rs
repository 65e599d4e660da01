//! Coalesced placement. The `placeOrder` requests a process receives while
//! its earlier writes are in flight wait in one queue; the next free writer
//! takes all of them (up to a batch) and writes them with one statement and
//! one commit ([`orders::write_orders`]), as the post-order job coalesces
//! its counting. Each request still gets its own answer: its order, the
//! earlier order its key names, or its own error. At low load a writer is
//! free when a request comes, so its batch is that one order, written at
//! once.
//!
//! A batch whose statement fails as a whole (the token of an account deleted
//! meanwhile, a timeout) has written nothing: each of its orders is then
//! written alone, so one bad order never fails its neighbours.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use futures::future::join_all;
use jobs::JobOptions;
use sea_orm::DatabaseConnection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tracing::{debug, warn};

use crate::domain::orders::{self, NewOrder, PlacedOrder};
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;

/// Lines one batch holds at most, so that a batch of large orders stays one
/// statement of bounded size: an order that would pass it waits for the next.
pub const MAX_BATCH_LINES: usize = 1000;

/// How requests are coalesced (`ORDER_BATCH_SIZE`, `ORDER_WRITERS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacementSettings {
    /// Orders one statement writes at most; 1 writes each order alone.
    pub max_batch: usize,
    /// Batches written at the same time, each on its own connection.
    pub writers: usize,
}

impl Default for PlacementSettings {
    fn default() -> Self {
        // One writer: on the 2-core machine of BENCHMARKS.md, a second one
        // halves the batches, and with them what each statement saves
        // (1.1 × the orders/s with one, side by side)
        Self {
            max_batch: 64,
            writers: 1,
        }
    }
}

/// What tests change in the placer. The binary runs the default.
#[derive(Clone, Debug, Default)]
pub struct PlacerHooks {
    /// When set (not 0), each batch waits until it has this many orders: a
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

/// Places orders through this process's queue. Cloning shares the queue.
#[derive(Clone)]
pub struct Placer {
    queue: mpsc::Sender<Queued>,
}

struct Queued {
    order: NewOrder,
    answer: oneshot::Sender<ApiResult<PlacedOrder>>,
}

impl Placer {
    /// Starts the task that gathers batches; it ends when the last clone of
    /// the placer is dropped, after handing out what was queued.
    pub fn start(
        db: DatabaseConnection,
        settings: PlacementSettings,
        job: JobOptions,
        metrics: Arc<Metrics>,
        hooks: PlacerHooks,
    ) -> Self {
        // requests in flight are bounded by the HTTP layer; this only needs
        // room for a few batches
        let (queue, queued) = mpsc::channel(4 * settings.max_batch.max(64));
        let writer = Arc::new(Writer {
            db,
            job,
            metrics,
            hooks,
        });
        tokio::spawn(gather(queued, writer, settings));
        Self { queue }
    }

    /// Places `order` with whatever else is queued, and answers for it alone.
    pub async fn place(&self, order: NewOrder) -> ApiResult<PlacedOrder> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Queued { order, answer })
            .await
            .map_err(|_| ApiError::Unavailable("the server is shutting down"))?;
        answered.await.map_err(|_| {
            ApiError::internal(anyhow::anyhow!(
                "the order's batch ended without answering it"
            ))
        })?
    }
}

/// Takes a writer, then every order queued by then, and hands them over.
async fn gather(
    mut queued: mpsc::Receiver<Queued>,
    writer: Arc<Writer>,
    settings: PlacementSettings,
) {
    let writers = Arc::new(Semaphore::new(settings.writers));
    // taken from the queue, and left for the next batch, which it would
    // have made too large
    let mut carried: Option<Queued> = None;
    loop {
        let Ok(permit) = writers.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(first) => first,
            None => match queued.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut lines = first.order.lines();
        let mut batch = vec![first];
        let wanted = writer.hooks.gather.load(Ordering::SeqCst);
        if wanted > 0 {
            while batch.len() < wanted {
                let Some(next) = queued.recv().await else {
                    break;
                };
                lines += next.order.lines();
                batch.push(next);
            }
        }
        while batch.len() < settings.max_batch {
            let Ok(next) = queued.try_recv() else {
                break;
            };
            if lines + next.order.lines() > MAX_BATCH_LINES {
                carried = Some(next);
                break;
            }
            lines += next.order.lines();
            batch.push(next);
        }
        tokio::spawn(writer.clone().write(batch, permit));
    }
}

/// Writes batches; one per free permit.
struct Writer {
    db: DatabaseConnection,
    job: JobOptions,
    metrics: Arc<Metrics>,
    hooks: PlacerHooks,
}

impl Writer {
    async fn write(self: Arc<Self>, batch: Vec<Queued>, _permit: OwnedSemaphorePermit) {
        // a client that left while its order waited gets none: it never saw
        // an answer, and a retry with its key places the order then
        let (orders, answers): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .filter(|queued| !queued.answer.is_closed())
            .map(|queued| (queued.order, queued.answer))
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
            Err(error) => {
                warn!(
                    orders = orders.len(),
                    error = ?error,
                    "a batch of orders failed as a whole, and wrote nothing: writing each alone"
                );
                join_all(orders.into_iter().zip(answers).map(|(order, answer)| {
                    let writer = self.clone();
                    async move {
                        let placed = orders::write_order(&writer.db, order, writer.job).await;
                        let _ = answer.send(placed);
                    }
                }))
                .await;
            }
        }
    }
}
