//! Money never overflows: a unit price is at most 1000000.00, the largest
//! order within the bounds is placed and counted exactly, and a legacy price
//! above the bound is refused at placement.

use serde_json::{Value, json};

use crate::harness::{TestApp, data, error_code, error_message};

const CREATE: &str = "mutation($input: CreateProductInput!) {
    createProduct(input: $input) { id price variants { id name price } }
}";

const UPDATE: &str = "mutation($id: ID!, $input: UpdateProductInput!) {
    updateProduct(id: $id, input: $input) { id price variants { name price } }
}";

const CART: &str = "{ cart { total lines { quantity unitPrice subtotal } } }";

/// The catalog as rows, to show a refused mutation wrote nothing.
async fn catalog_rows(app: &TestApp) -> Value {
    json!({
        "products": app.rows("select id, name, price_cents, updated_at from products order by id").await,
        "variants": app.rows("select id, product_id, name, price_cents from product_variants order by id").await,
    })
}

/// Makes `sql` (an update of a price past the bound) a legacy row: one that
/// predates the bound. The migration adds `<table>_price_cents_max` NOT VALID,
/// which leaves older rows alone but still checks every row written later,
/// updates included, so the test drops the constraint, writes the row and adds
/// the constraint back exactly as the migration does: the database then holds
/// what an upgraded one would, a NOT VALID bound over a row above it.
async fn write_legacy_price(app: &TestApp, table: &str, sql: &str) {
    app.execute(&format!(
        "alter table {table} drop constraint {table}_price_cents_max"
    ))
    .await;
    assert_eq!(app.execute(sql).await, 1);
    app.execute(&format!(
        "alter table {table} add constraint {table}_price_cents_max \
         check (price_cents <= 100000000) not valid"
    ))
    .await;
}

#[tokio::test]
async fn a_price_of_exactly_1000000_is_taken_and_one_cent_more_is_bad_input_writing_nothing() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;

    let body = app
        .gql_as(
            &admin,
            CREATE,
            json!({ "input": { "name": "Caviar", "category": "luxury", "price": "1000000.00",
                               "variants": [{ "name": "Tin", "price": "1000000.00" }] } }),
        )
        .await;
    let product = data(&body)["createProduct"].clone();
    let id = product["id"].as_str().unwrap().to_owned();
    assert_eq!(product["price"], "1000000.00");
    assert_eq!(
        product["variants"],
        json!([{ "id": product["variants"][0]["id"], "name": "Tin", "price": "1000000.00" }])
    );
    assert_eq!(
        app.count("select price_cents from products").await,
        100_000_000
    );
    let before = catalog_rows(&app).await;

    let cases = [
        (
            "createProduct",
            CREATE,
            json!({ "input": { "name": "Gold", "category": "luxury", "price": "1000000.01" } }),
            "price must be at most 1000000.00, got 1000000.01",
        ),
        (
            "createProduct with a variant",
            CREATE,
            json!({ "input": { "name": "Gold", "category": "luxury", "price": "1.00",
                               "variants": [{ "name": "Bar", "price": "1000000.01" }] } }),
            "the price of variant \"Bar\" must be at most 1000000.00, got 1000000.01",
        ),
        (
            "updateProduct",
            UPDATE,
            json!({ "id": id, "input": { "name": "Renamed", "price": "1000000.01" } }),
            "price must be at most 1000000.00, got 1000000.01",
        ),
        (
            "updateProduct repricing a variant",
            UPDATE,
            json!({ "id": id, "input": { "variants": [{ "name": "Tin", "price": "1000000.01" }] } }),
            "the price of variant \"Tin\" must be at most 1000000.00, got 1000000.01",
        ),
        (
            "updateProduct adding a variant",
            UPDATE,
            json!({ "id": id, "input": { "variants": [{ "name": "Jar", "price": "90000000000000000.00" }] } }),
            "the price of variant \"Jar\" must be at most 1000000.00, got 90000000000000000.00",
        ),
    ];
    for (case, mutation, variables, message) in cases {
        let body = app.gql_as(&admin, mutation, variables).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{case}: {body}");
        assert_eq!(error_message(&body), message, "{case}");
        assert_eq!(body["data"], Value::Null, "{case}");
    }
    assert_eq!(catalog_rows(&app).await, before);
    assert_eq!(app.count("select count(*) from products").await, 1);
    assert_eq!(app.count("select count(*) from product_variants").await, 1);
}

#[tokio::test]
async fn the_largest_order_within_the_bounds_is_placed_and_counted_exactly() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (token, _) = app.register_customer("Ann").await;
    // four products at the maximum price, each with a variant at it too
    let mut products = Vec::new();
    for name in ["Caviar", "Truffle", "Saffron", "Gold Leaf"] {
        let product = app
            .create_product(
                &admin,
                name,
                "luxury",
                "1000000.00",
                &[("Large", "1000000.00")],
            )
            .await;
        let variant = product["variants"][0]["id"].as_str().unwrap().to_owned();
        products.push((product["id"].as_str().unwrap().to_owned(), variant));
    }
    // the per-line maximum (99) on the 100 lines an order may have: 25 lines
    // a product, alternately its base price and its variant
    let items: Vec<(&str, Option<&str>, i32)> = (0..100)
        .map(|n| {
            let (product, variant) = &products[n % 4];
            let variant = (n / 4 % 2 == 1).then_some(variant.as_str());
            (product.as_str(), variant, 99)
        })
        .collect();

    let body = app.place_order(&token, &items).await;
    let order = &data(&body)["placeOrder"];
    assert_eq!(order["total"], "9900000000.00");
    let order_id: i64 = order["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        app.count(&format!(
            "select total_cents from orders where id = {order_id}"
        ))
        .await,
        990_000_000_000
    );
    assert_eq!(
        app.rows(&format!(
            "select count(*) as lines, min(subtotal_cents) as min, max(subtotal_cents) as max, \
                    sum(subtotal_cents)::bigint as sum
             from order_lines where order_id = {order_id}"
        ))
        .await,
        vec![
            json!({ "lines": 100, "min": 9_900_000_000_i64, "max": 9_900_000_000_i64,
                     "sum": 990_000_000_000_i64 })
        ]
    );

    app.wait_for_jobs().await;
    assert_eq!(
        app.count("select count(*) from apalis.jobs where status = 'Done'")
            .await,
        1
    );
    for (product, _) in &products {
        // 25 lines of 99 units at 1000000.00
        assert_eq!(
            app.figures(product).await,
            json!({ "salesCount": 2475, "totalRevenue": "2475000000.00", "rating": 5.0 })
        );
    }
    assert_eq!(app.figure_mismatches().await, 0);
}

