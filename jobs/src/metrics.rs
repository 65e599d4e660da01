//! What the workers of this process report to `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `applied`, `already_applied`, `reversed` (a cancelled order taken back
    /// out), `already_reversed`, `failed`, or `swept` (a sweep after a
    /// placement that counted orders).
    pub outcome: &'static str,
}

#[derive(Clone, Debug)]
pub struct JobMetrics {
    runs: Family<OutcomeLabels, Counter>,
    duration: Histogram,
}

impl Default for JobMetrics {
    /// Metrics nobody reads (a registry is what makes them visible).
    fn default() -> Self {
        Self {
            runs: Family::default(),
            // 1 ms to ~16 s
            duration: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
        }
    }
}

impl JobMetrics {
    pub fn registered(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "tally_job_runs",
            "Post-order job runs in this process, by outcome",
            metrics.runs.clone(),
        );
        registry.register(
            "tally_job_duration_seconds",
            "How long post-order job runs took in this process",
            metrics.duration.clone(),
        );
        metrics
    }

    pub(crate) fn record(&self, outcome: &'static str, seconds: f64) {
        self.runs.get_or_create(&OutcomeLabels { outcome }).inc();
        self.duration.observe(seconds);
    }
}
