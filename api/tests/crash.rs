//! Crashes under load: while 16 clients keep placing orders, worker
//! processes are killed with SIGKILL at random moments and started again (20
//! times), and the server once. Clients do what a real client must: retry
//! with the same idempotency key until they get an answer. Afterwards every
//! order was placed exactly once, every figure equals a recount, and no job
//! is stuck: jobs held by killed workers come back after the heartbeat window
//! (3 s × 5 missed) and run. Every tenth order is cancelled too, so
//! reversals die midway as well. `CRASH_KILLS` sets the number of worker
//! kills.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::common::{Clients, Processes, count, sigterm, spawn};
use tally_test_support::TestDatabase;

mod common;

const CLIENTS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_workers_and_server_lose_and_double_nothing() {
    let worker_kills: usize = std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let database = TestDatabase::new("crash");
    let url = database.url();
    let (pool, shop) = common::open_shop(&url).await;
    let shop = Arc::new(shop);

    let addr = format!("127.0.0.1:{}", common::free_port());
    let serve_env = [("BIND_ADDR", addr.as_str()), ("WORKER_CONCURRENCY", "1")];
    let worker_env = [
        ("WORKER_CONCURRENCY", "1"),
        ("WORKER_POLL_INTERVAL_MS", "50"),
    ];
    let mut processes = Processes(vec![
        spawn(&url, &["serve"], &serve_env),
        spawn(&url, &["worker"], &worker_env),
        spawn(&url, &["worker"], &worker_env),
    ]);
    common::wait_until_ready(&addr).await;

    let clients = Clients::start(CLIENTS, &shop, &addr);

    // the server dies once, halfway: orders it placed wait for workers, and
    // the job its own worker held waits for the heartbeat window
    let server_kill_at = worker_kills / 2;
    let mut last_kill = Instant::now();
    for kill in 0..worker_kills {
        let pause = rand::rng().random_range(100..500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let victim = rand::rng().random_range(1..=2);
        processes.0[victim].kill().unwrap();
        processes.0[victim].wait().unwrap();
        processes.0[victim] = spawn(&url, &["worker"], &worker_env);
        if kill == server_kill_at {
            processes.0[0].kill().unwrap();
            processes.0[0].wait().unwrap();
            processes.0[0] = spawn(&url, &["serve"], &serve_env);
        }
        last_kill = Instant::now();
    }
    // a little more load on the restarted processes, then stop placing
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (placed, attempts) = clients.stop().await;
    assert_eq!(attempts.unexpected, Vec::<String>::new());
    assert_eq!(attempts.placed, placed);

    let drained = common::wait_until_settled(&pool, Duration::from_secs(90)).await;
    let since_last_kill = last_kill.elapsed();
    // apalis's defaults would leave them for 5 minutes: ours is 15 s, plus a
    // heartbeat and a margin for a loaded machine
    assert!(
        since_last_kill < Duration::from_secs(40),
        "jobs of killed workers came back only {since_last_kill:?} after the last kill"
    );
    for child in &mut processes.0 {
        assert_eq!(sigterm(child), Some(0));
    }

    // each order exactly once, though clients sent some of them several times
    common::assert_exact(&pool, placed, &attempts).await;
    let rerun = count(&pool, "select count(*) from apalis.jobs where attempts > 1").await;
    eprintln!(
        "crash: {placed} orders ({} cancelled), {worker_kills} worker kills and 1 server kill; \
         {} requests unanswered and retried; {rerun} jobs re-run after their worker died; \
         idle {:.1} s after the clients stopped ({:.1} s after the last kill); 0 mismatches",
        attempts.cancelled,
        attempts.unanswered,
        drained.as_secs_f64(),
        since_last_kill.as_secs_f64(),
    );
    pool.close().await;
}
