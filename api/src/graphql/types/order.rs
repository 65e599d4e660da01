use async_graphql::{Context, Enum, ID, Object, Result};
use chrono::{DateTime, Utc};
use entity::{order_lines, orders};

use super::Product;
use crate::domain::orders::PlacedOrder;
use crate::error::ApiError;
use crate::graphql::context::ContextExt;
use crate::money::Cents;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum OrderStatus {
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
    async fn id(&self) -> ID {
        self.order.id.into()
    }

    /// Unique and human-readable, such as `ORD-00000042`.
    async fn order_number(&self) -> &str {
        &self.order.order_number
    }

    async fn status(&self) -> OrderStatus {
        match self.order.status {
            orders::OrderStatus::Placed => OrderStatus::Placed,
            orders::OrderStatus::Cancelled => OrderStatus::Cancelled,
        }
    }

    async fn total(&self) -> Cents {
        Cents(self.order.total_cents)
    }

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

    async fn created_at(&self) -> DateTime<Utc> {
        self.order.created_at.with_timezone(&Utc)
    }

    /// When `cancelOrder` cancelled it.
    async fn cancelled_at(&self) -> Option<DateTime<Utc>> {
        self.order.cancelled_at.map(|at| at.with_timezone(&Utc))
    }

    async fn analytics_status(&self) -> AnalyticsStatus {
        analytics_status(&self.order)
    }
}

pub fn analytics_status(order: &orders::Model) -> AnalyticsStatus {
    use orders::OrderStatus::{Cancelled, Placed};
    match (
        order.status,
        order.analytics_applied_at,
        order.analytics_reversed_at,
    ) {
        (Placed, None, _) | (Cancelled, _, None) => AnalyticsStatus::Pending,
        (Placed, Some(_), _) => AnalyticsStatus::Applied,
        (Cancelled, _, Some(_)) => AnalyticsStatus::Reversed,
    }
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
