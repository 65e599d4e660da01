//! The cart: adding, merging, limits, updating and removing lines.

use futures::future::join_all;
use serde_json::{Value, json};

use crate::harness::{TestApp, data, error_code, error_message};

const CART_FIELDS: &str =
    "lines { id product { id name } variant { id name } quantity unitPrice subtotal } total";

fn add_mutation() -> String {
    format!("mutation($input: AddToCartInput!) {{ addToCart(input: $input) {{ {CART_FIELDS} }} }}")
}

fn update_mutation() -> String {
    format!(
        "mutation($input: UpdateCartLineInput!) {{ updateCartLine(input: $input) {{ {CART_FIELDS} }} }}"
    )
}

fn remove_mutation() -> String {
    format!("mutation($lineId: ID!) {{ removeCartLine(lineId: $lineId) {{ {CART_FIELDS} }} }}")
}

fn cart_query() -> String {
    format!("{{ cart {{ {CART_FIELDS} }} }}")
}

/// A pizza with two variants and a drink without any.
struct Menu {
    pizza: String,
    small: String,
    large: String,
    cola: String,
}

async fn menu(app: &TestApp) -> Menu {
    let admin = app.admin_token().await;
    let pizza = app
        .create_product(
            &admin,
            "Margherita",
            "pizza",
            "10.00",
            &[("Small", "8.50"), ("Large", "12.25")],
        )
        .await;
    let cola = app
        .create_product(&admin, "Cola", "drinks", "2.99", &[])
        .await;
    Menu {
        pizza: pizza["id"].as_str().unwrap().to_owned(),
        small: pizza["variants"][0]["id"].as_str().unwrap().to_owned(),
        large: pizza["variants"][1]["id"].as_str().unwrap().to_owned(),
        cola: cola["id"].as_str().unwrap().to_owned(),
    }
}

async fn add(
    app: &TestApp,
    token: &str,
    product: &str,
    variant: Option<&str>,
    quantity: i32,
) -> Value {
    app.gql_as(
        token,
        &add_mutation(),
        json!({ "input": { "productId": product, "variantId": variant, "quantity": quantity } }),
    )
    .await
}

fn line(
    id: &Value,
    product: (&str, &str),
    variant: Option<(&str, &str)>,
    quantity: i32,
    unit: &str,
    subtotal: &str,
) -> Value {
    json!({
        "id": id,
        "product": { "id": product.0, "name": product.1 },
        "variant": variant.map(|(id, name)| json!({ "id": id, "name": name })),
        "quantity": quantity,
        "unitPrice": unit,
        "subtotal": subtotal,
    })
}

#[tokio::test]
async fn adding_the_same_product_and_variant_again_adds_to_its_line() {
    let app = TestApp::spawn().await;
    let menu = menu(&app).await;
    let (token, _) = app.register_customer("Ann").await;
    let pizza = (menu.pizza.as_str(), "Margherita");
    let cola = (menu.cola.as_str(), "Cola");
    let small = Some((menu.small.as_str(), "Small"));
    let large = Some((menu.large.as_str(), "Large"));

    let body = add(&app, &token, &menu.pizza, Some(&menu.small), 2).await;
    let cart = data(&body)["addToCart"].clone();
    let first = cart["lines"][0]["id"].clone();
    assert_eq!(
        cart,
        json!({ "lines": [line(&first, pizza, small, 2, "8.50", "17.00")], "total": "17.00" })
    );

    let body = add(&app, &token, &menu.pizza, Some(&menu.small), 3).await;
    assert_eq!(
        data(&body)["addToCart"],
        json!({ "lines": [line(&first, pizza, small, 5, "8.50", "42.50")], "total": "42.50" })
    );
    assert_eq!(app.count("select count(*) from cart_lines").await, 1);

    // another variant of the same product is another line
    let body = add(&app, &token, &menu.pizza, Some(&menu.large), 1).await;
    let cart = data(&body)["addToCart"].clone();
    let second = cart["lines"][1]["id"].clone();
    assert_ne!(first, second);
    assert_eq!(
        cart,
        json!({
            "lines": [
                line(&first, pizza, small, 5, "8.50", "42.50"),
                line(&second, pizza, large, 1, "12.25", "12.25"),
            ],
            "total": "54.75",
        })
    );

    // no variant is a line of its own, and merges too
    let body = add(&app, &token, &menu.cola, None, 3).await;
    let third = data(&body)["addToCart"]["lines"][2]["id"].clone();
    let body = add(&app, &token, &menu.cola, None, 1).await;
    let expected = json!({
        "lines": [
            line(&first, pizza, small, 5, "8.50", "42.50"),
            line(&second, pizza, large, 1, "12.25", "12.25"),
            line(&third, cola, None, 4, "2.99", "11.96"),
        ],
        "total": "66.71",
    });
    assert_eq!(data(&body)["addToCart"], expected);
    assert_eq!(app.count("select count(*) from cart_lines").await, 3);

    // the cart query answers the same
    let body = app.gql_as(&token, &cart_query(), json!({})).await;
    assert_eq!(data(&body)["cart"], expected);

    // the quantity defaults to 1
    let body = app
        .gql_as(
            &token,
            &add_mutation(),
            json!({ "input": { "productId": menu.cola } }),
        )
        .await;
    assert_eq!(data(&body)["addToCart"]["lines"][2]["quantity"], 5);
    assert_eq!(data(&body)["addToCart"]["total"], "69.70");
}

