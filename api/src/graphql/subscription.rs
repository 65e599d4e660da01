//! Subscriptions (GraphQL over WebSocket, `graphql-transport-ws`): live
//! figures as post-order runs in any process change them, relayed by
//! `crate::live`. Each stream subscribes to changes before it reads what it
//! watches, so a change in between is never missed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use async_graphql::{Context, ID, Result, Subscription};
use futures::Stream;
use futures::stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::Viewer;
use crate::domain::catalog::Category;
use crate::domain::sales::Window;
use crate::domain::{catalog, orders};
use crate::error::{ApiError, ApiResult};
use crate::graphql::STATEMENT;
use crate::graphql::context::{ContextExt, parse_id};
use crate::graphql::sockets::SocketBudget;
use crate::graphql::trending_feed::{MAX_TRENDING, TrendingProduct, TrendingReads, TrendingWatch};
use crate::graphql::types::{AnalyticsStatus, Order, Product, SalesWindow, analytics_status};
use crate::live::{Change, Subscriber};
use crate::state::AppState;

/// Products one `productFiguresChanged` may watch.
pub const MAX_WATCHED_PRODUCTS: usize = 100;

/// Subscriptions one WebSocket connection may hold at once. Each is read
/// again whenever the server's LISTEN connection comes back, so without a cap
/// a single client could make every reconnection cost any number of queries.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 100;

/// A WebSocket connection's room for subscriptions, in its connection data.
/// Each subscription holds a slot until its stream ends: completed by the
/// server, stopped by the client, or closed with its connection.
pub struct SubscriptionSlots(Arc<Semaphore>);

impl Default for SubscriptionSlots {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(MAX_SUBSCRIPTIONS_PER_CONNECTION)))
    }
}

impl SubscriptionSlots {
    fn take(ctx: &Context<'_>) -> ApiResult<OwnedSemaphorePermit> {
        let slots = ctx.data_unchecked::<Self>();
        slots.0.clone().try_acquire_owned().map_err(|_| {
            ApiError::bad_input(format!(
                "a connection holds at most {MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions \
                 at once: complete one, or open another connection"
            ))
        })
    }
}

#[derive(Default)]
pub struct Subscription {
    /// The best-seller lists `trendingChanged` reads, shared by the
    /// process's sockets.
    trending: TrendingReads,
}

/// Live updates, over a WebSocket on the GraphQL URL (graphql-transport-ws,
/// or the older graphql-ws). A connection holds at most 100 subscriptions at
/// once; another is BAD_USER_INPUT until one ends.
#[Subscription]
impl Subscription {
    /// The order each time a post-order job settles its figures: APPLIED once
    /// it is counted in, REVERSED once a cancellation is taken back out (the
    /// stream then ends). An order settled already when you subscribe comes
    /// at once. Its customer or an admin only.
    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn order_analytics_applied(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
    ) -> Result<impl Stream<Item = Result<Order>> + use<>> {
        let viewer = ctx.viewer()?;
        let id = parse_id(&order_id, "order")?;
        let slot = SubscriptionSlots::take(ctx)?;
        let state = ctx.state().clone();
        let changes = state.live.subscribe();
        let in_flight = SocketBudget::slot_of(ctx).await?;
        let order = orders::find_order(&state.db, viewer, id).await?;
        drop(in_flight);
        let watch = OrderWatch {
            _slot: slot,
            state,
            viewer,
            id,
            changes,
            shown: AnalyticsStatus::Pending,
            pending: Some(order),
        };
        Ok(stream::unfold(Some(watch), |watch| async move {
            let mut watch = watch?;
            let next = watch.next().await?;
            let finished = matches!(&next, Ok((_, AnalyticsStatus::Reversed)));
            let item = next.map(|(order, _)| order.into());
            Some((item, (!finished).then_some(watch)))
        }))
    }

    /// Each of the products (up to 100) as it is when you subscribe, then
    /// again whenever a post-order job changes its sales count, revenue or
    /// rating (a new order counted, or a cancelled one taken back out).
    /// Anyone may watch; an unknown id is NOT_FOUND.
    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn product_figures_changed(
        &self,
        ctx: &Context<'_>,
        product_ids: Vec<ID>,
    ) -> Result<impl Stream<Item = Result<Product>> + use<>> {
        let ids = watched_products(&product_ids)?;
        let slot = SubscriptionSlots::take(ctx)?;
        let state = ctx.state().clone();
        let changes = state.live.subscribe();
        let in_flight = SocketBudget::slot_of(ctx).await?;
        let products = catalog::find_products(&state.db, &ids).await?;
        drop(in_flight);
        if let Some(missing) = ids.iter().find(|id| !products.iter().any(|p| p.id == **id)) {
            return Err(ApiError::not_found(format!("product {missing} does not exist")).into());
        }
        let watch = ProductWatch {
            _slot: slot,
            state,
            changes,
            shown: products
                .iter()
                .map(|p| (p.id, ProductFigures::of(p)))
                .collect(),
            // what they are now first: a client needs no separate read, and
            // knows from the first message on that no change escapes it
            queue: products.into(),
        };
        Ok(stream::unfold(watch, |mut watch| async move {
            let next = watch.next().await?;
            Some((next.map(Product).map_err(Into::into), watch))
        }))
    }

