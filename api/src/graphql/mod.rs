//! The GraphQL schema: thin resolvers over `domain`, types in `types/`,
//! batched nested loads in `loaders`.

pub(crate) mod context;
pub(crate) mod limits;
pub mod loaders;
mod mutation;
mod observe;
mod pagination;
mod persisted_queries;
mod query;
mod subscription;
mod transport;
pub mod types;

use async_graphql::{Schema, SchemaBuilder};

pub use mutation::Mutation;
pub(crate) use mutation::places_orders_only;
pub use query::Query;
pub use subscription::{Subscription, SubscriptionSlots};
pub use transport::{SocketToken, ViaGet};

use crate::state::AppState;

pub type TallySchema = Schema<Query, Mutation, Subscription>;

/// Deepest query accepted, and the most expensive (a connection's fields count
/// once per item it may return). Both are checked before anything executes.
pub const MAX_DEPTH: usize = 12;
pub const MAX_COMPLEXITY: usize = 5_000;

fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query::default(), Mutation::default(), Subscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        // first: the others check the query text it resolves a hash to
        .extension(persisted_queries::PersistedQueries::new(
            persisted_queries::CACHE_BYTES,
        ))
        .extension(limits::ExpansionLimit)
        .extension(limits::InFlightOverSockets)
        .extension(transport::MutationsNeedPost)
        .extension(transport::SocketViewer)
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
