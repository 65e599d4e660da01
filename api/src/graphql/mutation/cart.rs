//! The caller's cart: add, change and remove lines.

use async_graphql::{Context, ID, InputObject, Object, Result};

use crate::domain::{Quantity, cart};
use crate::graphql::STATEMENT;
use crate::graphql::context::{ContextExt, parse_id};
use crate::graphql::types::Cart;

#[derive(InputObject)]
pub struct AddToCartInput {
    pub product_id: ID,
    pub variant_id: Option<ID>,
    /// 1 to 99; added to the line of the same product and variant if there is one.
    #[graphql(default = 1)]
    pub quantity: i32,
}

#[derive(InputObject)]
pub struct UpdateCartLineInput {
    pub line_id: ID,
    /// The line's new quantity, 1 to 99.
    pub quantity: i32,
}

#[derive(Default)]
pub struct CartMutation;

#[Object]
impl CartMutation {
    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn add_to_cart(&self, ctx: &Context<'_>, input: AddToCartInput) -> Result<Cart> {
        let viewer = ctx.viewer()?;
        let product_id = parse_id(&input.product_id, "product")?;
        let variant_id = input
            .variant_id
            .as_ref()
            .map(|v| parse_id(v, "variant"))
            .transpose()?;
        let quantity = Quantity::parse(input.quantity)?;
        let db = &ctx.state().db;
        cart::add_to_cart(db, viewer.user_id, product_id, variant_id, quantity).await?;
        Ok(Cart(cart::cart(db, viewer.user_id).await?))
    }

    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn update_cart_line(
        &self,
        ctx: &Context<'_>,
        input: UpdateCartLineInput,
    ) -> Result<Cart> {
        let viewer = ctx.viewer()?;
        let line_id = parse_id(&input.line_id, "cart line")?;
        let quantity = Quantity::parse(input.quantity)?;
        let db = &ctx.state().db;
        cart::update_cart_line(db, viewer.user_id, line_id, quantity).await?;
        Ok(Cart(cart::cart(db, viewer.user_id).await?))
    }

    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn remove_cart_line(&self, ctx: &Context<'_>, line_id: ID) -> Result<Cart> {
        let viewer = ctx.viewer()?;
        let line_id = parse_id(&line_id, "cart line")?;
        let db = &ctx.state().db;
        cart::remove_cart_line(db, viewer.user_id, line_id).await?;
        Ok(Cart(cart::cart(db, viewer.user_id).await?))
    }
}
