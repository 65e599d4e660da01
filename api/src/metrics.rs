//! `/metrics`, in Prometheus's text format. Each app has its own registry
//! (no global recorder), so what a process reports is its own.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use jobs::metrics::JobMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sea_orm::{ConnectionTrait, DbErr};

/// Operation names are chosen by clients: past this many distinct ones, the
/// rest are reported as `other`, so no client can grow the label set unbounded.
const MAX_OPERATION_NAMES: usize = 100;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

/// Handles on the `tally_public_answers` metrics.
pub struct PublicAnswerMetrics {
    pub hits: Counter,
    pub misses: Counter,
    pub bytes: Gauge,
}

pub struct Metrics {
    registry: Registry,
    orders_placed: Counter,
    order_batches: Histogram,
    requests: Family<OperationLabels, Histogram>,
    unavailable: Family<ReasonLabels, Counter>,
    operation_names: Mutex<HashSet<String>>,
    /// Handed to this process's workers.
    pub jobs: JobMetrics,
    jobs_by_status: Family<StatusLabels, Gauge>,
    analytics_lag: Gauge<f64, AtomicU64>,
    orders_held_back: Gauge,
    websockets: Gauge,
    public_answers: Family<ResultLabels, Counter>,
    public_answer_bytes: Gauge,
    /// When the queue-wide gauges were last read from the database.
    database_read: tokio::sync::Mutex<Option<Instant>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let orders_placed = Counter::default();
        registry.register(
            "tally_orders_placed",
            "Orders placed through this process",
            orders_placed.clone(),
        );
        // 1 to 128 orders
        let order_batches = Histogram::new(exponential_buckets(1.0, 2.0, 8));
        registry.register(
            "tally_order_batch_size",
            "Orders written by one placement statement in this process (placeOrder requests \
             that arrive while earlier ones are being written share one)",
            order_batches.clone(),
        );
        let requests = Family::<OperationLabels, Histogram>::new_with_constructor(|| {
            // 1 ms to ~16 s
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        registry.register(
            "tally_graphql_request_duration_seconds",
            "GraphQL requests served by this process, by operation name \
             (anonymous: unnamed; refused: rejected before execution)",
            requests.clone(),
        );
        let unavailable = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "tally_requests_unavailable",
            "GraphQL requests answered SERVICE_UNAVAILABLE, by reason (in_flight_limit: \
             refused at MAX_REQUESTS_IN_FLIGHT; database: unreachable, saturated or too slow)",
            unavailable.clone(),
        );
        let jobs = JobMetrics::registered(&mut registry);
        let jobs_by_status = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "tally_jobs",
            "Post-order jobs in the queue, by status (all processes)",
            jobs_by_status.clone(),
        );
        let analytics_lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "tally_analytics_lag_seconds",
            "Age of the oldest order not yet counted into the figures (all processes)",
            analytics_lag.clone(),
        );
        let orders_held_back = Gauge::default();
        registry.register(
            "tally_orders_held_back",
            "Placed orders left out of every batch because counting them failed on their own; \
             they wait for an operator to retry their job (all processes)",
            orders_held_back.clone(),
        );
        let websockets = Gauge::default();
        registry.register(
            "tally_websockets_open",
            "WebSocket connections (subscriptions) open in this process",
            websockets.clone(),
        );
        let public_answers = Family::<ResultLabels, Counter>::default();
        registry.register(
            "tally_public_answers",
            "Anonymous reads looked up among the answers this process keeps, by result \
             (hit: sent from memory; miss: computed)",
            public_answers.clone(),
        );
        let public_answer_bytes = Gauge::default();
        registry.register(
            "tally_public_answers_bytes",
            "Bytes of the answers to anonymous reads this process keeps (PUBLIC_CACHE_BYTES at most)",
            public_answer_bytes.clone(),
        );
        Self {
            registry,
            websockets,
            public_answers,
            public_answer_bytes,
            orders_placed,
            order_batches,
            requests,
            unavailable,
            operation_names: Mutex::default(),
            jobs,
            jobs_by_status,
            analytics_lag,
            orders_held_back,
            database_read: tokio::sync::Mutex::default(),
        }
    }
}

impl Metrics {
    /// The counters and the gauge the answers kept for anonymous reads
    /// report to (`graphql::public_answers`).
    pub fn public_answers(&self) -> PublicAnswerMetrics {
        let counter = |result| {
            self.public_answers
                .get_or_create(&ResultLabels { result })
                .clone()
        };
        PublicAnswerMetrics {
            hits: counter("hit"),
            misses: counter("miss"),
            bytes: self.public_answer_bytes.clone(),
        }
    }

    /// Counts a WebSocket as open until the guard is dropped.
    pub fn websocket_opened(&self) -> OpenWebSocket {
        self.websockets.inc();
        OpenWebSocket(self.websockets.clone())
    }

    pub fn order_placed(&self) {
        self.orders_placed.inc();
    }

    /// One placement statement wrote (or tried) this many orders.
    pub fn order_batch_written(&self, orders: usize) {
        self.order_batches.observe(orders as f64);
    }

    /// A request refused at the limit of requests in flight.
    pub fn request_shed(&self) {
        self.unavailable
            .get_or_create(&ReasonLabels {
                reason: "in_flight_limit",
            })
            .inc();
    }

    /// A request that failed because the database was unavailable.
    pub fn database_unavailable(&self) {
        self.unavailable
            .get_or_create(&ReasonLabels { reason: "database" })
            .inc();
    }

    /// `operation` is None for a request refused before execution.
    pub fn request_served(&self, operation: Option<&str>, seconds: f64) {
        let name = match operation {
            None => "refused".to_owned(),
            Some(name) => {
                let mut known = self
                    .operation_names
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if known.contains(name) || known.len() < MAX_OPERATION_NAMES {
                    known.insert(name.to_owned());
                    name.to_owned()
                } else {
                    "other".to_owned()
                }
            }
        };
        self.requests
            .get_or_create(&OperationLabels { operation: name })
            .observe(seconds);
    }

    /// Renders everything, the queue-wide gauges read from the database
    /// first unless they were read less than `refresh` ago. One scrape reads
    /// at a time, the others wait for its figures: a flood of scrapes costs
    /// the database one read per `refresh`.
    pub async fn render<C: ConnectionTrait>(
        &self,
        db: &C,
        refresh: Duration,
    ) -> Result<String, DbErr> {
        {
            let mut read = self.database_read.lock().await;
            if read.is_none_or(|at| at.elapsed() >= refresh) {
                self.read_database(db).await?;
                *read = Some(Instant::now());
            }
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|e| DbErr::Custom(format!("encoding metrics: {e}")))?;
        Ok(text)
    }

    async fn read_database<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        for (status, count) in jobs::admin::count_by_status(db).await? {
            self.jobs_by_status
                .get_or_create(&StatusLabels {
                    status: status.as_str(),
                })
                .set(count);
        }
        let lag = jobs::admin::lag(db).await?;
        self.analytics_lag.set(lag.seconds);
        self.orders_held_back.set(lag.held_back);
        Ok(())
    }
}

/// An open WebSocket, counted in `tally_websockets_open` while it lives.
pub struct OpenWebSocket(Gauge);

impl Drop for OpenWebSocket {
    fn drop(&mut self) {
        self.0.dec();
    }
}
