//! What every handler of the API's router shares.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::gate::Gate;
use crate::auth_throttle::Rate;
use crate::config::Secret;
use crate::graphql::{IntrospectionAnswers, LargeDocuments, PublicAnswers, TallySchema};
use crate::state::AppState;

#[derive(Clone)]
pub struct Endpoint {
    pub state: AppState,
    pub schema: TallySchema,
    /// Answers to introspection, kept; the turns to compute new ones.
    pub introspection: IntrospectionAnswers,
    /// The turns to parse large documents (`graphql::large_documents`).
    pub large_documents: LargeDocuments,
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
