use async_graphql::connection::{Connection, OpaqueCursor};
use async_graphql::{Context, Enum, ID, Object, Result};

use crate::domain::catalog::{self, Category, ProductOrder, ProductPosition};
use crate::error::ApiError;
use crate::graphql::STATEMENT;
use crate::graphql::context::{ContextExt, parse_id};
use crate::graphql::pagination::Page;
use crate::graphql::types::Product;

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
    ) -> Result<Connection<OpaqueCursor<ProductPosition>, Product>> {
        let page = Page::<ProductPosition>::parse(first, after)?;
        let category = category.as_deref().map(Category::parse).transpose()?;
        let order = order_by.map_or(ProductOrder::Id, ProductOrder::from);
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
}

impl From<ProductOrderBy> for ProductOrder {
    fn from(order: ProductOrderBy) -> Self {
        match order {
            ProductOrderBy::SalesCountDesc => Self::SalesCount,
            ProductOrderBy::RevenueDesc => Self::Revenue,
            ProductOrderBy::RatingDesc => Self::Rating,
            ProductOrderBy::Newest => Self::Newest,
        }
    }
}
