//! `order`, `myOrders`, and an admin's `orders`.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, Object, Result};

use crate::domain::orders::{self, OrderFilter};
use crate::graphql::STATEMENT;
use crate::graphql::context::{ContextExt, parse_id};
use crate::graphql::pagination::{Cursor, Page};
use crate::graphql::types::{AnalyticsStatus, Order, OrderStatus};

#[derive(Default)]
pub struct OrderQuery;

#[Object]
impl OrderQuery {
    /// An order of the caller's (any order, for an admin); `NOT_FOUND` otherwise.
    #[graphql(complexity = "STATEMENT + child_complexity")]
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
    #[graphql(
        complexity = "STATEMENT + first.unwrap_or(20).clamp(0, 100) as usize * child_complexity"
    )]
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

    /// Admins only: every customer's orders, newest first, narrowed by any
    /// of the filters given (they combine with AND). `first` is at most 100.
    /// The role is checked against the account as it is now, so a demoted
    /// admin's token is refused (`FORBIDDEN`).
    #[graphql(
        complexity = "STATEMENT + first.unwrap_or(20).clamp(0, 100) as usize * child_complexity"
    )]
    // each argument is one in the schema: flat filters, as the clients send them
    #[allow(clippy::too_many_arguments)]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Orders per page: 20 unless given, at most 100.")] first: Option<i32>,
        #[graphql(desc = "The `cursor` of the previous page's last order.")] after: Option<String>,
        #[graphql(desc = "Only orders with this status.")] status: Option<OrderStatus>,
        #[graphql(
            desc = "Only orders whose `analyticsStatus` is this one (held-back orders are `PENDING`)."
        )]
        analytics_status: Option<AnalyticsStatus>,
        #[graphql(desc = "Only the orders of this customer.")] user_id: Option<ID>,
        #[graphql(
            desc = "`true`: only the orders held back from the figures (see `Order.analyticsHeldBackAt`); `false`: only the others."
        )]
        held_back: Option<bool>,
    ) -> Result<Connection<Cursor, Order>> {
        ctx.admin().await?;
        let page = Page::parse(first, after)?;
        let filter = OrderFilter {
            status: status.map(Into::into),
            analytics: analytics_status.map(Into::into),
            user_id: user_id.map(|id| parse_id(&id, "user")).transpose()?,
            held_back,
        };
        let rows =
            orders::list_all_orders(&ctx.state().db, &filter, page.after, page.fetch()).await?;
        Ok(page.connection(rows, |o| o.id, Order::from))
    }
}
