//! Times every GraphQL request, logs it with its operation name, and files
//! it under that name in the metrics. async-graphql only knows the name once
//! it has picked the operation to execute; a span carries it from there to
//! everything the resolvers log.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::Response;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextRequest,
};
use tracing::Instrument;

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
        // what resolvers log carries the operation, once it is known
        let span = tracing::info_span!("graphql", operation = tracing::field::Empty);
        let response = next.run(ctx).instrument(span.clone()).await;
        let seconds = started.elapsed().as_secs_f64();
        let operation = self
            .operation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let name = operation.as_deref().unwrap_or("(refused)");
        let codes: Vec<&str> = response
            .errors
            .iter()
            .filter_map(ApiError::code_of)
            .collect();
        span.in_scope(|| {
            tracing::info!(
                operation = name,
                duration_ms = seconds * 1000.0,
                errors = response.errors.len(),
                codes = ?codes,
                "graphql operation"
            )
        });
        self.metrics.request_served(operation.as_deref(), seconds);
        if codes.contains(&ApiError::UNAVAILABLE_CODE) {
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
        let name = operation_name.unwrap_or("anonymous");
        tracing::Span::current().record("operation", name);
        *self.operation.lock().unwrap_or_else(|e| e.into_inner()) = Some(name.to_owned());
        next.run(ctx, operation_name).await
    }
}
