//! Documents too large to parse in a blink, parsed off the request threads
//! in their turn.
//!
//! Parsing costs about 1.4 ms a KiB in a debug build (a 52 KB document of
//! 2,000 aliased fields: 75 ms), a tenth of that optimised, and it never
//! yields: a few clients sending such documents in a loop held every runtime
//! thread, and everyone else's requests waited behind them. A document over
//! [`LARGE_DOCUMENT_BYTES`] is parsed on a blocking thread instead, as many
//! at once as the machine has cores but one, with at most [`MAX_WAITING`]
//! more waiting and at most [`MAX_PER_ADDRESS`] of those from one client
//! address (admitted as connections are: `http::gate`); the rest are
//! refused as the in-flight limit refuses (503, retry in a second). Small
//! documents, nearly all of them, parse where they are.
//!
//! The HTTP handler parses a large document first thing, before it looks
//! inside (`places_orders_only`, introspection); the extension does it for
//! what the handler never saw: documents over a WebSocket, and the text a
//! persisted query's hash stands for.

use std::any::TypeId;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::{Request, ServerError, ServerResult};
use tokio::sync::Semaphore;

use crate::auth_throttle::ClientAddr;
use crate::error::ApiError;
use crate::http::gate::{Gate, Permit};

/// Documents longer than this are parsed off the request threads: about
/// 11 ms of parsing in a debug build, 1 ms optimised. The standard
/// introspection query is 1.9 KiB; an app's queries rarely reach 4.
pub const LARGE_DOCUMENT_BYTES: usize = 8 * 1024;

/// Large documents that may wait while others are parsed.
pub const MAX_WAITING: usize = 8;

/// Large documents one client address may have parsed or waiting at once.
pub const MAX_PER_ADDRESS: usize = 2;

#[derive(Clone)]
pub struct LargeDocuments(Arc<Shared>);

struct Shared {
    /// One permit per parsing thread.
    parsing: Semaphore,
    /// Those parsed and those waiting, in all and by client address.
    admitted: Gate,
}

/// In a request's data: its document is parsed already.
struct Parsed;

impl LargeDocuments {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::with_threads(cores.saturating_sub(1).max(1))
    }

    fn with_threads(threads: usize) -> Self {
        Self(Arc::new(Shared {
            parsing: Semaphore::new(threads),
            admitted: Gate::new(threads + MAX_WAITING, MAX_PER_ADDRESS),
        }))
    }

    /// Parses `request`'s document in its turn if it is large (a small one
    /// is left for async-graphql to parse where it runs). A syntax error is
    /// the request's answer, as async-graphql would give it.
    pub async fn parse(
        &self,
        request: &mut Request,
        client: Option<ClientAddr>,
    ) -> Result<(), Refusal> {
        if request.query.len() <= LARGE_DOCUMENT_BYTES
            || request.data.contains_key(&TypeId::of::<Parsed>())
        {
            return Ok(());
        }
        let _admitted = self.admit(client)?;
        let _parsing = self
            .0
            .parsing
            .acquire()
            .await
            .map_err(|_| Refusal::Busy(ApiError::LARGE_DOCUMENTS_BUSY))?;
        let text = std::mem::take(&mut request.query);
        let (text, parsed) = tokio::task::spawn_blocking(move || {
            let parsed = async_graphql::parser::parse_query(&text);
            (text, parsed)
        })
        .await
        .map_err(|e| {
            Refusal::Failed(ApiError::internal(anyhow::anyhow!(
                "parsing a document panicked: {e}"
            )))
        })?;
        request.query = text;
        let document = parsed.map_err(|e| Refusal::Syntax(e.into()))?;
        request.set_parsed_query(document);
        request.data.insert(Parsed);
        Ok(())
    }

    fn admit(&self, client: Option<ClientAddr>) -> Result<Permit, Refusal> {
        let admitted = match client {
            Some(client) => self.0.admitted.admit(client.ip()),
            None => self.0.admitted.admit_unshared(),
        };
        admitted.map_err(|_| Refusal::Busy(ApiError::LARGE_DOCUMENTS_BUSY))
    }
}

