//! Placing orders: prices, snapshots, validation, idempotency, the atomic job.

use entity::users::Role;
use jobs::{JobKind, JobOptions, PostOrderJob};
use sea_orm::TransactionTrait;
use serde_json::{Value, json};
use tally::auth::Viewer;
use tally::domain::Quantity;
use tally::domain::orders::{self, OrderItem};

use crate::harness::{TestApp, data, error_code};

const ORDER_FIELDS: &str = "id orderNumber status total analyticsStatus \
    lines { productName variantName category quantity unitPrice subtotal product { id } }";

/// A pizza with two sizes and a cola: the catalog most tests order from.
pub(crate) struct Menu {
    pub pizza: String,
    pub small: String,
    pub large: String,
    pub cola: String,
}

pub(crate) async fn menu(app: &TestApp, admin: &str) -> Menu {
    let pizza = app
        .create_product(
            admin,
            "Margherita",
            "pizza",
            "9.00",
            &[("Small", "9.00"), ("Large", "14.00")],
        )
        .await;
    let cola = app
        .create_product(admin, "Cola", "beverages", "2.50", &[])
        .await;
    Menu {
        pizza: pizza["id"].as_str().unwrap().to_owned(),
        small: pizza["variants"][0]["id"].as_str().unwrap().to_owned(),
        large: pizza["variants"][1]["id"].as_str().unwrap().to_owned(),
        cola: cola["id"].as_str().unwrap().to_owned(),
    }
}

/// A product "Closed" made unavailable; its id.
pub(crate) async fn closed_product(app: &TestApp, admin: &str) -> String {
    let closed = app
        .create_product(admin, "Closed", "pizza", "5.00", &[])
        .await;
    let closed = closed["id"].as_str().unwrap().to_owned();
    data(
        &app.gql_as(
            admin,
            "mutation($id: ID!) { updateProduct(id: $id, input: { available: false }) { id } }",
            json!({ "id": closed }),
        )
        .await,
    );
    closed
}

async fn place(app: &TestApp, token: &str, input: Value) -> Value {
    app.gql_as(
        token,
        &format!("mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{ {ORDER_FIELDS} }} }}"),
        json!({ "input": input }),
    )
    .await
}

#[tokio::test]
async fn an_order_keeps_a_snapshot_of_prices_from_the_database() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let m = menu(&app, &admin).await;
    let (token, user_id) = app.register_customer("Ann").await;

    let body = place(
        &app,
        &token,
        json!({ "items": [
            { "productId": m.pizza, "variantId": m.small, "quantity": 2 },
            { "productId": m.pizza, "variantId": m.large, "quantity": 3 },
            { "productId": m.cola, "quantity": 1 },
        ]}),
    )
    .await;
    let order = &data(&body)["placeOrder"];
    assert!(
        order["orderNumber"].as_str().unwrap().starts_with("ORD-"),
        "{order}"
    );
    assert_eq!(order["status"], "PLACED");
    assert_eq!(order["total"], "62.50");
    assert_eq!(order["analyticsStatus"], "PENDING");
    assert_eq!(
        order["lines"],
        json!([
            { "productName": "Margherita", "variantName": "Small", "category": "pizza", "quantity": 2,
              "unitPrice": "9.00", "subtotal": "18.00", "product": { "id": m.pizza } },
            { "productName": "Margherita", "variantName": "Large", "category": "pizza", "quantity": 3,
              "unitPrice": "14.00", "subtotal": "42.00", "product": { "id": m.pizza } },
            { "productName": "Cola", "variantName": null, "category": "beverages", "quantity": 1,
              "unitPrice": "2.50", "subtotal": "2.50", "product": { "id": m.cola } },
        ])
    );

    // a later price change does not touch the snapshot
    app.gql_as(
        &admin,
        "mutation($id: ID!) { updateProduct(id: $id, input: { name: \"Pizza M\", variants: [{ name: \"Small\", price: \"10.00\" }] }) { id } }",
        json!({ "id": m.pizza }),
    )
    .await;
    let id = order["id"].as_str().unwrap();
    let body = app
        .gql_as(
            &token,
            &format!("query($id: ID!) {{ order(id: $id) {{ {ORDER_FIELDS} }} }}"),
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data(&body)["order"]["lines"], order["lines"]);

    // the job row was written with the order, in apalis's encoding
    let rows = app
        .rows("select job_type, status, attempts, max_attempts, idempotency_key, convert_from(job, 'UTF8')::jsonb as args from apalis.jobs")
        .await;
    assert_eq!(rows.len(), 1, "one job for the one order: {rows:?}");
    let mut row = rows[0].clone();
    let args = row.as_object_mut().unwrap().remove("args").unwrap();
    assert_eq!(
        row,
        json!({
            "job_type": jobs::QUEUE, "status": "Pending", "attempts": 0, "max_attempts": 3,
            "idempotency_key": JobKind::Count.key(id.parse().unwrap()),
        })
    );
    // its arguments as the workers read them: apalis's JsonCodec is serde_json
    assert_eq!(
        serde_json::from_value::<PostOrderJob>(args).unwrap(),
        PostOrderJob {
            order_id: id.parse().unwrap(),
            order_number: order["orderNumber"].as_str().unwrap().to_owned(),
        }
    );
    assert_eq!(
        app.rows("select user_id, total_cents from orders").await,
        vec![json!({ "user_id": user_id, "total_cents": 6250 })]
    );
}

