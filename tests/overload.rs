//! Overload: past `max_in_flight` requests are refused at once with a 503,
//! and a database that is saturated or too slow costs a request a retryable
//! `SERVICE_UNAVAILABLE` error (never a hang, never a half-written order).
//!
//! The database is made slow the way production makes it slow: a connection
//! of the test's own holds a table lock, so the API's statements on that
//! table wait for it until their `statement_timeout`.

use std::time::{Duration, Instant};

use jobs::JobKind;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::harness::{Options, TestApp, data, error_code, error_message};

const SHED: &str = "the server is at its limit of requests in flight; try again shortly";
const SATURATED: &str = "the database is unavailable or saturated; try again shortly";
const TOO_SLOW: &str = "the database took too long to answer; try again shortly";

/// Touches `products` with one statement and nothing else.
const PRODUCTS: &str = "query($first: Int) { products(first: $first) { nodes { id name } } }";

/// The variables of the `n`th of concurrent reads: each asks for a page of
/// its own size, so each runs (identical anonymous queries would wait for
/// one of them to compute the answer they share: `graphql::public_answers`).
fn page(n: usize) -> Value {
    json!({ "first": 1 + n % 100 })
}

/// No request may take longer than this: a hang check, not a performance bound.
const HANG_BOUND: Duration = Duration::from_secs(20);

/// One answer of POST /graphql, as the client saw it.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
    elapsed: Duration,
}

impl Answer {
    fn code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }

    fn message(&self) -> Option<&str> {
        self.body["errors"][0]["message"].as_str()
    }
}

