//! `cart`: the caller's cart.

use async_graphql::{Context, Object, Result};

use crate::domain::cart;
use crate::graphql::STATEMENT;
use crate::graphql::context::ContextExt;
use crate::graphql::types::Cart;

#[derive(Default)]
pub struct CartQuery;

#[Object]
impl CartQuery {
    /// The caller's cart.
    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn cart(&self, ctx: &Context<'_>) -> Result<Cart> {
        let viewer = ctx.viewer()?;
        Ok(Cart(cart::cart(&ctx.state().db, viewer.user_id).await?))
    }
}
