//! `User`: an account, with the customer's preferences.

use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use entity::users;

use super::Product;
use crate::domain::preferences::Preferences;
use crate::error::ApiError;
use crate::graphql::context::ContextExt;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Customer,
    Admin,
}

impl From<users::Role> for Role {
    fn from(role: users::Role) -> Self {
        match role {
            users::Role::Customer => Self::Customer,
            users::Role::Admin => Self::Admin,
        }
    }
}

pub struct User {
    pub model: users::Model,
    /// Read with the account (`me`); otherwise the loaders read them, with
    /// every other customer's the request shows.
    pub preferences: Option<Preferences>,
}

impl From<users::Model> for User {
    fn from(model: users::Model) -> Self {
        Self {
            model,
            preferences: None,
        }
    }
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        self.model.id.into()
    }

    async fn name(&self) -> &str {
        &self.model.name
    }

    async fn email(&self) -> &str {
        &self.model.email
    }

    async fn role(&self) -> Role {
        self.model.role.into()
    }

    /// The 5 products this customer ordered most, by total quantity; ties go to
    /// the more recently ordered, then the lower id. Updated by the post-order job.
    async fn most_ordered_items(&self, ctx: &Context<'_>) -> Result<Vec<Product>> {
        if let Some(preferences) = &self.preferences {
            return Ok(preferences
                .most_ordered
                .iter()
                .cloned()
                .map(Product)
                .collect());
        }
        let loaders = ctx.loaders();
        let ids = loaders
            .most_ordered
            .load_one(self.model.id)
            .await
            .map_err(ApiError::from)?
            .unwrap_or_default();
        let mut products = loaders
            .products
            .load_many(ids.iter().copied())
            .await
            .map_err(ApiError::from)?;
        Ok(ids
            .iter()
            .filter_map(|id| products.remove(id))
            .map(Product)
            .collect())
    }

    /// The 3 categories this customer ordered most, by total quantity; ties go
    /// to the more recently ordered, then alphabetical order.
    async fn favorite_categories(&self, ctx: &Context<'_>) -> Result<Vec<String>> {
        if let Some(preferences) = &self.preferences {
            return Ok(preferences.favorite_categories.clone());
        }
        Ok(ctx
            .loaders()
            .favorite_categories
            .load_one(self.model.id)
            .await
            .map_err(ApiError::from)?
            .unwrap_or_default())
    }
}

#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Send it as `Authorization: Bearer <token>`.
    pub token: String,
    pub user: User,
}
