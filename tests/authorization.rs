//! Who may do what: customers see and change only their own orders, carts and
//! figures; admin operations are for admins; anonymous callers must sign in.
//! Every refusal has its exact code and writes nothing.

use serde_json::{Value, json};

use crate::harness::{TestApp, data, error_code, error_message};

const FORBIDDEN: &str = "you are not allowed to do this";
const SIGN_IN: &str = "authentication required";

const ORDER: &str = "query($id: ID!) { order(id: $id) { id orderNumber total lines { productName variantName quantity subtotal } } }";
const MY_ORDERS: &str =
    "query($after: String) { myOrders(after: $after) { edges { cursor node { id total } } } }";
const CART: &str = "{ cart { total lines { id quantity product { name } } } }";
const UPDATE_LINE: &str = "mutation($id: ID!, $quantity: Int!) { updateCartLine(input: { lineId: $id, quantity: $quantity }) { total } }";
const REMOVE_LINE: &str = "mutation($id: ID!) { removeCartLine(lineId: $id) { total } }";
const ADD_TO_CART: &str = "mutation($input: AddToCartInput!) { addToCart(input: $input) { total lines { id quantity product { name } } } }";
const PLACE_ORDER: &str =
    "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id total } }";

/// A pizza with a Large variant, a cola and a salad; Ann and Bob; an admin.
struct Shop {
    admin: String,
    ann: String,
    ann_id: i64,
    bob: String,
    bob_id: i64,
    pizza: String,
    large: String,
    cola: String,
    salad: String,
}

async fn shop(app: &TestApp) -> Shop {
    let admin = app.admin_token().await;
    let pizza = app
        .create_product(&admin, "Margherita", "pizza", "9.00", &[("Large", "14.00")])
        .await;
    let cola = app
        .create_product(&admin, "Cola", "beverages", "2.50", &[])
        .await;
    let salad = app
        .create_product(&admin, "Salad", "salads", "7.25", &[])
        .await;
    let (ann, ann_id) = app.register_customer("Ann").await;
    let (bob, bob_id) = app.register_customer("Bob").await;
    let id = |product: &Value| product["id"].as_str().unwrap().to_owned();
    Shop {
        admin,
        ann,
        ann_id,
        bob,
        bob_id,
        large: pizza["variants"][0]["id"].as_str().unwrap().to_owned(),
        pizza: id(&pizza),
        cola: id(&cola),
        salad: id(&salad),
    }
}

/// Places an order; returns its id.
async fn order(app: &TestApp, token: &str, items: &[(&str, Option<&str>, i32)]) -> String {
    let body = app.place_order(token, items).await;
    data(&body)["placeOrder"]["id"].as_str().unwrap().to_owned()
}

/// Adds to the caller's cart; returns the id of the line of `product`.
async fn add(app: &TestApp, token: &str, product: &str, variant: Option<&str>, qty: i32) -> String {
    let body = app
        .gql_as(
            token,
            ADD_TO_CART,
            json!({ "input": { "productId": product, "variantId": variant, "quantity": qty } }),
        )
        .await;
    let lines = data(&body)["addToCart"]["lines"]
        .as_array()
        .unwrap()
        .clone();
    let count = lines.len();
    lines[count - 1]["id"].as_str().unwrap().to_owned()
}

/// Everything a refused operation could have written.
async fn state(app: &TestApp) -> Value {
    let mut counts = serde_json::Map::new();
    for table in [
        "users",
        "products",
        "product_variants",
        "orders",
        "order_lines",
        "cart_lines",
        "apalis.jobs",
        "customer_product_stats",
        "customer_category_stats",
    ] {
        let count = app.count(&format!("select count(*) from {table}")).await;
        counts.insert(table.to_owned(), count.into());
    }
    json!({
        "counts": counts,
        "products": app
            .rows("select id, name, category, price_cents, available, sales_count, total_revenue_cents, updated_at from products order by id")
            .await,
        "variants": app.rows("select id, name, price_cents from product_variants order by id").await,
        "cart": app.rows("select id, user_id, product_id, variant_id, quantity from cart_lines order by id").await,
        "orders": app.rows("select id, user_id, total_cents, analytics_applied_at from orders order by id").await,
        "jobs": app.rows("select id, status, attempts, run_at, done_at from apalis.jobs order by id").await,
    })
}

