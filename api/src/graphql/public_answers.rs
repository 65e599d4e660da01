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

use std::sync::{Arc, Mutex};

use async_graphql::Request;
use async_graphql::parser::types::OperationType;
use axum::body::Bytes;

use super::byte_budget::ByteBudget;
use super::lock;
use crate::live::Freshness;
use crate::metrics::{Metrics, PublicAnswerMetrics};

#[derive(Clone)]
pub struct PublicAnswers(Arc<Shared>);

struct Shared {
    bodies: Mutex<ByteBudget<(u64, Bytes)>>,
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
            freshness,
            metrics: metrics.public_answers(),
        }))
    }

    /// The answer kept under `key`, if it is of the current generation.
    pub fn kept(&self, key: &str) -> Option<Bytes> {
        let current = self.0.freshness.current();
        let found = lock(&self.0.bodies)
            .get(key)
            .filter(|(generation, _)| Some(*generation) == current)
            .map(|(_, body)| body);
        if found.is_some() {
            self.0.metrics.hits.inc();
        }
        found
    }

    /// Counts a query that was not kept (a mutation or a request that
    /// cannot be kept is no miss).
    pub fn missed(&self) {
        self.0.metrics.misses.inc();
    }

    /// The generation an answer about to be computed belongs to; `None`
    /// when it must not be kept (changes may go unheard).
    pub fn generation(&self) -> Option<u64> {
        self.0.freshness.current()
    }

    /// Keeps an answer without errors computed in `generation`.
    pub fn keep(&self, key: String, generation: u64, body: Bytes) {
        let size = key.len() + body.len();
        let mut bodies = lock(&self.0.bodies);
        bodies.insert(key, (generation, body), size);
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
        answers.keep(key.clone(), generation, Bytes::from_static(b"{\"data\":1}"));
        assert_eq!(
            answers.kept(&key),
            Some(Bytes::from_static(b"{\"data\":1}"))
        );
        freshness.moved();
        assert_eq!(answers.kept(&key), None);
        // computed before the change, kept after it: never sent either
        answers.keep(key.clone(), generation, Bytes::from_static(b"{\"data\":1}"));
        assert_eq!(answers.kept(&key), None);
        answers.missed();
        assert_eq!(
            answers.counts(),
            Counts {
                hits: 1,
                misses: 1,
                bytes: key.len() + 10
            }
        );
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
