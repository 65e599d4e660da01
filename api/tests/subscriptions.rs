//! Subscriptions across processes, as deployed: `tally serve` runs no
//! workers, a separate `tally worker` applies every order, and a real
//! WebSocket client (graphql-transport-ws) subscribed to the server hears of
//! it through PostgreSQL NOTIFY. Also: an order settled before the
//! subscription, whose state comes at once; subscriptions that are refused;
//! a LISTEN connection lost and regained without a change being missed, even
//! when the database cannot answer the read that follows; the older
//! `graphql-ws` protocol; and the caps on subscriptions per connection and on
//! connections.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use tally::money::Cents;

use crate::common::{
    Client, GRAPHQL_WS, PRODUCT_SUBSCRIPTION, Processes, Shop, bearer, spawn, upgrade_request,
};
use tally_test_support::TestDatabase;

mod common;

const ORDER_SUBSCRIPTION: &str = "subscription ($id: ID!) {
    orderAnalyticsApplied(orderId: $id) { orderNumber status analyticsStatus total }
}";

/// The data of a request that must succeed.
async fn graphql(addr: &str, token: &str, query: &str, variables: Value) -> Value {
    let body = common::post_graphql(addr, token, query, variables).await;
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

async fn place(addr: &str, token: &str, items: Value) -> Value {
    graphql(
        addr,
        token,
        "mutation ($input: PlaceOrderInput!) {
            placeOrder(input: $input) { id orderNumber analyticsStatus }
        }",
        json!({ "input": { "items": items } }),
    )
    .await["placeOrder"]
        .clone()
}