/// The first error's code and message, and `data` as it came.
fn refusal(body: &Value) -> (&str, &str, &Value) {
    (error_code(body), error_message(body), &body["data"])
}

#[tokio::test]
async fn a_customer_gets_not_found_for_another_customers_order_exactly_as_for_a_missing_one() {
    let app = TestApp::spawn_without_workers().await;
    let s = shop(&app).await;
    let anns = order(
        &app,
        &s.ann,
        &[(&s.pizza, Some(&s.large), 2), (&s.cola, None, 1)],
    )
    .await;
    let bobs = order(&app, &s.bob, &[(&s.salad, None, 1)]).await;
    let before = state(&app).await;

    let bob_reads_anns = app.gql_as(&s.bob, ORDER, json!({ "id": anns })).await;
    let bob_reads_missing = app.gql_as(&s.bob, ORDER, json!({ "id": "999999" })).await;
    let ann_reads_bobs = app.gql_as(&s.ann, ORDER, json!({ "id": bobs })).await;

    let anns_message = format!("order {anns} does not exist");
    assert_eq!(
        refusal(&bob_reads_anns),
        ("NOT_FOUND", anns_message.as_str(), &Value::Null)
    );
    assert_eq!(
        refusal(&bob_reads_missing),
        ("NOT_FOUND", "order 999999 does not exist", &Value::Null)
    );
    let bobs_message = format!("order {bobs} does not exist");
    assert_eq!(
        refusal(&ann_reads_bobs),
        ("NOT_FOUND", bobs_message.as_str(), &Value::Null)
    );
    // (async-graphql leaves an errored field out, so `data` is null)
    // the same errors apart from the id: nothing tells "someone else's" from "none"
    assert_eq!(
        bob_reads_anns["errors"][0]["extensions"],
        bob_reads_missing["errors"][0]["extensions"]
    );
    assert_eq!(bob_reads_anns["errors"].as_array().unwrap().len(), 1);

    // while each reads their own
    let own = app.gql_as(&s.ann, ORDER, json!({ "id": anns })).await;
    assert_eq!(
        data(&own)["order"],
        json!({
            "id": anns,
            "orderNumber": "ORD-00000001",
            "total": "30.50",
            "lines": [
                { "productName": "Margherita", "variantName": "Large", "quantity": 2, "subtotal": "28.00" },
                { "productName": "Cola", "variantName": null, "quantity": 1, "subtotal": "2.50" },
            ],
        })
    );
    assert_eq!(state(&app).await, before);
}

#[tokio::test]
async fn my_orders_lists_only_the_callers_own_orders_whatever_cursor_they_send() {
    let app = TestApp::spawn_without_workers().await;
    let s = shop(&app).await;
    let ann_first = order(&app, &s.ann, &[(&s.cola, None, 1)]).await;
    let bob_first = order(&app, &s.bob, &[(&s.salad, None, 2)]).await;
    let ann_second = order(&app, &s.ann, &[(&s.pizza, None, 1)]).await;
    let bob_second = order(&app, &s.bob, &[(&s.cola, None, 4)]).await;
    let ids = |body: &Value| -> Vec<String> {
        data(body)["myOrders"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|edge| edge["node"]["id"].as_str().unwrap().to_owned())
            .collect()
    };

    let anns = app
        .gql_as(&s.ann, MY_ORDERS, json!({ "after": null }))
        .await;
    assert_eq!(ids(&anns), vec![ann_second.clone(), ann_first.clone()]);
    let bobs = app
        .gql_as(&s.bob, MY_ORDERS, json!({ "after": null }))
        .await;
    assert_eq!(ids(&bobs), vec![bob_second.clone(), bob_first.clone()]);
    let admins = app
        .gql_as(&s.admin, MY_ORDERS, json!({ "after": null }))
        .await;
    assert_eq!(ids(&admins), Vec::<String>::new());

    // Ann's newest cursor in Bob's hands pages through Bob's orders only
    let anns_cursor = data(&anns)["myOrders"]["edges"][0]["cursor"].clone();
    let bob_with_anns_cursor = app
        .gql_as(&s.bob, MY_ORDERS, json!({ "after": anns_cursor }))
        .await;
    assert_eq!(ids(&bob_with_anns_cursor), vec![bob_first.clone()]);
}

