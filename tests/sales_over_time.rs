//! Sales over time: the counting run keeps units, revenue and orders per
//! quarter hour by product, category and shop; a cancellation takes an order
//! back out, a rebuild recomputes them; `products(orderBy: TRENDING)` ranks
//! what sold in a recent window.

use serde_json::{Value, json};

use crate::harness::{TestApp, data, error_code, error_message, placed_order_id};

const REBUILD: &str = "mutation { rebuildAnalytics { ordersMarked } }";
const TRENDING: &str = "query($window: SalesWindow, $first: Int, $after: String, $category: String) {
    products(orderBy: TRENDING, window: $window, first: $first, after: $after, category: $category) {
        edges { cursor node { name salesCount } }
        pageInfo { hasNextPage }
    }
}";

/// Every bucket, in key order, its quarter hour as `HH:MI` UTC.
async fn buckets(app: &TestApp) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    buckets_as(app, "HH24:MI").await
}

/// Every bucket of products (by name), categories and the shop, in key
/// order, its start as `format` (`to_char`'s) in UTC.
pub(crate) async fn buckets_as(
    app: &TestApp,
    format: &str,
) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let products = app
        .rows(&format!(
            "select p.name, to_char(s.starts_at at time zone 'UTC', '{format}') as at,
                    s.units, s.revenue_cents, s.orders
             from product_sales s join products p on p.id = s.product_id
             order by p.name, s.starts_at"
        ))
        .await;
    let categories = app
        .rows(&format!(
            "select category, to_char(starts_at at time zone 'UTC', '{format}') as at,
                    units, revenue_cents, orders
             from category_sales order by category, starts_at"
        ))
        .await;
    let shop = app
        .rows(&format!(
            "select to_char(starts_at at time zone 'UTC', '{format}') as at,
                    units, revenue_cents, orders
             from shop_sales order by starts_at"
        ))
        .await;
    (products, categories, shop)
}

pub(crate) fn bucket(name: &str, at: &str, units: i64, revenue: i64, orders: i64) -> Value {
    json!({ "name": name, "at": at, "units": units, "revenue_cents": revenue, "orders": orders })
}

pub(crate) fn category(category: &str, at: &str, units: i64, revenue: i64, orders: i64) -> Value {
    json!({ "category": category, "at": at, "units": units, "revenue_cents": revenue, "orders": orders })
}

pub(crate) fn shop(at: &str, units: i64, revenue: i64, orders: i64) -> Value {
    json!({ "at": at, "units": units, "revenue_cents": revenue, "orders": orders })
}

/// Places an order and moves its placement time to `at` before any run
/// counts it (the app has no workers until the test starts them).
pub(crate) async fn order_at(
    app: &TestApp,
    token: &str,
    items: &[(&str, Option<&str>, i32)],
    at: &str,
) -> i64 {
    let id = placed_order_id(&app.place_order(token, items).await);
    let moved = app
        .execute(&format!(
            "update orders set created_at = '{at}' where id = {id}"
        ))
        .await;
    assert_eq!(moved, 1);
    id
}