#[tokio::test]
async fn invalid_orders_are_rejected_and_nothing_is_written() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let m = menu(&app, &admin).await;
    let closed = closed_product(&app, &admin).await;
    let closed = closed.as_str();
    let (token, _) = app.register_customer("Ann").await;
    let too_many: Vec<Value> = (0..101)
        .map(|_| json!({ "productId": m.cola, "quantity": 1 }))
        .collect();

    let cases = [
        ("no lines", json!({ "items": [] }), "BAD_USER_INPUT"),
        (
            "quantity 0",
            json!({ "items": [{ "productId": m.cola, "quantity": 0 }] }),
            "BAD_USER_INPUT",
        ),
        (
            "quantity 100",
            json!({ "items": [{ "productId": m.cola, "quantity": 100 }] }),
            "BAD_USER_INPUT",
        ),
        (
            "quantity -1",
            json!({ "items": [{ "productId": m.cola, "quantity": -1 }] }),
            "BAD_USER_INPUT",
        ),
        ("101 lines", json!({ "items": too_many }), "BAD_USER_INPUT"),
        (
            "a variant of another product",
            json!({ "items": [{ "productId": m.cola, "variantId": m.small, "quantity": 1 }] }),
            "BAD_USER_INPUT",
        ),
        (
            "an unavailable product",
            json!({ "items": [{ "productId": closed, "quantity": 1 }] }),
            "BAD_USER_INPUT",
        ),
        (
            "one good line and one unavailable",
            json!({ "items": [{ "productId": m.cola, "quantity": 1 }, { "productId": closed, "quantity": 1 }] }),
            "BAD_USER_INPUT",
        ),
        (
            "an unknown product",
            json!({ "items": [{ "productId": "999999", "quantity": 1 }] }),
            "NOT_FOUND",
        ),
        (
            "an unknown variant",
            json!({ "items": [{ "productId": m.pizza, "variantId": "999999", "quantity": 1 }] }),
            "NOT_FOUND",
        ),
        (
            "a malformed id",
            json!({ "items": [{ "productId": "pizza", "quantity": 1 }] }),
            "BAD_USER_INPUT",
        ),
        (
            "an empty idempotency key",
            json!({ "items": [{ "productId": m.cola, "quantity": 1 }], "idempotencyKey": "" }),
            "BAD_USER_INPUT",
        ),
    ];
    for (case, input, code) in cases {
        let body = place(&app, &token, input).await;
        assert_eq!(error_code(&body), code, "{case}: {body}");
        assert_eq!(body["data"], Value::Null, "{case}");
    }
    let body = app
        .gql(
            "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }",
            json!({ "input": { "items": [{ "productId": m.cola, "quantity": 1 }] } }),
        )
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");

    assert_eq!(app.count("select count(*) from orders").await, 0);
    assert_eq!(app.count("select count(*) from order_lines").await, 0);
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 0);
}