#[tokio::test]
async fn an_idempotency_key_another_customer_used_places_a_new_order_of_ones_own() {
    let app = TestApp::spawn_without_workers().await;
    let s = shop(&app).await;
    let input = |product: &str, quantity: i32| json!({ "input": { "items": [{ "productId": product, "quantity": quantity }], "idempotencyKey": "checkout-1" } });

    let anns = app.gql_as(&s.ann, PLACE_ORDER, input(&s.pizza, 1)).await;
    let anns = data(&anns)["placeOrder"].clone();
    let bobs = app.gql_as(&s.bob, PLACE_ORDER, input(&s.cola, 2)).await;
    let bobs = data(&bobs)["placeOrder"].clone();

    assert_ne!(bobs["id"], anns["id"]);
    assert_eq!(
        (anns["total"].as_str(), bobs["total"].as_str()),
        (Some("9.00"), Some("5.00"))
    );
    assert_eq!(
        app.rows("select user_id, total_cents, idempotency_key from orders order by id")
            .await,
        vec![
            json!({ "user_id": s.ann_id, "total_cents": 900, "idempotency_key": "checkout-1" }),
            json!({ "user_id": s.bob_id, "total_cents": 500, "idempotency_key": "checkout-1" }),
        ]
    );
    // and Bob's replay returns Bob's order, not Ann's
    let again = app.gql_as(&s.bob, PLACE_ORDER, input(&s.cola, 2)).await;
    assert_eq!(data(&again)["placeOrder"]["id"], bobs["id"]);
    assert_eq!(app.count("select count(*) from orders").await, 2);
}

#[tokio::test]
async fn a_customer_can_neither_see_nor_change_nor_remove_another_customers_cart_lines() {
    let app = TestApp::spawn_without_workers().await;
    let s = shop(&app).await;
    let anns_pizza = add(&app, &s.ann, &s.pizza, Some(&s.large), 2).await;
    let anns_cola = add(&app, &s.ann, &s.cola, None, 1).await;
    let bobs_cola = add(&app, &s.bob, &s.cola, None, 3).await;
    // the same product in two carts is two lines
    assert_ne!(bobs_cola, anns_cola);
    let before = state(&app).await;

    let bobs_cart = app.gql_as(&s.bob, CART, json!({})).await;
    assert_eq!(
        data(&bobs_cart)["cart"],
        json!({ "total": "7.50", "lines": [{ "id": bobs_cola, "quantity": 3, "product": { "name": "Cola" } }] })
    );

    for line in [&anns_pizza, &anns_cola] {
        let message = format!("cart line {line} does not exist");
        let update = app
            .gql_as(&s.bob, UPDATE_LINE, json!({ "id": line, "quantity": 99 }))
            .await;
        assert_eq!(
            refusal(&update),
            ("NOT_FOUND", message.as_str(), &Value::Null)
        );
        let remove = app.gql_as(&s.bob, REMOVE_LINE, json!({ "id": line })).await;
        assert_eq!(
            refusal(&remove),
            ("NOT_FOUND", message.as_str(), &Value::Null)
        );
    }
    assert_eq!(state(&app).await, before);
    assert_eq!(
        app.rows("select id::text as id, user_id, quantity from cart_lines order by id")
            .await,
        vec![
            json!({ "id": anns_pizza, "user_id": s.ann_id, "quantity": 2 }),
            json!({ "id": anns_cola, "user_id": s.ann_id, "quantity": 1 }),
            json!({ "id": bobs_cola, "user_id": s.bob_id, "quantity": 3 }),
        ]
    );

    // Bob's order from his cart takes his line only; Ann's cart stays whole
    let placed = app
        .gql_as(
            &s.bob,
            "mutation { placeOrderFromCart { total lines { productName quantity } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&placed)["placeOrderFromCart"],
        json!({ "total": "7.50", "lines": [{ "productName": "Cola", "quantity": 3 }] })
    );
    let anns_cart = app.gql_as(&s.ann, CART, json!({})).await;
    assert_eq!(
        data(&anns_cart)["cart"],
        json!({
            "total": "30.50",
            "lines": [
                { "id": anns_pizza, "quantity": 2, "product": { "name": "Margherita" } },
                { "id": anns_cola, "quantity": 1, "product": { "name": "Cola" } },
            ],
        })
    );
}

