//! The check of a token against its account, and the account reads of HTTP
//! requests, coalesced. Every request with a token reads its caller's
//! account (role and token version) before it runs, but one whose own
//! statement checks the token (`graphql::checks_its_own_token`); the
//! requests that arrive while a read is in flight have theirs read together,
//! by one statement ([`crate::coalesce`]), so that a busy process does not
//! spend a statement per request on it. At low load a read is alone and made
//! at once.

use std::sync::Arc;

use entity::users::{self, Role};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult, QueryFilter,
    QuerySelect,
};

use super::{Verified, Viewer};
use crate::coalesce::{self, Queued, Weigh};
use crate::error::{ApiError, ApiResult};

/// Accounts one statement reads at most.
const MAX_BATCH: usize = 256;

/// An account to read, by id.
struct Lookup(i64);

impl Weigh for Lookup {
    // a read is one row whoever asks: no client's share to keep
    type Client = ();
}

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

    /// [`current_viewer`], read with the other requests' accounts.
    pub async fn viewer(&self, token: &Verified) -> ApiResult<Viewer> {
        let account = self.queue.submit(Lookup(token.viewer.user_id)).await??;
        viewer_of(account.as_ref(), token)
    }
}

async fn read(db: DatabaseConnection, batch: Vec<Queued<Lookup, Result<Option<Account>, DbErr>>>) {
    let ids: Vec<i64> = batch.iter().map(|queued| queued.item.0).collect();
    let found = find_accounts(&db, &ids).await;
    for queued in batch {
        let answer = match &found {
            Ok(accounts) => Ok(accounts.iter().find(|a| a.id == queued.item.0).cloned()),
            Err(error) => Err(error.clone()),
        };
        // a request that left meanwhile needs no answer
        let _ = queued.answer.send(answer);
    }
}

/// The caller a token names, as the account is now: with its current role;
/// `InvalidToken` when the account is gone, or the token predates a change
/// of its password or role. One primary-key read a request (HTTP requests
/// read theirs together: [`Accounts`]; one that only places orders or reads
/// `me` has its one statement check the same): what lets a demoted admin lose
/// admin reads at once, and a changed password end every session.
pub async fn current_viewer<C: ConnectionTrait>(db: &C, token: &Verified) -> ApiResult<Viewer> {
    let accounts = find_accounts(db, &[token.viewer.user_id]).await?;
    viewer_of(accounts.first(), token)
}

/// What a token is checked against: an account's role and token version.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct Account {
    pub id: i64,
    pub role: Role,
    pub token_version: i32,
}

/// The accounts of `ids` that exist, in one statement whatever their number.
pub async fn find_accounts<C: ConnectionTrait>(db: &C, ids: &[i64]) -> Result<Vec<Account>, DbErr> {
    users::Entity::find()
        .select_only()
        .columns([
            users::Column::Id,
            users::Column::Role,
            users::Column::TokenVersion,
        ])
        .filter(crate::db::any_of(users::Column::Id, ids))
        .into_model::<Account>()
        .all(db)
        .await
}

/// The viewer `token` stands for, given its account as it is now (None:
/// gone).
pub fn viewer_of(account: Option<&Account>, token: &Verified) -> ApiResult<Viewer> {
    match account {
        Some(account)
            if account.id == token.viewer.user_id && account.token_version == token.version =>
        {
            Ok(Viewer {
                user_id: account.id,
                role: account.role,
            })
        }
        _ => Err(ApiError::InvalidToken),
    }
}
