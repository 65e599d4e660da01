//! Placing orders as fast as possible, or at a set rate: straight SQL, and
//! `placeOrder` over HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::types::Json;

use crate::setup::Bench;

#[derive(Debug, Clone, Copy, Default)]
pub struct Throughput {
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Requests that failed (a statement of many orders is one).
    pub errors: u64,
    pub elapsed: Duration,
}

fn histogram() -> Histogram<u64> {
    // microseconds, 1 µs to 60 s
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn summarise(histogram: &Histogram<u64>, errors: u64, elapsed: Duration) -> Throughput {
    Throughput {
        per_second: histogram.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: histogram.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: histogram.value_at_quantile(0.99) as f64 / 1000.0,
        errors,
        elapsed,
    }
}

/// The placement limit: Tally's own placement statement (pricing the lines
/// and writing orders, lines and job rows) sent straight over `clients`
/// connections, `batch` orders per statement, no HTTP, no GraphQL, no ORM.
/// An order's latency is its statement's.
pub async fn raw_placement(
    bench: &Arc<Bench>,
    clients: usize,
    batch: usize,
    duration: Duration,
) -> anyhow::Result<Throughput> {
    closed_loop(
        clients,
        duration,
        async |_| Ok(bench.pool.acquire().await?),
        async |conn, n| {
            place_raw(bench, conn, n * batch, batch).await?;
            Ok(batch as u64)
        },
    )
    .await
}

/// `clients` concurrent clients, each with a `connect`ed state of its own,
/// each sending its next request when the last one answered, for `duration`.
/// `request` gets the client's state and the request's number (unique
/// across clients) and says how many answers it got (a statement placing
/// many orders gives many), each of them recorded with its latency.
pub async fn closed_loop<S>(
    clients: usize,
    duration: Duration,
    connect: impl AsyncFn(usize) -> anyhow::Result<S>,
    request: impl AsyncFn(&mut S, usize) -> anyhow::Result<u64>,
) -> anyhow::Result<Throughput> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let results = join_all((0..clients).map(|client| {
        let (connect, request) = (&connect, &request);
        async move {
            let mut state = connect(client).await?;
            let mut latencies = histogram();
            let mut errors = 0;
            let mut n = client;
            while Instant::now() < deadline {
                let t = Instant::now();
                match request(&mut state, n).await {
                    Ok(answers) => {
                        latencies.record_n(t.elapsed().as_micros().max(1) as u64, answers)?
                    }
                    Err(_) => errors += 1,
                }
                n += clients;
            }
            anyhow::Ok((latencies, errors))
        }
    }))
    .await;
    merge(results, started.elapsed())
}

/// `batch` orders by straight SQL in one statement, customers and lines
/// picked from `n` on: Tally's own placement statement, sent as it is
/// (confirming each caller's token, as it does for placeOrder), without
/// GraphQL or HTTP in front of it.
pub async fn place_raw(
    bench: &Bench,
    conn: &mut sqlx::PgConnection,
    n: usize,
    batch: usize,
) -> anyhow::Result<()> {
    let lines = || -> Value {
        bench
            .random_lines()
            .iter()
            .map(|(id, _, quantity)| {
                json!({ "product_id": id, "variant_id": null, "quantity": quantity })
            })
            .collect()
    };
    let customer = |slot: usize| bench.customers[(n + slot) % bench.customers.len()].0;
    let placed = if batch == 1 {
        // the parameters tally::domain::orders::PLACE_ORDER_SQL names
        sqlx::query(tally::domain::orders::PLACE_ORDER_SQL.as_str())
            .bind(customer(0))
            // a fresh account's token version: the statement confirms the
            // caller, as a placeOrder request's does
            .bind(Some(0_i32))
            .bind(None::<String>)
            .bind(Json(lines()))
            .bind(Vec::<i64>::new())
            .bind(jobs::enqueue::new_job_id())
            .bind(5_i32)
            .fetch_all(&mut *conn)
            .await?
    } else {
        // the fields tally::domain::orders::PLACE_ORDERS_SQL reads
        let requests: Value = (0..batch)
            .map(|slot| {
                json!({
                    "slot": slot,
                    "user_id": customer(slot),
                    "token_version": 0,
                    "key": null,
                    "job_id": jobs::enqueue::new_job_id(),
                    "lines": lines(),
                })
            })
            .collect();
        sqlx::query(tally::domain::orders::PLACE_ORDERS_SQL.as_str())
            .bind(Json(&requests))
            .bind(5_i32)
            .fetch_all(&mut *conn)
            .await?
    };
    // every answered line carries its order; none when it was refused
    let mut orders = std::collections::HashSet::new();
    for line in &placed {
        let id: Option<i64> = line.try_get("id")?;
        orders.insert(id.ok_or_else(|| anyhow::anyhow!("a straight-SQL order was refused"))?);
    }
    anyhow::ensure!(
        orders.len() == batch,
        "the straight-SQL placement placed {} of {batch} orders",
        orders.len()
    );
    Ok(())
}

const PLACE_ORDER: &str = "mutation PlaceOrder($input: PlaceOrderInput!) { placeOrder(input: $input) { id orderNumber } }";

/// `placeOrder` over HTTP from `clients` concurrent clients, each sending
/// its next order when the last one answered.
pub async fn graphql_placement(
    bench: &Arc<Bench>,
    addr: &str,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Throughput> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let url = format!("http://{addr}/graphql");
    closed_loop(
        clients,
        duration,
        async |_| anyhow::Ok(()),
        async |_, n| {
            place_graphql(bench, &http, &url, n).await?;
            Ok(1)
        },
    )
    .await
}

async fn place_graphql(
    bench: &Bench,
    http: &reqwest::Client,
    url: &str,
    n: usize,
) -> anyhow::Result<()> {
    let items: Vec<Value> = bench
        .random_lines()
        .iter()
        .map(|(id, _, q)| json!({ "productId": id.to_string(), "quantity": q }))
        .collect();
    let (_, token) = &bench.customers[n % bench.customers.len()];
    let body: Value = http
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "query": PLACE_ORDER, "variables": { "input": { "items": items } } }))
        .send()
        .await?
        .json()
        .await?;
    if body.get("errors").is_some() {
        anyhow::bail!("placeOrder failed: {body}");
    }
    Ok(())
}

/// `placeOrder` at a steady `rate` per second (open loop: a slow answer
/// does not slow the next request), for `duration`.
pub async fn graphql_at_rate(
    bench: &Arc<Bench>,
    addr: &str,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Throughput> {
    let http = reqwest::Client::new();
    let url = Arc::new(format!("http://{addr}/graphql"));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut n = 0;
    while started.elapsed() < duration {
        ticker.tick().await;
        let (bench, http, url) = (bench.clone(), http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            place_graphql(&bench, &http, &url, n)
                .await
                .map(|()| t.elapsed())
        }));
        n += 1;
    }
    let mut latencies = histogram();
    let mut errors = 0;
    for task in tasks {
        match task.await? {
            Ok(elapsed) => latencies.record(elapsed.as_micros().max(1) as u64)?,
            Err(_) => errors += 1,
        }
    }
    Ok(summarise(&latencies, errors, started.elapsed()))
}

fn merge(
    results: Vec<anyhow::Result<(Histogram<u64>, u64)>>,
    elapsed: Duration,
) -> anyhow::Result<Throughput> {
    let mut all = histogram();
    let mut errors = 0;
    for result in results {
        let (h, e) = result?;
        all.add(&h)?;
        errors += e;
    }
    Ok(summarise(&all, errors, elapsed))
}