#[tokio::test]
async fn me_shows_each_customer_their_own_figures_and_nobody_elses() {
    let app = TestApp::spawn().await;
    let s = shop(&app).await;
    order(&app, &s.ann, &[(&s.pizza, None, 3), (&s.cola, None, 1)]).await;
    order(&app, &s.bob, &[(&s.salad, None, 2), (&s.cola, None, 5)]).await;
    app.wait_for_jobs().await;
    let query = "{ me { id name mostOrderedItems { name } favoriteCategories } }";

    let ann = app.gql_as(&s.ann, query, json!({})).await;
    let bob = app.gql_as(&s.bob, query, json!({})).await;
    let admin = app.gql_as(&s.admin, query, json!({})).await;

    assert_eq!(
        data(&ann)["me"],
        json!({
            "id": s.ann_id.to_string(),
            "name": "Ann",
            "mostOrderedItems": [{ "name": "Margherita" }, { "name": "Cola" }],
            "favoriteCategories": ["pizza", "beverages"],
        })
    );
    assert_eq!(
        data(&bob)["me"],
        json!({
            "id": s.bob_id.to_string(),
            "name": "Bob",
            "mostOrderedItems": [{ "name": "Cola" }, { "name": "Salad" }],
            "favoriteCategories": ["beverages", "salads"],
        })
    );
    // the admin ordered nothing, and sees no one else's preferences through `me`
    assert_eq!(data(&admin)["me"]["mostOrderedItems"], json!([]));
    assert_eq!(data(&admin)["me"]["favoriteCategories"], json!([]));
}

#[tokio::test]
async fn a_customer_is_forbidden_every_admin_operation_and_nothing_is_written() {
    let app = TestApp::spawn_without_workers().await;
    let s = shop(&app).await;
    order(&app, &s.ann, &[(&s.cola, None, 2)]).await;
    // a failed job, so that the retries below would have something to do
    assert_eq!(
        app.execute("update apalis.jobs set status = 'Failed', attempts = 3, done_at = now()")
            .await,
        1
    );
    let job = app.rows("select id from apalis.jobs").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = state(&app).await;

    let operations = [
        (
            "createProduct",
            "mutation { createProduct(input: { name: \"Tea\", category: \"beverages\", price: \"1.00\" }) { id } }".to_owned(),
        ),
        (
            "updateProduct",
            format!(
                "mutation {{ updateProduct(id: \"{}\", input: {{ price: \"0.01\", variants: [{{ name: \"Large\", price: \"0.01\" }}] }}) {{ id }} }}",
                s.pizza
            ),
        ),
        (
            "updateProduct of a missing product",
            "mutation { updateProduct(id: \"999999\", input: { name: \"X\" }) { id } }".to_owned(),
        ),
        (
            "retryJob",
            format!("mutation {{ retryJob(id: \"{job}\") }}"),
        ),
        (
            "retryJob of a missing job",
            "mutation { retryJob(id: \"no-such-job\") }".to_owned(),
        ),
        (
            "retryFailedJobs",
            "mutation { retryFailedJobs }".to_owned(),
        ),
        (
            "retryFailedJobs of another queue",
            "mutation { retryFailedJobs(queue: \"other\") }".to_owned(),
        ),
        (
            "rebuildAnalytics",
            "mutation { rebuildAnalytics { ordersMarked productsUpdated } }".to_owned(),
        ),
        ("jobs", "{ jobs { id status } }".to_owned()),
        (
            "jobs of a status",
            "{ jobs(status: FAILED, first: 200) { id lastError } }".to_owned(),
        ),
    ];
    for (operation, query) in &operations {
        let body = app.gql_as(&s.ann, query, json!({})).await;
        assert_eq!(
            refusal(&body),
            ("FORBIDDEN", FORBIDDEN, &Value::Null),
            "{operation}: {body}"
        );
        assert_eq!(
            body["errors"].as_array().unwrap().len(),
            1,
            "{operation}: {body}"
        );
        assert_eq!(state(&app).await, before, "{operation} wrote");
    }

    // the same operations were real: the admin sees the failed job and retries it
    let jobs = app
        .gql_as(&s.admin, "{ jobs(status: FAILED) { id } }", json!({}))
        .await;
    assert_eq!(data(&jobs)["jobs"], json!([{ "id": job }]));
    let retried = app
        .gql_as(&s.admin, "mutation { retryFailedJobs }", json!({}))
        .await;
    assert_eq!(data(&retried)["retryFailedJobs"], 1);
}

