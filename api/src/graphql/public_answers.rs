//! Answers to public reads, kept in memory and never staler than the
//! figures.
//!
//! A query sent without `Authorization` can read only what anyone may (the
//! catalog, its rankings and figures): its answer is the same for every
//! caller until a product or its figures change. Such answers without
//! errors are kept, by a hash of the document, operation, variables and
//! extensions (a persisted query's hash), within `PUBLIC_CACHE_BYTES`, the
//! least recently used out first, and sent again before anything is
//! parsed. Each is kept with the [`Freshness`] generation it was computed
//! in (read before it ran), and every change moves the generation on: a
//! counting run's or a reversal's NOTIFY, a product's creation or edit (its
//! NOTIFY, and at once in the process that made it), a rebuild, a lost
//! LISTEN connection (while it is down nothing is kept). An answer kept
//! from an older generation is never sent. So a kept answer is at most as
//! old as the last commit it could show plus the NOTIFY's way to this
//! process.
//!
//! What sells now (`products(orderBy: TRENDING)`) changes without a change
//! too: when a quarter hour passes, the oldest sales leave its window. Its
//! resolver marks the request [`ClockBound`], and such an answer is never
//! sent in another quarter hour than the one it was computed in.
//!
//! A NOTIFY drops every kept answer at once, and every client of the menu
//! then misses it together: one request computes an answer at a time per
//! key (it leads a [`Flight`]), and those that miss the same key meanwhile
//! wait for it and are sent what it kept. If it kept nothing (an error, or
//! a change heard meanwhile), each computes its own, without waiting again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::Request;
use async_graphql::parser::types::OperationType;
use axum::body::Bytes;
use tokio::sync::Semaphore;

use super::byte_budget::ByteBudget;
use super::lock;
use crate::domain::sales;
use crate::live::Freshness;
use crate::metrics::{Metrics, PublicAnswerMetrics};

#[derive(Clone)]
pub struct PublicAnswers(Arc<Shared>);

struct Shared {
    bodies: Mutex<ByteBudget<(Kept, Bytes)>>,
    /// `PUBLIC_CACHE_BYTES`: 0 keeps nothing, and then nobody waits for
    /// another's computation either.
    keeps: bool,
    /// The answers being computed, by key: closed when their computation
    /// ends, which wakes those waiting for it.
    flights: Mutex<HashMap<String, Arc<Semaphore>>>,
    freshness: Arc<Freshness>,
    /// `/metrics`: hits, misses and the bytes kept.
    metrics: PublicAnswerMetrics,
}

/// What the cache did, as `/metrics` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub hits: u64,
    pub misses: u64,
    pub bytes: usize,
}

impl PublicAnswers {
    pub fn new(budget: usize, freshness: Arc<Freshness>, metrics: &Metrics) -> Self {
        Self(Arc::new(Shared {
            bodies: Mutex::new(ByteBudget::new(budget)),
            keeps: budget > 0,
            flights: Mutex::default(),
            freshness,
            metrics: metrics.public_answers(),
        }))
    }

    /// The answer kept under `key`, if it is of the current generation.
    pub fn kept(&self, key: &str) -> Option<Bytes> {
        let current = self.generation()?;
        let found = lock(&self.0.bodies)
            .get(key)
            .filter(|(kept, _)| {
                kept.changes == current.changes
                    && kept
                        .quarter
                        .is_none_or(|quarter| quarter == current.quarter)
            })
            .map(|(_, body)| body);
        if found.is_some() {
            self.0.metrics.hits.inc();
        }
        found
    }

    /// For a query that missed `key`: the answer another request was
    /// computing for it meanwhile, once it is kept; or the lead of the
    /// computation (None: one led by another request kept nothing, and this
    /// one computes its own). Counts the miss, or the hit.
    pub async fn join(&self, key: &str) -> Joined {
        if !self.0.keeps {
            self.0.metrics.misses.inc();
            return Joined::Computing(None);
        }
        let waiting = {
            let mut flights = lock(&self.0.flights);
            match flights.get(key) {
                Some(flight) => flight.clone(),
                None => {
                    let done = Arc::new(Semaphore::new(0));
                    flights.insert(key.to_owned(), done.clone());
                    self.0.metrics.misses.inc();
                    return Joined::Computing(Some(Flight {
                        answers: self.clone(),
                        key: key.to_owned(),
                        done,
                    }));
                }
            }
        };
        // never given a permit: closed when the computation ends
        let _ = waiting.acquire().await;
        match self.kept(key) {
            Some(body) => Joined::Answered(body),
            None => {
                self.0.metrics.misses.inc();
                Joined::Computing(None)
            }
        }
    }

