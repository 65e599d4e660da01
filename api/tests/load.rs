//! Exact figures under load, against real processes: `tally serve` and two
//! `tally worker` processes on one database, 32 concurrent HTTP clients
//! placing orders (random lines, repeated products, several customers and
//! an admin). When nothing is pending, every figure must equal a recount
//! over the order lines, with zero client errors. `LOAD_ORDERS` sizes it
//! (default 5,000; the long variant in RELIABILITY.md runs 50,000).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::{Processes, count, figure_mismatches, sigterm, spawn};
use tally_test_support::TestDatabase;

mod common;

const CLIENTS: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn figures_stay_exact_under_concurrent_load_across_processes() {
    let orders: usize = std::env::var("LOAD_ORDERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000);
    let database = TestDatabase::new("load");
    let url = database.url();
    let (pool, shop) = common::open_shop(&url).await;
    let shop = Arc::new(shop);

    let addr = format!("127.0.0.1:{}", common::free_port());
    let worker = [
        ("WORKER_CONCURRENCY", "1"),
        ("WORKER_POLL_INTERVAL_MS", "50"),
    ];
    let mut processes = Processes(vec![
        spawn(
            &url,
            &["serve"],
            &[("BIND_ADDR", &addr), ("WORKER_CONCURRENCY", "1")],
        ),
        spawn(&url, &["worker"], &worker),
        // big coalesced batches beside small ones: their locks must not
        // deadlock with each other nor with placements
        spawn(
            &url,
            &["worker"],
            &[worker[0], worker[1], ("ANALYTICS_BATCH_SIZE", "1000")],
        ),
    ]);
    common::wait_until_ready(&addr).await;

    let http = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let errors: Vec<usize> = futures::future::join_all((0..CLIENTS).map(|_| {
        let (http, next, shop, url) = (http.clone(), next.clone(), shop.clone(), format!("http://{addr}/graphql"));
        async move {
            let mut errors = 0;
            while next.fetch_add(1, Ordering::SeqCst) < orders {
                // random lines: the same products come in every order of lines
                let (token, items) = shop.random_order();
                let body: Result<serde_json::Value, _> = async {
                    http.post(&url)
                        .bearer_auth(&token)
                        .json(&serde_json::json!({ "query": common::PLACE_ORDER, "variables": { "input": { "items": items } } }))
                        .send()
                        .await?
                        .json()
                        .await
                }
                .await;
                if !body.is_ok_and(|b| b.get("errors").is_none()) {
                    errors += 1;
                }
            }
            errors
        }
    }))
    .await;
    assert_eq!(errors.iter().sum::<usize>(), 0, "client errors");

    common::wait_until_settled(&pool, Duration::from_secs(120)).await;
    for child in &mut processes.0 {
        assert_eq!(sigterm(child), Some(0));
    }

    assert_eq!(
        count(&pool, "select count(*) from orders").await,
        orders as i64
    );
    assert_eq!(figure_mismatches(&pool).await, 0);
    // every job ran once: none failed, not even to be retried
    assert_eq!(
        count(&pool, "select count(*) from apalis.jobs where attempts > 1").await,
        0
    );
    // the processes have exited, so their statistics are flushed
    let deadlocks: i64 = sqlx::query_scalar(
        "select deadlocks from pg_stat_database where datname = current_database()",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(deadlocks, 0);
    pool.close().await;
}
