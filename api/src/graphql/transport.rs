//! What the transport allows: GET carries queries only, so a link or a
//! prefetch can never change anything (checked on the parsed document, after
//! an automatic persisted query has been resolved to its text); and over a
//! WebSocket, who the caller is now.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest,
};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{Request, ServerResult, Variables};

use crate::auth::accounts;
use crate::auth::{Caller, Verified};
use crate::error::ApiError;
use crate::state::AppState;

/// Request data marking a request that came by GET.
pub struct ViaGet;

pub struct MutationsNeedPost;

impl ExtensionFactory for MutationsNeedPost {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(MutationsNeedPost)
    }
}

#[async_trait::async_trait]
impl Extension for MutationsNeedPost {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        // conservative: a GET document may not hold a mutation at all,
        // whichever operation it names
        let mutation = match &document.operations {
            DocumentOperations::Single(op) => op.node.ty == OperationType::Mutation,
            DocumentOperations::Multiple(ops) => {
                ops.values().any(|op| op.node.ty == OperationType::Mutation)
            }
        };
        if mutation && ctx.data_opt::<ViaGet>().is_some() {
            return Err(ApiError::MethodNotAllowed(
                "mutations are not allowed over GET: send them by POST",
            )
            .into_server_error());
        }
        Ok(document)
    }
}

/// Connection data of a WebSocket whose `connection_init` carried a token.
pub struct SocketToken(pub Verified);

/// Over a WebSocket, the caller is read again from the account before every
/// operation, as every HTTP request reads it: a token revoked (a changed
/// password or role) or an account deleted meanwhile counts for nothing,
/// and a demoted admin is no admin, from the next operation on.
pub struct SocketViewer;

impl ExtensionFactory for SocketViewer {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(SocketViewer)
    }
}

#[async_trait::async_trait]
impl Extension for SocketViewer {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let Some(SocketToken(token)) = ctx.data_opt::<SocketToken>() else {
            return next.run(ctx, request).await;
        };
        let db = &ctx.data_unchecked::<AppState>().db;
        let viewer = accounts::current_viewer(db, token)
            .await
            .map_err(ApiError::into_server_error)?;
        next.run(ctx, request.data(Caller::confirmed(*token, viewer)))
            .await
    }
}
