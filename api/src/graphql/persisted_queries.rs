//! Automatic persisted queries (Apollo's protocol): a client sends a query's
//! SHA-256 alone, and its text only when the server does not know it yet.
//! async-graphql's own extension caches every document it is sent, by
//! count, before any limit has judged it: a client could fill the cache
//! with the largest documents the body limit lets through, or with ones the
//! limits refuse. Here a document is kept only once it has passed every
//! check before execution (ours, then parsing and validation with depth and
//! complexity), and the cache is bounded by the bytes of the texts it holds.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextValidation,
};
use async_graphql::{Request, ServerError, ServerResult, ValidationResult};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::byte_budget::ByteBudget;
use super::lock;

/// What the cache may hold, in bytes of query text.
pub const CACHE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Deserialize)]
struct PersistedQuery {
    version: i32,
    #[serde(rename = "sha256Hash")]
    sha256_hash: String,
}

/// The process's cache, shared by every request.
#[derive(Clone)]
pub struct PersistedQueries(Arc<Mutex<ByteBudget<String>>>);

impl PersistedQueries {
    pub fn new(budget: usize) -> Self {
        Self(Arc::new(Mutex::new(ByteBudget::new(budget))))
    }
}

impl ExtensionFactory for PersistedQueries {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ForRequest {
            cache: self.0.clone(),
            sent: Mutex::default(),
        })
    }
}

/// The extension's state for one request: the hash and text it was sent,
/// kept if the document passes validation.
struct ForRequest {
    cache: Arc<Mutex<ByteBudget<String>>>,
    sent: Mutex<Option<(String, String)>>,
}

#[async_trait::async_trait]
impl Extension for ForRequest {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let Some(value) = request.extensions.remove("persistedQuery") else {
            return next.run(ctx, request).await;
        };
        let persisted: PersistedQuery = async_graphql::from_value(value).map_err(|_| {
            ServerError::new("Invalid \"PersistedQuery\" extension configuration.", None)
        })?;
        if persisted.version != 1 {
            return Err(ServerError::new(
                "Only version 1 of the \"PersistedQuery\" extension is supported.",
                None,
            ));
        }
        if request.query.is_empty() {
            let known = lock(&self.cache).get(&persisted.sha256_hash);
            // the message Apollo clients look for to send the text
            request.query =
                known.ok_or_else(|| ServerError::new("PersistedQueryNotFound", None))?;
        } else {
            let hash = format!("{:x}", Sha256::digest(request.query.as_bytes()));
            if hash != persisted.sha256_hash {
                return Err(ServerError::new("provided sha does not match query", None));
            }
            *lock(&self.sent) = Some((hash, request.query.clone()));
        }
        next.run(ctx, request).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await;
        if result.is_ok()
            && let Some((hash, text)) = lock(&self.sent).take()
        {
            let size = hash.len() + text.len();
            lock(&self.cache).insert(hash, text, size);
        }
        result
    }
}