impl Default for LargeDocuments {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a large document was not parsed.
pub enum Refusal {
    /// Too many large documents at once, in all or from this address.
    Busy(ApiError),
    /// The parse itself failed (it panicked).
    Failed(ApiError),
    /// Not GraphQL: the request's answer.
    Syntax(ServerError),
}

impl Refusal {
    pub fn into_server_error(self) -> ServerError {
        match self {
            // as the in-flight limit: not a log line per refusal
            Self::Busy(e) => e.into_unlogged_server_error(),
            Self::Failed(e) => e.into_server_error(),
            Self::Syntax(e) => e,
        }
    }
}

impl ExtensionFactory for LargeDocuments {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Extension for LargeDocuments {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        // the persisted query's text is in place (that extension runs
        // first); the extensions after this one look inside the document
        let mut request = request;
        let client = request
            .data
            .get(&TypeId::of::<ClientAddr>())
            .and_then(|data| data.downcast_ref::<ClientAddr>())
            .or_else(|| ctx.data_opt::<ClientAddr>())
            .copied();
        self.parse(&mut request, client)
            .await
            .map_err(Refusal::into_server_error)?;
        next.run(ctx, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn large(field: &str) -> Request {
        let fields = format!("{field} ").repeat(LARGE_DOCUMENT_BYTES / field.len() + 1);
        Request::new(format!("{{ {fields}}}"))
    }

    #[tokio::test]
    async fn a_large_document_is_parsed_once_and_a_small_one_left_alone() {
        let documents = LargeDocuments::with_threads(1);
        let mut small = Request::new("{ __typename }");
        assert!(documents.parse(&mut small, None).await.is_ok());
        assert!(!small.data.contains_key(&TypeId::of::<Parsed>()));

        let mut request = large("__typename");
        let text = request.query.clone();
        assert!(documents.parse(&mut request, None).await.is_ok());
        assert!(request.data.contains_key(&TypeId::of::<Parsed>()));
        assert_eq!(request.query, text);
        assert_eq!(request.parsed_query().unwrap().operations.iter().count(), 1);

        // a large document whose last brace is missing
        let mut broken = large("__typename");
        broken.query.pop();
        match documents.parse(&mut broken, None).await {
            Err(Refusal::Syntax(e)) => assert_eq!(e.locations.len(), 1, "{}", e.message),
            _ => panic!("a syntax error was not the answer"),
        }
        // every place given back
        assert_eq!(documents.0.admitted.available(), 1 + MAX_WAITING);
    }

    #[tokio::test]
    async fn one_address_gets_its_share_of_the_places_and_the_waiting_their_number() {
        let documents = LargeDocuments::with_threads(1);
        let attacker = ClientAddr::from(std::net::IpAddr::from([127, 0, 0, 2]));
        let held: Vec<Permit> = (0..MAX_PER_ADDRESS)
            .map(|_| documents.admit(Some(attacker)).ok().unwrap())
            .collect();
        assert!(matches!(
            documents.admit(Some(attacker)),
            Err(Refusal::Busy(ApiError::Unavailable(_)))
        ));
        // others still get in, up to the places there are
        let others: Vec<Permit> = (0..1 + MAX_WAITING - MAX_PER_ADDRESS)
            .map(|n| {
                let other = ClientAddr::from(std::net::IpAddr::from([10, 0, 0, n as u8]));
                documents.admit(Some(other)).ok().unwrap()
            })
            .collect();
        assert!(documents.admit(None).is_err());
        drop(held);
        assert!(documents.admit(Some(attacker)).is_ok());
        drop(others);
        // every place given back (and each address forgotten: `Gate`)
        assert_eq!(documents.0.admitted.available(), 1 + MAX_WAITING);
    }
}
