use async_graphql::{Context, Object, Result};

use crate::domain::users;
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
        let Ok(viewer) = ctx.viewer() else {
            return Ok(None);
        };
        Ok(users::find(&ctx.state().db, viewer.user_id)
            .await?
            .map(User))
    }
}