    /// The generation an answer about to be computed belongs to; `None`
    /// when it must not be kept (changes may go unheard).
    pub fn generation(&self) -> Option<Generation> {
        let changes = self.0.freshness.current()?;
        let quarter = sales::bucket_start(chrono::Utc::now()).timestamp();
        Some(Generation { changes, quarter })
    }

    /// Keeps an answer without errors computed in `generation`; one that is
    /// `clock_bound` only for the quarter hour it was computed in.
    pub fn keep(&self, key: String, generation: Generation, clock_bound: bool, body: Bytes) {
        let kept = Kept {
            changes: generation.changes,
            quarter: clock_bound.then_some(generation.quarter),
        };
        let size = key.len() + body.len();
        let mut bodies = lock(&self.0.bodies);
        bodies.insert(key, (kept, body), size);
        self.0.metrics.bytes.set(bodies.bytes() as i64);
    }

    pub fn counts(&self) -> Counts {
        Counts {
            hits: self.0.metrics.hits.get(),
            misses: self.0.metrics.misses.get(),
            bytes: lock(&self.0.bodies).bytes(),
        }
    }

    /// Whether the operation `request` runs is a query (a mutation's answer
    /// is never kept, whoever sends it). Parses the document, which the
    /// request keeps for execution.
    pub fn is_query(request: &mut Request) -> bool {
        let name = request.operation_name.clone();
        request.parsed_query().is_ok_and(|document| {
            super::operation(document, name.as_deref())
                .is_some_and(|operation| operation.ty == OperationType::Query)
        })
    }
}

/// When an answer was computed: after how many changes this process heard
/// of ([`Freshness`]), in which quarter hour (its start, in seconds since the
/// epoch). Read before the answer is computed, so an answer is never kept
/// as newer than it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generation {
    changes: u64,
    quarter: i64,
}

/// What a kept answer is good for: the changes it was computed after, and
/// for an answer the clock changes, the quarter hour it was computed in.
#[derive(Clone, Copy)]
struct Kept {
    changes: u64,
    quarter: Option<i64>,
}

/// Marked by a resolver whose answer the clock changes (the best sellers of
/// a window that moves each quarter hour), in the request's data.
#[derive(Debug, Default)]
pub struct ClockBound(AtomicBool);

