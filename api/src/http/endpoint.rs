//! What every handler of the API's router shares.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::admission::Gate;
use crate::config::{Rate, Secret};
use crate::graphql::{Documents, IntrospectionAnswers, PublicAnswers, TallySchema};
use crate::state::AppState;

/// Cloned for every request (axum's `State`): one pointer, not the whole.
#[derive(Clone)]
pub struct Endpoint(Arc<Shared>);

impl Endpoint {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for Endpoint {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub state: AppState,
    pub schema: TallySchema,
    /// Answers to introspection, kept; the turns to compute new ones.
    pub introspection: IntrospectionAnswers,
    /// Documents' parses, kept, and the turns to parse large ones
    /// (`graphql::documents`).
    pub documents: Documents,
    /// Answers to anonymous reads, kept (`graphql::public_answers`).
    pub public_answers: PublicAnswers,
    /// `MAX_WEBSOCKETS` open in all, `MAX_WEBSOCKETS_PER_ADDRESS` from one address.
    pub(crate) websockets: Arc<Gate>,
    /// `MAX_REQUESTS_IN_FLIGHT`: HTTP requests take them in the router,
    /// WebSocket queries and mutations in `graphql::limits`.
    pub in_flight: Arc<Semaphore>,
    pub socket_limits: SocketLimits,
    pub metrics: MetricsAccess,
}

/// What bounds one socket.
#[derive(Clone, Debug)]
pub struct SocketLimits {
    pub max_message_bytes: usize,
    pub init_timeout: Duration,
    pub ping_interval: Duration,
    /// `WEBSOCKET_OPERATION_RATE` (`graphql::sockets`).
    pub operation_rate: Rate,
}

/// How `/metrics` is served.
#[derive(Clone)]
pub struct MetricsAccess {
    pub refresh: Duration,
    pub token: Option<Secret>,
}
