use async_graphql::connection::Connection;
use async_graphql::{Context, ID, Object, Result};

use crate::domain::orders;
use crate::graphql::context::{ContextExt, parse_id};
use crate::graphql::pagination::{Cursor, Page};
use crate::graphql::types::Order;

#[derive(Default)]
pub struct OrderQuery;

#[Object]
impl OrderQuery {
    /// An order of the caller's (any order, for an admin); `NOT_FOUND` otherwise.
    async fn order(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Order>> {
        let viewer = ctx.viewer()?;
        let id = parse_id(&id, "order")?;
        Ok(Some(
            orders::find_order(&ctx.state().db, viewer, id)
                .await?
                .into(),
        ))
    }

    /// The caller's orders, newest first. `first` is at most 100.
    #[graphql(complexity = "first.unwrap_or(20).clamp(0, 100) as usize * child_complexity")]
    async fn my_orders(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<Cursor, Order>> {
        let viewer = ctx.viewer()?;
        let page = Page::parse(first, after)?;
        let rows =
            orders::list_orders(&ctx.state().db, viewer.user_id, page.after, page.fetch()).await?;
        Ok(page.connection(rows, |o| o.id, Order::from))
    }
}
