//! `Product` and its variants, with the figures the jobs keep.

use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};
use entity::{product_variants, products};

use super::{SalesGrain, SalesReport, sales_span};
use crate::domain::sales_report::Scope;
use crate::error::ApiError;
use crate::graphql::STATEMENT;
use crate::graphql::context::ContextExt;
use crate::money::Cents;

pub struct Product(pub products::Model);

#[Object]
impl Product {
    async fn id(&self) -> ID {
        self.0.id.into()
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn description(&self) -> &str {
        &self.0.description
    }

    /// A lowercase slug such as `pizza`.
    async fn category(&self) -> &str {
        &self.0.category
    }

    /// The base price; variants have their own.
    async fn price(&self) -> Cents {
        Cents(self.0.price_cents)
    }

    async fn available(&self) -> bool {
        self.0.available
    }

    async fn variants(&self, ctx: &Context<'_>) -> Result<Vec<ProductVariant>> {
        let variants = ctx
            .loaders()
            .variants_by_product
            .load_one(self.0.id)
            .await
            .map_err(ApiError::from)?
            .unwrap_or_default();
        Ok(variants.into_iter().map(ProductVariant).collect())
    }

    /// Units sold, all variants together. Updated by the post-order job.
    async fn sales_count(&self) -> i64 {
        self.0.sales_count
    }

    /// The sum of the subtotals of every line that ordered it.
    async fn total_revenue(&self) -> Cents {
        Cents(self.0.total_revenue_cents)
    }

    /// A tier of salesCount: 4.0 below 10, 4.2 from 10, 4.5 from 50, 4.7 from 100, 5.0 from 200.
    async fn rating(&self) -> f64 {
        self.0.rating
    }

    /// Admins only: its sales per hour or day (DAY unless said) of the
    /// shop's time zone, as `salesReport(productId:)` gives them.
    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn sales_series(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        by: Option<SalesGrain>,
    ) -> Result<SalesReport> {
        ctx.admin().await?;
        let span = sales_span(from, to, by)?;
        Ok(SalesReport::read(ctx, span, Scope::Product(self.0.id)).await?)
    }
}

pub struct ProductVariant(pub product_variants::Model);

#[Object]
impl ProductVariant {
    async fn id(&self) -> ID {
        self.0.id.into()
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn price(&self) -> Cents {
        Cents(self.0.price_cents)
    }
}
