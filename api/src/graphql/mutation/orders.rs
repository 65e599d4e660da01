//! `placeOrder`, `placeOrderFromCart` and `cancelOrder`.

use async_graphql::{Context, ID, InputObject, Object, Result};

use crate::domain::Quantity;
use crate::domain::orders::{
    self, CancelledOrder, IdempotencyKey, NewOrder, OrderItem, PlacedOrder,
};
use crate::error::ApiResult;
use crate::graphql::STATEMENT;
use crate::graphql::context::{ContextExt, parse_id};
use crate::graphql::types::Order;

#[derive(InputObject)]
pub struct OrderItemInput {
    pub product_id: ID,
    pub variant_id: Option<ID>,
    /// 1 to 99.
    pub quantity: i32,
}

#[derive(InputObject)]
pub struct PlaceOrderInput {
    /// 1 to 100 lines; the same product may appear on several.
    pub items: Vec<OrderItemInput>,
    /// Send the same key again (say, after a timeout) to get the first order back
    /// instead of a second one.
    pub idempotency_key: Option<String>,
}

#[derive(InputObject, Default)]
pub struct PlaceOrderFromCartInput {
    pub idempotency_key: Option<String>,
}

impl OrderItemInput {
    fn parse(&self) -> ApiResult<OrderItem> {
        Ok(OrderItem {
            product_id: parse_id(&self.product_id, "product")?,
            variant_id: self
                .variant_id
                .as_ref()
                .map(|v| parse_id(v, "variant"))
                .transpose()?,
            quantity: Quantity::parse(self.quantity)?,
        })
    }
}

#[derive(Default)]
pub struct OrderMutation;

#[Object]
impl OrderMutation {
    /// Places an order at current prices. Answers once the order (and its
    /// post-order job) is committed; the figures follow within moments.
    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn place_order(&self, ctx: &Context<'_>, input: PlaceOrderInput) -> Result<Order> {
        let caller = ctx.caller()?;
        let items = input
            .items
            .iter()
            .map(OrderItemInput::parse)
            .collect::<ApiResult<_>>()?;
        let key = input
            .idempotency_key
            .as_deref()
            .map(IdempotencyKey::parse)
            .transpose()?;
        let token = caller.token();
        let order = match caller.viewer() {
            Some(viewer) => NewOrder::new(viewer, items, key)?,
            // the statement that writes the order checks the token
            None => NewOrder::new(token.viewer, items, key)?.confirming(token.version),
        };
        let placed = ctx.state().placer.place(order, ctx.client_addr()).await?;
        caller.confirm();
        Ok(committed(ctx, placed))
    }

    /// Turns the caller's cart into an order and empties the cart, atomically.
    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn place_order_from_cart(
        &self,
        ctx: &Context<'_>,
        input: Option<PlaceOrderFromCartInput>,
    ) -> Result<Order> {
        let viewer = ctx.viewer()?;
        let key = input
            .unwrap_or_default()
            .idempotency_key
            .as_deref()
            .map(IdempotencyKey::parse)
            .transpose()?;
        let state = ctx.state();
        let placed = orders::place_order_from_cart(&state.db, viewer, key, state.jobs).await?;
        Ok(committed(ctx, placed))
    }

    /// Cancels an order: its customer may within `ORDER_CANCEL_WINDOW` of
    /// placing it (FORBIDDEN after), an admin any time. The order becomes
    /// CANCELLED at once; a job then takes its sales back out of the figures,
    /// exactly once, whether or not they were counted yet (`analyticsStatus`
    /// goes PENDING, then REVERSED). Cancelling a cancelled order returns it
    /// unchanged.
    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn cancel_order(&self, ctx: &Context<'_>, id: ID) -> Result<Order> {
        let viewer = ctx.viewer()?;
        let id = parse_id(&id, "order")?;
        // admin powers as the account has them now, not as the token says
        let viewer = match viewer.is_admin() {
            true => ctx.admin().await?,
            false => viewer,
        };
        let state = ctx.state();
        let CancelledOrder { order, newly } =
            orders::cancel_order(&state.db, viewer, id, state.cancel_window, state.jobs).await?;
        if newly {
            state.wakeup.jobs_waiting();
        }
        Ok(order.into())
    }
}

/// The order is committed: wake this process's workers for its job.
fn committed(ctx: &Context<'_>, placed: PlacedOrder) -> Order {
    if !placed.replayed {
        ctx.state().wakeup.order_placed();
        ctx.state().metrics.order_placed();
    }
    placed.into()
}
