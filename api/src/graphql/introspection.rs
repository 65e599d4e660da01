//! Introspection: what GraphiQL, code generators and IDEs send to read the
//! schema, answered from memory and computed one at a time.
//!
//! A document whose operation reads only the schema (`__schema`, `__type`
//! and `__typename` at its root) has the same answer for the same text and
//! variables for as long as this binary runs, and tools send a few standard
//! queries: the HTTP handler keeps each answer's body ([`IntrospectionAnswers`])
//! and sends it again to whoever sends the same (the schema is public),
//! found by a hash of the text before anything is parsed, validated or
//! executed.
//!
//! An answer not kept yet is computed in its turn: one at a time, with at
//! most [`MAX_WAITING`] more waiting (the rest are refused as the in-flight
//! limit refuses). The extension takes the turn for introspection the
//! handler could not look up (sent as a persisted query's hash, or over a
//! WebSocket), so a flood of ever-different introspection keeps one core
//! busy at most, and no other request waits behind it.
//!
//! The extension also answers `__schema { description }` with null:
//! async-graphql answers it with the description of its `__Schema` type, as
//! if it were Tally's, and Tally's schema has none (`schema.graphql` prints
//! none), so a tool that asks would print a schema that is not the file's.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextPrepareRequest, NextResolve,
    ResolveInfo,
};
use async_graphql::parser::types::{ExecutableDocument, Field, OperationType};
use async_graphql::{Request, Response, ServerResult, Value};
use axum::body::Bytes;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::byte_budget::ByteBudget;
use super::limits::{Fold, SCHEMA_FIELDS};
use super::lock;
use crate::error::ApiError;

/// What the kept answers may add up to, in bytes of their bodies.
pub const CACHE_BYTES: usize = 2 * 1024 * 1024;

/// Introspection requests that may wait while another is computed.
pub const MAX_WAITING: usize = 8;

/// The process's kept answers and the turns to compute new ones.
#[derive(Clone)]
pub struct IntrospectionAnswers(Arc<Shared>);

struct Shared {
    /// Each answer's body, by `graphql::answer_key`; only
    /// answers without errors are kept.
    bodies: Mutex<ByteBudget<Bytes>>,
    /// One permit: the one answer being computed.
    computing: Semaphore,
    /// The one computed and those waiting for it.
    admitted: Semaphore,
}

/// The right to compute one introspection answer, held until it is done.
pub struct Turn<'a> {
    _admitted: SemaphorePermit<'a>,
    _computing: SemaphorePermit<'a>,
}

/// In a request's data: its handler holds a [`Turn`] for it already.
struct TurnHeld;

impl IntrospectionAnswers {
    pub fn new(budget: usize) -> Self {
        Self(Arc::new(Shared {
            bodies: Mutex::new(ByteBudget::new(budget)),
            computing: Semaphore::new(1),
            admitted: Semaphore::new(1 + MAX_WAITING),
        }))
    }

    /// Whether the request may be introspection whose answer is kept, under
    /// `graphql::answer_key` (no answer is kept for a persisted query, sent
    /// as a hash). Read from its text alone: it parses nothing, and a text
    /// that names neither `__schema` nor `__type` (an order, a menu read) is
    /// not even hashed.
    pub fn may_be(request: &Request) -> bool {
        may_read_schema(&request.query) && !request.extensions.contains_key("persistedQuery")
    }

    /// Whether the request reads only the schema. Parses the document,
    /// which the request keeps for execution.
    pub fn is_introspection(request: &mut Request) -> bool {
        let operation = request.operation_name.clone();
        request
            .parsed_query()
            .is_ok_and(|document| reads_only_schema(document, operation.as_deref()))
    }

    pub fn kept(&self, key: &str) -> Option<Bytes> {
        lock(&self.0.bodies).get(key)
    }

    /// Keeps an answer's body (one without errors) for the next to ask.
    pub fn keep(&self, key: String, body: Bytes) {
        let size = key.len() + body.len();
        lock(&self.0.bodies).insert(key, body, size);
    }

    /// Waits for the turn to compute an answer; refused when too many wait.
    pub async fn turn(&self) -> Result<Turn<'_>, ApiError> {
        let admitted = self
            .0
            .admitted
            .try_acquire()
            .map_err(|_| ApiError::INTROSPECTION_BUSY)?;
        let Ok(computing) = self.0.computing.acquire().await else {
            unreachable!("the semaphore is never closed");
        };
        Ok(Turn {
            _admitted: admitted,
            _computing: computing,
        })
    }

    /// Marks a request whose turn its handler holds.
    pub fn with_turn(request: Request) -> Request {
        request.data(TurnHeld)
    }
}

impl ExtensionFactory for IntrospectionAnswers {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ForRequest {
            answers: self.clone(),
            reads_only_schema: Mutex::new(false),
        })
    }
}

struct ForRequest {
    answers: IntrospectionAnswers,
    reads_only_schema: Mutex<bool>,
}

#[async_trait::async_trait]
impl Extension for ForRequest {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let mut request = next.run(ctx, request).await?;
        if may_read_schema(&request.query) {
            let operation = request.operation_name.clone();
            *lock(&self.reads_only_schema) =
                reads_only_schema(request.parsed_query()?, operation.as_deref());
        }
        Ok(request)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let needs_turn = *lock(&self.reads_only_schema) && ctx.data_opt::<TurnHeld>().is_none();
        if !needs_turn {
            return next.run(ctx, operation_name).await;
        }
        match self.answers.turn().await {
            Ok(_turn) => next.run(ctx, operation_name).await,
            // as the in-flight limit: not a log line per refusal
            Err(e) => Response::from_errors(vec![e.into_unlogged_server_error()]),
        }
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if info.is_for_introspection && info.parent_type == "__Schema" && info.name == "description"
        {
            return Ok(Some(Value::Null));
        }
        next.run(ctx, info).await
    }
}

