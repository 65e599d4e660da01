//! Times every GraphQL request and files it under its operation name, which
//! async-graphql only knows once it has picked the operation to execute.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::Response;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextRequest,
};

use crate::error::ApiError;
use crate::metrics::Metrics;

pub struct Observe(pub Arc<Metrics>);

impl ExtensionFactory for Observe {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ObserveRequest {
            metrics: self.0.clone(),
            operation: Mutex::default(),
        })
    }
}

struct ObserveRequest {
    metrics: Arc<Metrics>,
    /// Set when execution starts; a request refused before (syntax,
    /// validation, limits) never gets one.
    operation: Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl Extension for ObserveRequest {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = Instant::now();
        let response = next.run(ctx).await;
        let seconds = started.elapsed().as_secs_f64();
        let operation = self
            .operation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let name = operation.as_deref().unwrap_or("(refused)");
        tracing::debug!(
            operation = name,
            duration_ms = seconds * 1000.0,
            errors = response.errors.len(),
            "graphql request"
        );
        self.metrics.request_served(operation.as_deref(), seconds);
        let unavailable = response.errors.iter().any(|e| {
            e.extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .is_some_and(|code| *code == ApiError::UNAVAILABLE_CODE.into())
        });
        if unavailable {
            self.metrics.database_unavailable();
        }
        response
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        *self.operation.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(operation_name.unwrap_or("anonymous").to_owned());
        next.run(ctx, operation_name).await
    }
}