#[tokio::test]
async fn a_quantity_outside_1_to_99_or_a_line_over_99_is_bad_input() {
    let app = TestApp::spawn().await;
    let menu = menu(&app).await;
    let (token, _) = app.register_customer("Ann").await;

    for quantity in [0, 100, -1] {
        let body = add(&app, &token, &menu.pizza, Some(&menu.small), quantity).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{quantity}: {body}");
        assert_eq!(
            error_message(&body),
            format!("quantity must be between 1 and 99, got {quantity}")
        );
        assert_eq!(body["data"], Value::Null);
    }
    assert_eq!(app.count("select count(*) from cart_lines").await, 0);

    data(&add(&app, &token, &menu.pizza, Some(&menu.small), 60).await);
    let body = add(&app, &token, &menu.pizza, Some(&menu.small), 50).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_message(&body), "a cart line holds at most 99 items");
    assert_eq!(body["data"], Value::Null);
    assert_eq!(
        app.rows("select quantity from cart_lines").await,
        vec![json!({ "quantity": 60 })]
    );

    // exactly 99 fits
    let body = add(&app, &token, &menu.pizza, Some(&menu.small), 39).await;
    assert_eq!(data(&body)["addToCart"]["lines"][0]["quantity"], 99);
    assert_eq!(data(&body)["addToCart"]["total"], "841.50");
    assert_eq!(
        app.rows("select quantity from cart_lines").await,
        vec![json!({ "quantity": 99 })]
    );
}

#[tokio::test]
async fn an_unknown_unavailable_or_mismatched_product_cannot_be_added() {
    let app = TestApp::spawn().await;
    let menu = menu(&app).await;
    let admin = app.admin_token().await;
    let (token, _) = app.register_customer("Ann").await;

    let gone = app
        .create_product(&admin, "Seasonal", "pizza", "11.00", &[])
        .await;
    let gone = gone["id"].as_str().unwrap().to_owned();
    let body = app
        .gql_as(
            &admin,
            "mutation($id: ID!) { updateProduct(id: $id, input: { available: false }) { available } }",
            json!({ "id": gone }),
        )
        .await;
    assert_eq!(data(&body)["updateProduct"]["available"], false);

    let cases = [
        (
            "999999".to_owned(),
            None,
            "NOT_FOUND",
            "product 999999 does not exist".to_owned(),
        ),
        (
            menu.pizza.clone(),
            Some("999999".to_owned()),
            "NOT_FOUND",
            "variant 999999 does not exist".to_owned(),
        ),
        (
            gone.clone(),
            None,
            "BAD_USER_INPUT",
            format!("product {gone} (Seasonal) is not available"),
        ),
        (
            menu.cola.clone(),
            Some(menu.small.clone()),
            "BAD_USER_INPUT",
            format!(
                "variant {} is not a variant of product {}",
                menu.small, menu.cola
            ),
        ),
        (
            "abc".to_owned(),
            None,
            "BAD_USER_INPUT",
            "\"abc\" is not a valid product id".to_owned(),
        ),
    ];
    for (product, variant, code, message) in cases {
        let body = add(&app, &token, &product, variant.as_deref(), 1).await;
        assert_eq!(error_code(&body), code, "{product} {variant:?}: {body}");
        assert_eq!(error_message(&body), message, "{product} {variant:?}");
        assert_eq!(body["data"], Value::Null);
        assert_eq!(app.count("select count(*) from cart_lines").await, 0);
    }

    let body = app.gql_as(&token, &cart_query(), json!({})).await;
    assert_eq!(data(&body)["cart"], json!({ "lines": [], "total": "0.00" }));
}