/// The one placement statement decides which lines can be ordered; each
/// refusal still names its line, the first one that cannot be ordered.
#[tokio::test]
async fn a_refused_placement_names_the_first_line_that_cannot_be_ordered() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let m = menu(&app, &admin).await;
    let closed = closed_product(&app, &admin).await;
    let (token, _) = app.register_customer("Ann").await;
    let line = |product: &str, variant: Option<&str>| json!({ "productId": product, "variantId": variant, "quantity": 1 });

    let cases = [
        (
            vec![line(&m.cola, None), line("999999", None)],
            "NOT_FOUND",
            "product 999999 does not exist".to_owned(),
        ),
        (
            vec![line(&m.pizza, Some("999999")), line("999998", None)],
            "NOT_FOUND",
            "variant 999999 does not exist".to_owned(),
        ),
        (
            vec![
                line(&m.pizza, Some(&m.large)),
                line(&m.cola, Some(&m.small)),
            ],
            "BAD_USER_INPUT",
            format!("variant {} is not a variant of product {}", m.small, m.cola),
        ),
        (
            vec![line(&closed, None), line("999999", None)],
            "BAD_USER_INPUT",
            format!("product {closed} (Closed) is not available"),
        ),
    ];
    for (items, code, message) in cases {
        let body = place(&app, &token, json!({ "items": items })).await;
        assert_eq!(error_code(&body), code, "{items:?}: {body}");
        assert_eq!(body["errors"][0]["message"], message, "{items:?}");
        assert_eq!(body["data"], Value::Null);
    }
    assert_eq!(app.count("select count(*) from orders").await, 0);
    assert_eq!(app.count("select count(*) from order_lines").await, 0);
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 0);

    // a key replayed after its product closed returns its order, priced as
    // it was: the earlier order is looked up before any line is checked
    let input = json!({ "items": [line(&m.cola, None)], "idempotencyKey": "ann-1" });
    let first = place(&app, &token, input.clone()).await;
    app.execute(&format!(
        "update products set available = false where id = {}",
        m.cola
    ))
    .await;
    let again = place(&app, &token, input).await;
    assert_eq!(data(&again)["placeOrder"], data(&first)["placeOrder"]);
    assert_eq!(data(&first)["placeOrder"]["total"], "2.50");
    assert_eq!(app.count("select count(*) from orders").await, 1);
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 1);
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_first_order() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let m = menu(&app, &admin).await;
    let (ann, _) = app.register_customer("Ann").await;
    let (bob, _) = app.register_customer("Bob").await;
    let input = json!({ "items": [{ "productId": m.cola, "quantity": 2 }], "idempotencyKey": "checkout-1" });

    let first = place(&app, &ann, input.clone()).await;
    let again = place(&app, &ann, input.clone()).await;
    assert_eq!(data(&again)["placeOrder"], data(&first)["placeOrder"]);
    // the key is the user's own: another customer's order is another order
    let bobs = place(&app, &bob, input).await;
    assert_ne!(
        data(&bobs)["placeOrder"]["id"],
        data(&first)["placeOrder"]["id"]
    );

    assert_eq!(app.count("select count(*) from orders").await, 2);
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_idempotency_key_create_one_order() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let m = menu(&app, &admin).await;
    let (token, _) = app.register_customer("Ann").await;
    let input = json!({ "items": [{ "productId": m.pizza, "variantId": m.large, "quantity": 1 }], "idempotencyKey": "tap-tap-tap" });

    let responses =
        futures::future::join_all((0..12).map(|_| place(&app, &token, input.clone()))).await;
    let ids: Vec<&Value> = responses
        .iter()
        .map(|r| &data(r)["placeOrder"]["id"])
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "different orders: {ids:?}"
    );
    assert_eq!(app.count("select count(*) from orders").await, 1);
    assert_eq!(app.count("select count(*) from order_lines").await, 1);
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 1);
}

#[tokio::test]
async fn placing_from_the_cart_empties_it_with_the_order() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let m = menu(&app, &admin).await;
    let (token, _) = app.register_customer("Ann").await;

    let empty = app
        .gql_as(&token, "mutation { placeOrderFromCart { id } }", json!({}))
        .await;
    assert_eq!(error_code(&empty), "BAD_USER_INPUT");
    assert_eq!(app.count("select count(*) from orders").await, 0);

    for (product, variant, quantity) in [(&m.pizza, Some(&m.large), 2), (&m.cola, None, 3)] {
        let body = app
            .gql_as(
                &token,
                "mutation($input: AddToCartInput!) { addToCart(input: $input) { total } }",
                json!({ "input": { "productId": product, "variantId": variant, "quantity": quantity } }),
            )
            .await;
        data(&body);
    }
    let body = app
        .gql_as(
            &token,
            &format!("mutation {{ placeOrderFromCart(input: {{ idempotencyKey: \"cart-1\" }}) {{ {ORDER_FIELDS} }} }}"),
            json!({}),
        )
        .await;
    let order = &data(&body)["placeOrderFromCart"];
    assert_eq!(order["total"], "35.50");
    assert_eq!(
        order["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (
                l["productName"].clone(),
                l["variantName"].clone(),
                l["quantity"].clone()
            ))
            .collect::<Vec<_>>(),
        vec![
            (json!("Margherita"), json!("Large"), json!(2)),
            (json!("Cola"), Value::Null, json!(3)),
        ]
    );
    let cart = app
        .gql_as(&token, "{ cart { lines { id } total } }", json!({}))
        .await;
    assert_eq!(data(&cart)["cart"], json!({ "lines": [], "total": "0.00" }));
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 1);

    // replaying the key returns the order and leaves a new cart alone
    app.gql_as(
        &token,
        "mutation($input: AddToCartInput!) { addToCart(input: $input) { total } }",
        json!({ "input": { "productId": m.cola, "quantity": 1 } }),
    )
    .await;
    let again = app
        .gql_as(
            &token,
            "mutation { placeOrderFromCart(input: { idempotencyKey: \"cart-1\" }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&again)["placeOrderFromCart"]["id"], order["id"]);
    assert_eq!(app.count("select count(*) from cart_lines").await, 1);
    assert_eq!(app.count("select count(*) from orders").await, 1);
}

