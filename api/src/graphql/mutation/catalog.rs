//! An admin's catalog mutations: create and update products.

use async_graphql::{Context, ID, InputObject, Object, Result};
use jobs::figures_changed::{self, FiguresChanged};
use sea_orm::TransactionTrait;

use crate::domain::catalog::{self, NewProduct, ProductPatch, VariantSpec};
use crate::error::{ApiError, ApiResult};
use crate::graphql::STATEMENT;
use crate::graphql::context::{ContextExt, parse_id};
use crate::graphql::types::Product;
use crate::money::Cents;

#[derive(InputObject)]
pub struct VariantInput {
    /// Unique within the product, e.g. `Small`.
    pub name: String,
    /// At most 1000000.00 (a higher price is refused with BAD_USER_INPUT).
    pub price: Cents,
}

#[derive(InputObject)]
pub struct CreateProductInput {
    pub name: String,
    #[graphql(default)]
    pub description: String,
    /// A lowercase slug such as `pizza` or `soft-drinks`.
    pub category: String,
    /// At most 1000000.00 (a higher price is refused with BAD_USER_INPUT).
    pub price: Cents,
    #[graphql(default = true)]
    pub available: bool,
    #[graphql(default)]
    pub variants: Vec<VariantInput>,
}

/// Fields left out stay as they are. Variants are added, or repriced when one
/// of that name exists; none is removed.
#[derive(InputObject)]
pub struct UpdateProductInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    /// At most 1000000.00 (a higher price is refused with BAD_USER_INPUT).
    pub price: Option<Cents>,
    pub available: Option<bool>,
    #[graphql(default)]
    pub variants: Vec<VariantInput>,
}

fn variants(inputs: Vec<VariantInput>) -> ApiResult<Vec<VariantSpec>> {
    inputs
        .into_iter()
        .map(|v| VariantSpec::parse(&v.name, v.price))
        .collect()
}

#[derive(Default)]
pub struct CatalogMutation;

#[Object]
impl CatalogMutation {
    /// Admins only.
    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn create_product(
        &self,
        ctx: &Context<'_>,
        input: CreateProductInput,
    ) -> Result<Product> {
        ctx.admin().await?;
        let new = NewProduct::parse(
            &input.name,
            &input.description,
            &input.category,
            input.price,
            input.available,
            variants(input.variants)?,
        )?;
        let txn = ctx.state().db.begin().await.map_err(ApiError::from)?;
        let product = catalog::create_product(&txn, new).await?;
        let created = FiguresChanged::products(vec![product.id]);
        figures_changed::notify(&txn, &created)
            .await
            .map_err(ApiError::from)?;
        txn.commit().await.map_err(ApiError::from)?;
        // at once here; the other processes when the NOTIFY reaches them
        ctx.state().live.freshness.moved();
        Ok(Product(product))
    }

    /// Admins only.
    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn update_product(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateProductInput,
    ) -> Result<Product> {
        ctx.admin().await?;
        let id = parse_id(&id, "product")?;
        let patch = ProductPatch::parse(
            input.name.as_deref(),
            input.description.as_deref(),
            input.category.as_deref(),
            input.price,
            input.available,
            variants(input.variants)?,
        )?;
        let txn = ctx.state().db.begin().await.map_err(ApiError::from)?;
        let product = catalog::update_product(&txn, id, patch).await?;
        let edited = FiguresChanged::products(vec![product.id]);
        figures_changed::notify(&txn, &edited)
            .await
            .map_err(ApiError::from)?;
        txn.commit().await.map_err(ApiError::from)?;
        // at once here; the other processes when the NOTIFY reaches them
        ctx.state().live.freshness.moved();
        Ok(Product(product))
    }
}