async fn post(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> Answer {
    let start = Instant::now();
    let mut request = app
        .http()
        .post(app.url("/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer = async {
        let response = request.send().await.expect("request");
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = response.json().await.expect("JSON body");
        (status, retry_after, body)
    };
    let (status, retry_after, body) = tokio::time::timeout(HANG_BOUND, answer)
        .await
        .unwrap_or_else(|_| panic!("no answer within {HANG_BOUND:?}: the request hangs"));
    Answer {
        status,
        retry_after,
        body,
        elapsed: start.elapsed(),
    }
}

/// A transaction of the test's own, on a connection outside every pool of
/// the app, holding a table lock until [`TableLock::release`].
struct TableLock(PgConnection);

impl TableLock {
    async fn take(app: &TestApp, lock: &'static str) -> Self {
        let mut conn = PgConnection::connect_with(&app.pool.connect_options())
            .await
            .expect("a connection of the test's own");
        sqlx::raw_sql("begin").execute(&mut conn).await.unwrap();
        sqlx::raw_sql(lock).execute(&mut conn).await.unwrap();
        Self(conn)
    }

    async fn release(mut self) {
        sqlx::raw_sql("rollback")
            .execute(&mut self.0)
            .await
            .unwrap();
        self.0.close().await.unwrap();
    }
}

/// How many of the API's request connections wait for a lock now.
async fn requests_waiting_for_a_lock(app: &TestApp, query_like: &str) -> i64 {
    app.count(&format!(
        "select count(*) from pg_stat_activity
         where datname = current_database() and application_name = 'tally-requests'
           and wait_event_type = 'Lock' and query like '{query_like}'"
    ))
    .await
}

/// Polls until `n` request connections wait for a lock on a statement like
/// `query_like`; false if that never happens within 10 s (before the
/// requests' own hang bound, so a failure says what did not happen).
async fn until_waiting(app: &TestApp, n: i64, query_like: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if requests_waiting_for_a_lock(app, query_like).await == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

fn product_names(answer: &Answer) -> Vec<String> {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    data(&answer.body)["products"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_the_in_flight_limit_requests_are_refused_at_once_and_the_rest_fail_in_time() {
    let app = TestApp::spawn_with(Options {
        worker_pools: 0,
        configure: |c| {
            c.db_pool_size = 2;
            c.db_acquire_timeout = Duration::from_secs(3);
            c.db_statement_timeout = Duration::from_secs(4);
            // held locks keep requests in flight: up to the statement timeout
            c.db_lock_timeout = c.db_statement_timeout;
            c.http.max_in_flight = 8;
        },
        ..Options::default()
    })
    .await;
    let admin = app.admin_token().await;
    app.create_product(&admin, "Margherita", "pizza", "9.00", &[])
        .await;

    let lock = TableLock::take(&app, "lock table products in access exclusive mode").await;
    // all 40 at once, well within the 3 s acquire timeout: 8 are let in, 2 of
    // them get the pool's connections and wait for the lock until their
    // statement timeout (4 s), 6 wait for a connection until theirs (3 s)
    let answers =
        futures::future::join_all((0..40).map(|n| post(&app, None, PRODUCTS, page(n)))).await;
    lock.release().await;

    let shed: Vec<_> = answers
        .iter()
        .filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    let admitted: Vec<_> = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .collect();
    assert_eq!(shed.len(), 32, "{answers:#?}");
    assert_eq!(admitted.len(), 8, "{answers:#?}");
    for answer in &shed {
        assert_eq!(answer.retry_after.as_deref(), Some("1"), "{answer:?}");
        assert_eq!(
            answer.body,
            json!({ "data": null, "errors": [{ "message": SHED, "extensions": { "code": "SERVICE_UNAVAILABLE" } }] })
        );
        // refused, not queued: no refused request waited for the pool
        assert!(answer.elapsed < Duration::from_secs(3), "{answer:?}");
    }
    for answer in &admitted {
        assert_eq!(answer.code(), Some("SERVICE_UNAVAILABLE"), "{answer:?}");
        assert_eq!(answer.body["data"], Value::Null, "{answer:?}");
        assert_eq!(answer.body["errors"].as_array().unwrap().len(), 1);
        assert_eq!(answer.retry_after, None, "{answer:?}");
    }
    let saturated: Vec<_> = admitted
        .iter()
        .filter(|a| a.message() == Some(SATURATED))
        .collect();
    let too_slow: Vec<_> = admitted
        .iter()
        .filter(|a| a.message() == Some(TOO_SLOW))
        .collect();
    assert_eq!(saturated.len(), 6, "{admitted:#?}");
    assert_eq!(too_slow.len(), 2, "{admitted:#?}");
    // each waited out its own limit, no less
    assert!(
        saturated
            .iter()
            .all(|a| a.elapsed >= Duration::from_secs(3))
    );
    assert!(too_slow.iter().all(|a| a.elapsed >= Duration::from_secs(4)));

    // the lock gone, the same query answers, and every slot and connection
    // the failed requests held is back: 8 at once all get in
    let after = post(&app, None, PRODUCTS, page(0)).await;
    assert_eq!(after.retry_after, None);
    assert_eq!(product_names(&after), ["Margherita"]);
    let again =
        futures::future::join_all((0..8).map(|n| post(&app, None, PRODUCTS, page(n)))).await;
    for answer in &again {
        assert_eq!(product_names(answer), ["Margherita"]);
    }

    // operators see both kinds in the metrics
    let metrics = app.metrics().await;
    for line in [
        "tally_requests_unavailable_total{reason=\"in_flight_limit\"} 32",
        "tally_requests_unavailable_total{reason=\"database\"} 8",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_at_the_in_flight_limit_nothing_is_shed_and_one_more_is() {
    let app = TestApp::spawn_with(Options {
        worker_pools: 0,
        configure: |c| {
            // a connection for each, and time enough to hold them all in flight
            c.db_pool_size = 10;
            c.db_statement_timeout = Duration::from_secs(30);
            c.db_lock_timeout = c.db_statement_timeout;
            c.http.max_in_flight = 8;
        },
        ..Options::default()
    })
    .await;
    let admin = app.admin_token().await;
    app.create_product(&admin, "Margherita", "pizza", "9.00", &[])
        .await;

    // the lock only keeps the 8 in flight together (so a limit of 7 could not
    // slip through by their finishing one after the other); it is released
    // long before their statement timeout
    let lock = TableLock::take(&app, "lock table products in access exclusive mode").await;
    let eight = futures::future::join_all((0..8).map(|n| post(&app, None, PRODUCTS, page(n))));
    let probe = async {
        assert!(
            until_waiting(&app, 8, "%products%").await,
            "the 8 requests never all waited in the database"
        );
        // a ninth, while the 8 are in flight, is one too many; the lock goes
        // a little later regardless, so a ninth let in shows as a 200, not
        // as a hang
        let (ninth, ()) = tokio::join!(post(&app, None, PRODUCTS, page(8)), async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            lock.release().await;
        });
        ninth
    };
    let (eight, ninth) = tokio::join!(eight, probe);

    assert_eq!(ninth.status, StatusCode::SERVICE_UNAVAILABLE, "{ninth:?}");
    assert_eq!(ninth.retry_after.as_deref(), Some("1"));
    assert_eq!(error_code(&ninth.body), "SERVICE_UNAVAILABLE");
    assert_eq!(error_message(&ninth.body), SHED);
    for answer in &eight {
        assert_eq!(answer.retry_after, None, "{answer:?}");
        assert_eq!(product_names(answer), ["Margherita"]);
    }
}

const PLACE_ORDER: &str =
    "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id orderNumber total } }";
const PLACE_ORDER_FROM_CART: &str = "mutation($input: PlaceOrderFromCartInput) { placeOrderFromCart(input: $input) { id orderNumber total } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_whose_insert_times_out_writes_nothing_and_its_retry_places_it_once() {
    let app = TestApp::spawn_with(Options {
        configure: |c| {
            // the insert waits on a held lock until the statement timeout
            c.db_statement_timeout = Duration::from_secs(2);
            c.db_lock_timeout = c.db_statement_timeout;
        },
        ..Options::default()
    })
    .await;
    let admin = app.admin_token().await;
    let pizza = app
        .create_product(&admin, "Margherita", "pizza", "9.00", &[])
        .await;
    let pizza = pizza["id"].as_str().unwrap().to_owned();
    let (token, user_id) = app.register_customer("Ann").await;
    let cart = app
        .gql_as(
            &token,
            "mutation($input: AddToCartInput!) { addToCart(input: $input) { total } }",
            json!({ "input": { "productId": pizza, "quantity": 2 } }),
        )
        .await;
    assert_eq!(data(&cart)["addToCart"]["total"], "18.00");
    let cart_before = app
        .rows("select id, user_id, product_id, variant_id, quantity from cart_lines order by id")
        .await;
    assert_eq!(cart_before.len(), 1);
    let products_before = app.rows("select * from products order by id").await;

    let by_items = json!({ "input": {
        "items": [{ "productId": pizza, "quantity": 3 }],
        "idempotencyKey": "ann-1",
    }});
    let from_cart = json!({ "input": { "idempotencyKey": "ann-cart-1" } });

    // EXCLUSIVE lets reads of orders through (the idempotency look-up) and
    // blocks writes: the statement that waits is the placement, for its insert
    let lock = TableLock::take(&app, "lock table orders in exclusive mode").await;
    for (mutation, variables) in [
        (PLACE_ORDER, &by_items),
        (PLACE_ORDER_FROM_CART, &from_cart),
    ] {
        let (answer, insert_waited) = tokio::join!(
            post(&app, Some(&token), mutation, variables.clone()),
            // the placement statement, by its first line (pg_stat_activity
            // keeps only its first kilobyte, before the insert)
            until_waiting(&app, 1, "-- Places one order in one statement%"),
        );
        assert!(
            insert_waited,
            "the order's insert never waited for the lock: {answer:?}"
        );
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.retry_after, None);
        assert_eq!(answer.body["data"], Value::Null, "{answer:?}");
        assert_eq!(error_code(&answer.body), "SERVICE_UNAVAILABLE");
        assert_eq!(error_message(&answer.body), TOO_SLOW);
        assert!(answer.elapsed >= Duration::from_secs(2), "{answer:?}");
    }
    lock.release().await;

    // nothing of either order was written, the cart is as it was
    assert_eq!(app.count("select count(*) from orders").await, 0);
    assert_eq!(app.count("select count(*) from order_lines").await, 0);
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 0);
    assert_eq!(
        app.rows(
            "select id, user_id, product_id, variant_id, quantity from cart_lines order by id"
        )
        .await,
        cart_before
    );
    assert_eq!(
        app.rows("select * from products order by id").await,
        products_before
    );

    // the same requests again, the lock gone: each order is placed once
    let placed = app.gql_as(&token, PLACE_ORDER, by_items.clone()).await;
    assert_eq!(data(&placed)["placeOrder"]["total"], "27.00");
    let order_id: i64 = data(&placed)["placeOrder"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        app.rows("select id, user_id, total_cents, idempotency_key from orders")
            .await,
        vec![
            json!({ "id": order_id, "user_id": user_id, "total_cents": 2700, "idempotency_key": "ann-1" })
        ]
    );
    assert_eq!(
        app.rows("select order_id, quantity from order_lines").await,
        vec![json!({ "order_id": order_id, "quantity": 3 })]
    );
    assert_eq!(
        app.rows("select idempotency_key from apalis.jobs").await,
        vec![json!({ "idempotency_key": JobKind::Count.key(order_id) })]
    );
    // an order by items leaves the cart alone
    assert_eq!(
        app.rows(
            "select id, user_id, product_id, variant_id, quantity from cart_lines order by id"
        )
        .await,
        cart_before
    );

    let placed = app
        .gql_as(&token, PLACE_ORDER_FROM_CART, from_cart.clone())
        .await;
    assert_eq!(data(&placed)["placeOrderFromCart"]["total"], "18.00");
    assert_eq!(
        app.rows("select total_cents, idempotency_key from orders order by id")
            .await,
        vec![
            json!({ "total_cents": 2700, "idempotency_key": "ann-1" }),
            json!({ "total_cents": 1800, "idempotency_key": "ann-cart-1" }),
        ]
    );
    assert_eq!(app.count("select count(*) from order_lines").await, 2);
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 2);
    assert_eq!(app.count("select count(*) from cart_lines").await, 0);
}
