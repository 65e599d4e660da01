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
}

/// Whether the post-order job has counted the order into the figures yet.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum AnalyticsStatus {
    Pending,
    Applied,
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

    async fn analytics_status(&self) -> AnalyticsStatus {
        match self.order.analytics_applied_at {
            Some(_) => AnalyticsStatus::Applied,
            None => AnalyticsStatus::Pending,
        }
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