/// Whether a document's text names `__schema` or `__type` at all: one that
/// does not cannot be introspection, and is looked at no further.
fn may_read_schema(text: &str) -> bool {
    SCHEMA_FIELDS.iter().any(|field| text.contains(field))
}

/// Whether the operation that runs is a query whose root fields all read
/// the schema (and one at least does). The HTTP handler asks before any
/// limit has judged the document, so fragments are walked once each.
fn reads_only_schema(document: &ExecutableDocument, operation_name: Option<&str>) -> bool {
    let Some(operation) = super::operation(document, operation_name) else {
        // validation names what is wrong
        return false;
    };
    if operation.ty != OperationType::Query {
        return false;
    }
    // root fields only: a field's own selections are not looked at
    let mut fold = Fold::new(
        document,
        &|field: &Field, _| {
            let name = field.name.node.as_str();
            RootKinds {
                schema: SCHEMA_FIELDS.contains(&name),
                other: !SCHEMA_FIELDS.contains(&name) && name != "__typename",
            }
        },
        RootKinds::and,
    );
    let roots = fold.set(&operation.selection_set.node);
    roots.schema && !roots.other
}

/// What kinds of root fields a selection set holds.
#[derive(Clone, Copy, Default)]
struct RootKinds {
    /// `__schema` or `__type`.
    schema: bool,
    /// Anything but those and `__typename`.
    other: bool,
}

impl RootKinds {
    fn and(self, more: Self) -> Self {
        Self {
            schema: self.schema || more.schema,
            other: self.other || more.other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::answer_key;

    fn reads(query: &str, operation: Option<&str>) -> bool {
        reads_only_schema(
            &async_graphql::parser::parse_query(query).unwrap(),
            operation,
        )
    }

    #[test]
    fn only_an_operation_of_schema_reads_is_an_introspection() {
        assert!(reads("{ __schema { types { name } } }", None));
        assert!(reads(
            "query I { __typename t: __type(name: \"Query\") { name } }",
            None
        ));
        assert!(reads(
            "{ ...S } fragment S on Query { __schema { queryType { name } } }",
            None
        ));
        assert!(!reads("{ __typename }", None));
        assert!(!reads(
            "{ __schema { types { name } } products { edges { cursor } } }",
            None
        ));
        assert!(!reads(
            "{ ... on Query { me { id } } __schema { description } }",
            None
        ));
        assert!(!reads("mutation { __schema { description } }", None));
        // a fragment bomb is walked once per fragment
        let mut bomb = String::from("{ ...F0 }");
        for level in 0..40 {
            bomb.push_str(&format!(
                " fragment F{level} on Query {{ ...F{} ...F{} }}",
                level + 1,
                level + 1
            ));
        }
        assert!(reads(
            &format!("{bomb} fragment F40 on Query {{ __schema {{ description }} }}"),
            None
        ));
        assert!(!reads(
            &format!("{bomb} fragment F40 on Query {{ me {{ id }} }}"),
            None
        ));
        // the operation that runs decides
        let two = "query A { __schema { description } } query B { me { id } }";
        assert!(reads(two, Some("A")));
        assert!(!reads(two, Some("B")));
        assert!(!reads(two, None));
        assert!(!reads(two, Some("C")));
    }

    /// One answer is computed at a time, [`MAX_WAITING`] more wait their
    /// turn, and the next is refused at once rather than queued.
    #[tokio::test]
    async fn introspection_past_the_waiting_ones_is_refused() {
        let answers = IntrospectionAnswers::new(CACHE_BYTES);
        let computing = answers.turn().await.unwrap();
        let mut waiting = Vec::new();
        for _ in 0..MAX_WAITING {
            let mut turn = Box::pin(answers.turn());
            assert!(futures::poll!(&mut turn).is_pending());
            waiting.push(turn);
        }
        let refused = answers.turn().await.err().map(|e| e.message());
        assert_eq!(refused, Some(ApiError::INTROSPECTION_BUSY.message()));
        // the answer done, the first in line computes, and room is made
        drop(computing);
        let next = waiting.remove(0).await.unwrap();
        let mut last = Box::pin(answers.turn());
        assert!(futures::poll!(&mut last).is_pending());
        drop((next, waiting));
        assert!(last.await.is_ok());
    }

    #[test]
    fn the_key_is_the_text_the_operation_and_the_variables() {
        let query = "query A($n: String!) { __type(name: $n) { name } }";
        let key = |variables: serde_json::Value, operation: Option<&str>| {
            let mut request =
                Request::new(query).variables(async_graphql::Variables::from_json(variables));
            if let Some(operation) = operation {
                request = request.operation_name(operation);
            }
            IntrospectionAnswers::may_be(&request).then(|| answer_key(&request))
        };
        let product = key(serde_json::json!({ "n": "Product" }), None);
        assert!(product.is_some());
        assert_eq!(product, key(serde_json::json!({ "n": "Product" }), None));
        assert_ne!(product, key(serde_json::json!({ "n": "Order" }), None));
        assert_ne!(
            product,
            key(serde_json::json!({ "n": "Product" }), Some("A"))
        );
        // a persisted query's registration goes its own way
        let mut persisted = Request::new("{ __schema { description } }");
        persisted.extensions.insert(
            "persistedQuery".into(),
            Value::from_json(serde_json::json!({ "version": 1 })).unwrap(),
        );
        assert!(!IntrospectionAnswers::may_be(&persisted));
    }
}
