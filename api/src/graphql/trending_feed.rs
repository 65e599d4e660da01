//! `trendingChanged`: the best sellers of a window, sent again when a
//! counting run or the clock changes them. Every run's NOTIFY wakes every
//! such subscription of the process, so the reads are shared: one per
//! window, category and length for each change the process hears, however
//! many sockets watch it, and each subscription reads at most once a second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::SimpleObject;
use chrono::{TimeDelta, Utc};
use sea_orm::DatabaseConnection;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::domain::catalog::Category;
use crate::domain::sales::{self, BUCKET_SECONDS, Trending, Window, bucket_start};
use crate::error::ApiResult;
use crate::graphql::types::Product;
use crate::live::{Freshness, Subscriber};

/// Products one `trendingChanged` may list.
pub const MAX_TRENDING: u64 = 20;

/// The shortest time between two reads of one subscription: a burst of runs
/// folds into one read.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Lists kept at most; past it they are all dropped (a client naming a new
/// category each time cannot grow it).
const MAX_KEPT: usize = 256;

/// A product among the best sellers of a window.
#[derive(SimpleObject)]
pub struct TrendingProduct {
    pub product: Product,
    /// Units sold in the window.
    pub units: i64,
}

impl From<&Trending> for TrendingProduct {
    fn from(trending: &Trending) -> Self {
        Self {
            product: Product(trending.product.clone()),
            units: trending.units,
        }
    }
}

/// The window's start, the category, the length.
type Key = (chrono::DateTime<Utc>, Option<String>, u64);

/// A list, and the generation of the figures it was read at.
type Kept = Arc<tokio::sync::Mutex<Option<(u64, Arc<Vec<Trending>>)>>>;

/// The lists the process's subscriptions read, each kept until the figures
/// move on (`Freshness`).
#[derive(Clone, Default)]
pub struct TrendingReads(Arc<Mutex<HashMap<Key, Kept>>>);

impl TrendingReads {
    async fn read(
        &self,
        db: &DatabaseConnection,
        freshness: &Freshness,
        window: Window,
        category: Option<&Category>,
        limit: u64,
    ) -> ApiResult<Arc<Vec<Trending>>> {
        let since = window.since(Utc::now());
        let read = || sales::trending(db, since, category, None, limit);
        // while changes may go unheard, nothing read can be kept
        let Some(generation) = freshness.current() else {
            return Ok(Arc::new(read().await?));
        };
        let kept = {
            let mut lists = self.0.lock().expect("trending lists");
            if lists.len() >= MAX_KEPT {
                lists.clear();
            }
            let key = (since, category.map(|c| c.as_str().to_owned()), limit);
            lists.entry(key).or_default().clone()
        };
        // one read at a time per list: the others wait for it
        let mut kept = kept.lock().await;
        if let Some((read_at, list)) = &*kept
            && *read_at == generation
        {
            return Ok(list.clone());
        }
        let list = Arc::new(read().await?);
        *kept = Some((generation, list.clone()));
        Ok(list)
    }
}

pub struct TrendingWatch {
    pub _slot: OwnedSemaphorePermit,
    pub db: DatabaseConnection,
    pub freshness: Arc<Freshness>,
    pub reads: TrendingReads,
    pub changes: Subscriber,
    pub window: Window,
    pub category: Option<Category>,
    pub limit: u64,
    /// What was last sent (products and their units); None before the first.
    pub shown: Option<Vec<(i64, i64)>>,
    pub last_read: Option<Instant>,
}

impl TrendingWatch {
    /// The list when it differs from what was sent; `None` when the process
    /// shuts down.
    pub async fn next(&mut self) -> Option<ApiResult<Vec<TrendingProduct>>> {
        loop {
            if self.shown.is_some() {
                self.wait_for_a_change().await?;
            }
            let read = self.changes.read(|| {
                self.reads.read(
                    &self.db,
                    &self.freshness,
                    self.window,
                    self.category.as_ref(),
                    self.limit,
                )
            });
            let list = match read.await? {
                Ok(list) => list,
                Err(e) => return Some(Err(e)),
            };
            self.last_read = Some(Instant::now());
            let seen: Vec<(i64, i64)> = list.iter().map(|t| (t.product.id, t.units)).collect();
            if self.shown.as_ref() != Some(&seen) {
                self.shown = Some(seen);
                return Some(Ok(list.iter().map(TrendingProduct::from).collect()));
            }
        }
    }

    /// Until a run changes figures or the window moves on by a quarter hour,
    /// then until a second after the last read; `None` at shutdown.
    async fn wait_for_a_change(&mut self) -> Option<()> {
        let now = Utc::now();
        let next_quarter = bucket_start(now) + TimeDelta::seconds(BUCKET_SECONDS);
        let moves_on = (next_quarter - now).to_std().unwrap_or_default();
        tokio::select! {
            change = self.changes.next() => {
                change?;
            }
            _ = tokio::time::sleep(moves_on) => {}
        }
        if let Some(last) = self.last_read {
            tokio::time::sleep_until(last + MIN_INTERVAL).await;
        }
        // what came meanwhile is in the read that follows
        self.changes.skip_pending();
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use sea_orm::SqlxPostgresConnector;
    use tally_test_support::TestDatabase;

    use super::*;

    #[tokio::test]
    async fn the_subscriptions_of_a_list_share_one_read_until_the_figures_move_on() {
        let database = TestDatabase::migrated("trending").await;
        let pool = sqlx::PgPool::connect(&database.url()).await.unwrap();
        let mut db = SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
        let statements = Arc::new(AtomicUsize::new(0));
        let seen = statements.clone();
        db.set_metric_callback(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        });
        let freshness = Freshness::default();
        let reads = TrendingReads::default();
        let day = || reads.read(&db, &freshness, Window::Day, None, 10);

        let lists = futures::future::join_all((0..10).map(|_| day())).await;
        assert!(lists.iter().all(|list| list.as_ref().unwrap().is_empty()));
        assert_eq!(statements.load(Ordering::SeqCst), 1);
        day().await.unwrap();
        assert_eq!(statements.load(Ordering::SeqCst), 1);

        // another window is another list
        reads
            .read(&db, &freshness, Window::Hour, None, 10)
            .await
            .unwrap();
        assert_eq!(statements.load(Ordering::SeqCst), 2);
        // a change heard: read again, once
        freshness.moved();
        day().await.unwrap();
        day().await.unwrap();
        assert_eq!(statements.load(Ordering::SeqCst), 3);
    }
}