#[tokio::test]
async fn only_the_owner_of_a_line_can_update_or_remove_it() {
    let app = TestApp::spawn().await;
    let menu = menu(&app).await;
    let (ann, ann_id) = app.register_customer("Ann").await;
    let (bob, _) = app.register_customer("Bob").await;
    let pizza = (menu.pizza.as_str(), "Margherita");
    let cola = (menu.cola.as_str(), "Cola");
    let large = Some((menu.large.as_str(), "Large"));

    data(&add(&app, &ann, &menu.pizza, Some(&menu.large), 2).await);
    let body = add(&app, &ann, &menu.cola, None, 1).await;
    let cart = data(&body)["addToCart"].clone();
    let pizza_line = cart["lines"][0]["id"].clone();
    let cola_line = cart["lines"][1]["id"].clone();
    let pizza_line_id = pizza_line.as_str().unwrap().to_owned();

    let body = app
        .gql_as(
            &ann,
            &update_mutation(),
            json!({ "input": { "lineId": pizza_line, "quantity": 7 } }),
        )
        .await;
    assert_eq!(
        data(&body)["updateCartLine"],
        json!({
            "lines": [
                line(&pizza_line, pizza, large, 7, "12.25", "85.75"),
                line(&cola_line, cola, None, 1, "2.99", "2.99"),
            ],
            "total": "88.74",
        })
    );

    let body = app
        .gql_as(
            &ann,
            &update_mutation(),
            json!({ "input": { "lineId": pizza_line, "quantity": 0 } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(
        error_message(&body),
        "quantity must be between 1 and 99, got 0"
    );

    // Bob can neither change nor remove Ann's line, nor even learn it exists
    let not_found = format!("cart line {pizza_line_id} does not exist");
    let body = app
        .gql_as(
            &bob,
            &update_mutation(),
            json!({ "input": { "lineId": pizza_line, "quantity": 1 } }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    assert_eq!(error_message(&body), not_found);
    assert_eq!(body["data"], Value::Null);
    let body = app
        .gql_as(&bob, &remove_mutation(), json!({ "lineId": pizza_line }))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    assert_eq!(error_message(&body), not_found);
    assert_eq!(body["data"], Value::Null);
    assert_eq!(
        app.rows(&format!(
            "select user_id, quantity from cart_lines where id = {pizza_line_id}"
        ))
        .await,
        vec![json!({ "user_id": ann_id, "quantity": 7 })]
    );
    let body = app.gql_as(&bob, &cart_query(), json!({})).await;
    assert_eq!(data(&body)["cart"], json!({ "lines": [], "total": "0.00" }));

    // Ann removes her line
    let body = app
        .gql_as(&ann, &remove_mutation(), json!({ "lineId": pizza_line }))
        .await;
    assert_eq!(
        data(&body)["removeCartLine"],
        json!({ "lines": [line(&cola_line, cola, None, 1, "2.99", "2.99")], "total": "2.99" })
    );
    assert_eq!(app.count("select count(*) from cart_lines").await, 1);

    // and it is gone
    let body = app
        .gql_as(&ann, &remove_mutation(), json!({ "lineId": pizza_line }))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    assert_eq!(error_message(&body), not_found);
    let body = app
        .gql_as(
            &ann,
            &update_mutation(),
            json!({ "input": { "lineId": "999999", "quantity": 1 } }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    assert_eq!(error_message(&body), "cart line 999999 does not exist");
}

/// A double or triple click, or a client's retry, sends placeOrderFromCart
/// again before the first answer: exactly one order, the others are told
/// the cart is empty and write nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_from_one_cart_place_one_order() {
    let app = TestApp::spawn_without_workers().await;
    let menu = menu(&app).await;
    let (token, user_id) = app.register_customer("Ann").await;
    for round in 0..20 {
        let callers = 2 + round % 7;
        data(&add(&app, &token, &menu.pizza, Some(&menu.large), 2).await);
        data(&add(&app, &token, &menu.cola, None, 1).await);
        let answers = join_all((0..callers).map(|_| {
            app.gql_as(
                &token,
                "mutation { placeOrderFromCart { total lines { productName quantity } } }",
                json!({}),
            )
        }))
        .await;
        let placed: Vec<&Value> = answers.iter().filter(|a| a["errors"].is_null()).collect();
        assert_eq!(placed.len(), 1, "round {round}: {answers:?}");
        assert_eq!(
            data(placed[0])["placeOrderFromCart"],
            json!({ "total": "27.49", "lines": [
                { "productName": "Margherita", "quantity": 2 },
                { "productName": "Cola", "quantity": 1 },
            ] })
        );
        for refused in answers.iter().filter(|a| !a["errors"].is_null()) {
            assert_eq!(error_code(refused), "BAD_USER_INPUT", "round {round}");
            assert_eq!(error_message(refused), "the cart is empty");
        }
        assert_eq!(
            app.count(&format!(
                "select count(*) from orders where user_id = {user_id}"
            ))
            .await,
            round as i64 + 1
        );
    }
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 20);
    assert_eq!(app.count("select count(*) from cart_lines").await, 0);
}

/// With one idempotency key, concurrent calls all answer the one order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_from_one_cart_with_one_key_answer_one_order() {
    let app = TestApp::spawn_without_workers().await;
    let menu = menu(&app).await;
    let (token, _) = app.register_customer("Ann").await;
    data(&add(&app, &token, &menu.cola, None, 3).await);
    let answers = join_all((0..6).map(|_| {
        app.gql_as(
            &token,
            "mutation { placeOrderFromCart(input: { idempotencyKey: \"tap\" }) { id total } }",
            json!({}),
        )
    }))
    .await;
    let first = &data(&answers[0])["placeOrderFromCart"];
    assert_eq!(first["total"], "8.97");
    for answer in &answers {
        assert_eq!(&data(answer)["placeOrderFromCart"], first);
    }
    assert_eq!(app.count("select count(*) from orders").await, 1);
}
