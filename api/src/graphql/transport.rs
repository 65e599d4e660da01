//! What the HTTP method allows: GET carries queries only, so a link or a
//! prefetch can never change anything. Checked on the parsed document, after
//! an automatic persisted query has been resolved to its text.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{ServerResult, Variables};

use crate::error::ApiError;

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
