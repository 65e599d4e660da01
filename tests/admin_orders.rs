//! The admins' `orders` connection: every customer's orders, newest first,
//! with filters; each order's customer; why an order was held back, for
//! admins only; and a statement count that does not grow with the page.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use jobs::analytics;
use jobs::fail_points::FailPoints;
use serde_json::{Value, json};

use crate::harness::{TestApp, data, error_code, placed_order_id};

const ORDERS: &str = "query($first: Int, $after: String, $status: OrderStatus, \
    $analyticsStatus: AnalyticsStatus, $userId: ID, $heldBack: Boolean) {
    orders(first: $first, after: $after, status: $status, analyticsStatus: $analyticsStatus,
           userId: $userId, heldBack: $heldBack) {
        edges { cursor node { id orderNumber status analyticsStatus } }
        pageInfo { hasNextPage hasPreviousPage }
    }
}";

const CANCEL: &str = "mutation($id: ID!) { cancelOrder(id: $id) { id status } }";

/// The `orders` connection for `variables`, which must succeed.
async fn orders(app: &TestApp, token: &str, variables: Value) -> Value {
    data(&app.gql_as(token, ORDERS, variables).await)["orders"].clone()
}

/// The order numbers of one page of at most 100, in the order given.
async fn numbers(app: &TestApp, token: &str, mut filters: Value) -> Vec<String> {
    filters["first"] = json!(100);
    let page = orders(app, token, filters).await;
    assert_eq!(page["pageInfo"]["hasNextPage"], json!(false), "{page}");
    page["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"]["orderNumber"].as_str().unwrap().to_owned())
        .collect()
}

/// Places an order of `quantity` × `product`; returns its id and number.
async fn place(app: &TestApp, token: &str, product: &str, quantity: i32) -> (i64, String) {
    let body = app.place_order(token, &[(product, None, quantity)]).await;
    let number = data(&body)["placeOrder"]["orderNumber"]
        .as_str()
        .unwrap()
        .to_owned();
    (placed_order_id(&body), number)
}

async fn hold_back(app: &TestApp, order_id: i64, failure: &str) {
    let touched = app
        .execute(&format!(
            "update orders set analytics_held_back_at = now(), analytics_failure = '{failure}'
             where id = {order_id}"
        ))
        .await;
    assert_eq!(touched, 1);
}

fn strings(numbers: &[&str]) -> Vec<String> {
    numbers.iter().map(|n| (*n).to_owned()).collect()
}

#[tokio::test]
async fn an_admin_pages_through_every_customers_orders_newest_first() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let products = app
        .create_products(&admin, &[("Margherita", "pizza", 900)])
        .await;
    let (ann, _) = app.register_customer("Ann").await;
    let (bob, _) = app.register_customer("Bob").await;
    let mut placed = Vec::new();
    for token in [&ann, &bob, &ann, &ann, &bob, &ann, &bob] {
        placed.push(place(&app, token, &products[0], 1).await.1);
    }
    assert_eq!(
        placed,
        strings(&[
            "ORD-00000001",
            "ORD-00000002",
            "ORD-00000003",
            "ORD-00000004",
            "ORD-00000005",
            "ORD-00000006",
            "ORD-00000007",
        ])
    );

    let mut pages = Vec::new();
    let mut after = Value::Null;
    for _ in 0..3 {
        let page = orders(&app, &admin, json!({ "first": 3, "after": after })).await;
        let edges = page["edges"].as_array().unwrap();
        let numbers: Vec<&str> = edges
            .iter()
            .map(|e| e["node"]["orderNumber"].as_str().unwrap())
            .collect();
        pages.push((
            numbers.join(" "),
            page["pageInfo"]["hasNextPage"].as_bool().unwrap(),
            page["pageInfo"]["hasPreviousPage"].as_bool().unwrap(),
        ));
        after = edges.last().unwrap()["cursor"].clone();
    }
    assert_eq!(
        pages,
        vec![
            (
                "ORD-00000007 ORD-00000006 ORD-00000005".to_owned(),
                true,
                false
            ),
            (
                "ORD-00000004 ORD-00000003 ORD-00000002".to_owned(),
                true,
                true
            ),
            ("ORD-00000001".to_owned(), false, true),
        ]
    );

    // past the last order: an empty page, not an error
    let rest = orders(&app, &admin, json!({ "first": 3, "after": after })).await;
    assert_eq!(rest["edges"], json!([]));
    assert_eq!(rest["pageInfo"]["hasNextPage"], json!(false));
    // the default page holds them all, and first: 0 none
    assert_eq!(numbers(&app, &admin, json!({})).await.len(), 7);
    let none = orders(&app, &admin, json!({ "first": 0 })).await;
    assert_eq!(none["edges"], json!([]));
    assert_eq!(none["pageInfo"]["hasNextPage"], json!(true));
}

