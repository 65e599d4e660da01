//! `Cart` and its lines, priced now.

use async_graphql::{Context, ID, Object, Result};

use super::{Product, ProductVariant};
use crate::domain::cart;
use crate::error::ApiError;
use crate::graphql::context::ContextExt;
use crate::money::Cents;

pub struct Cart(pub cart::Cart);

#[Object]
impl Cart {
    async fn lines(&self) -> Vec<CartLine> {
        self.0.lines.iter().cloned().map(CartLine).collect()
    }

    /// The sum of the lines' subtotals at current prices.
    async fn total(&self) -> Result<Cents> {
        Ok(self.0.total()?)
    }
}

pub struct CartLine(pub cart::CartLine);

#[Object]
impl CartLine {
    async fn id(&self) -> ID {
        self.0.id.into()
    }

    async fn product(&self, ctx: &Context<'_>) -> Result<Product> {
        Ok(Product(
            ctx.loaders().existing_product(self.0.product_id).await?,
        ))
    }

    async fn variant(&self, ctx: &Context<'_>) -> Result<Option<ProductVariant>> {
        let Some(id) = self.0.variant_id else {
            return Ok(None);
        };
        let variant = ctx
            .loaders()
            .variants
            .load_one(id)
            .await
            .map_err(ApiError::from)?;
        Ok(variant.map(ProductVariant))
    }

    async fn quantity(&self) -> i32 {
        self.0.quantity
    }

    /// The current price of the product or its variant.
    async fn unit_price(&self) -> Cents {
        Cents(self.0.unit_price_cents)
    }

    async fn subtotal(&self) -> Result<Cents> {
        Ok(self.0.subtotal()?)
    }
}
