//! The GraphQL schema: thin resolvers over `domain`, types in `types/`,
//! batched nested loads in `loaders`.

pub(crate) mod context;
mod limits;
pub mod loaders;
mod mutation;
mod observe;
mod pagination;
mod query;
pub mod types;

use async_graphql::{EmptySubscription, Schema, SchemaBuilder};

pub use mutation::Mutation;
pub use query::Query;

use crate::state::AppState;

pub type TallySchema = Schema<Query, Mutation, EmptySubscription>;

/// Deepest query accepted, and the most expensive (a connection's fields count
/// once per item it may return). Both are checked before anything executes.
pub const MAX_DEPTH: usize = 12;
pub const MAX_COMPLEXITY: usize = 5_000;

fn builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(limits::ExpansionLimit)
}

pub fn schema(state: AppState) -> TallySchema {
    builder()
        .extension(observe::Observe(state.metrics.clone()))
        .data(state)
        .finish()
}

/// The SDL that `schema.graphql` must equal.
pub fn sdl() -> String {
    builder().finish().sdl()
}