    /// The best sellers of a recent `window` (a day unless said; `first`
    /// of them, 1 to 20, 10 unless said, optionally of one `category`) with
    /// the units each sold in it, as `products(orderBy: TRENDING)` ranks
    /// them: when you subscribe, then whenever that list changes, because a
    /// post-order job counted an order in or took a cancelled one out, or
    /// because the window moved on (it does every quarter hour). At most one
    /// list a second. Anyone may watch.
    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn trending_changed(
        &self,
        ctx: &Context<'_>,
        window: Option<SalesWindow>,
        category: Option<String>,
        first: Option<i32>,
    ) -> Result<impl Stream<Item = Result<Vec<TrendingProduct>>> + use<>> {
        let limit = match first.unwrap_or(10) {
            n @ 1.. if n as u64 <= MAX_TRENDING => n as u64,
            _ => {
                return Err(ApiError::bad_input(format!(
                    "first must be between 1 and {MAX_TRENDING}"
                ))
                .into());
            }
        };
        let category = category.as_deref().map(Category::parse).transpose()?;
        let slot = SubscriptionSlots::take(ctx)?;
        let state = ctx.state();
        let mut watch = TrendingWatch {
            _slot: slot,
            db: state.db.clone(),
            freshness: state.live.freshness.clone(),
            reads: self.trending.clone(),
            changes: state.live.subscribe(),
            window: window.map_or(Window::Day, Window::from),
            category,
            limit,
            shown: None,
            last_read: None,
        };
        // the first list is read under the socket's budget, as the other
        // subscriptions' first reads are
        let in_flight = SocketBudget::slot_of(ctx).await?;
        let first = watch.next().await;
        drop(in_flight);
        let first = match first {
            Some(Ok(list)) => list,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(ApiError::Unavailable("the server is shutting down").into()),
        };
        Ok(stream::unfold(
            (Some(first), watch),
            |(first, mut watch)| async move {
                if let Some(list) = first {
                    return Some((Ok(list), (None, watch)));
                }
                let next = watch.next().await?;
                Some((next.map_err(Into::into), (None, watch)))
            },
        ))
    }
}

fn watched_products(ids: &[ID]) -> ApiResult<Vec<i64>> {
    if ids.is_empty() || ids.len() > MAX_WATCHED_PRODUCTS {
        return Err(ApiError::bad_input(format!(
            "productIds takes 1 to {MAX_WATCHED_PRODUCTS} ids"
        )));
    }
    let ids: BTreeSet<i64> = ids
        .iter()
        .map(|id| parse_id(id, "product"))
        .collect::<ApiResult<_>>()?;
    Ok(ids.into_iter().collect())
}

struct OrderWatch {
    _slot: OwnedSemaphorePermit,
    state: AppState,
    viewer: Viewer,
    id: i64,
    changes: Subscriber,
    /// The last status sent (PENDING: none yet).
    shown: AnalyticsStatus,
    /// Read and not yet looked at.
    pending: Option<entity::orders::Model>,
}

impl OrderWatch {
    /// The order when its figures reach a state not sent yet; `None` when the
    /// process shuts down.
    async fn next(&mut self) -> Option<Result<(entity::orders::Model, AnalyticsStatus)>> {
        loop {
            if let Some(order) = self.pending.take() {
                let status = analytics_status(&order);
                if status != AnalyticsStatus::Pending && status != self.shown {
                    self.shown = status;
                    return Some(Ok((order, status)));
                }
            }
            match self.changes.next().await? {
                Change::Figures(change) if !change.orders.contains(&self.id) => continue,
                Change::Figures(_) | Change::Resync => {}
            }
            let read = self
                .changes
                .read(|| orders::find_order(&self.state.db, self.viewer, self.id));
            match read.await? {
                Ok(order) => self.pending = Some(order),
                Err(e) => return Some(Err(e.into())),
            }
        }
    }
}

/// What `productFiguresChanged` compares.
#[derive(Clone, Copy, Debug, PartialEq)]
struct ProductFigures {
    sales_count: i64,
    total_revenue_cents: i64,
    rating: f64,
}

impl ProductFigures {
    fn of(product: &entity::products::Model) -> Self {
        Self {
            sales_count: product.sales_count,
            total_revenue_cents: product.total_revenue_cents,
            rating: product.rating,
        }
    }
}

struct ProductWatch {
    _slot: OwnedSemaphorePermit,
    state: AppState,
    changes: Subscriber,
    /// Each watched product's figures as last sent (or read at the start).
    shown: BTreeMap<i64, ProductFigures>,
    /// Changed products not sent yet.
    queue: VecDeque<entity::products::Model>,
}

impl ProductWatch {
    /// The next watched product whose figures differ from what was sent;
    /// `None` when the process shuts down.
    async fn next(&mut self) -> Option<ApiResult<entity::products::Model>> {
        loop {
            if let Some(product) = self.queue.pop_front() {
                return Some(Ok(product));
            }
            let products = match self.changes.next().await? {
                // read once for every subscriber of the process
                Change::Figures(change) => change
                    .products
                    .iter()
                    .filter(|p| self.shown.contains_key(&p.id))
                    .cloned()
                    .collect(),
                Change::Resync => {
                    let ids: Vec<i64> = self.shown.keys().copied().collect();
                    let read = self
                        .changes
                        .read(|| catalog::find_products(&self.state.db, &ids));
                    match read.await? {
                        Ok(products) => products,
                        Err(e) => return Some(Err(e)),
                    }
                }
            };
            for product in products {
                let figures = ProductFigures::of(&product);
                if self.shown.insert(product.id, figures) != Some(figures) {
                    self.queue.push_back(product);
                }
            }
        }
    }
}
