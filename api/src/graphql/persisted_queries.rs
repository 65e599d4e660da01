//! Automatic persisted queries (Apollo's protocol): a client sends a query's
//! SHA-256 alone, and its text only when the server does not know it yet.
//! async-graphql's own extension caches every document it is sent, by
//! count, before any limit has judged it: a client could fill the cache
//! with the largest documents the body limit lets through, or with ones the
//! limits refuse. Here a document is kept only once it has passed every
//! check before execution (ours, then parsing and validation with depth and
//! complexity), and the cache is bounded by the bytes of the texts it holds.
//!
//! Replicas behind a balancer share what they were sent: a document kept
//! here is kept in PostgreSQL too (`persisted_queries`, bounded by the same
//! bytes, least recently fetched out first), and a hash this process does
//! not know is looked for there before the client is asked for its text,
//! so a client misses once per query, not once per replica.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextValidation,
};
use async_graphql::{Request, ServerError, ServerResult, ValidationResult};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::byte_budget::ByteBudget;
use super::lock;
use crate::state::AppState;

/// A text another replica kept, fetched (and marked as used) by its hash.
const FETCH: &str = "update persisted_queries set used_at = now() where hash = $1 returning query";

/// Keeps a text, then trims the table to its budget: the least recently
/// fetched texts go first. (The row kept here is not yet seen by the trim,
/// which the next keep does: the table exceeds its budget by one text at
/// most.)
const KEEP: &str = "
with kept as (
    insert into persisted_queries (hash, query)
    values ($1, $2)
    on conflict (hash) do update set used_at = now()
)
delete from persisted_queries
where hash in (
    select hash
    from (
        select hash, sum(length(hash) + length(query)) over (order by used_at desc, hash) as held
        from persisted_queries
    ) as by_recency
    where held > $3
)";

/// What the cache may hold, in bytes of query text.
pub const CACHE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Deserialize)]
struct PersistedQuery {
    version: i32,
    #[serde(rename = "sha256Hash")]
    sha256_hash: String,
}

/// The process's cache, shared by every request, and its budget.
#[derive(Clone)]
pub struct PersistedQueries(Arc<Mutex<ByteBudget<String>>>, usize);

impl PersistedQueries {
    pub fn new(budget: usize) -> Self {
        Self(Arc::new(Mutex::new(ByteBudget::new(budget))), budget)
    }
}

impl ExtensionFactory for PersistedQueries {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ForRequest {
            cache: self.0.clone(),
            budget: self.1,
            sent: Mutex::default(),
        })
    }
}

/// The extension's state for one request: the hash and text it was sent,
/// kept if the document passes validation.
struct ForRequest {
    cache: Arc<Mutex<ByteBudget<String>>>,
    budget: usize,
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
            let mut known = lock(&self.cache).get(&persisted.sha256_hash);
            if known.is_none() {
                known = self.fetch(ctx, &persisted.sha256_hash).await;
            }
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
        let sent = lock(&self.sent).take();
        if result.is_ok()
            && let Some((hash, text)) = sent
        {
            self.keep(ctx, &hash, &text).await;
            let size = hash.len() + text.len();
            lock(&self.cache).insert(hash, text, size);
        }
        result
    }
}

impl ForRequest {
    /// The text another replica kept for `hash`, kept here too. A database
    /// that cannot answer is a miss: the client sends the text again.
    async fn fetch(&self, ctx: &ExtensionContext<'_>, hash: &str) -> Option<String> {
        let state = ctx.data_opt::<AppState>()?;
        let row = state
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                FETCH,
                [hash.into()],
            ))
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "reading a persisted query failed"))
            .ok()??;
        let text: String = row.try_get("", "query").ok()?;
        let size = hash.len() + text.len();
        lock(&self.cache).insert(hash.to_owned(), text.clone(), size);
        Some(text)
    }

    /// Keeps a text for the other replicas; one that cannot be kept is
    /// only kept here.
    async fn keep(&self, ctx: &ExtensionContext<'_>, hash: &str, text: &str) {
        let Some(state) = ctx.data_opt::<AppState>() else {
            return;
        };
        let kept = state
            .db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                KEEP,
                [hash.into(), text.into(), (self.budget as i64).into()],
            ))
            .await;
        if let Err(e) = kept {
            tracing::warn!(error = %e, "keeping a persisted query for the other replicas failed");
        }
    }
}