async fn price_of(pool: &PgPool, product: i64) -> i64 {
    sqlx::query_scalar("select price_cents from products where id = $1")
        .bind(product)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn cents(cents: i64) -> String {
    Cents(cents).to_string()
}

struct Setup {
    _database: TestDatabase,
    processes: Processes,
    pool: PgPool,
    shop: Shop,
    url: String,
    addr: String,
}

/// `tally serve` without workers, on a shop of its own.
async fn serve_without_workers() -> Setup {
    serve_without_workers_with(&[]).await
}

async fn serve_without_workers_with(envs: &[(&str, &str)]) -> Setup {
    let database = TestDatabase::new("subscriptions");
    let url = database.url();
    let (pool, shop) = common::open_shop(&url).await;
    let addr = format!("127.0.0.1:{}", common::free_port());
    let mut envs = envs.to_vec();
    envs.extend([("BIND_ADDR", addr.as_str()), ("WORKER_CONCURRENCY", "0")]);
    let processes = Processes(vec![spawn(&url, &["serve"], &envs)]);
    common::wait_until_ready(&addr).await;
    Setup {
        _database: database,
        processes,
        pool,
        shop,
        url,
        addr,
    }
}

fn start_worker(setup: &mut Setup) {
    setup.processes.0.push(spawn(
        &setup.url,
        &["worker"],
        &[
            ("WORKER_CONCURRENCY", "1"),
            ("WORKER_POLL_INTERVAL_MS", "50"),
        ],
    ));
}

const WAIT: Duration = Duration::from_secs(30);

/// Ends the server's LISTEN connection, the way a network cut or a database
/// restart would: whatever is announced until it is back goes unheard.
async fn cut_listener(pool: &PgPool) {
    let terminated: i64 = sqlx::query_scalar(
        "select count(*) from (
             select pg_terminate_backend(pid) from pg_stat_activity
             where application_name = 'tally-listener' and datname = current_database()
         ) t",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(terminated, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_figures_reach_the_servers_subscribers() {
    let mut setup = serve_without_workers().await;
    let addr = setup.addr.clone();
    let customer = setup.shop.tokens[0].clone();
    let (pizza, burger) = (setup.shop.products[0], setup.shop.products[1]);
    let (pizza_price, burger_price) = (
        price_of(&setup.pool, pizza).await,
        price_of(&setup.pool, burger).await,
    );

    // no worker yet: the order waits
    let order = place(
        &addr,
        &customer,
        json!([
            { "productId": pizza.to_string(), "quantity": 3 },
            { "productId": burger.to_string(), "quantity": 2 },
            { "productId": pizza.to_string(), "quantity": 1 },
        ]),
    )
    .await;
    assert_eq!(order["analyticsStatus"], "PENDING");
    let order_id = order["id"].as_str().unwrap().to_owned();

    let (mut client, ack) = Client::connect(&addr, bearer(&customer)).await;
    assert_eq!(ack, json!({ "type": "connection_ack" }));
    client
        .subscribe("order", ORDER_SUBSCRIPTION, json!({ "id": order_id }))
        .await;
    client
        .subscribe(
            "products",
            PRODUCT_SUBSCRIPTION,
            json!({ "ids": [pizza.to_string(), burger.to_string()] }),
        )
        .await;
    // the products as they are, at once; the order has nothing to say yet
    for product in [pizza, burger] {
        assert_eq!(
            client.next(WAIT).await,
            json!({ "id": "products", "type": "next", "payload": { "data": { "productFiguresChanged": {
                "id": product.to_string(), "salesCount": 0, "totalRevenue": "0.00", "rating": 4.0,
            } } } })
        );
    }
    client.assert_quiet(Duration::from_millis(500)).await;

    // the worker, another process, counts the order
    start_worker(&mut setup);
    let mut messages = Vec::new();
    for _ in 0..3 {
        messages.push(client.next(WAIT).await);
    }
    messages.sort_by_key(|m| m["id"].as_str().unwrap().to_owned());
    let total = cents(4 * pizza_price + 2 * burger_price);
    assert_eq!(
        messages,
        vec![
            json!({ "id": "order", "type": "next", "payload": { "data": { "orderAnalyticsApplied": {
                "orderNumber": order["orderNumber"], "status": "PLACED",
                "analyticsStatus": "APPLIED", "total": total,
            } } } }),
            json!({ "id": "products", "type": "next", "payload": { "data": { "productFiguresChanged": {
                "id": pizza.to_string(), "salesCount": 4, "totalRevenue": cents(4 * pizza_price), "rating": 4.0,
            } } } }),
            json!({ "id": "products", "type": "next", "payload": { "data": { "productFiguresChanged": {
                "id": burger.to_string(), "salesCount": 2, "totalRevenue": cents(2 * burger_price), "rating": 4.0,
            } } } }),
        ]
    );

    // a cancellation is taken back out by the worker: the order's stream
    // says so and ends, the products' figures go back to zero
    graphql(
        &addr,
        &customer,
        "mutation ($id: ID!) { cancelOrder(id: $id) { status } }",
        json!({ "id": order_id }),
    )
    .await;
    let mut messages = Vec::new();
    for _ in 0..4 {
        messages.push(client.next(WAIT).await);
    }
    // the order's two messages in their order, the products' in theirs
    let (order_messages, product_messages): (Vec<_>, Vec<_>) =
        messages.into_iter().partition(|m| m["id"] == "order");
    assert_eq!(
        order_messages,
        vec![
            json!({ "id": "order", "type": "next", "payload": { "data": { "orderAnalyticsApplied": {
                "orderNumber": order["orderNumber"], "status": "CANCELLED",
                "analyticsStatus": "REVERSED", "total": total,
            } } } }),
            json!({ "id": "order", "type": "complete" }),
        ]
    );
    assert_eq!(
        product_messages,
        vec![
            json!({ "id": "products", "type": "next", "payload": { "data": { "productFiguresChanged": {
                "id": pizza.to_string(), "salesCount": 0, "totalRevenue": "0.00", "rating": 4.0,
            } } } }),
            json!({ "id": "products", "type": "next", "payload": { "data": { "productFiguresChanged": {
                "id": burger.to_string(), "salesCount": 0, "totalRevenue": "0.00", "rating": 4.0,
            } } } }),
        ]
    );

    // subscribing to an order settled already: its state at once, then the end
    let (mut late, _) = Client::connect(&addr, bearer(&customer)).await;
    late.subscribe("late", ORDER_SUBSCRIPTION, json!({ "id": order_id }))
        .await;
    assert_eq!(
        late.next(WAIT).await["payload"]["data"]["orderAnalyticsApplied"]["analyticsStatus"],
        "REVERSED"
    );
    assert_eq!(
        late.next(WAIT).await,
        json!({ "id": "late", "type": "complete" })
    );

    // the server loses its LISTEN connection; what changes meanwhile still
    // reaches the subscriber once it is back
    cut_listener(&setup.pool).await;
    place(
        &addr,
        &customer,
        json!([{ "productId": burger.to_string(), "quantity": 5 }]),
    )
    .await;
    assert_eq!(
        client.next(WAIT).await,
        json!({ "id": "products", "type": "next", "payload": { "data": { "productFiguresChanged": {
            "id": burger.to_string(), "salesCount": 5, "totalRevenue": cents(5 * burger_price), "rating": 4.0,
        } } } })
    );
    // and nothing twice
    client.assert_quiet(Duration::from_millis(500)).await;
}

const TRENDING_SUBSCRIPTION: &str = "subscription($first: Int) {
    trendingChanged(window: LAST_HOUR, first: $first) { units product { id } }
}";

