//! A queue whose items are handled in batches: while the batches in flight
//! are busy, new items wait; the next free slot takes all of them (up to a
//! batch) at once. At low load a slot is free when an item comes, so its
//! batch is that item alone, handled at once. Each item keeps its own
//! answer. The placer ([`crate::placer`]) and the account reads
//! ([`crate::accounts`]) coalesce this way.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::error::ApiError;

/// An item of a batch, and where its answer goes. The handler answers each
/// (or drops it, and its caller is told the batch ended without an answer).
pub struct Queued<T, A> {
    pub item: T,
    pub answer: oneshot::Sender<A>,
}

/// How batches are taken.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Items one batch takes at most.
    pub max_batch: usize,
    /// The summed [`Weigh::weight`] of one batch at most: an item that
    /// would pass it waits for the next batch (a first item always goes).
    pub max_weight: usize,
    /// Batches handled at the same time.
    pub in_flight: usize,
    /// When set (not 0), each batch waits until it has this many items: a
    /// test's concurrent requests then share one batch, whatever the
    /// machine's timing.
    pub gather: Arc<AtomicUsize>,
}

/// The handler's queue. Cloning shares it.
pub struct Queue<T, A> {
    queue: mpsc::Sender<Queued<T, A>>,
}

impl<T, A> Clone for Queue<T, A> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

/// The queue has stopped (the process is shutting down), or the batch
/// ended without answering.
#[derive(Debug)]
pub enum Unanswered {
    Closed,
    Dropped,
}

impl From<Unanswered> for ApiError {
    fn from(unanswered: Unanswered) -> Self {
        match unanswered {
            Unanswered::Closed => Self::Unavailable("the server is shutting down"),
            Unanswered::Dropped => Self::internal(anyhow::anyhow!(
                "a batch ended without answering its request"
            )),
        }
    }
}

/// What an item weighs towards [`Limits::max_weight`]: 1 unless it says.
pub trait Weigh {
    fn weight(&self) -> usize {
        1
    }
}

impl<T: Weigh + Send + 'static, A: Send + 'static> Queue<T, A> {
    /// Starts the task that takes batches and hands each to `handle`; it ends
    /// when the last clone of the queue is dropped, after handing out what
    /// was queued.
    pub fn start<H, F>(limits: Limits, handle: H) -> Self
    where
        H: Fn(Vec<Queued<T, A>>) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        // callers in flight are bounded by the HTTP layer; this only needs
        // room for a few batches
        let (queue, queued) = mpsc::channel(4 * limits.max_batch.max(64));
        tokio::spawn(take_batches(queued, limits, handle));
        Self { queue }
    }

    /// Queues `item`; its answer once its batch is handled.
    pub async fn submit(&self, item: T) -> Result<A, Unanswered> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Queued { item, answer })
            .await
            .map_err(|_| Unanswered::Closed)?;
        answered.await.map_err(|_| Unanswered::Dropped)
    }
}

async fn take_batches<T, A, H, F>(
    mut queued: mpsc::Receiver<Queued<T, A>>,
    limits: Limits,
    handle: H,
) where
    T: Weigh + Send + 'static,
    A: Send + 'static,
    H: Fn(Vec<Queued<T, A>>) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.in_flight));
    // taken from the queue, and left for the next batch, which it would
    // have made too heavy
    let mut carried: Option<Queued<T, A>> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(first) => first,
            None => match queued.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut weight = first.item.weight();
        let mut batch = vec![first];
        let wanted = limits.gather.load(Ordering::SeqCst);
        while batch.len() < wanted {
            let Some(next) = queued.recv().await else {
                break;
            };
            weight += next.item.weight();
            batch.push(next);
        }
        while batch.len() < limits.max_batch {
            let Ok(next) = queued.try_recv() else {
                break;
            };
            if weight + next.item.weight() > limits.max_weight {
                carried = Some(next);
                break;
            }
            weight += next.item.weight();
            batch.push(next);
        }
        tokio::spawn(run(handle(batch), slot));
    }
}

async fn run(batch: impl Future<Output = ()>, _slot: OwnedSemaphorePermit) {
    batch.await;
}
