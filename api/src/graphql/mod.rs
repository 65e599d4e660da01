//! The GraphQL schema: thin resolvers over `domain`, types in `types/`,
//! batched nested loads in `loaders`.

mod byte_budget;
pub(crate) mod context;
pub(crate) mod documents;
pub(crate) mod introspection;
pub(crate) mod limits;
pub mod loaders;
mod mutation;
mod observe;
mod own_token;
mod pagination;
mod persisted_queries;
pub(crate) mod public_answers;
mod query;
pub(crate) mod sockets;
mod subscription;
mod transport;
mod trending_feed;
pub mod types;

use std::collections::BTreeMap;

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationDefinition};
use async_graphql::{Request, Schema, SchemaBuilder};
use sha2::{Digest, Sha256};

pub use documents::Documents;
pub use introspection::IntrospectionAnswers;
pub use mutation::Mutation;
pub(crate) use own_token::checks_its_own_token;
pub use public_answers::PublicAnswers;
pub use query::Query;
pub use subscription::{Subscription, SubscriptionSlots};
pub use transport::{SocketToken, ViaGet};

use crate::state::AppState;

pub type TallySchema = Schema<Query, Mutation, Subscription>;

/// Deepest query accepted over Tally's own types (introspection is bounded
/// apart: `limits`), and the most expensive (a connection's fields count once
/// per item it may return). Both are checked before anything executes.
pub const MAX_DEPTH: usize = 12;
pub const MAX_COMPLEXITY: usize = 5_000;
/// What a field that runs statements of its own (every root field but
/// `product`, every mutation and subscription) adds to a document's
/// complexity, so one document runs at most 50 of them. Fields that a
/// loader batches with their kind (`product`, a line's product, a
/// customer's preferences) cost 1 like any field: however many there are,
/// they cost one statement per kind.
pub const STATEMENT: usize = 100;

fn builder(documents: Documents) -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .limit_complexity(MAX_COMPLEXITY)
    // first: the others check the query text it resolves a hash to
    .extension(persisted_queries::PersistedQueries::new(
        persisted_queries::CACHE_BYTES,
    ))
    // next: the others look inside the document it parses
    .extension(documents)
    .extension(limits::ExpansionLimit)
    .extension(sockets::SocketOperations)
    .extension(transport::MutationsNeedPost)
    .extension(transport::SocketViewer)
}

pub fn schema(
    state: AppState,
    introspection: IntrospectionAnswers,
    documents: Documents,
) -> TallySchema {
    builder(documents)
        .extension(introspection)
        .extension(observe::Observe(state.metrics.clone()))
        .data(state)
        .finish()
}

/// The SDL that `schema.graphql` must equal: what introspection tells a
/// tool, `@specifiedBy` of a scalar included.
pub fn sdl() -> String {
    builder(Documents::new())
        .finish()
        .sdl_with_options(async_graphql::SDLExportOptions::new().include_specified_by())
}

/// The operation a document runs, as async-graphql picks it: the only one,
/// or the one `name` names (a named operation alone in its document runs
/// when none is named). `None` when it names none of them.
pub(crate) fn operation<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    let operation = match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next()
        }
        (DocumentOperations::Multiple(_), None) => None,
    };
    operation.map(|operation| &operation.node)
}

/// What an answer is kept under, in the caches of answers: a hash of the
/// request's text, operation name, variables and extensions (a persisted
/// query's hash), taken before anything is parsed.
pub(crate) fn answer_key(request: &Request) -> String {
    let mut hash = Sha256::new();
    for part in [
        request.query.as_bytes(),
        request
            .operation_name
            .as_deref()
            .unwrap_or_default()
            .as_bytes(),
        &serde_json::to_vec(&request.variables).unwrap_or_default(),
        // in key order, whatever order the map holds them in
        &serde_json::to_vec(&request.extensions.iter().collect::<BTreeMap<_, _>>())
            .unwrap_or_default(),
    ] {
        hash.update(part);
        hash.update([0]);
    }
    format!("{:x}", hash.finalize())
}

/// The caches' locks: a panic elsewhere leaves their contents whole, so a
/// poisoned lock is used as it is.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
