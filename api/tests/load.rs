//! Exact figures under load, against real processes: `tally serve` and two
//! `tally worker` processes on one database, 32 concurrent HTTP clients
//! placing orders (random lines, repeated products, several customers and
//! an admin). When nothing is pending, every figure must equal a recount
//! over the order lines, with zero client errors. `LOAD_ORDERS` sizes it
//! (default 5,000; the long variant in RELIABILITY.md runs 50,000).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};
use sqlx::PgPool;
use tally::auth::{Tokens, Viewer};
use tally::config::Secret;

use crate::common::Database;

mod common;

const SECRET: &str = "load-test-secret-load-test-secret!!";
const CLIENTS: usize = 32;

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn tally(url: &str, args: &[&str], envs: &[(&str, &str)]) -> Child {
    common::tally()
        .args(args)
        .env("DATABASE_URL", url)
        .env("JWT_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("tally")
}

fn sigterm(child: &mut Child) -> Option<i32> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap().code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn figures_stay_exact_under_concurrent_load_across_processes() {
    let orders: usize = std::env::var("LOAD_ORDERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000);
    let database = Database::new("tally_load");
    let url = database.url();
    assert!(tally(&url, &["migrate"], &[]).wait().unwrap().success());
    let pool = PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "insert into products (name, category, price_cents)
         select 'Dish ' || n, (array['pizza', 'burgers', 'salads', 'drinks'])[1 + n % 4], 150 + n * 25
         from generate_series(1, 12) n;
         insert into users (name, email, password_hash, role)
         select 'Customer ' || n, 'c' || n || '@load.test', 'x', 'customer' from generate_series(1, 10) n;
         insert into users (name, email, password_hash, role) values ('Admin', 'admin@load.test', 'x', 'admin');",
    )
    .execute(&pool)
    .await
    .unwrap();
    let products: Vec<i64> = sqlx::query_scalar("select id from products")
        .fetch_all(&pool)
        .await
        .unwrap();
    let users: Vec<(i64, String)> = sqlx::query_as("select id, role from users")
        .fetch_all(&pool)
        .await
        .unwrap();
    let tokens = Tokens::new(&Secret::new(SECRET));
    let tokens: Vec<String> = users
        .iter()
        .map(|(id, role)| {
            let role = if role == "admin" {
                entity::users::Role::Admin
            } else {
                entity::users::Role::Customer
            };
            tokens
                .issue(Viewer { user_id: *id, role })
                .map_err(|e| e.message())
                .unwrap()
        })
        .collect();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut processes = Processes(vec![
        tally(
            &url,
            &["serve"],
            &[("BIND_ADDR", &addr), ("WORKER_CONCURRENCY", "1")],
        ),
        tally(
            &url,
            &["worker"],
            &[
                ("WORKER_CONCURRENCY", "1"),
                ("WORKER_POLL_INTERVAL_MS", "50"),
            ],
        ),
        tally(
            &url,
            &["worker"],
            &[
                ("WORKER_CONCURRENCY", "1"),
                ("WORKER_POLL_INTERVAL_MS", "50"),
            ],
        ),
    ]);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        assert!(Instant::now() < deadline, "tally serve did not get ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let next = Arc::new(AtomicUsize::new(0));
    let errors: Vec<usize> = futures::future::join_all((0..CLIENTS).map(|_| {
        let (http, next, tokens, products, url) = (http.clone(), next.clone(), tokens.clone(), products.clone(), format!("http://{addr}/graphql"));
        async move {
            let mut errors = 0;
            while next.fetch_add(1, Ordering::SeqCst) < orders {
                let (token, items) = {
                    let mut rng = rand::rng();
                    let items: Vec<Value> = (0..rng.random_range(1..=4))
                        .map(|_| json!({ "productId": products[rng.random_range(0..products.len())].to_string(), "quantity": rng.random_range(1..=5) }))
                        .collect();
                    (tokens[rng.random_range(0..tokens.len())].clone(), items)
                };
                let body: Result<Value, _> = async {
                    http.post(&url)
                        .bearer_auth(&token)
                        .json(&json!({ "query": "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }", "variables": { "input": { "items": items } } }))
                        .send()
                        .await?
                        .json()
                        .await
                }
                .await;
                if !body.is_ok_and(|b: Value| b.get("errors").is_none()) {
                    errors += 1;
                }
            }
            errors
        }
    }))
    .await;
    assert_eq!(errors.iter().sum::<usize>(), 0, "client errors");

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let busy: i64 = sqlx::query_scalar(
            "select (select count(*) from orders where analytics_applied_at is null)
                  + (select count(*) from apalis.jobs where status <> 'Done')",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if busy == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{busy} orders or jobs still pending after 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for child in &mut processes.0 {
        assert_eq!(sigterm(child), Some(0));
    }

    let placed: i64 = sqlx::query_scalar("select count(*) from orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(placed, orders as i64);
    let mismatches: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(jobs::rebuild::FIGURE_MISMATCHES_SQL))
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(mismatches, 0);
    pool.close().await;
}
