//! Overload against the real binary: with its database blocked, `tally
//! serve` faces 1,000 concurrent clients for 5 s. Every request gets an
//! answer, either refused at once (503, past `MAX_REQUESTS_IN_FLIGHT`) or
//! SERVICE_UNAVAILABLE within the acquire timeout; none waits longer. The
//! process's peak memory is printed beside its idle size (RELIABILITY.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;

use crate::common::{Processes, sigterm, spawn};
use tally_test_support::TestDatabase;

mod common;

const CLIENTS: usize = 1_000;

#[derive(Default, Debug)]
struct Tally {
    refused: usize,
    unavailable: usize,
    other: Vec<String>,
    slowest: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blocked_database_under_a_thousand_clients_costs_fast_errors_and_bounded_memory() {
    let database = TestDatabase::new("overload");
    let url = database.url();
    let (pool, shop) = common::open_shop(&url).await;
    let addr = format!("127.0.0.1:{}", common::free_port());
    let mut processes = Processes(vec![spawn(
        &url,
        &["serve"],
        &[
            ("BIND_ADDR", &addr),
            ("WORKER_CONCURRENCY", "1"),
            ("DATABASE_POOL_SIZE", "4"),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "1000"),
            ("DATABASE_STATEMENT_TIMEOUT_MS", "1000"),
            ("MAX_REQUESTS_IN_FLIGHT", "64"),
            // the 1,000 clients all come from 127.0.0.1 (per-address limits:
            // api/tests/attacks.rs)
            ("MAX_CONNECTIONS_PER_ADDRESS", "2000"),
        ],
    )]);
    common::wait_until_ready(&addr).await;
    let pid = processes.0[0].id();
    let idle_kib = memory_kib(pid, "VmRSS");

    // every placement reads prices from products: a lock blocks them all
    let mut blocker = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("begin; lock table products in access exclusive mode")
        .execute(&mut blocker)
        .await
        .unwrap();

    let shop = Arc::new(shop);
    let until = Instant::now() + Duration::from_secs(5);
    let tallies = futures::future::join_all((0..CLIENTS).map(|_| {
        let (shop, addr) = (shop.clone(), addr.clone());
        tokio::spawn(async move {
            // a connection per client, as separate apps would have
            let http = reqwest::Client::new();
            let mut tally = Tally::default();
            while Instant::now() < until {
                let (token, items) = shop.random_order();
                let started = Instant::now();
                let answer = http
                    .post(format!("http://{addr}/graphql"))
                    .bearer_auth(token)
                    .json(&serde_json::json!({
                        "query": common::PLACE_ORDER,
                        "variables": { "input": { "items": items } },
                    }))
                    .timeout(Duration::from_secs(20))
                    .send()
                    .await;
                tally.slowest = tally.slowest.max(started.elapsed());
                let (status, body) = match answer {
                    Ok(response) => (
                        response.status().as_u16(),
                        response.json::<Value>().await.unwrap_or_default(),
                    ),
                    Err(e) => {
                        tally.other.push(e.to_string());
                        continue;
                    }
                };
                match (status, body["errors"][0]["extensions"]["code"].as_str()) {
                    (503, Some("SERVICE_UNAVAILABLE")) => tally.refused += 1,
                    (200, Some("SERVICE_UNAVAILABLE")) => tally.unavailable += 1,
                    _ => tally.other.push(format!("{status} {body}")),
                }
            }
            tally
        })
    }))
    .await;
    let peak_kib = memory_kib(pid, "VmHWM");
    sqlx::raw_sql("rollback")
        .execute(&mut blocker)
        .await
        .unwrap();

    let mut total = Tally::default();
    for tally in tallies {
        let tally = tally.unwrap();
        total.refused += tally.refused;
        total.unavailable += tally.unavailable;
        total.other.extend(tally.other);
        total.slowest = total.slowest.max(tally.slowest);
    }
    assert_eq!(total.other, Vec::<String>::new());
    assert!(total.refused > 0 && total.unavailable > 0, "{total:?}");
    // the acquire or statement timeout (1 s) and a wide margin for a machine
    // running this many clients beside the server: a hang check
    assert!(total.slowest < Duration::from_secs(10), "{total:?}");
    // nothing was written, and the server answers normally again
    let orders: i64 = sqlx::query_scalar("select count(*) from orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(orders, 0);
    let (token, items) = shop.random_order();
    let placed = common::post_graphql(
        &addr,
        &token,
        common::PLACE_ORDER,
        serde_json::json!({ "input": { "items": items } }),
    )
    .await;
    assert!(placed.get("errors").is_none(), "{placed}");
    assert_eq!(sigterm(&mut processes.0[0]), Some(0));
    eprintln!(
        "overload: {CLIENTS} clients for 5 s on a blocked database: {} refused at once (503), \
         {} SERVICE_UNAVAILABLE after the 1 s timeouts, the slowest answer in {} ms; \
         tally serve's memory {} MiB idle, {} MiB at its peak",
        total.refused,
        total.unavailable,
        total.slowest.as_millis(),
        idle_kib / 1024,
        peak_kib / 1024,
    );
    pool.close().await;
}

/// A field of /proc/<pid>/status, in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}
