//! `register` and `login`.

use async_graphql::{Context, InputObject, Object, Result};
use entity::users::Model;

use crate::auth::Viewer;
use crate::domain::users::{self, Registration};
use crate::graphql::STATEMENT;
use crate::graphql::context::ContextExt;
use crate::graphql::types::AuthPayload;

#[derive(InputObject)]
pub struct RegisterInput {
    pub name: String,
    pub email: String,
    /// 8 to 128 characters.
    pub password: String,
}

#[derive(InputObject)]
pub struct LoginInput {
    pub email: String,
    pub password: String,
}

#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Creates a customer account and signs it in.
    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<AuthPayload> {
        let registration = Registration::parse(&input.name, &input.email, &input.password)?;
        let state = ctx.state();
        let client = ctx.client_addr();
        let user = users::register_throttled(&state.db, &state.sign_in, client, registration)
            .await
            .inspect_err(|e| state.note_refusal(e, client))?;
        signed_in(ctx, user)
    }

    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<AuthPayload> {
        let state = ctx.state();
        let client = ctx.client_addr();
        let user = users::login_throttled(
            &state.db,
            &state.sign_in,
            client,
            &input.email,
            &input.password,
        )
        .await
        .inspect_err(|e| state.note_refusal(e, client))?;
        signed_in(ctx, user)
    }
}

fn signed_in(ctx: &Context<'_>, user: Model) -> Result<AuthPayload> {
    let viewer = Viewer {
        user_id: user.id,
        role: user.role,
    };
    let token = ctx.state().tokens.issue(viewer, user.token_version)?;
    Ok(AuthPayload {
        token,
        user: user.into(),
    })
}
