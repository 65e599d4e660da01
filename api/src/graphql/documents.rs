//! Documents parsed once: an app sends the same few documents over and
//! over, so each small document's parse is kept, by its text, and every
//! request after the first starts from a copy of it instead of parsing it
//! again; and documents too large to parse in a blink are parsed off the
//! request threads in their turn.
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
//! documents, nearly all of them, parse where they are, and are kept within
//! [`KEPT_BYTES`]; large ones are not kept (an app's documents are small,
//! and one large document would push out hundreds of them).
//!
//! The HTTP handler parses a document first thing, before it looks inside
//! (`checks_its_own_token`, introspection); the extension does it for what the
//! handler never saw: documents over a WebSocket, and the text a persisted
//! query's hash stands for.

use std::any::TypeId;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, ServerError, ServerResult};
use tokio::sync::Semaphore;

use super::byte_budget::ByteBudget;
use super::lock;
use crate::admission::{Gate, Permit};
use crate::auth::ClientAddr;
use crate::error::ApiError;

/// Documents longer than this are parsed off the request threads: about
/// 11 ms of parsing in a debug build, 1 ms optimised. The standard
/// introspection query is 1.9 KiB; an app's queries rarely reach 4.
pub const LARGE_DOCUMENT_BYTES: usize = 8 * 1024;

/// Large documents that may wait while others are parsed.
pub const MAX_WAITING: usize = 8;

/// Large documents one client address may have parsed or waiting at once.
pub const MAX_PER_ADDRESS: usize = 2;

/// What the kept parses may weigh together, reckoned as [`PARSE_WEIGHT`]
/// times their text: a few hundred of an app's documents.
pub const KEPT_BYTES: usize = 4 * 1024 * 1024;

/// A parsed document's size in memory reckoned in bytes per byte of its
/// text, generously: its nodes carry positions and names of their own.
pub const PARSE_WEIGHT: usize = 16;

#[derive(Clone)]
pub struct Documents(Arc<Shared>);

struct Shared {
    /// Small documents' parses, by their text.
    kept: Mutex<ByteBudget<ExecutableDocument>>,
    /// One permit per parsing thread.
    parsing: Semaphore,
    /// Those parsed and those waiting, in all and by client address.
    admitted: Gate,
}

/// In a request's data: its document is parsed already.
struct Parsed;

impl Documents {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::with_threads(cores.saturating_sub(1).max(1))
    }

    fn with_threads(threads: usize) -> Self {
        Self(Arc::new(Shared {
            kept: Mutex::new(ByteBudget::new(KEPT_BYTES)),
            parsing: Semaphore::new(threads),
            admitted: Gate::new(threads + MAX_WAITING, MAX_PER_ADDRESS),
        }))
    }

    /// Gives `request` its parsed document: a copy of the kept one, or
    /// parsed here if it is small (and then kept), or in its turn on a
    /// thread of its own if it is large. A syntax error is the request's
    /// answer, as async-graphql would give it.
    pub async fn parse(
        &self,
        request: &mut Request,
        client: Option<ClientAddr>,
    ) -> Result<(), Refusal> {
        // no text: a persisted query's hash alone, whose text the extension
        // finds (and parses) later, or nothing, refused where it runs
        if request.data.contains_key(&TypeId::of::<Parsed>()) || request.query.is_empty() {
            return Ok(());
        }
        if request.query.len() <= LARGE_DOCUMENT_BYTES {
            let document = self.small(&request.query).map_err(Refusal::Syntax)?;
            request.set_parsed_query(document);
            request.data.insert(Parsed);
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

    /// A small document's parse: kept, or made and kept. Only documents
    /// that parse are kept; a syntax error costs its parse every time.
    fn small(&self, text: &str) -> Result<ExecutableDocument, ServerError> {
        if let Some(document) = lock(&self.0.kept).get(text) {
            return Ok(document);
        }
        let document = async_graphql::parser::parse_query(text)?;
        let weight = text.len() * (PARSE_WEIGHT + 1);
        lock(&self.0.kept).insert(text.to_owned(), document.clone(), weight);
        Ok(document)
    }

    fn admit(&self, client: Option<ClientAddr>) -> Result<Permit, Refusal> {
        let admitted = match client {
            Some(client) => self.0.admitted.admit(client.ip()),
            None => self.0.admitted.admit_unshared(),
        };
        admitted.map_err(|_| Refusal::Busy(ApiError::LARGE_DOCUMENTS_BUSY))
    }
}

impl Default for Documents {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a document was not parsed.
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

impl ExtensionFactory for Documents {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Extension for Documents {
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
    async fn a_small_document_is_parsed_once_and_a_large_one_in_its_turn() {
        let documents = Documents::with_threads(1);
        let text = "query Menu { products(first: 20) { nodes { id name } } }";
        let mut small = Request::new(text);
        assert!(documents.parse(&mut small, None).await.is_ok());
        assert!(small.data.contains_key(&TypeId::of::<Parsed>()));
        assert_eq!(small.parsed_query().unwrap().operations.iter().count(), 1);
        let kept = lock(&documents.0.kept).bytes();
        assert_eq!(kept, text.len() * (PARSE_WEIGHT + 1));
        // the next request with that text gets a copy of the kept parse
        let mut again = Request::new(text);
        assert!(documents.parse(&mut again, None).await.is_ok());
        assert_eq!(again.parsed_query().unwrap().operations.iter().count(), 1);
        assert_eq!(lock(&documents.0.kept).bytes(), kept);
        // a persisted query's hash alone: its text comes later
        let mut hash_alone = Request::new("");
        assert!(documents.parse(&mut hash_alone, None).await.is_ok());
        assert!(!hash_alone.data.contains_key(&TypeId::of::<Parsed>()));
        // a small syntax error is the answer, and nothing is kept of it
        let mut broken = Request::new("{ products {");
        match documents.parse(&mut broken, None).await {
            Err(Refusal::Syntax(e)) => assert_eq!(e.locations.len(), 1, "{}", e.message),
            _ => panic!("a syntax error was not the answer"),
        }
        assert_eq!(lock(&documents.0.kept).bytes(), kept);

        let mut request = large("__typename");
        let text = request.query.clone();
        assert!(documents.parse(&mut request, None).await.is_ok());
        assert!(request.data.contains_key(&TypeId::of::<Parsed>()));
        assert_eq!(request.query, text);
        assert_eq!(request.parsed_query().unwrap().operations.iter().count(), 1);
        // a large document is not kept
        assert_eq!(lock(&documents.0.kept).bytes(), kept);

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

    #[test]
    fn the_kept_parses_stay_within_their_bytes() {
        let documents = Documents::with_threads(1);
        for n in 0..100_000 {
            documents.small(&format!("{{ a{n}: __typename }}")).unwrap();
        }
        let kept = lock(&documents.0.kept).bytes();
        assert!(kept <= KEPT_BYTES && kept > KEPT_BYTES - 1024, "{kept}");
    }

    #[tokio::test]
    async fn one_address_gets_its_share_of_the_places_and_the_waiting_their_number() {
        let documents = Documents::with_threads(1);
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