#[tokio::test]
async fn each_order_counts_in_its_quarter_hour_once_and_a_cancellation_takes_it_back_out() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(
            &admin,
            &[("Margherita", "pizza", 1000), ("Cola", "beverages", 250)],
        )
        .await;
    let (pizza, cola) = (ids[0].as_str(), ids[1].as_str());
    let (ann, _) = app.register_customer("Ann").await;
    let (bob, _) = app.register_customer("Bob").await;

    // the last instant of a quarter hour, and the first of the next
    let late = order_at(
        &app,
        &ann,
        &[(pizza, None, 2), (cola, None, 1)],
        "2026-12-07 11:59:59.999999+00",
    )
    .await;
    order_at(&app, &ann, &[(pizza, None, 1)], "2026-12-07 12:00:00+00").await;
    order_at(&app, &bob, &[(cola, None, 3)], "2026-12-07 12:14:59+00").await;
    app.start_workers().await;
    app.wait_for_jobs().await;

    let counted = (
        vec![
            bucket("Cola", "11:45", 1, 250, 1),
            bucket("Cola", "12:00", 3, 750, 1),
            bucket("Margherita", "11:45", 2, 2000, 1),
            bucket("Margherita", "12:00", 1, 1000, 1),
        ],
        vec![
            category("beverages", "11:45", 1, 250, 1),
            category("beverages", "12:00", 3, 750, 1),
            category("pizza", "11:45", 2, 2000, 1),
            category("pizza", "12:00", 1, 1000, 1),
        ],
        // an order of two products is one order of the shop
        vec![shop("11:45", 3, 2250, 1), shop("12:00", 4, 1750, 2)],
    );
    assert_eq!(buckets(&app).await, counted);
    assert_eq!(app.figure_mismatches().await, 0);

    // past the customer's window to cancel: an admin cancels it
    let cancelled = app
        .gql_as(
            &admin,
            "mutation($id: ID!) { cancelOrder(id: $id) { status } }",
            json!({ "id": late.to_string() }),
        )
        .await;
    assert_eq!(data(&cancelled)["cancelOrder"]["status"], "CANCELLED");
    app.wait_for_jobs().await;
    // taken back out exactly: its buckets stay, at zero
    assert_eq!(
        buckets(&app).await,
        (
            vec![
                bucket("Cola", "11:45", 0, 0, 0),
                bucket("Cola", "12:00", 3, 750, 1),
                bucket("Margherita", "11:45", 0, 0, 0),
                bucket("Margherita", "12:00", 1, 1000, 1),
            ],
            vec![
                category("beverages", "11:45", 0, 0, 0),
                category("beverages", "12:00", 3, 750, 1),
                category("pizza", "11:45", 0, 0, 0),
                category("pizza", "12:00", 1, 1000, 1),
            ],
            vec![shop("11:45", 0, 0, 0), shop("12:00", 4, 1750, 2)],
        )
    );
    assert_eq!(app.figure_mismatches().await, 0);

    // a rebuild recomputes the same, without the empty buckets
    let rebuilt = app.gql_as(&admin, REBUILD, json!({})).await;
    assert_eq!(data(&rebuilt)["rebuildAnalytics"]["ordersMarked"], 0);
    assert_eq!(
        buckets(&app).await,
        (
            vec![
                bucket("Cola", "12:00", 3, 750, 1),
                bucket("Margherita", "12:00", 1, 1000, 1)
            ],
            vec![
                category("beverages", "12:00", 3, 750, 1),
                category("pizza", "12:00", 1, 1000, 1)
            ],
            vec![shop("12:00", 4, 1750, 2)],
        )
    );
    assert_eq!(app.figure_mismatches().await, 0);
}

#[tokio::test]
async fn a_held_back_order_is_in_no_bucket_until_its_retry_counts_it() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Margherita", "pizza", 1000)])
        .await;
    let (ann, _) = app.register_customer("Ann").await;
    let id = order_at(&app, &ann, &[(&ids[0], None, 2)], "2026-12-07 12:00:00+00").await;
    // an order the buckets cannot take (a trigger an operator added, say)
    app.execute(
        "create function refuse_huge() returns trigger language plpgsql as $$
         begin
             if new.units > 1 then raise exception 'no more than one'; end if;
             return new;
         end $$",
    )
    .await;
    app.execute(
        "create trigger refuse_huge before insert or update on product_sales
         for each row execute function refuse_huge()",
    )
    .await;
    app.start_workers().await;
    wait_until_held_back(&app, id).await;
    assert_eq!(buckets(&app).await, (vec![], vec![], vec![]));
    assert_eq!(
        app.count("select sales_count from products").await,
        0,
        "the run that failed wrote nothing"
    );

    app.execute("drop trigger refuse_huge on product_sales")
        .await;
    // its job counts it on its next attempt, or on the operator's retry if
    // its attempts ran out meanwhile
    let retried = app
        .gql_as(&admin, "mutation { retryFailedJobs }", json!({}))
        .await;
    assert!(retried.get("errors").is_none(), "{retried}");
    app.wait_for_jobs().await;
    assert_eq!(buckets(&app).await.2, vec![shop("12:00", 2, 2000, 1)]);
    assert_eq!(app.figure_mismatches().await, 0);
}

