use async_graphql::parser::types::{OperationType, Selection};
use async_graphql::{Context, ID, InputObject, Object, Request, Result};

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

/// Whether the operation `request` runs is a mutation of `placeOrder`
/// fields and nothing else at its root. Such a request leaves the check of
/// its caller's token to the statement that writes its order, and so makes
/// one statement instead of two. Anything else at the root (another field, a
/// fragment, a directive) needs the caller confirmed first, and so does a
/// document that does not parse (it is then refused as before). The
/// document parsed here is the one the schema runs: it is parsed once.
pub fn places_orders_only(request: &mut Request) -> bool {
    // None unless the client names one: no allocation
    let operation_name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        return false;
    };
    let Some(operation) = crate::graphql::operation(document, operation_name.as_deref()) else {
        return false;
    };
    let root = &operation.selection_set.node.items;
    operation.ty == OperationType::Mutation
        && operation.directives.is_empty()
        && !root.is_empty()
        && root.iter().all(|selection| match &selection.node {
            Selection::Field(field) => {
                field.node.name.node == "placeOrder" && field.node.directives.is_empty()
            }
            _ => false,
        })
}

/// The order is committed: wake this process's workers for its job.
fn committed(ctx: &Context<'_>, placed: PlacedOrder) -> Order {
    if !placed.replayed {
        ctx.state().wakeup.order_placed();
        ctx.state().metrics.order_placed();
    }
    placed.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only_places_orders(query: &str, operation: Option<&str>) -> bool {
        let mut request = Request::new(query);
        if let Some(operation) = operation {
            request = request.operation_name(operation);
        }
        places_orders_only(&mut request)
    }

    #[test]
    fn only_a_mutation_of_place_order_fields_alone_leaves_its_token_to_the_statement() {
        let place = "placeOrder(input: {items: []}) { id }";
        for (query, operation, expected) in [
            (format!("mutation {{ {place} }}"), None, true),
            (
                format!("mutation M {{ a: {place} b: {place} }}"),
                None,
                true,
            ),
            (
                format!("mutation A {{ {place} }} query B {{ me {{ id }} }}"),
                Some("A"),
                true,
            ),
            (
                format!("mutation A {{ {place} }} query B {{ me {{ id }} }}"),
                Some("B"),
                false,
            ),
            (
                format!("mutation A {{ {place} }} mutation B {{ {place} }}"),
                None,
                false,
            ),
            (format!("mutation A {{ {place} }}"), Some("C"), false),
            (format!("mutation {{ {place} __typename }}"), None, false),
            (
                format!("mutation {{ {place} cancelOrder(id: 1) {{ id }} }}"),
                None,
                false,
            ),
            (
                format!("mutation {{ ... on Mutation {{ {place} }} }}"),
                None,
                false,
            ),
            (
                format!("mutation {{ ...F }} fragment F on Mutation {{ {place} }}"),
                None,
                false,
            ),
            (
                "mutation { placeOrder(input: {items: []}) @skip(if: true) { id } }".to_owned(),
                None,
                false,
            ),
            (format!("mutation @deprecated {{ {place} }}"), None, false),
            (format!("{{ {place} }}"), None, false),
            ("mutation { placeOrder(".to_owned(), None, false),
            (String::new(), None, false),
        ] {
            assert_eq!(
                only_places_orders(&query, operation),
                expected,
                "{query} {operation:?}"
            );
        }
    }
}