fn trending(id: &str, list: &[(i64, i64)]) -> Value {
    let list: Vec<Value> = list
        .iter()
        .map(|(product, units)| json!({ "units": units, "product": { "id": product.to_string() } }))
        .collect();
    json!({ "id": id, "type": "next", "payload": { "data": { "trendingChanged": list } } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_sells_now_reaches_a_dashboard_when_it_changes() {
    let mut setup = serve_without_workers().await;
    let addr = setup.addr.clone();
    let customer = setup.shop.tokens[0].clone();
    let (pizza, burger) = (setup.shop.products[0], setup.shop.products[1]);

    // anyone may watch; nothing sold yet
    let (mut client, _) = Client::connect(&addr, json!({})).await;
    client
        .subscribe("top", TRENDING_SUBSCRIPTION, json!({ "first": 2 }))
        .await;
    client
        .subscribe("first", TRENDING_SUBSCRIPTION, json!({ "first": 1 }))
        .await;
    let mut opening = vec![client.next(WAIT).await, client.next(WAIT).await];
    opening.sort_by_key(|m| m["id"].as_str().unwrap().to_owned());
    assert_eq!(opening, [trending("first", &[]), trending("top", &[])]);

    // an admin's dashboard watches a product's recent sales through its
    // figures: they change in the run that changes its sales
    let admin = setup.shop.tokens[10].clone();
    let (mut dashboard, _) = Client::connect(&addr, bearer(&admin)).await;
    let now = chrono::Utc::now();
    dashboard
        .subscribe(
            "sales",
            "subscription($ids: [ID!]!, $from: DateTime!, $to: DateTime!) {
                productFiguresChanged(productIds: $ids) {
                    salesCount salesSeries(from: $from, to: $to, by: HOUR) { units orders }
                }
            }",
            json!({
                "ids": [pizza.to_string()],
                "from": (now - chrono::TimeDelta::hours(1)).to_rfc3339(),
                "to": (now + chrono::TimeDelta::hours(1)).to_rfc3339(),
            }),
        )
        .await;
    let sales = |count: i64, units: i64, orders: i64| {
        json!({ "id": "sales", "type": "next", "payload": { "data": { "productFiguresChanged": {
            "salesCount": count, "salesSeries": { "units": units, "orders": orders },
        } } } })
    };
    assert_eq!(dashboard.next(WAIT).await, sales(0, 0, 0));

    place(
        &addr,
        &customer,
        json!([{ "productId": pizza.to_string(), "quantity": 3 }]),
    )
    .await;
    start_worker(&mut setup);
    let mut counted = vec![client.next(WAIT).await, client.next(WAIT).await];
    counted.sort_by_key(|m| m["id"].as_str().unwrap().to_owned());
    assert_eq!(
        counted,
        [
            trending("first", &[(pizza, 3)]),
            trending("top", &[(pizza, 3)])
        ]
    );
    assert_eq!(dashboard.next(WAIT).await, sales(3, 3, 1));

    // a best seller below the first place changes the longer list only
    place(
        &addr,
        &customer,
        json!([{ "productId": burger.to_string(), "quantity": 1 }]),
    )
    .await;
    assert_eq!(
        client.next(WAIT).await,
        trending("top", &[(pizza, 3), (burger, 1)])
    );
    client.assert_quiet(Duration::from_millis(1500)).await;

    let (mut other, _) = Client::connect(&addr, json!({})).await;
    other
        .subscribe(
            "bad",
            "subscription { trendingChanged(first: 21) { units } }",
            json!({}),
        )
        .await;
    assert_eq!(other.outcome("bad").await, "BAD_USER_INPUT");
}

/// After its LISTEN connection comes back, the server has every subscriber
/// read again what it watches. If the database cannot answer that read (a
/// restart, a saturated pool), the subscriber waits it out and then sends
/// what changed: no error the client could do nothing with, and no change
/// lost with the read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_waits_out_a_database_that_cannot_answer() {
    let setup = serve_without_workers_with(&[("DATABASE_STATEMENT_TIMEOUT_MS", "200")]).await;
    let burger = setup.shop.products[1];
    let (mut client, _) = Client::connect(&setup.addr, json!({})).await;
    client
        .subscribe(
            "burger",
            PRODUCT_SUBSCRIPTION,
            json!({ "ids": [burger.to_string()] }),
        )
        .await;
    assert_eq!(
        client.next(WAIT).await["payload"]["data"]["productFiguresChanged"]["salesCount"],
        0
    );

    // a change whose announcement is lost (written here without one), then
    // the products table out of reach past the server's statement timeout
    sqlx::query("update products set sales_count = 7 where id = $1")
        .bind(burger)
        .execute(&setup.pool)
        .await
        .unwrap();
    let mut lock = setup.pool.begin().await.unwrap();
    sqlx::query("lock table products in access exclusive mode")
        .execute(&mut *lock)
        .await
        .unwrap();
    cut_listener(&setup.pool).await;
    // the re-read times out three times or more (200 ms each, with pauses
    // from 100 ms, doubling); meanwhile the subscriber hears nothing, errors
    // included
    client.assert_quiet(Duration::from_millis(2_000)).await;
    lock.rollback().await.unwrap();

    assert_eq!(
        client.next(WAIT).await,
        json!({ "id": "burger", "type": "next", "payload": { "data": { "productFiguresChanged": {
            "id": burger.to_string(), "salesCount": 7, "totalRevenue": "0.00", "rating": 4.0,
        } } } })
    );
    client.assert_quiet(Duration::from_millis(500)).await;
}

/// subscriptions-transport-ws clients speak the older `graphql-ws` protocol:
/// `start`, `data`, `stop`, and a `connection_error` for a bad token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_older_graphql_ws_protocol_works_too() {
    let mut setup = serve_without_workers().await;
    let addr = setup.addr.clone();
    let customer = setup.shop.tokens[0].clone();
    let burger = setup.shop.products[1];
    let burger_price = price_of(&setup.pool, burger).await;

    let (_, refused) = Client::connect_using(&addr, GRAPHQL_WS, bearer("not-a-token")).await;
    assert_eq!(
        refused,
        json!({ "type": "connection_error", "payload": { "message": "invalid or expired token" } })
    );

    let (mut client, ack) = Client::connect_using(&addr, GRAPHQL_WS, bearer(&customer)).await;
    assert_eq!(ack, json!({ "type": "connection_ack" }));
    client
        .send(json!({ "id": "1", "type": "start", "payload": {
            "query": PRODUCT_SUBSCRIPTION, "variables": { "ids": [burger.to_string()] },
        } }))
        .await;
    assert_eq!(
        client.next(WAIT).await,
        json!({ "id": "1", "type": "data", "payload": { "data": { "productFiguresChanged": {
            "id": burger.to_string(), "salesCount": 0, "totalRevenue": "0.00", "rating": 4.0,
        } } } })
    );

    start_worker(&mut setup);
    place(
        &addr,
        &customer,
        json!([{ "productId": burger.to_string(), "quantity": 2 }]),
    )
    .await;
    assert_eq!(
        client.next(WAIT).await,
        json!({ "id": "1", "type": "data", "payload": { "data": { "productFiguresChanged": {
            "id": burger.to_string(), "salesCount": 2, "totalRevenue": cents(2 * burger_price), "rating": 4.0,
        } } } })
    );

    client.send(json!({ "id": "1", "type": "stop" })).await;
    assert_eq!(
        client.next(WAIT).await,
        json!({ "id": "1", "type": "complete" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_subscriptions_say_why() {
    let setup = serve_without_workers().await;
    let addr = setup.addr.clone();
    let (owner, stranger) = (setup.shop.tokens[0].clone(), setup.shop.tokens[1].clone());
    let order = place(
        &addr,
        &owner,
        json!([{ "productId": setup.shop.products[0].to_string(), "quantity": 1 }]),
    )
    .await;

    // a bad token ends the connection before any operation (async-graphql
    // closes with 1002 where the protocol suggests 4403)
    let (_, answer) = Client::connect(&addr, bearer("not-a-token")).await;
    assert_eq!(
        answer,
        json!({ "close": 1002, "reason": "invalid or expired token" })
    );

    let (mut client, ack) = Client::connect(&addr, bearer(&stranger)).await;
    assert_eq!(ack, json!({ "type": "connection_ack" }));
    // someone else's order does not exist for this customer
    client
        .subscribe("theirs", ORDER_SUBSCRIPTION, json!({ "id": order["id"] }))
        .await;
    let refused = client.next(WAIT).await;
    assert_eq!(refused["id"], "theirs", "{refused}");
    assert_eq!(refused["type"], "next", "{refused}");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{refused}"
    );
    assert_eq!(
        client.next(WAIT).await,
        json!({ "id": "theirs", "type": "complete" })
    );

    // products need no account, but must exist, and at most 100 at once
    let (mut anonymous, _) = Client::connect(&addr, json!({})).await;
    anonymous
        .subscribe(
            "unknown",
            PRODUCT_SUBSCRIPTION,
            json!({ "ids": [setup.shop.products[0].to_string(), "999999"] }),
        )
        .await;
    let unknown = anonymous.next(WAIT).await;
    assert_eq!(
        unknown["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{unknown}"
    );
    assert_eq!(
        unknown["payload"]["errors"][0]["message"],
        "product 999999 does not exist"
    );
    anonymous.next(WAIT).await;
    let too_many: Vec<String> = (1..=101).map(|id| id.to_string()).collect();
    anonymous
        .subscribe("many", PRODUCT_SUBSCRIPTION, json!({ "ids": too_many }))
        .await;
    let many = anonymous.next(WAIT).await;
    assert_eq!(
        many["payload"]["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{many}"
    );
    // and an order needs an account
    anonymous
        .subscribe("order", ORDER_SUBSCRIPTION, json!({ "id": order["id"] }))
        .await;
    anonymous.next(WAIT).await; // "complete" of "many"
    let anonymous_order = anonymous.next(WAIT).await;
    assert_eq!(
        anonymous_order["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{anonymous_order}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_holds_at_most_100_subscriptions() {
    let setup = serve_without_workers().await;
    let pizza = setup.shop.products[0].to_string();
    let watch_pizza = json!({ "ids": [pizza] });
    let (mut client, _) = Client::connect(&setup.addr, json!({})).await;
    for n in 0..100 {
        client
            .subscribe(&format!("s{n}"), PRODUCT_SUBSCRIPTION, watch_pizza.clone())
            .await;
    }
    let mut started = Vec::new();
    for _ in 0..100 {
        let message = client.next(WAIT).await;
        assert_eq!(
            message["payload"]["data"]["productFiguresChanged"]["id"], pizza,
            "{message}"
        );
        started.push(message["id"].as_str().unwrap().to_owned());
    }
    started.sort_by_key(|id| id[1..].parse::<usize>().unwrap());
    assert_eq!(
        started,
        (0..100).map(|n| format!("s{n}")).collect::<Vec<_>>()
    );

    client
        .subscribe("one-more", PRODUCT_SUBSCRIPTION, watch_pizza.clone())
        .await;
    assert_eq!(
        client.next(WAIT).await,
        json!({ "id": "one-more", "type": "next", "payload": { "data": null, "errors": [{
            "message": "a connection holds at most 100 subscriptions at once: complete one, \
                        or open another connection",
            "locations": [{ "line": 2, "column": 5 }],
            "path": ["productFiguresChanged"],
            "extensions": { "code": "BAD_USER_INPUT" },
        }] } })
    );
    assert_eq!(
        client.next(WAIT).await,
        json!({ "id": "one-more", "type": "complete" })
    );

    // the cap is the connection's: another one starts afresh
    let (mut other, _) = Client::connect(&setup.addr, json!({})).await;
    other
        .subscribe("first", PRODUCT_SUBSCRIPTION, watch_pizza.clone())
        .await;
    assert_eq!(other.next(WAIT).await["id"], "first");

    // a subscription the client completes makes room for the next
    client.send(json!({ "id": "s0", "type": "complete" })).await;
    assert_eq!(
        client.next(WAIT).await,
        json!({ "id": "s0", "type": "complete" })
    );
    client
        .subscribe("in-its-place", PRODUCT_SUBSCRIPTION, watch_pizza)
        .await;
    let message = client.next(WAIT).await;
    assert_eq!(message["id"], "in-its-place", "{message}");
    assert_eq!(
        message["payload"]["data"]["productFiguresChanged"]["salesCount"], 0,
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_past_the_limit_are_refused_until_one_closes() {
    let setup = serve_without_workers_with(&[("MAX_WEBSOCKETS", "2")]).await;
    let addr = setup.addr.clone();
    let open_gauge = || async {
        let metrics = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics
            .lines()
            .find_map(|line| line.strip_prefix("tally_websockets_open "))
            .expect("the gauge")
            .to_owned()
    };
    let (first, _) = Client::connect(&addr, json!({})).await;
    let (_second, _) = Client::connect(&addr, json!({})).await;
    assert_eq!(open_gauge().await, "2");

    let refused = tokio_tungstenite::connect_async(upgrade_request(&addr))
        .await
        .unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(response) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
    assert_eq!(
        body["errors"][0],
        json!({
            "message": "the server is at its limit of open WebSockets; try again later",
            "extensions": { "code": "SERVICE_UNAVAILABLE" },
        })
    );

    // a connection that closes makes room
    drop(first);
    let deadline = std::time::Instant::now() + WAIT;
    while open_gauge().await != "1" {
        assert!(
            std::time::Instant::now() < deadline,
            "the closed WebSocket still counts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_third, ack) = Client::connect(&addr, json!({})).await;
    assert_eq!(ack, json!({ "type": "connection_ack" }));
}

/// A document too large to parse in a blink (over 8 KiB) is parsed off the
/// request threads in its turn: over a socket as over HTTP, where the text
/// of a persisted query's hash is too, it is answered all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_document_is_answered_over_a_socket_and_as_a_persisted_query() {
    let setup = serve_without_workers().await;
    let reads: String = (1..=400)
        .map(|n| format!("p{n}:product(id:{n}){{id}} "))
        .collect();
    let document = format!("{{ {reads}}}");
    assert!(document.len() > 8 * 1024, "{}", document.len());
    let answered = |data: &Value| {
        let fields = data.as_object().unwrap();
        (
            fields.len(),
            fields.values().filter(|v| !v.is_null()).count(),
        )
    };

    let (mut client, _) = Client::connect(&setup.addr, json!({})).await;
    client.subscribe("large", &document, json!({})).await;
    let next = client.next(Duration::from_secs(10)).await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(answered(&next["payload"]["data"]), (400, 12));
    assert_eq!(
        client.next(Duration::from_secs(10)).await,
        json!({ "id": "large", "type": "complete" })
    );

    // registered with its text, then sent by its hash alone
    use sha2::Digest;
    let hash = format!("{:x}", sha2::Sha256::digest(document.as_bytes()));
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let http = reqwest::Client::new();
    for body in [
        json!({ "query": document, "extensions": persisted }),
        json!({ "extensions": persisted }),
    ] {
        let answer: Value = http
            .post(format!("http://{}/graphql", setup.addr))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(answer.get("errors").is_none(), "{answer}");
        assert_eq!(answered(&answer["data"]), (400, 12));
    }
}

/// A validation error over a socket has its code, as over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_refused_over_a_socket_says_why_with_its_code() {
    let setup = serve_without_workers().await;
    let (mut client, _) = Client::connect(&setup.addr, json!({})).await;
    client
        .subscribe("typo", "{ prodcts { edges { node { id } } } }", json!({}))
        .await;
    assert_eq!(client.outcome("typo").await, "BAD_USER_INPUT");
    client
        .subscribe(
            "deep",
            "subscription { productFiguresChanged(productIds: []) { nope } }",
            json!({}),
        )
        .await;
    assert_eq!(client.outcome("deep").await, "BAD_USER_INPUT");
}

/// One socket holds at most 8 of the process's in-flight slots: its ninth
/// operation at once waits for one of them, and other clients still get
/// theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_holds_at_most_its_share_of_the_in_flight_slots() {
    let setup = serve_without_workers_with(&[("DATABASE_LOCK_TIMEOUT_MS", "20000")]).await;
    let customer = setup.shop.tokens[0].clone();
    let order = place(
        &setup.addr,
        &customer,
        json!([{ "productId": setup.shop.products[0].to_string(), "quantity": 1 }]),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // cancellations wait for the order while this holds it
    let mut holder = setup.pool.begin().await.unwrap();
    sqlx::query("select id from orders where id = $1::bigint for update")
        .bind(&order)
        .execute(&mut *holder)
        .await
        .unwrap();
    let (mut client, ack) = Client::connect(&setup.addr, bearer(&customer)).await;
    assert_eq!(ack["type"], "connection_ack");
    let cancel = "mutation ($id: ID!) { cancelOrder(id: $id) { status } }";
    for n in 0..9 {
        client
            .subscribe(&format!("c{n}"), cancel, json!({ "id": order }))
            .await;
    }
    // eight wait for the lock in PostgreSQL; the ninth waits for one of them
    let waiting = "select count(*) from pg_stat_activity
                   where datname = current_database() and wait_event_type = 'Lock'";
    let deadline = std::time::Instant::now() + WAIT;
    while common::count(&setup.pool, waiting).await < 8 {
        assert!(std::time::Instant::now() < deadline, "8 never waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(common::count(&setup.pool, waiting).await, 8);
    // the process has slots left for everyone else
    let menu = graphql(
        &setup.addr,
        &customer,
        "{ products(first: 1) { edges { node { id } } } }",
        json!({}),
    )
    .await;
    assert_eq!(menu["products"]["edges"].as_array().unwrap().len(), 1);

    holder.rollback().await.unwrap();
    let mut done = Vec::new();
    while done.len() < 9 {
        let message = client.next(WAIT).await;
        if message["type"] == "next" {
            assert_eq!(
                message["payload"]["data"]["cancelOrder"]["status"], "CANCELLED",
                "{message}"
            );
            done.push(message["id"].as_str().unwrap().to_owned());
        } else {
            assert_eq!(message["type"], "complete", "{message}");
        }
    }
    done.sort();
    let mut all: Vec<String> = (0..9).map(|n| format!("c{n}")).collect();
    all.sort();
    assert_eq!(done, all);
}
