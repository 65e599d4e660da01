//! `salesReport`: a scope's sales by hour, day or month, for an admin.

use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};

use crate::domain::catalog::Category;
use crate::domain::sales_report::Scope;
use crate::error::ApiError;
use crate::graphql::STATEMENT;
use crate::graphql::context::{ContextExt, parse_id};
use crate::graphql::types::{SalesGrain, SalesReport, sales_span};

#[derive(Default)]
pub struct SalesQuery;

#[Object]
impl SalesQuery {
    /// Admins only: units, revenue and orders per hour or per day (`by`,
    /// DAY unless said) of the shop's time zone, from the period `from` falls
    /// in to the last one that starts before `to`: of the whole shop, of one
    /// `category`, or of one product (`productId`). At most 1000 periods;
    /// hours only as far back as they are kept (`SALES_HOURS_RETENTION`, 35
    /// days unless set), days for ever.
    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn sales_report(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        by: Option<SalesGrain>,
        category: Option<String>,
        product_id: Option<ID>,
    ) -> Result<SalesReport> {
        ctx.admin().await?;
        let span = sales_span(from, to, by)?;
        let category = category.as_deref().map(Category::parse).transpose()?;
        let product = product_id.map(|id| parse_id(&id, "product")).transpose()?;
        let scope = match (&category, product) {
            (None, None) => Scope::Shop,
            (Some(category), None) => Scope::Category(category),
            (None, Some(id)) => Scope::Product(id),
            (Some(_), Some(_)) => Err(ApiError::bad_input(
                "a report is of a category or of a product, not both",
            ))?,
        };
        Ok(SalesReport::read(ctx, span, scope).await?)
    }
}