#[tokio::test]
async fn a_legacy_price_above_the_bound_is_refused_at_placement_writing_nothing() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let (token, _) = app.register_customer("Ann").await;
    let old = app
        .create_product(&admin, "Old Caviar", "luxury", "10.00", &[("Tin", "10.00")])
        .await;
    let old_id = old["id"].as_str().unwrap().to_owned();
    let tin = old["variants"][0]["id"].as_str().unwrap().to_owned();
    let cola = app
        .create_product(&admin, "Cola", "beverages", "2.50", &[])
        .await;
    let cola = cola["id"].as_str().unwrap().to_owned();
    // in the cart before the price became what it is: the cart shows it, an
    // order from the cart is refused like any other
    data(
        &app.gql_as(
            &token,
            "mutation($p: ID!) { addToCart(input: { productId: $p, quantity: 2 }) { total } }",
            json!({ "p": old_id }),
        )
        .await,
    );
    write_legacy_price(
        &app,
        "products",
        &format!("update products set price_cents = 100000001 where id = {old_id}"),
    )
    .await;
    write_legacy_price(
        &app,
        "product_variants",
        &format!("update product_variants set price_cents = 100000001 where id = {tin}"),
    )
    .await;

    let product_refused = format!(
        "product {old_id} (Old Caviar) is priced 1000000.01, outside 0.00 to 1000000.00: \
         an admin must correct its price"
    );
    let variant_refused = format!(
        "variant {tin} (Tin) of product {old_id} (Old Caviar) is priced 1000000.01, \
         outside 0.00 to 1000000.00: an admin must correct its price"
    );
    let cases = [
        (vec![(old_id.as_str(), None, 1)], &product_refused),
        (
            vec![(cola.as_str(), None, 1), (old_id.as_str(), None, 1)],
            &product_refused,
        ),
        (
            vec![(old_id.as_str(), Some(tin.as_str()), 1)],
            &variant_refused,
        ),
    ];
    for (items, message) in cases {
        let body = app.place_order(&token, &items).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{items:?}: {body}");
        assert_eq!(error_message(&body), message.as_str());
        assert_eq!(body["data"], Value::Null);
    }
    let body = app
        .gql_as(&token, "mutation { placeOrderFromCart { id } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_message(&body), product_refused);
    // nor can it be added again
    let body = app
        .gql_as(
            &token,
            "mutation($p: ID!) { addToCart(input: { productId: $p, quantity: 1 }) { total } }",
            json!({ "p": old_id }),
        )
        .await;
    assert_eq!(error_message(&body), product_refused);

    assert_eq!(app.count("select count(*) from orders").await, 0);
    assert_eq!(app.count("select count(*) from order_lines").await, 0);
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 0);
    assert_eq!(
        data(&app.gql_as(&token, CART, json!({})).await)["cart"],
        json!({ "total": "2000000.02", "lines": [
            { "quantity": 2, "unitPrice": "1000000.01", "subtotal": "2000000.02" },
        ] })
    );

    // once an admin corrects the price, it orders as any other
    data(
        &app.gql_as(
            &admin,
            UPDATE,
            json!({ "id": old_id, "input": { "price": "1000000.00" } }),
        )
        .await,
    );
    let body = app.place_order(&token, &[(old_id.as_str(), None, 1)]).await;
    assert_eq!(data(&body)["placeOrder"]["total"], "1000000.00");
}

#[tokio::test]
async fn a_cart_whose_legacy_prices_would_overflow_is_bad_input_not_an_internal_error() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let (token, _) = app.register_customer("Ann").await;
    let ids = app
        .create_products(&admin, &[("Old Caviar", "luxury", 1000)])
        .await;
    data(
        &app.gql_as(
            &token,
            "mutation($p: ID!) { addToCart(input: { productId: $p, quantity: 2 }) { total } }",
            json!({ "p": ids[0] }),
        )
        .await,
    );
    // a row older than the bound, priced at the largest bigint: twice it is
    // past i64, where unchecked arithmetic would panic or wrap
    write_legacy_price(
        &app,
        "products",
        &format!(
            "update products set price_cents = 9223372036854775807 where id = {}",
            ids[0]
        ),
    )
    .await;

    let body = app.gql_as(&token, CART, json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_message(&body), "the cart's total is too large");
    assert_eq!(
        app.figures(&ids[0]).await["totalRevenue"],
        "0.00",
        "nothing counted"
    );
    assert_eq!(app.count("select count(*) from orders").await, 0);
}