#[tokio::test]
async fn customers_see_only_their_own_orders_and_admins_see_all() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let m = menu(&app, &admin).await;
    let (ann, _) = app.register_customer("Ann").await;
    let (bob, _) = app.register_customer("Bob").await;
    let body = place(
        &app,
        &ann,
        json!({ "items": [{ "productId": m.cola, "quantity": 1 }] }),
    )
    .await;
    let id = data(&body)["placeOrder"]["id"].clone();

    let query = "query($id: ID!) { order(id: $id) { id } }";
    let bobs_view = app.gql_as(&bob, query, json!({ "id": id })).await;
    assert_eq!(error_code(&bobs_view), "NOT_FOUND");
    let anns_view = app.gql_as(&ann, query, json!({ "id": id })).await;
    assert_eq!(data(&anns_view)["order"]["id"], id);
    let admins_view = app.gql_as(&admin, query, json!({ "id": id })).await;
    assert_eq!(data(&admins_view)["order"]["id"], id);
    let anonymous = app.gql(query, json!({ "id": id })).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");

    let bobs_orders = app
        .gql_as(&bob, "{ myOrders { edges { node { id } } } }", json!({}))
        .await;
    assert_eq!(data(&bobs_orders)["myOrders"]["edges"], json!([]));
}

#[tokio::test]
async fn my_orders_pages_newest_first() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let m = menu(&app, &admin).await;
    let (token, _) = app.register_customer("Ann").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let body = place(
            &app,
            &token,
            json!({ "items": [{ "productId": m.cola, "quantity": 1 }] }),
        )
        .await;
        ids.push(data(&body)["placeOrder"]["id"].as_str().unwrap().to_owned());
    }
    ids.reverse();

    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = Vec::new();
    loop {
        let body = app
            .gql_as(
                &token,
                "query($after: String) { myOrders(first: 2, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } }",
                json!({ "after": after }),
            )
            .await;
        let connection = &data(&body)["myOrders"];
        let page: Vec<String> = connection["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
            .collect();
        let has_next = connection["pageInfo"]["hasNextPage"].as_bool().unwrap();
        pages.push((page.len(), has_next));
        seen.extend(page);
        if !has_next {
            break;
        }
        after = connection["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, vec![(2, true), (2, true), (1, false)]);
}

#[tokio::test]
async fn an_order_whose_transaction_rolls_back_leaves_no_job() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let m = menu(&app, &admin).await;
    let (_, user_id) = app.register_customer("Ann").await;
    let viewer = Viewer {
        user_id,
        role: Role::Customer,
    };
    let items = vec![OrderItem {
        product_id: m.cola.parse().unwrap(),
        variant_id: None,
        quantity: Quantity::parse(2).unwrap(),
    }];

    let txn = app.db.begin().await.unwrap();
    let placed = orders::place_order(
        &txn,
        viewer,
        items.clone(),
        None,
        JobOptions { max_attempts: 3 },
    )
    .await
    .map_err(|e| e.message())
    .unwrap();
    // inside the transaction, order and job exist together
    assert_eq!(placed.order.total_cents, 500);
    txn.rollback().await.unwrap();
    assert_eq!(app.count("select count(*) from orders").await, 0);
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 0);

    let txn = app.db.begin().await.unwrap();
    orders::place_order(&txn, viewer, items, None, JobOptions { max_attempts: 3 })
        .await
        .map_err(|e| e.message())
        .unwrap();
    txn.commit().await.unwrap();
    assert_eq!(app.count("select count(*) from orders").await, 1);
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 1);
}
