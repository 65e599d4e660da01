//! An admin's job mutations: retry a job or every failed one, rebuild the
//! analytics.

use async_graphql::{Context, ID, Object, Result};
use tracing::info;

use crate::error::ApiError;
use crate::graphql::STATEMENT;
use crate::graphql::context::ContextExt;
use crate::graphql::types::Rebuild;

#[derive(Default)]
pub struct JobMutation;

#[Object]
impl JobMutation {
    /// Admins only: puts a failed job back in its queue with its attempts
    /// reset. It counts its order at most once, whatever happened before.
    /// `BAD_USER_INPUT` for a job no worker could read (a row written by
    /// hand, or damaged), which stays failed: delete it.
    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn retry_job(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let admin = ctx.admin().await?;
        let state = ctx.state();
        let retried = jobs::admin::retry_jobs(&state.db, Some(&id))
            .await
            .map_err(ApiError::from)?;
        if !retried.unreadable.is_empty() {
            return Err(ApiError::bad_input(jobs::admin::unreadable_job(id.as_str())).into());
        }
        if retried.put_back.is_empty() {
            return Err(ApiError::not_found(format!("no failed job {}", id.as_str())).into());
        }
        info!(admin_id = admin.user_id, job_id = %id.as_str(), "retried a failed job");
        state.wakeup.jobs_waiting();
        Ok(true)
    }

    /// Admins only: retries every failed job of the queue; returns how many.
    /// A job no worker could read stays failed (see `retryJob`).
    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn retry_failed_jobs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "jobs::QUEUE.to_owned()")] queue: String,
    ) -> Result<i32> {
        let admin = ctx.admin().await?;
        if queue != jobs::QUEUE {
            return Err(ApiError::not_found(format!(
                "no queue {queue:?}: Tally has {:?}",
                jobs::QUEUE
            ))
            .into());
        }
        let state = ctx.state();
        let retried = jobs::admin::retry_jobs(&state.db, None)
            .await
            .map_err(ApiError::from)?;
        info!(admin_id = admin.user_id, job_ids = ?retried.put_back, "retried every failed job");
        state.wakeup.jobs_waiting();
        Ok(retried.put_back.len() as i32)
    }

    /// Admins only: recomputes every product figure and customer preference
    /// from the order history, counting each order once. Safe while orders
    /// keep arriving. One at a time: while one runs (from any process),
    /// another is refused with CONFLICT.
    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn rebuild_analytics(&self, ctx: &Context<'_>) -> Result<Rebuild> {
        let admin = ctx.admin().await?;
        info!(admin_id = admin.user_id, "analytics rebuild requested");
        // a task of its own: it runs to its end even if the request is
        // dropped (HTTP_REQUEST_TIMEOUT, a client gone)
        let db = ctx.state().rebuilds.clone();
        let report = tokio::spawn(async move { jobs::rebuild::rebuild_analytics(&db).await })
            .await
            .map_err(|e| ApiError::internal(anyhow::anyhow!("the rebuild panicked: {e}")))?
            .map_err(ApiError::from)?;
        Ok(report.into())
    }
}
