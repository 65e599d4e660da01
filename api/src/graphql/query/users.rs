//! `me`: the caller, with their preferences.

use async_graphql::{Context, Object, Result};

use crate::domain::preferences;
use crate::error::ApiError;
use crate::graphql::STATEMENT;
use crate::graphql::context::ContextExt;
use crate::graphql::types::User;

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The caller, or null without a token.
    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let Ok(caller) = ctx.caller() else {
            return Ok(None);
        };
        // checks the token, confirmed before or not (`graphql::own_token`)
        let Some(profile) = preferences::profile(&ctx.state().db, &caller.token())
            .await
            .map_err(ApiError::from)?
        else {
            return Err(ApiError::InvalidToken.into());
        };
        caller.confirm();
        Ok(Some(User {
            model: profile.user,
            // read with the account: its fields read nothing more
            preferences: Some(profile.preferences),
        }))
    }
}