async fn wait_until_held_back(app: &TestApp, id: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while app
        .count(&format!(
            "select count(*) from orders where id = {id} and analytics_held_back_at is not null"
        ))
        .await
        == 0
    {
        assert!(std::time::Instant::now() < deadline, "never held back");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn trending_ranks_what_sold_in_the_window_with_stable_cursors() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(
            &admin,
            &[
                ("Margherita", "pizza", 1000),
                ("Funghi", "pizza", 1100),
                ("Cola", "beverages", 250),
                ("Water", "beverages", 150),
            ],
        )
        .await;
    let (margherita, funghi, cola, water) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let (ann, _) = app.register_customer("Ann").await;
    // within the hour: Cola 3, Funghi 2, Margherita 2 (a tie: the newer,
    // Funghi, first); earlier today: Margherita 5 more; last week: Water 9
    for (items, ago) in [
        (vec![(cola.as_str(), None, 3)], "10 minutes"),
        (vec![(funghi.as_str(), None, 2)], "20 minutes"),
        (vec![(margherita.as_str(), None, 2)], "40 minutes"),
        (vec![(margherita.as_str(), None, 5)], "5 hours"),
        (vec![(water.as_str(), None, 9)], "3 days"),
    ] {
        let id = placed_order_id(&app.place_order(&ann, &items).await);
        app.execute(&format!(
            "update orders set created_at = now() - interval '{ago}' where id = {id}"
        ))
        .await;
    }
    app.start_workers().await;
    app.wait_for_jobs().await;

    let names = |body: &Value| -> Vec<String> {
        data(body)["products"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let hour = app.gql(TRENDING, json!({ "window": "LAST_HOUR" })).await;
    assert_eq!(names(&hour), ["Cola", "Funghi", "Margherita"]);
    let day = app.gql(TRENDING, json!({})).await;
    assert_eq!(
        names(&day),
        ["Margherita", "Cola", "Funghi"],
        "a day unless said"
    );
    let week = app.gql(TRENDING, json!({ "window": "LAST_WEEK" })).await;
    assert_eq!(names(&week), ["Water", "Margherita", "Cola", "Funghi"]);
    let pizza = app
        .gql(
            TRENDING,
            json!({ "window": "LAST_HOUR", "category": "pizza" }),
        )
        .await;
    assert_eq!(names(&pizza), ["Funghi", "Margherita"]);

    // a page at a time: the tie splits exactly across the pages
    let first = app
        .gql(TRENDING, json!({ "window": "LAST_HOUR", "first": 2 }))
        .await;
    assert_eq!(names(&first), ["Cola", "Funghi"]);
    assert_eq!(data(&first)["products"]["pageInfo"]["hasNextPage"], true);
    let cursor = data(&first)["products"]["edges"][1]["cursor"].clone();
    // an order counted meanwhile moves nobody across the page boundary
    let id = placed_order_id(&app.place_order(&ann, &[(water.as_str(), None, 1)]).await);
    app.wait_for_jobs().await;
    let second = app
        .gql(
            TRENDING,
            json!({ "window": "LAST_HOUR", "first": 2, "after": cursor }),
        )
        .await;
    assert_eq!(names(&second), ["Margherita", "Water"]);
    assert_eq!(data(&second)["products"]["pageInfo"]["hasNextPage"], false);

    // a cancelled order's sales leave the window
    let cancelled = app
        .gql_as(
            &ann,
            "mutation($id: ID!) { cancelOrder(id: $id) { status } }",
            json!({ "id": id.to_string() }),
        )
        .await;
    assert_eq!(data(&cancelled)["cancelOrder"]["status"], "CANCELLED");
    app.wait_for_jobs().await;
    let hour = app.gql(TRENDING, json!({ "window": "LAST_HOUR" })).await;
    assert_eq!(names(&hour), ["Cola", "Funghi", "Margherita"]);

    let body = app
        .gql(
            "query { products(orderBy: SALES_COUNT_DESC, first: 1) { edges { cursor } } }",
            json!({}),
        )
        .await;
    let other_cursor = data(&body)["products"]["edges"][0]["cursor"].clone();
    let refused = app
        .gql(
            TRENDING,
            json!({ "window": "LAST_HOUR", "after": other_cursor }),
        )
        .await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT");
    assert_eq!(
        error_message(&refused),
        "after is a cursor of another order: page with the orderBy it came from"
    );
    let window_alone = app
        .gql(
            "query { products(orderBy: SALES_COUNT_DESC, window: LAST_HOUR) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&window_alone), "BAD_USER_INPUT");
    assert_eq!(
        error_message(&window_alone),
        "window applies to orderBy: TRENDING only"
    );
}
