//! The account reads of HTTP requests, coalesced. Every request with a token
//! reads its caller's account (role and token version) before it runs, but
//! one that only places orders, whose placement statement checks the token
//! itself ([`crate::auth::Caller`]); the requests that arrive while a read is
//! in flight have theirs read together, by one statement
//! ([`crate::coalesce`]), so that a busy process does not spend a statement
//! per request on it. At low load a read is alone and made at once.

use std::sync::Arc;

use sea_orm::{DatabaseConnection, DbErr};

use crate::auth::{Verified, Viewer};
use crate::coalesce::{self, Queued, Weigh};
use crate::domain::users::{self, Account};
use crate::error::ApiResult;

/// Accounts one statement reads at most.
const MAX_BATCH: usize = 256;

/// An account to read, by id.
struct Lookup(i64);

impl Weigh for Lookup {}

/// Reads accounts through this process's queue. Cloning shares the queue.
#[derive(Clone)]
pub struct Accounts {
    queue: coalesce::Queue<Lookup, Result<Option<Account>, DbErr>>,
}

impl Accounts {
    pub fn start(db: DatabaseConnection) -> Self {
        let limits = coalesce::Limits {
            max_batch: MAX_BATCH,
            max_weight: MAX_BATCH,
            // a read is one row whoever asks
            client_share: MAX_BATCH,
            // one read in flight: reads are short, and every request that
            // comes meanwhile joins the next
            in_flight: 1,
            gather: Arc::default(),
        };
        let queue = coalesce::Queue::start(limits, move |batch| read(db.clone(), batch));
        Self { queue }
    }

    /// [`users::current_viewer`], read with the other requests' accounts.
    pub async fn viewer(&self, token: &Verified) -> ApiResult<Viewer> {
        let account = self.queue.submit(Lookup(token.viewer.user_id)).await??;
        users::viewer_of(account.as_ref(), token)
    }
}

async fn read(db: DatabaseConnection, batch: Vec<Queued<Lookup, Result<Option<Account>, DbErr>>>) {
    let ids: Vec<i64> = batch.iter().map(|queued| queued.item.0).collect();
    let found = users::find_accounts(&db, &ids).await;
    for queued in batch {
        let answer = match &found {
            Ok(accounts) => Ok(accounts.iter().find(|a| a.id == queued.item.0).cloned()),
            Err(error) => Err(error.clone()),
        };
        // a request that left meanwhile needs no answer
        let _ = queued.answer.send(answer);
    }
}
