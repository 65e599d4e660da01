//! A queue whose items are handled in batches: while the batches in flight
//! are busy, new items wait; the next free slot takes all of them (up to a
//! batch) at once. At low load a slot is free when an item comes, so its
//! batch is that item alone, handled at once. Each item keeps its own
//! answer. The placer (`domain::orders::placer`) and the account reads
//! (`auth::accounts`) coalesce this way. It knows nothing of either: what
//! an item weighs and who sent it is theirs to say ([`Weigh`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

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
    /// The weight one client's items may take of a batch while another
    /// client's items wait too ([`Weigh::client`]): so one client's large
    /// items cannot fill every batch ahead of another's small one. A client
    /// alone fills batches up to `max_weight`.
    pub client_share: usize,
    /// Batches handled at the same time.
    pub in_flight: usize,
    /// When set (not 0), each batch waits until this many items wait: a
    /// test's concurrent requests then share one batch, whatever the
    /// machine's timing. Read again while waiting, so a test may lower it.
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

/// What an item weighs towards [`Limits::max_weight`] (1 unless it says),
/// and who sent it, for [`Limits::client_share`] (unknown unless it says).
pub trait Weigh {
    /// Whatever tells one client from another (an address, say).
    type Client: Eq + Hash;

    fn weight(&self) -> usize {
        1
    }

    fn client(&self) -> Option<Self::Client> {
        None
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
    // taken from the queue, oldest first, and not in a batch yet; bounded,
    // so that beyond it the queue holds callers back
    let room = 4 * limits.max_batch.max(64);
    let mut waiting: VecDeque<Queued<T, A>> = VecDeque::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        if waiting.is_empty() {
            match queued.recv().await {
                Some(first) => waiting.push_back(first),
                None => return,
            }
        }
        // the tests' hook, read again every few milliseconds, so that a
        // test can let the rest go once the batch it watches is written
        while waiting.len() < limits.gather.load(Ordering::SeqCst) {
            tokio::select! {
                next = queued.recv() => match next {
                    Some(next) => waiting.push_back(next),
                    None => break,
                },
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
        while waiting.len() < room {
            let Ok(next) = queued.try_recv() else {
                break;
            };
            waiting.push_back(next);
        }
        let batch = take_batch(&mut waiting, &limits);
        tokio::spawn(run(handle(batch), slot));
    }
}

/// The next batch of `waiting`: its oldest item always, then, oldest first,
/// each item that fits the batch's limits and, while other clients' items
/// wait too, its client's share. The others stay, in their order.
fn take_batch<T: Weigh, A>(
    waiting: &mut VecDeque<Queued<T, A>>,
    limits: &Limits,
) -> Vec<Queued<T, A>> {
    let contended = waiting
        .iter()
        .map(|queued| queued.item.client())
        .collect::<HashSet<_>>()
        .len()
        > 1;
    let mut batch = Vec::new();
    let mut weight = 0;
    let mut shares: HashMap<Option<T::Client>, usize> = HashMap::new();
    let mut left = VecDeque::with_capacity(waiting.len());
    while let Some(next) = waiting.pop_front() {
        if batch.len() == limits.max_batch {
            left.push_back(next);
            continue;
        }
        let item_weight = next.item.weight();
        let share = shares.entry(next.item.client()).or_default();
        let fits = batch.is_empty()
            || (weight + item_weight <= limits.max_weight
                && (!contended || *share + item_weight <= limits.client_share));
        if fits {
            weight += item_weight;
            *share += item_weight;
            batch.push(next);
        } else {
            left.push_back(next);
        }
    }
    *waiting = left;
    batch
}

async fn run(batch: impl Future<Output = ()>, _slot: OwnedSemaphorePermit) {
    batch.await;
}