#[tokio::test]
async fn an_admin_reads_any_customers_order_but_lists_only_their_own() {
    let app = TestApp::spawn_without_workers().await;
    let s = shop(&app).await;
    let anns = order(&app, &s.ann, &[(&s.pizza, Some(&s.large), 1)]).await;
    let bobs = order(&app, &s.bob, &[(&s.salad, None, 3)]).await;

    let read = |id: &str| app.gql_as(&s.admin, ORDER, json!({ "id": id }));
    let ann_view = read(&anns).await;
    let bob_view = read(&bobs).await;

    assert_eq!(
        data(&ann_view)["order"],
        json!({
            "id": anns,
            "orderNumber": "ORD-00000001",
            "total": "14.00",
            "lines": [{ "productName": "Margherita", "variantName": "Large", "quantity": 1, "subtotal": "14.00" }],
        })
    );
    assert_eq!(
        data(&bob_view)["order"],
        json!({
            "id": bobs,
            "orderNumber": "ORD-00000002",
            "total": "21.75",
            "lines": [{ "productName": "Salad", "variantName": null, "quantity": 3, "subtotal": "21.75" }],
        })
    );
    let missing = read("999999").await;
    assert_eq!(
        refusal(&missing),
        ("NOT_FOUND", "order 999999 does not exist", &Value::Null)
    );
    let listed = app
        .gql_as(&s.admin, MY_ORDERS, json!({ "after": null }))
        .await;
    assert_eq!(data(&listed)["myOrders"]["edges"], json!([]));
}

#[tokio::test]
async fn an_anonymous_caller_must_sign_in_for_carts_orders_and_admin_operations() {
    let app = TestApp::spawn_without_workers().await;
    let s = shop(&app).await;
    let anns = order(&app, &s.ann, &[(&s.cola, None, 1)]).await;
    let line = add(&app, &s.ann, &s.pizza, None, 1).await;
    let before = state(&app).await;

    let operations = [
        ("cart", "{ cart { total } }".to_owned()),
        (
            "myOrders",
            "{ myOrders { edges { node { id } } } }".to_owned(),
        ),
        (
            "order",
            format!("{{ order(id: \"{anns}\") {{ id total }} }}"),
        ),
        (
            "placeOrder",
            format!(
                "mutation {{ placeOrder(input: {{ items: [{{ productId: \"{}\", quantity: 1 }}] }}) {{ id }} }}",
                s.cola
            ),
        ),
        (
            "placeOrderFromCart",
            "mutation { placeOrderFromCart { id } }".to_owned(),
        ),
        (
            "addToCart",
            format!(
                "mutation {{ addToCart(input: {{ productId: \"{}\" }}) {{ total }} }}",
                s.cola
            ),
        ),
        (
            "updateCartLine",
            format!(
                "mutation {{ updateCartLine(input: {{ lineId: \"{line}\", quantity: 5 }}) {{ total }} }}"
            ),
        ),
        (
            "removeCartLine",
            format!("mutation {{ removeCartLine(lineId: \"{line}\") {{ total }} }}"),
        ),
        (
            "createProduct",
            "mutation { createProduct(input: { name: \"Tea\", category: \"beverages\", price: \"1.00\" }) { id } }".to_owned(),
        ),
        (
            "updateProduct",
            format!(
                "mutation {{ updateProduct(id: \"{}\", input: {{ available: false }}) {{ id }} }}",
                s.pizza
            ),
        ),
        (
            "retryJob",
            "mutation { retryJob(id: \"x\") }".to_owned(),
        ),
        (
            "retryFailedJobs",
            "mutation { retryFailedJobs }".to_owned(),
        ),
        (
            "rebuildAnalytics",
            "mutation { rebuildAnalytics { ordersMarked } }".to_owned(),
        ),
        ("jobs", "{ jobs { id } }".to_owned()),
    ];
    for (operation, query) in &operations {
        let body = app.gql(query, json!({})).await;
        assert_eq!(
            refusal(&body),
            ("UNAUTHENTICATED", SIGN_IN, &Value::Null),
            "{operation}: {body}"
        );
        assert_eq!(state(&app).await, before, "{operation} wrote");
    }

    // what needs no account still answers
    let public = app
        .gql("{ me { id } products { nodes { name } } }", json!({}))
        .await;
    assert_eq!(
        public,
        json!({ "data": { "me": null, "products": { "nodes": [
            { "name": "Margherita" }, { "name": "Cola" }, { "name": "Salad" },
        ] } } })
    );
}

