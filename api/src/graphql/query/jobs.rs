//! `jobs`: the post-order jobs, for an admin.

use async_graphql::{Context, Object, Result};

use jobs::admin::JobStatus;

use crate::error::ApiError;
use crate::graphql::STATEMENT;
use crate::graphql::context::ContextExt;
use crate::graphql::types::Job;

#[derive(Default)]
pub struct JobQuery;

#[Object]
impl JobQuery {
    /// Admins only: the newest post-order jobs, optionally of one status.
    /// `first` is at most 200.
    #[graphql(complexity = "STATEMENT + child_complexity")]
    async fn jobs(
        &self,
        ctx: &Context<'_>,
        status: Option<JobStatus>,
        #[graphql(default = 50)] first: i32,
    ) -> Result<Vec<Job>> {
        ctx.admin().await?;
        if !(0..=200).contains(&first) {
            return Err(ApiError::bad_input("first must be between 0 and 200").into());
        }
        let jobs = jobs::admin::list_jobs(&ctx.state().db, status, first as u64)
            .await
            .map_err(ApiError::from)?;
        Ok(jobs.into_iter().map(Job::from).collect())
    }
}
