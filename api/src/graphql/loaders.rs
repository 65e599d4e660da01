//! Batched loads for nested fields: one `IN` query per kind per request,
//! however many parents ask.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, Loader};
use entity::{order_lines, product_variants, products, users};
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder};

use crate::db::any_of;
use crate::domain::preferences;
use crate::error::{ApiError, ApiResult};

/// The loaders of one request; built per request so nothing is cached across users.
pub struct Loaders {
    pub products: DataLoader<ProductLoader>,
    pub variants: DataLoader<VariantLoader>,
    pub variants_by_product: DataLoader<VariantsByProductLoader>,
    pub order_lines: DataLoader<OrderLinesLoader>,
    pub users: DataLoader<UserLoader>,
    pub most_ordered: DataLoader<MostOrderedLoader>,
    pub favorite_categories: DataLoader<FavoriteCategoriesLoader>,
}

impl Loaders {
    pub fn new(db: &DatabaseConnection) -> Self {
        Self {
            products: DataLoader::new(ProductLoader(db.clone()), tokio::spawn),
            variants: DataLoader::new(VariantLoader(db.clone()), tokio::spawn),
            variants_by_product: DataLoader::new(VariantsByProductLoader(db.clone()), tokio::spawn),
            order_lines: DataLoader::new(OrderLinesLoader(db.clone()), tokio::spawn),
            users: DataLoader::new(UserLoader(db.clone()), tokio::spawn),
            most_ordered: DataLoader::new(MostOrderedLoader(db.clone()), tokio::spawn),
            favorite_categories: DataLoader::new(
                FavoriteCategoriesLoader(db.clone()),
                tokio::spawn,
            ),
        }
    }
}

impl Loaders {
    /// A product that must exist: an order or cart line points at it.
    pub async fn existing_product(&self, id: i64) -> ApiResult<products::Model> {
        self.products
            .load_one(id)
            .await?
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("product {id} of a line is missing")))
    }

    /// A user that must exist: an order points at them.
    pub async fn existing_user(&self, id: i64) -> ApiResult<users::Model> {
        self.users
            .load_one(id)
            .await?
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("user {id} of an order is missing")))
    }
}

pub struct ProductLoader(DatabaseConnection);

impl Loader<i64> for ProductLoader {
    type Value = products::Model;
    type Error = DbErr;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let rows = products::Entity::find()
            .filter(any_of(products::Column::Id, ids))
            .all(&self.0)
            .await?;
        Ok(rows.into_iter().map(|p| (p.id, p)).collect())
    }
}

pub struct VariantLoader(DatabaseConnection);

impl Loader<i64> for VariantLoader {
    type Value = product_variants::Model;
    type Error = DbErr;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let rows = product_variants::Entity::find()
            .filter(any_of(product_variants::Column::Id, ids))
            .all(&self.0)
            .await?;
        Ok(rows.into_iter().map(|v| (v.id, v)).collect())
    }
}

/// A product's variants, in creation order.
pub struct VariantsByProductLoader(DatabaseConnection);

impl Loader<i64> for VariantsByProductLoader {
    type Value = Vec<product_variants::Model>;
    type Error = DbErr;

    async fn load(&self, product_ids: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let rows = product_variants::Entity::find()
            .filter(any_of(product_variants::Column::ProductId, product_ids))
            .order_by_asc(product_variants::Column::Id)
            .all(&self.0)
            .await?;
        let mut by_product: HashMap<i64, Self::Value> =
            product_ids.iter().map(|id| (*id, Vec::new())).collect();
        for variant in rows {
            by_product
                .entry(variant.product_id)
                .or_default()
                .push(variant);
        }
        Ok(by_product)
    }
}

/// An order's lines, in line order.
pub struct OrderLinesLoader(DatabaseConnection);

impl Loader<i64> for OrderLinesLoader {
    type Value = Vec<order_lines::Model>;
    type Error = DbErr;

    async fn load(&self, order_ids: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let rows = order_lines::Entity::find()
            .filter(any_of(order_lines::Column::OrderId, order_ids))
            .order_by_asc(order_lines::Column::OrderId)
            .order_by_asc(order_lines::Column::LineNo)
            .all(&self.0)
            .await?;
        let mut by_order: HashMap<i64, Self::Value> =
            order_ids.iter().map(|id| (*id, Vec::new())).collect();
        for line in rows {
            by_order.entry(line.order_id).or_default().push(line);
        }
        Ok(by_order)
    }
}

/// Users by id: orders' customers.
pub struct UserLoader(DatabaseConnection);

impl Loader<i64> for UserLoader {
    type Value = users::Model;
    type Error = DbErr;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let rows = users::Entity::find()
            .filter(any_of(users::Column::Id, ids))
            .all(&self.0)
            .await?;
        Ok(rows.into_iter().map(|u| (u.id, u)).collect())
    }
}

/// Customers' top product ids, best first.
pub struct MostOrderedLoader(DatabaseConnection);

impl Loader<i64> for MostOrderedLoader {
    type Value = Vec<i64>;
    type Error = DbErr;

    async fn load(&self, user_ids: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        preferences::most_ordered_product_ids(&self.0, user_ids).await
    }
}

/// Customers' top categories, best first.
pub struct FavoriteCategoriesLoader(DatabaseConnection);

impl Loader<i64> for FavoriteCategoriesLoader {
    type Value = Vec<String>;
    type Error = DbErr;

    async fn load(&self, user_ids: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        preferences::favorite_categories(&self.0, user_ids).await
    }
}
