use async_graphql::connection::Connection;
use async_graphql::{Context, ID, Object, Result};

use crate::domain::catalog::{self, Category};
use crate::graphql::context::{ContextExt, parse_id};
use crate::graphql::pagination::{Cursor, Page};
use crate::graphql::types::Product;

#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    async fn product(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Product>> {
        let id = parse_id(&id, "product")?;
        Ok(catalog::find_product(&ctx.state().db, id)
            .await?
            .map(Product))
    }

    /// Products in id order, optionally of one category. `first` is at most 100.
    #[graphql(complexity = "first.unwrap_or(20).clamp(0, 100) as usize * child_complexity")]
    async fn products(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        category: Option<String>,
    ) -> Result<Connection<Cursor, Product>> {
        let page = Page::parse(first, after)?;
        let category = category.as_deref().map(Category::parse).transpose()?;
        let rows =
            catalog::list_products(&ctx.state().db, category.as_ref(), page.after, page.fetch())
                .await?;
        Ok(page.connection(rows, |p| p.id, Product))
    }
}