#[tokio::test]
async fn each_filter_narrows_the_list_and_the_filters_combine_with_and() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let products = app
        .create_products(&admin, &[("Margherita", "pizza", 900)])
        .await;
    let (ann, ann_id) = app.register_customer("Ann").await;
    let (bob, bob_id) = app.register_customer("Bob").await;
    // 1 Ann applied, 2 Ann cancelled and reversed, 3 Ann pending,
    // 4 Bob held back (pending), 5 Bob cancelled, not reversed yet (pending),
    // 6 Bob applied
    let mut ids = Vec::new();
    for token in [&ann, &ann, &ann, &bob, &bob, &bob] {
        ids.push(place(&app, token, &products[0], 1).await.0);
    }
    let none = FailPoints::default();
    for n in [1, 6] {
        analytics::apply_order(&app.db, ids[n - 1], 1, &none)
            .await
            .unwrap();
    }
    for n in [2, 5] {
        let body = app
            .gql_as(&admin, CANCEL, json!({ "id": ids[n - 1].to_string() }))
            .await;
        assert_eq!(data(&body)["cancelOrder"]["status"], json!("CANCELLED"));
    }
    analytics::apply_order(&app.db, ids[1], 1, &none)
        .await
        .unwrap();
    hold_back(&app, ids[3], "boom").await;

    let all = orders(&app, &admin, json!({})).await;
    let states: Vec<Value> = all["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            json!([
                e["node"]["orderNumber"],
                e["node"]["status"],
                e["node"]["analyticsStatus"]
            ])
        })
        .collect();
    assert_eq!(
        states,
        vec![
            json!(["ORD-00000006", "PLACED", "APPLIED"]),
            json!(["ORD-00000005", "CANCELLED", "PENDING"]),
            json!(["ORD-00000004", "PLACED", "PENDING"]),
            json!(["ORD-00000003", "PLACED", "PENDING"]),
            json!(["ORD-00000002", "CANCELLED", "REVERSED"]),
            json!(["ORD-00000001", "PLACED", "APPLIED"]),
        ]
    );

    let ann_id = ann_id.to_string();
    let bob_id = bob_id.to_string();
    let cases = [
        (json!({ "status": "PLACED" }), vec!["6", "4", "3", "1"]),
        (json!({ "status": "CANCELLED" }), vec!["5", "2"]),
        (json!({ "analyticsStatus": "PENDING" }), vec!["5", "4", "3"]),
        (json!({ "analyticsStatus": "APPLIED" }), vec!["6", "1"]),
        (json!({ "analyticsStatus": "REVERSED" }), vec!["2"]),
        (json!({ "userId": ann_id }), vec!["3", "2", "1"]),
        (json!({ "userId": bob_id }), vec!["6", "5", "4"]),
        (json!({ "userId": "999999" }), vec![]),
        (json!({ "heldBack": true }), vec!["4"]),
        (json!({ "heldBack": false }), vec!["6", "5", "3", "2", "1"]),
        (
            json!({ "status": "CANCELLED", "analyticsStatus": "PENDING" }),
            vec!["5"],
        ),
        (
            json!({ "status": "PLACED", "analyticsStatus": "PENDING" }),
            vec!["4", "3"],
        ),
        (
            json!({ "userId": bob_id, "analyticsStatus": "PENDING" }),
            vec!["5", "4"],
        ),
        (
            json!({ "userId": bob_id, "analyticsStatus": "PENDING", "heldBack": false }),
            vec!["5"],
        ),
        (json!({ "userId": ann_id, "heldBack": true }), vec![]),
        (
            json!({ "userId": ann_id, "status": "PLACED", "analyticsStatus": "APPLIED" }),
            vec!["1"],
        ),
        (
            json!({ "status": "CANCELLED", "analyticsStatus": "APPLIED" }),
            vec![],
        ),
        (
            json!({ "status": "PLACED", "analyticsStatus": "PENDING", "heldBack": true,
                    "userId": bob_id }),
            vec!["4"],
        ),
    ];
    for (filters, expected) in cases {
        let expected: Vec<String> = expected.iter().map(|n| format!("ORD-0000000{n}")).collect();
        assert_eq!(
            numbers(&app, &admin, filters.clone()).await,
            expected,
            "{filters}"
        );
    }

    // The filter and the field never disagree: each status filter returns
    // exactly the orders showing that status, and together they cover all.
    let mut by_filter = BTreeMap::new();
    for status in ["PENDING", "APPLIED", "REVERSED"] {
        let page = orders(&app, &admin, json!({ "analyticsStatus": status })).await;
        for edge in page["edges"].as_array().unwrap() {
            assert_eq!(edge["node"]["analyticsStatus"], json!(status), "{page}");
            let earlier = by_filter.insert(edge["node"]["id"].as_str().unwrap().to_owned(), status);
            assert_eq!(earlier, None, "{page}");
        }
    }
    assert_eq!(by_filter.len(), 6);
}