#[tokio::test]
async fn an_admin_demoted_or_deleted_loses_admin_powers_at_once_whatever_the_token_says() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let create = "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }";
    let input =
        |name: &str| json!({ "input": { "name": name, "category": "pizza", "price": "5.00" } });
    data(&app.gql_as(&admin, create, input("Before")).await);

    // demoted in the database: the token no longer stands
    app.execute("update users set role = 'customer' where email = 'admin@example.com'")
        .await;
    let revoked = app.gql_as(&admin, create, input("Demoted")).await;
    assert_eq!(error_code(&revoked), "UNAUTHENTICATED");
    assert_eq!(error_message(&revoked), "invalid or expired token");
    // signed in again, the account is a customer's
    let demoted = app.login("admin@example.com", "admin password").await;
    let refused = app.gql_as(&demoted, create, input("Demoted")).await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let jobs = app.gql_as(&demoted, "{ jobs { id } }", json!({})).await;
    assert_eq!(error_code(&jobs), "FORBIDDEN");

    app.execute("delete from users where email = 'admin@example.com'")
        .await;
    let deleted = app.gql_as(&demoted, create, input("Deleted")).await;
    assert_eq!(error_code(&deleted), "UNAUTHENTICATED");
    assert_eq!(error_message(&deleted), "invalid or expired token");

    assert_eq!(
        app.rows("select name from products order by id").await,
        vec![json!({ "name": "Before" })]
    );
}

#[tokio::test]
async fn a_changed_password_or_role_ends_every_earlier_token_of_the_account() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let (ann, ann_id) = app.register_customer("Ann").await;
    let (bob, bob_id) = app.register_customer("Bob").await;
    let me = "{ me { id role } }";
    let me_of = |id: i64, role: &str| json!({ "me": { "id": id.to_string(), "role": role } });
    assert_eq!(
        data(&app.gql_as(&ann, me, json!({})).await),
        &me_of(ann_id, "CUSTOMER")
    );

    // a second admin_token() keeps the password: the first token stands
    let again = app.admin_token().await;
    data(&app.gql_as(&admin, "{ jobs { id } }", json!({})).await);
    // create-admin with a new password ends the earlier sessions
    tally::domain::users::ensure_admin(&app.db, "admin@example.com", "a new admin password")
        .await
        .map_err(|e| e.message())
        .unwrap();
    for token in [&admin, &again] {
        let body = app.gql_as(token, "{ jobs { id } }", json!({})).await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
        assert_eq!(error_message(&body), "invalid or expired token");
    }
    let admin = app.login("admin@example.com", "a new admin password").await;
    data(&app.gql_as(&admin, "{ jobs { id } }", json!({})).await);

    // a promotion by an operator's SQL ends Ann's customer token too, and
    // what the new token says is what the database says
    app.execute(&format!(
        "update users set role = 'admin' where id = {ann_id}"
    ))
    .await;
    let body = app.gql_as(&ann, me, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    // any other change leaves tokens alone
    app.execute(&format!(
        "update users set name = 'Robert' where id = {bob_id}"
    ))
    .await;
    assert_eq!(
        data(&app.gql_as(&bob, me, json!({})).await),
        &me_of(bob_id, "CUSTOMER")
    );
    assert_eq!(
        app.rows("select email, token_version from users order by id")
            .await,
        vec![
            json!({ "email": "admin@example.com", "token_version": 1 }),
            json!({ "email": "ann@example.com", "token_version": 1 }),
            json!({ "email": "bob@example.com", "token_version": 0 }),
        ]
    );
}
