//! `Order` and its lines, as GraphQL shows them.

use async_graphql::{Context, Enum, ID, Object, Result};
use chrono::{DateTime, Utc};
use entity::{order_lines, orders};

use super::{Product, User};
use crate::domain::orders::{AnalyticsState, PlacedOrder};
use crate::error::ApiError;
use crate::graphql::context::ContextExt;
use crate::money::Cents;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    /// Placed and not cancelled.
    Placed,
    /// By `cancelOrder`: its sales are taken back out of the figures.
    Cancelled,
}

/// Where the order's figures stand: whether the post-order job has counted
/// it in yet, and after a cancellation whether it has taken it back out.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum AnalyticsStatus {
    /// A job has yet to count the order in, or after its cancellation to take
    /// it back out.
    Pending,
    /// Counted into product figures and its customer's preferences.
    Applied,
    /// Cancelled, and its contribution taken back out (or, cancelled before
    /// it was counted, never added).
    Reversed,
}

impl From<OrderStatus> for orders::OrderStatus {
    fn from(status: OrderStatus) -> Self {
        match status {
            OrderStatus::Placed => Self::Placed,
            OrderStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl From<AnalyticsState> for AnalyticsStatus {
    fn from(state: AnalyticsState) -> Self {
        match state {
            AnalyticsState::Pending => Self::Pending,
            AnalyticsState::Applied => Self::Applied,
            AnalyticsState::Reversed => Self::Reversed,
        }
    }
}

impl From<AnalyticsStatus> for AnalyticsState {
    fn from(status: AnalyticsStatus) -> Self {
        match status {
            AnalyticsStatus::Pending => Self::Pending,
            AnalyticsStatus::Applied => Self::Applied,
            AnalyticsStatus::Reversed => Self::Reversed,
        }
    }
}

pub struct Order {
    order: orders::Model,
    /// Set when the order was just placed; loaded in a batch otherwise.
    lines: Option<Vec<order_lines::Model>>,
}

impl From<orders::Model> for Order {
    fn from(order: orders::Model) -> Self {
        Self { order, lines: None }
    }
}

impl From<PlacedOrder> for Order {
    fn from(placed: PlacedOrder) -> Self {
        Self {
            order: placed.order,
            lines: placed.lines,
        }
    }
}

#[Object]
impl Order {
    /// The order's id, as `order(id:)` takes it.
    async fn id(&self) -> ID {
        self.order.id.into()
    }

    /// Unique and human-readable, such as `ORD-00000042`.
    async fn order_number(&self) -> &str {
        &self.order.order_number
    }

    /// Placed, or cancelled by `cancelOrder`.
    async fn status(&self) -> OrderStatus {
        match self.order.status {
            orders::OrderStatus::Placed => OrderStatus::Placed,
            orders::OrderStatus::Cancelled => OrderStatus::Cancelled,
        }
    }

    /// The sum of the lines' subtotals.
    async fn total(&self) -> Cents {
        Cents(self.order.total_cents)
    }

    /// The lines, in the order they were ordered.
    async fn lines(&self, ctx: &Context<'_>) -> Result<Vec<OrderLine>> {
        let lines = match &self.lines {
            Some(lines) => lines.clone(),
            None => ctx
                .loaders()
                .order_lines
                .load_one(self.order.id)
                .await
                .map_err(ApiError::from)?
                .unwrap_or_default(),
        };
        Ok(lines.into_iter().map(OrderLine).collect())
    }

    /// When it was placed.
    async fn created_at(&self) -> DateTime<Utc> {
        self.order.created_at.with_timezone(&Utc)
    }

    /// When `cancelOrder` cancelled it.
    async fn cancelled_at(&self) -> Option<DateTime<Utc>> {
        self.order.cancelled_at.map(|at| at.with_timezone(&Utc))
    }

    /// Whether the post-order job has counted the order into the figures
    /// yet, and after a cancellation whether it has taken it back out. A
    /// held-back order stays `PENDING`.
    async fn analytics_status(&self) -> AnalyticsStatus {
        analytics_status(&self.order)
    }

    /// The customer who placed it: visible to whoever may see the order (its
    /// customer and the admins).
    async fn customer(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(ctx
            .loaders()
            .existing_user(self.order.user_id)
            .await?
            .into())
    }

    /// Set when counting this order into the figures failed on its own: the
    /// order is held back, left out of every other job's batch, the sweep and
    /// the rebuild, so that it cannot hold up the other orders' figures,
    /// until an operator retries its job (`retryJob`), which clears it. Null
    /// otherwise. A held-back order's `analyticsStatus` stays `PENDING`.
    async fn analytics_held_back_at(&self) -> Option<DateTime<Utc>> {
        self.order
            .analytics_held_back_at
            .map(|at| at.with_timezone(&Utc))
    }

    /// Admins only: the error that held the order back (see
    /// `analyticsHeldBackAt`), for operators. Null when it is not held back,
    /// and always null for anyone but an admin: internal error text is not
    /// for customers.
    async fn analytics_failure(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        let Some(failure) = self.order.analytics_failure.as_deref() else {
            return Ok(None);
        };
        let admin = ctx.viewer().is_ok_and(|viewer| viewer.is_admin());
        Ok(admin.then_some(failure))
    }
}

/// What `Order.analyticsStatus` shows: [`AnalyticsState::of`], which sits
/// beside the SQL of the `orders(analyticsStatus:)` filter so that the field
/// and the filter never disagree.
pub fn analytics_status(order: &orders::Model) -> AnalyticsStatus {
    AnalyticsState::of(order).into()
}

/// A line as it was ordered: names and prices are a snapshot of that moment.
pub struct OrderLine(pub order_lines::Model);

#[Object]
impl OrderLine {
    /// The product as it is now.
    async fn product(&self, ctx: &Context<'_>) -> Result<Product> {
        Ok(Product(
            ctx.loaders().existing_product(self.0.product_id).await?,
        ))
    }

    async fn product_name(&self) -> &str {
        &self.0.product_name
    }

    async fn variant_name(&self) -> Option<&str> {
        self.0.variant_name.as_deref()
    }

    async fn category(&self) -> &str {
        &self.0.category
    }

    async fn quantity(&self) -> i32 {
        self.0.quantity
    }

    async fn unit_price(&self) -> Cents {
        Cents(self.0.unit_price_cents)
    }

    async fn subtotal(&self) -> Cents {
        Cents(self.0.subtotal_cents)
    }
}
