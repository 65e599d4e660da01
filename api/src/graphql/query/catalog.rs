//! The catalog: `products` (pages, rankings) and `product`.

use std::sync::Arc;

use async_graphql::connection::{Connection, OpaqueCursor};
use async_graphql::{Context, Enum, ID, Object, Result};

use crate::domain::catalog::{self, Category, OTHER_ORDERS_CURSOR, ProductOrder, ProductPosition};
use crate::domain::sales::{self, TrendingPosition, Window};
use crate::error::ApiError;
use crate::graphql::STATEMENT;
use crate::graphql::context::{ContextExt, parse_id};
use crate::graphql::pagination::Page;
use crate::graphql::public_answers::ClockBound;
use crate::graphql::types::{Product, SalesWindow};

#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    // batched with every other product the request reads (aliases, order
    // and cart lines): one statement for them all
    async fn product(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Product>> {
        let id = parse_id(&id, "product")?;
        Ok(ctx
            .loaders()
            .products
            .load_one(id)
            .await
            .map_err(ApiError::from)?
            .map(Product))
    }

    /// Products in id order, or in `orderBy` (best sellers first, say),
    /// optionally of one category. `first` is at most 100. A cursor belongs to
    /// its order: `after` must come from a page of the same `orderBy`.
    ///
    /// `TRENDING` ranks the products sold in a recent `window` (a day unless
    /// said) by the units sold in it; only products sold in it are listed.
    /// The window starts at the quarter hour that was its length ago, so it
    /// holds up to a quarter hour more; later pages keep the first page's.
    #[graphql(
        complexity = "STATEMENT + first.unwrap_or(20).clamp(0, 100) as usize * child_complexity"
    )]
    async fn products(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        category: Option<String>,
        order_by: Option<ProductOrderBy>,
        window: Option<SalesWindow>,
    ) -> Result<Connection<OpaqueCursor<ProductPosition>, Product>> {
        let page = Page::<ProductPosition>::parse(first, after)?;
        let category = category.as_deref().map(Category::parse).transpose()?;
        let order = match order_by.map(ProductOrderBy::column_order) {
            Some(None) => {
                let window = window.map_or(Window::Day, Window::from);
                return Ok(trending(ctx, page, category.as_ref(), window).await?);
            }
            _ if window.is_some() => Err(ApiError::bad_input(
                "window applies to orderBy: TRENDING only",
            ))?,
            Some(Some(order)) => order,
            None => ProductOrder::Id,
        };
        let rows = catalog::list_products(
            &ctx.state().db,
            category.as_ref(),
            order,
            page.after.clone(),
            page.fetch(),
        )
        .await?;
        Ok(page.connection(rows, |p| order.position(p), Product))
    }
}

/// The best sellers of a window, after the cursor's position (whose window
/// start later pages keep, so pages never overlap as the window moves).
async fn trending(
    ctx: &Context<'_>,
    page: Page<ProductPosition>,
    category: Option<&Category>,
    window: Window,
) -> Result<Connection<OpaqueCursor<ProductPosition>, Product>, ApiError> {
    let now = chrono::Utc::now();
    let (since, after) = match page.after {
        None => (window.since(now), None),
        Some(ProductPosition::Trending(since_micros, units, id)) => {
            let since = sales::resume(catalog::cursor_instant(since_micros)?, now)?;
            (since, Some(TrendingPosition { units, id }))
        }
        Some(_) => return Err(ApiError::bad_input(OTHER_ORDERS_CURSOR)),
    };
    // a public answer of this is kept for the quarter hour only
    if let Some(clock_bound) = ctx.data_opt::<Arc<ClockBound>>() {
        clock_bound.mark();
    }
    let rows = sales::trending(&ctx.state().db, since, category, after, page.fetch()).await?;
    let since_micros = since.timestamp_micros();
    Ok(page.connection(
        rows,
        |row| ProductPosition::Trending(since_micros, row.units, row.product.id),
        |row| Product(row.product),
    ))
}

/// How `products` are ranked. Ties go to the newer product (higher id).
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ProductOrderBy {
    /// Most units sold first.
    SalesCountDesc,
    /// Highest total revenue first.
    RevenueDesc,
    /// Highest rating first.
    RatingDesc,
    /// Most recently created first.
    Newest,
    /// Most units sold in a recent `window` first: what sells now.
    Trending,
}

impl ProductOrderBy {
    /// The order of a column of products; None for `TRENDING`, which ranks
    /// by the sales buckets (`trending`).
    fn column_order(self) -> Option<ProductOrder> {
        match self {
            Self::SalesCountDesc => Some(ProductOrder::SalesCount),
            Self::RevenueDesc => Some(ProductOrder::Revenue),
            Self::RatingDesc => Some(ProductOrder::Rating),
            Self::Newest => Some(ProductOrder::Newest),
            Self::Trending => None,
        }
    }
}
