//! What resolvers read from a request's context: the state, the caller,
//! the client's address.

use async_graphql::{Context, ID};

use super::loaders::Loaders;

use crate::auth::{Caller, ClientAddr, Viewer};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// What resolvers take from the request context.
pub(crate) trait ContextExt {
    fn state(&self) -> &AppState;
    fn loaders(&self) -> &Loaders;
    /// The caller, once the account has confirmed their token, or
    /// `UNAUTHENTICATED`.
    fn viewer(&self) -> ApiResult<Viewer>;
    /// The caller as the token names them, confirmed by the account or not
    /// yet ([`Caller`]), or `UNAUTHENTICATED`.
    fn caller(&self) -> ApiResult<&Caller>;
    /// The client's address, for limits kept per address; None when the
    /// transport does not know it.
    fn client_addr(&self) -> Option<ClientAddr>;
    /// The caller if an admin now: `UNAUTHENTICATED` or `FORBIDDEN` otherwise.
    async fn admin(&self) -> ApiResult<Viewer>;
}

impl ContextExt for Context<'_> {
    fn state(&self) -> &AppState {
        self.data_unchecked::<AppState>()
    }

    fn loaders(&self) -> &Loaders {
        self.data_unchecked::<Loaders>()
    }

    fn viewer(&self) -> ApiResult<Viewer> {
        self.data_opt::<Caller>()
            .and_then(Caller::viewer)
            .ok_or(ApiError::Unauthenticated)
    }

    fn caller(&self) -> ApiResult<&Caller> {
        self.data_opt::<Caller>().ok_or(ApiError::Unauthenticated)
    }

    fn client_addr(&self) -> Option<ClientAddr> {
        self.data_opt::<ClientAddr>().copied()
    }

    /// The viewer's role is the account's as it is now (read at the start
    /// of each request or socket operation: `auth::accounts::current_viewer`), so a
    /// demoted or deleted admin loses admin powers at once.
    async fn admin(&self) -> ApiResult<Viewer> {
        let viewer = self.viewer()?;
        if !viewer.is_admin() {
            return Err(ApiError::Forbidden);
        }
        Ok(viewer)
    }
}

/// Our ids are integers shown as strings.
pub fn parse_id(id: &ID, what: &str) -> ApiResult<i64> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::bad_input(format!("{:?} is not a valid {what} id", id.as_str())))
}
