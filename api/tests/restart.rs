//! PostgreSQL restarts under load. On a server of the test's own (the
//! machine's is shared with other tests), `tally serve` and a `tally worker`
//! take orders from 8 clients; PostgreSQL is stopped the way a crash stops it,
//! kept down for 3 s, and started again. While it is down every request gets
//! a SERVICE_UNAVAILABLE answer within the acquire timeout (none hangs, no
//! connection is dropped); afterwards both processes carry on by themselves
//! and every figure is exact. A subscriber watching every product through
//! it all ends with every product's final figures: the server's LISTEN
//! connection came back by itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{
    Client, Clients, Cluster, PRODUCT_SUBSCRIPTION, Processes, count, sigterm, spawn,
};

mod common;

const CLIENTS: usize = 8;
const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1_000);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_costs_clients_retries_and_figures_nothing() {
    let cluster = Cluster::start();
    let url = cluster.url("tally_restart");
    let (pool, shop) = common::open_shop(&url).await;
    let shop = Arc::new(shop);

    let addr = format!("127.0.0.1:{}", common::free_port());
    let acquire_ms = ACQUIRE_TIMEOUT.as_millis().to_string();
    let mut processes = Processes(vec![
        spawn(
            &url,
            &["serve"],
            &[
                ("BIND_ADDR", &addr),
                ("WORKER_CONCURRENCY", "1"),
                ("DATABASE_ACQUIRE_TIMEOUT_MS", &acquire_ms),
            ],
        ),
        spawn(
            &url,
            &["worker"],
            &[
                ("WORKER_CONCURRENCY", "1"),
                ("WORKER_POLL_INTERVAL_MS", "50"),
            ],
        ),
    ]);
    common::wait_until_ready(&addr).await;

    // the last salesCount the subscriber heard of, per product
    let (mut watcher, ack) = Client::connect(&addr, json!({})).await;
    assert_eq!(ack, json!({ "type": "connection_ack" }));
    let ids: Vec<String> = shop.products.iter().map(|id| id.to_string()).collect();
    watcher
        .subscribe("figures", PRODUCT_SUBSCRIPTION, json!({ "ids": ids }))
        .await;
    let heard = Arc::new(Mutex::new(BTreeMap::<i64, i64>::new()));
    let watching = tokio::spawn({
        let heard = heard.clone();
        async move {
            while let Some(message) = watcher.try_next(Duration::from_secs(600)).await {
                let product = &message["payload"]["data"]["productFiguresChanged"];
                assert!(product.is_object(), "{message}");
                heard.lock().unwrap().insert(
                    product["id"].as_str().unwrap().parse().unwrap(),
                    product["salesCount"].as_i64().unwrap(),
                );
            }
        }
    });

    let clients = Clients::start(CLIENTS, &shop, &addr);

    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let before_outage = count(&pool, "select count(*) from orders").await;
    cluster.stop_server();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start_server();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (placed, attempts) = clients.stop().await;

    assert_eq!(attempts.unexpected, Vec::<String>::new());
    assert!(attempts.unavailable > 0, "the outage went unnoticed");
    // every request got an answer, and fast: the acquire timeout and a margin
    // for a loaded machine, not the 3 s outage or longer
    assert_eq!(attempts.unanswered, 0);
    assert!(
        attempts.slowest_unavailable < ACQUIRE_TIMEOUT + Duration::from_millis(1_500),
        "an unavailable answer took {:?}",
        attempts.slowest_unavailable
    );

    let drained = common::wait_until_settled(&pool, Duration::from_secs(90)).await;
    assert_eq!(attempts.placed, placed);
    let figures: BTreeMap<i64, i64> =
        sqlx::query_as::<_, (i64, i64)>("select id, sales_count from products")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while *heard.lock().unwrap() != figures {
        assert!(
            Instant::now() < deadline,
            "the subscriber heard {:?}, the figures are {figures:?}",
            heard.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after_outage = count(&pool, "select count(*) from orders").await - before_outage;
    assert!(after_outage > 0, "no order was placed after the restart");
    for child in &mut processes.0 {
        assert_eq!(child.try_wait().unwrap(), None, "a process died");
        assert_eq!(sigterm(child), Some(0));
    }
    common::assert_exact(&pool, placed, &attempts).await;
    // the server's exit ends the subscription
    watching.await.unwrap();
    eprintln!(
        "restart: {placed} orders ({} cancelled; {after_outage} placed or completed after the \
         outage began); \
         {} SERVICE_UNAVAILABLE answers during the 3 s outage, the slowest in {} ms; \
         idle {:.1} s after the clients stopped; 0 mismatches",
        attempts.cancelled,
        attempts.unavailable,
        attempts.slowest_unavailable.as_millis(),
        drained.as_secs_f64(),
    );
    pool.close().await;
}