impl ClockBound {
    pub fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_marked(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What [`PublicAnswers::join`] found.
pub enum Joined {
    /// Computed by the request this one waited for, and kept.
    Answered(Bytes),
    /// To compute: leading those that come meanwhile, or alone.
    Computing(Option<Flight>),
}

/// The lead of an answer's computation: those missing its key wait until it
/// is dropped (after the answer is kept, or not).
pub struct Flight {
    answers: PublicAnswers,
    key: String,
    done: Arc<Semaphore>,
}

impl Drop for Flight {
    fn drop(&mut self) {
        lock(&self.answers.0.flights).remove(&self.key);
        self.done.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::answer_key;

    fn answers(budget: usize) -> (PublicAnswers, Arc<Freshness>) {
        let freshness = Arc::new(Freshness::default());
        let answers = PublicAnswers::new(budget, freshness.clone(), &Metrics::default());
        (answers, freshness)
    }

    #[test]
    fn an_answer_of_an_older_generation_is_never_sent() {
        let (answers, freshness) = answers(1024);
        let key = answer_key(&Request::new("{ products { edges { node { id } } } }"));
        let generation = answers.generation().unwrap();
        answers.keep(
            key.clone(),
            generation,
            false,
            Bytes::from_static(b"{\"data\":1}"),
        );
        assert_eq!(
            answers.kept(&key),
            Some(Bytes::from_static(b"{\"data\":1}"))
        );
        freshness.moved();
        assert_eq!(answers.kept(&key), None);
        // computed before the change, kept after it: never sent either
        answers.keep(
            key.clone(),
            generation,
            false,
            Bytes::from_static(b"{\"data\":1}"),
        );
        assert_eq!(answers.kept(&key), None);
        assert_eq!(
            answers.counts(),
            Counts {
                hits: 1,
                misses: 0,
                bytes: key.len() + 10
            }
        );
    }

    #[test]
    fn an_answer_the_clock_changes_is_sent_in_its_quarter_hour_only() {
        let (answers, _) = answers(1024);
        let now = answers.generation().unwrap();
        let earlier = Generation {
            quarter: now.quarter - sales::BUCKET_SECONDS,
            ..now
        };
        answers.keep("trending".into(), earlier, true, Bytes::from_static(b"1"));
        answers.keep("menu".into(), earlier, false, Bytes::from_static(b"2"));
        assert_eq!(answers.kept("trending"), None);
        assert_eq!(answers.kept("menu"), Some(Bytes::from_static(b"2")));
    }

    #[tokio::test]
    async fn those_missing_a_key_meanwhile_wait_for_the_one_computing_it() {
        let (answers, freshness) = answers(1024);
        let key = "menu";
        let Joined::Computing(Some(flight)) = answers.join(key).await else {
            panic!("the first to miss computes");
        };
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let answers = answers.clone();
                tokio::spawn(async move { answers.join(key).await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(waiting.iter().all(|w| !w.is_finished()));
        answers.keep(
            key.into(),
            answers.generation().unwrap(),
            false,
            Bytes::from_static(b"1"),
        );
        drop(flight);
        for w in waiting {
            assert!(matches!(w.await.unwrap(), Joined::Answered(body) if body == "1"));
        }
        assert_eq!((answers.counts().hits, answers.counts().misses), (3, 1));
        assert_eq!(lock(&answers.0.flights).len(), 0);

        // a computation that kept nothing (a change was heard meanwhile):
        // those that waited compute their own, none leading again
        freshness.moved();
        let Joined::Computing(Some(flight)) = answers.join(key).await else {
            panic!("the first to miss computes");
        };
        let waiting = {
            let answers = answers.clone();
            tokio::spawn(async move { answers.join(key).await })
        };
        tokio::task::yield_now().await;
        drop(flight);
        assert!(matches!(waiting.await.unwrap(), Joined::Computing(None)));
        assert_eq!(answers.counts().misses, 3);
        assert_eq!(lock(&answers.0.flights).len(), 0);

        // keeping nothing, nobody waits: each computes its own
        let (keeping_none, _) = super::tests::answers(0);
        let Joined::Computing(None) = keeping_none.join(key).await else {
            panic!("a flight when nothing can be kept");
        };
        let Joined::Computing(None) = keeping_none.join(key).await else {
            panic!("a flight when nothing can be kept");
        };
    }

    #[test]
    fn documents_variables_and_persisted_hashes_are_keys_of_their_own() {
        let plain = Request::new("{ a }");
        let named = Request::new("{ a }").operation_name("A");
        let with = Request::new("{ a }").variables(async_graphql::Variables::from_json(
            serde_json::json!({ "x": 1 }),
        ));
        let mut persisted = Request::new("");
        persisted.extensions.insert(
            "persistedQuery".into(),
            async_graphql::Value::from_json(serde_json::json!({ "sha256Hash": "abc" })).unwrap(),
        );
        let keys: std::collections::HashSet<String> = [plain, named, with, persisted]
            .iter()
            .map(answer_key)
            .collect();
        assert_eq!(keys.len(), 4);
    }

    #[test]
    fn only_a_query_is_kept() {
        assert!(PublicAnswers::is_query(&mut Request::new("{ a }")));
        assert!(PublicAnswers::is_query(&mut Request::new("query Q { a }")));
        assert!(!PublicAnswers::is_query(&mut Request::new(
            "mutation { a }"
        )));
        assert!(!PublicAnswers::is_query(&mut Request::new(
            "query A { a } mutation B { b }"
        )));
        assert!(!PublicAnswers::is_query(
            &mut Request::new("query A { a } mutation B { b }").operation_name("B")
        ));
        assert!(!PublicAnswers::is_query(&mut Request::new("{ a")));
    }
}