#[tokio::test]
async fn each_order_shows_its_customer_and_lines_and_only_admins_see_why_it_was_held_back() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let products = app
        .create_products(
            &admin,
            &[("Margherita", "pizza", 900), ("Cola", "beverages", 250)],
        )
        .await;
    let (ann, ann_id) = app.register_customer("Ann").await;
    let (bob, bob_id) = app.register_customer("Bob").await;
    let ann_order = placed_order_id(
        &app.place_order(&ann, &[(&products[0], None, 2), (&products[1], None, 1)])
            .await,
    );
    let bob_order = placed_order_id(&app.place_order(&bob, &[(&products[1], None, 3)]).await);
    hold_back(
        &app,
        bob_order,
        "value too long for type character varying(100)",
    )
    .await;
    let held_back_at = app
        .rows(&format!(
            "select analytics_held_back_at as at from orders where id = {bob_order}"
        ))
        .await[0]["at"]
        .clone();

    let fields = "orderNumber customer { id name } lines { productName quantity } \
                  analyticsStatus analyticsHeldBackAt analyticsFailure";
    let body = app
        .gql_as(
            &admin,
            &format!("{{ orders {{ edges {{ node {{ {fields} }} }} }} }}"),
            json!({}),
        )
        .await;
    let mut nodes: Vec<Value> = data(&body)["orders"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect();
    assert_same_instant(&nodes[0]["analyticsHeldBackAt"], &held_back_at);
    nodes[0]["analyticsHeldBackAt"] = json!("held back");
    assert_eq!(
        nodes,
        vec![
            json!({
                "orderNumber": "ORD-00000002",
                "customer": { "id": bob_id.to_string(), "name": "Bob" },
                "lines": [{ "productName": "Cola", "quantity": 3 }],
                "analyticsStatus": "PENDING",
                "analyticsHeldBackAt": "held back",
                "analyticsFailure": "value too long for type character varying(100)",
            }),
            json!({
                "orderNumber": "ORD-00000001",
                "customer": { "id": ann_id.to_string(), "name": "Ann" },
                "lines": [
                    { "productName": "Margherita", "quantity": 2 },
                    { "productName": "Cola", "quantity": 1 },
                ],
                "analyticsStatus": "PENDING",
                "analyticsHeldBackAt": null,
                "analyticsFailure": null,
            }),
        ]
    );

    let one = |token: &str, id: i64| {
        let query = "query($id: ID!) { order(id: $id) { customer { id name email } \
                     analyticsHeldBackAt analyticsFailure } }";
        let token = token.to_owned();
        let app = &app;
        async move {
            let body = app
                .gql_as(&token, query, json!({ "id": id.to_string() }))
                .await;
            data(&body)["order"].clone()
        }
    };
    // the admin reads the failure through order(id) too
    let seen = one(&admin, bob_order).await;
    assert_eq!(
        seen["analyticsFailure"],
        json!("value too long for type character varying(100)")
    );
    assert_eq!(
        seen["customer"],
        json!({ "id": bob_id.to_string(), "name": "Bob", "email": "bob@example.com" })
    );
    // the order's customer sees that it is held back, but not why
    let seen = one(&bob, bob_order).await;
    assert_same_instant(&seen["analyticsHeldBackAt"], &held_back_at);
    assert_eq!(seen["analyticsFailure"], Value::Null);
    assert_eq!(
        seen["customer"],
        json!({ "id": bob_id.to_string(), "name": "Bob", "email": "bob@example.com" })
    );
    assert_eq!(
        one(&ann, ann_order).await,
        json!({
            "customer": { "id": ann_id.to_string(), "name": "Ann", "email": "ann@example.com" },
            "analyticsHeldBackAt": null,
            "analyticsFailure": null,
        })
    );
    let mine = app
        .gql_as(
            &bob,
            "{ myOrders { edges { node { analyticsFailure customer { name } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&mine)["myOrders"]["edges"],
        json!([{ "node": { "analyticsFailure": null, "customer": { "name": "Bob" } } }])
    );
    // an admin demoted in the database: the token is revoked, and the
    // account signed in again is a customer's, who does not see the order
    app.execute("update users set role = 'customer' where email = 'admin@example.com'")
        .await;
    let read = "query($id: ID!) { order(id: $id) { analyticsFailure } }";
    let id = json!({ "id": bob_order.to_string() });
    let seen = app.gql_as(&admin, read, id.clone()).await;
    assert_eq!(
        seen["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{seen}"
    );
    let customer = app.login("admin@example.com", "admin password").await;
    let seen = app.gql_as(&customer, read, id).await;
    assert_eq!(
        seen["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{seen}"
    );
    assert_eq!(seen["data"], Value::Null, "{seen}");
}

fn assert_same_instant(shown: &Value, stored: &Value) {
    let parse = |v: &Value| {
        DateTime::<FixedOffset>::parse_from_rfc3339(
            v.as_str().unwrap_or_else(|| panic!("a time: {v}")),
        )
        .unwrap_or_else(|e| panic!("{v}: {e}"))
    };
    assert_eq!(parse(shown), parse(stored));
}

#[tokio::test]
async fn only_an_admin_by_the_database_may_list_all_orders_and_bad_arguments_are_bad_input() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let products = app
        .create_products(&admin, &[("Margherita", "pizza", 900)])
        .await;
    let (ann, _) = app.register_customer("Ann").await;
    place(&app, &ann, &products[0], 1).await;

    let refused = |body: Value, code: &str| {
        assert_eq!(error_code(&body), code, "{body}");
        assert_eq!(body["data"], Value::Null, "{body}");
    };
    refused(app.gql(ORDERS, json!({})).await, "UNAUTHENTICATED");
    refused(app.gql_as(&ann, ORDERS, json!({})).await, "FORBIDDEN");
    // a customer learns nothing from a bad argument either
    refused(
        app.gql_as(&ann, ORDERS, json!({ "userId": "abc" })).await,
        "FORBIDDEN",
    );
    for bad in [
        json!({ "after": "not a cursor" }),
        json!({ "userId": "abc" }),
        json!({ "userId": "0" }),
        json!({ "userId": "-3" }),
        json!({ "first": 101 }),
        json!({ "first": -1 }),
    ] {
        refused(app.gql_as(&admin, ORDERS, bad).await, "BAD_USER_INPUT");
    }
    assert_eq!(
        numbers(&app, &admin, json!({})).await,
        strings(&["ORD-00000001"])
    );

    // demoted: the token is revoked; signed in again, a customer
    app.execute("update users set role = 'customer' where email = 'admin@example.com'")
        .await;
    refused(
        app.gql_as(&admin, ORDERS, json!({})).await,
        "UNAUTHENTICATED",
    );
    let demoted = app.login("admin@example.com", "admin password").await;
    refused(app.gql_as(&demoted, ORDERS, json!({})).await, "FORBIDDEN");
    app.execute("delete from users where email = 'admin@example.com'")
        .await;
    refused(
        app.gql_as(&demoted, ORDERS, json!({})).await,
        "UNAUTHENTICATED",
    );
}

/// The statements one `orders(first: 50)` page with customers and lines
/// runs, loader batches merged: `(kind, batches)` sorted by kind.
async fn statements_of_a_page(app: &TestApp, admin: &str, customers: usize) -> Vec<String> {
    app.statements.take();
    let body = app
        .gql_as(
            admin,
            "{ orders(first: 50) { edges { node { customer { name } lines { productName } } } } }",
            json!({}),
        )
        .await;
    let statements = app.statements.take_with_keys();
    let all = statements
        .iter()
        .map(|(sql, _)| sql.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let orders = data(&body)["orders"]["edges"].as_array().unwrap().len();
    let mut kinds = Vec::new();
    let mut batch_keys = BTreeMap::<&str, Vec<usize>>::new();
    for (sql, bound) in &statements {
        let table = ["\"order_lines\"", "\"orders\"", "\"users\""]
            .into_iter()
            .find(|t| sql.contains(&format!("FROM {t}")))
            .unwrap_or_else(|| panic!("an unexpected statement: {sql}\n{all}"));
        // the caller's account (role and token version), read by id
        let account_read = table == "\"users\"" && !sql.contains("\"users\".\"name\"");
        if sql.contains(" = ANY($1)") && !account_read {
            // the keys are bound as one array
            batch_keys.entry(table).or_default().push(*bound);
        } else {
            kinds.push(format!("one {table}"));
        }
    }
    // A loader waits 1 ms for the keys of a batch; on a busy machine a slow
    // pass over the page may split a batch in two, and a key asked for once
    // the first batch left goes in the second as well. What must never
    // happen is a query per order: each kind in at most two batches, each
    // of at most one key per distinct parent, all of them loaded.
    for (table, keys) in &batch_keys {
        let parents = if *table == "\"users\"" {
            customers
        } else {
            orders
        };
        assert!(keys.len() <= 2, "{table}\n{all}");
        assert!(keys.iter().all(|k| *k <= parents), "{table}\n{all}");
        assert!(keys.iter().sum::<usize>() >= parents, "{table}\n{all}");
        kinds.push(format!("batch {table}"));
    }
    kinds.sort();
    kinds
}

#[tokio::test]
async fn a_page_of_orders_with_customers_and_lines_runs_as_many_statements_for_40_orders_as_for_5()
{
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let products = app
        .create_products(
            &admin,
            &[("Margherita", "pizza", 900), ("Cola", "beverages", 250)],
        )
        .await;
    let mut customers = Vec::new();
    for name in ["Ann", "Bob", "Cem", "Dee"] {
        customers.push(app.register_customer(name).await.0);
    }
    let place_round_robin = |from: usize, to: usize| {
        let (app, customers, products) = (&app, &customers, &products);
        async move {
            for n in from..to {
                let body = app
                    .place_order(
                        &customers[n % 4],
                        &[(&products[0], None, 1), (&products[1], None, 2)],
                    )
                    .await;
                data(&body);
            }
        }
    };

    place_round_robin(0, 5).await;
    let five = statements_of_a_page(&app, &admin, 4).await;
    place_round_robin(5, 40).await;
    let forty = statements_of_a_page(&app, &admin, 4).await;

    let expected = vec![
        // the loaders: the customers and the lines of the whole page
        "batch \"order_lines\"",
        "batch \"users\"",
        // the page
        "one \"orders\"",
        // the admin's role, as the database has it now
        "one \"users\"",
    ];
    assert_eq!(five, expected);
    assert_eq!(forty, expected);
}
