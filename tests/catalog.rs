//! Products and variants: creating, updating, paging, and batched loads.

use serde_json::{Value, json};

use crate::harness::{TestApp, data, error_code, error_message};

const PRODUCT_FIELDS: &str = "id name description category price available
    variants { id name price } salesCount totalRevenue rating";

fn create_mutation() -> String {
    format!(
        "mutation($input: CreateProductInput!) {{ createProduct(input: $input) {{ {PRODUCT_FIELDS} }} }}"
    )
}

fn update_mutation() -> String {
    format!(
        "mutation($id: ID!, $input: UpdateProductInput!) {{ updateProduct(id: $id, input: $input) {{ {PRODUCT_FIELDS} }} }}"
    )
}

const PAGE: &str = "query($first: Int, $after: String, $category: String) {
    products(first: $first, after: $after, category: $category) {
        edges { cursor node { id category } }
        pageInfo { hasNextPage hasPreviousPage endCursor }
    }
}";

fn id_of(value: &Value) -> i64 {
    value.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn an_admin_creates_a_product_with_exact_prices_and_its_variants_in_order() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;

    let body = app
        .gql_as(
            &admin,
            &create_mutation(),
            json!({ "input": {
                "name": "Margherita",
                "description": "Tomato and mozzarella",
                "category": "pizza",
                "price": "12.5",
                "variants": [
                    { "name": "Small", "price": "9" },
                    { "name": "Large", "price": "14.99" },
                    { "name": "Family", "price": "0.05" },
                ],
            } }),
        )
        .await;
    let product = data(&body)["createProduct"].clone();
    let id = product["id"].as_str().unwrap().to_owned();
    let variant_ids: Vec<String> = product["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(variant_ids.len(), 3);
    let expected = json!({
        "id": id,
        "name": "Margherita",
        "description": "Tomato and mozzarella",
        "category": "pizza",
        "price": "12.50",
        "available": true,
        "variants": [
            { "id": variant_ids[0], "name": "Small", "price": "9.00" },
            { "id": variant_ids[1], "name": "Large", "price": "14.99" },
            { "id": variant_ids[2], "name": "Family", "price": "0.05" },
        ],
        "salesCount": 0,
        "totalRevenue": "0.00",
        "rating": 4.0,
    });
    assert_eq!(product, expected);

    // read back, anonymously
    let read = app
        .gql(
            &format!("query($id: ID!) {{ product(id: $id) {{ {PRODUCT_FIELDS} }} }}"),
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data(&read)["product"], expected);

    assert_eq!(
        app.rows("select name, category, price_cents, available from products")
            .await,
        vec![
            json!({ "name": "Margherita", "category": "pizza", "price_cents": 1250, "available": true })
        ]
    );
    assert_eq!(
        app.rows("select name, price_cents from product_variants order by id")
            .await,
        vec![
            json!({ "name": "Small", "price_cents": 900 }),
            json!({ "name": "Large", "price_cents": 1499 }),
            json!({ "name": "Family", "price_cents": 5 }),
        ]
    );
}

#[tokio::test]
async fn a_category_that_is_not_a_slug_is_bad_input_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;

    for category in ["Pizza Place", "Pizza", "soft drinks", "-pizza", ""] {
        let body = app
            .gql_as(
                &admin,
                &create_mutation(),
                json!({ "input": {
                    "name": "Margherita",
                    "category": category,
                    "price": "12.50",
                    "variants": [{ "name": "Small", "price": "9.00" }],
                } }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{category:?}: {body}");
        assert_eq!(
            error_message(&body),
            format!(
                "category {category:?} must be a lowercase slug such as \"pizza\" or \"soft-drinks\""
            ),
        );
        assert_eq!(body["data"], Value::Null);
    }
    assert_eq!(app.count("select count(*) from products").await, 0);
    assert_eq!(app.count("select count(*) from product_variants").await, 0);
}

#[tokio::test]
async fn update_product_changes_price_and_availability_and_adds_or_reprices_variants_by_name() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let created = app
        .create_product(
            &admin,
            "Margherita",
            "pizza",
            "12.50",
            &[("Small", "9.00"), ("Large", "14.00")],
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let small = created["variants"][0]["id"].as_str().unwrap().to_owned();
    let large = created["variants"][1]["id"].as_str().unwrap().to_owned();

    let body = app
        .gql_as(
            &admin,
            &update_mutation(),
            json!({ "id": id, "input": {
                "price": "13",
                "available": false,
                "variants": [
                    { "name": "Large", "price": "15.5" },
                    { "name": "Family", "price": "20" },
                ],
            } }),
        )
        .await;
    let product = data(&body)["updateProduct"].clone();
    let family = product["variants"][2]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        product,
        json!({
            "id": id,
            "name": "Margherita",
            "description": "",
            "category": "pizza",
            "price": "13.00",
            "available": false,
            "variants": [
                { "id": small, "name": "Small", "price": "9.00" },
                { "id": large, "name": "Large", "price": "15.50" },
                { "id": family, "name": "Family", "price": "20.00" },
            ],
            "salesCount": 0,
            "totalRevenue": "0.00",
            "rating": 4.0,
        })
    );
    assert_eq!(
        app.rows("select name, price_cents, available from products")
            .await,
        vec![json!({ "name": "Margherita", "price_cents": 1300, "available": false })]
    );
    assert_eq!(app.count("select count(*) from product_variants").await, 3);

    // an update that leaves everything out changes nothing
    let unchanged = app
        .gql_as(&admin, &update_mutation(), json!({ "id": id, "input": {} }))
        .await;
    assert_eq!(data(&unchanged)["updateProduct"], product);

    let unknown = app
        .gql_as(
            &admin,
            &update_mutation(),
            json!({ "id": "999999", "input": { "price": "1.00" } }),
        )
        .await;
    assert_eq!(error_code(&unknown), "NOT_FOUND");
    assert_eq!(error_message(&unknown), "product 999999 does not exist");
    assert_eq!(unknown["data"], Value::Null);
    assert_eq!(app.count("select count(*) from products").await, 1);
}

#[tokio::test]
async fn paging_through_products_returns_each_product_once_in_id_order() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let categories = [
        "pizza", "drinks", "pizza", "drinks", "pizza", "pizza", "drinks",
    ];
    let mut ids = Vec::new();
    for (i, category) in categories.iter().enumerate() {
        let product = app
            .create_product(&admin, &format!("Product {i}"), category, "1.00", &[])
            .await;
        ids.push(id_of(&product["id"]));
    }

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut has_next = Vec::new();
    let mut has_previous = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let body = app.gql(PAGE, json!({ "first": 3, "after": after })).await;
        let page = &data(&body)["products"];
        let edges = page["edges"].as_array().unwrap();
        sizes.push(edges.len());
        seen.extend(edges.iter().map(|e| id_of(&e["node"]["id"])));
        has_next.push(page["pageInfo"]["hasNextPage"].as_bool().unwrap());
        has_previous.push(page["pageInfo"]["hasPreviousPage"].as_bool().unwrap());
        // the end cursor is the last edge's cursor
        assert_eq!(
            page["pageInfo"]["endCursor"],
            edges.last().unwrap()["cursor"]
        );
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        assert!(sizes.len() < 10, "paging does not end: {sizes:?}");
        after = Some(page["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ids);
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(has_next, vec![true, true, false]);
    assert_eq!(has_previous, vec![false, true, true]);

    // one category, paged by two
    let drinks: Vec<i64> = ids
        .iter()
        .zip(categories)
        .filter(|(_, c)| *c == "drinks")
        .map(|(id, _)| *id)
        .collect();
    let pizzas: Vec<i64> = ids
        .iter()
        .zip(categories)
        .filter(|(_, c)| *c == "pizza")
        .map(|(id, _)| *id)
        .collect();
    let body = app
        .gql(PAGE, json!({ "first": 10, "category": "drinks" }))
        .await;
    let page = &data(&body)["products"];
    let edges = page["edges"].as_array().unwrap();
    assert_eq!(
        edges
            .iter()
            .map(|e| id_of(&e["node"]["id"]))
            .collect::<Vec<_>>(),
        drinks
    );
    assert!(edges.iter().all(|e| e["node"]["category"] == "drinks"));
    assert_eq!(page["pageInfo"]["hasNextPage"], false);

    let first = app
        .gql(PAGE, json!({ "first": 2, "category": "pizza" }))
        .await;
    let first = &data(&first)["products"];
    let second = app
        .gql(
            PAGE,
            json!({ "first": 2, "category": "pizza", "after": first["pageInfo"]["endCursor"] }),
        )
        .await;
    let second = &data(&second)["products"];
    let paged: Vec<i64> = [first, second]
        .iter()
        .flat_map(|p| p["edges"].as_array().unwrap().iter())
        .map(|e| id_of(&e["node"]["id"]))
        .collect();
    assert_eq!(paged, pizzas);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    assert_eq!(second["pageInfo"]["hasNextPage"], false);

    // a category with no products
    let body = app
        .gql(PAGE, json!({ "first": 10, "category": "desserts" }))
        .await;
    assert_eq!(data(&body)["products"]["edges"], json!([]));
}

#[tokio::test]
async fn a_page_larger_than_100_or_a_cursor_this_api_did_not_give_out_is_bad_input() {
    let app = TestApp::spawn().await;

    let too_big = app.gql(PAGE, json!({ "first": 101 })).await;
    assert_eq!(error_code(&too_big), "BAD_USER_INPUT");
    assert_eq!(
        error_message(&too_big),
        "first must be between 0 and 100, got 101"
    );
    assert_eq!(too_big["data"], Value::Null);

    let negative = app.gql(PAGE, json!({ "first": -1 })).await;
    assert_eq!(error_code(&negative), "BAD_USER_INPUT");
    assert_eq!(
        error_message(&negative),
        "first must be between 0 and 100, got -1"
    );

    for garbage in ["garbage", "not a cursor!", "", "eyJ4IjoxfQ"] {
        let body = app.gql(PAGE, json!({ "first": 3, "after": garbage })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{garbage:?}: {body}");
        assert_eq!(
            error_message(&body),
            "after is not a cursor this API gave out",
            "{garbage:?}"
        );
        assert_eq!(body["data"], Value::Null);
    }

    let bad_category = app.gql(PAGE, json!({ "category": "Pizza" })).await;
    assert_eq!(error_code(&bad_category), "BAD_USER_INPUT");

    let exactly_100 = app.gql(PAGE, json!({ "first": 100 })).await;
    assert_eq!(data(&exactly_100)["products"]["edges"], json!([]));
}

#[tokio::test]
async fn the_variants_of_a_page_of_products_load_in_a_batched_query() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut expected = Vec::new();
    for i in 0..50 {
        let product = app
            .create_product(
                &admin,
                &format!("Pizza {i}"),
                "pizza",
                "10.00",
                &[("Small", "8.00"), ("Large", "12.00")],
            )
            .await;
        expected.push(json!({ "node": {
            "id": product["id"],
            "variants": [
                { "id": product["variants"][0]["id"], "name": "Small" },
                { "id": product["variants"][1]["id"], "name": "Large" },
            ],
        } }));
    }

    app.statements.take();
    let body = app
        .gql(
            "{ products(first: 50) { edges { node { id variants { id name } } } } }",
            json!({}),
        )
        .await;
    let statements = app.statements.take_with_keys();

    assert_eq!(data(&body)["products"]["edges"], Value::Array(expected));
    let all = statements
        .iter()
        .map(|(sql, _)| sql.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(statements[0].0.contains("\"products\""), "{all}");
    // One batch normally. The loader waits 1 ms for the keys of a batch, and
    // on a busy machine a slow pass over the 50 products may split them: what
    // must never happen is a query per product.
    let batches = &statements[1..];
    assert!((1..=2).contains(&batches.len()), "{all}");
    let keys: usize = batches
        .iter()
        .map(|(sql, bound)| {
            assert!(sql.contains("\"product_variants\""), "{all}");
            // the keys are bound as one array
            assert!(sql.contains(" = ANY($1)"), "{all}");
            *bound
        })
        .sum();
    assert_eq!(keys, 50, "{all}");
}

#[tokio::test]
async fn an_unknown_product_is_null_and_a_malformed_id_is_bad_input() {
    let app = TestApp::spawn().await;

    let unknown = app
        .gql("{ product(id: \"999999\") { id } }", json!({}))
        .await;
    assert_eq!(unknown, json!({ "data": { "product": null } }));

    for (id, message) in [
        ("abc", "\"abc\" is not a valid product id"),
        ("0", "\"0\" is not a valid product id"),
        ("-5", "\"-5\" is not a valid product id"),
    ] {
        let body = app
            .gql(
                "query($id: ID!) { product(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{id}: {body}");
        assert_eq!(error_message(&body), message);
        // the field is null (async-graphql leaves the errored field out, so
        // `data` itself is null when it was the only one)
        assert_eq!(body["data"]["product"], Value::Null);
    }
}

/// The names of a products page in `orderBy`, and its end cursor.
async fn ranked_page(
    app: &TestApp,
    order: &str,
    first: i32,
    after: Option<&str>,
    category: Option<&str>,
) -> (Vec<String>, bool, Value) {
    let body = app
        .gql(
            "query($order: ProductOrderBy, $first: Int, $after: String, $category: String) {
                products(orderBy: $order, first: $first, after: $after, category: $category) {
                    edges { node { name } }
                    pageInfo { hasNextPage endCursor }
                }
            }",
            json!({ "order": order, "first": first, "after": after, "category": category }),
        )
        .await;
    let products = &data(&body)["products"];
    let names = products["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["name"].as_str().unwrap().to_owned())
        .collect();
    (
        names,
        products["pageInfo"]["hasNextPage"].as_bool().unwrap(),
        products["pageInfo"]["endCursor"].clone(),
    )
}

/// Five products A–E, in that id order, with figures counted from real
/// orders: units A 12, B 5, C 12, D 0, E 5; prices A 1.00, B 2.00, C 3.00,
/// D 4.00, E 1.00; so revenue A 12, B 10, C 36, D 0, E 5 and rating 4.2 for
/// A and C (10 units or more), 4.0 for the rest.
async fn ranked_catalog() -> TestApp {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut ids = Vec::new();
    for (name, category, price) in [
        ("A", "pizza", "1.00"),
        ("B", "drinks", "2.00"),
        ("C", "pizza", "3.00"),
        ("D", "drinks", "4.00"),
        ("E", "pizza", "1.00"),
    ] {
        let product = app.create_product(&admin, name, category, price, &[]).await;
        ids.push(product["id"].as_str().unwrap().to_owned());
    }
    let (token, _) = app.register_customer("Ann").await;
    for (id, units) in [(&ids[0], 12), (&ids[1], 5), (&ids[2], 12), (&ids[4], 5)] {
        data(&app.place_order(&token, &[(id, None, units)]).await);
    }
    app.wait_for_jobs().await;
    app
}

#[tokio::test]
async fn products_rank_by_sales_revenue_rating_and_age_with_ties_to_the_newer() {
    let app = ranked_catalog().await;
    for (order, expected) in [
        ("SALES_COUNT_DESC", ["C", "A", "E", "B", "D"]),
        ("REVENUE_DESC", ["C", "A", "B", "E", "D"]),
        ("RATING_DESC", ["C", "A", "E", "D", "B"]),
        ("NEWEST", ["E", "D", "C", "B", "A"]),
    ] {
        let (names, has_next, _) = ranked_page(&app, order, 10, None, None).await;
        assert_eq!(names, expected, "{order}");
        assert!(!has_next);
    }
    // one category, ranked
    let (names, _, _) = ranked_page(&app, "SALES_COUNT_DESC", 10, None, Some("drinks")).await;
    assert_eq!(names, ["B", "D"]);
}

#[tokio::test]
async fn ranked_pages_of_one_cross_every_tie_without_a_skip_or_a_repeat() {
    let app = ranked_catalog().await;
    // NEWEST ties too: of products created at the same instant, the higher id first
    app.execute(
        "update products set created_at = (select created_at from products where name = 'C')
         where name in ('B', 'D')",
    )
    .await;
    for (order, expected) in [
        ("SALES_COUNT_DESC", vec!["C", "A", "E", "B", "D"]),
        ("REVENUE_DESC", vec!["C", "A", "B", "E", "D"]),
        ("RATING_DESC", vec!["C", "A", "E", "D", "B"]),
        ("NEWEST", vec!["E", "D", "C", "B", "A"]),
    ] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (names, has_next, end) = ranked_page(&app, order, 1, after.as_deref(), None).await;
            seen.extend(names);
            if !has_next {
                break;
            }
            after = Some(end.as_str().unwrap().to_owned());
            assert!(seen.len() <= 5, "{order}: {seen:?}");
        }
        assert_eq!(seen, expected, "{order}");
    }
}

#[tokio::test]
async fn a_cursor_only_pages_the_order_it_came_from() {
    let app = ranked_catalog().await;
    let (_, _, end) = ranked_page(&app, "SALES_COUNT_DESC", 2, None, None).await;
    let body = app
        .gql(
            "query($after: String) { products(orderBy: REVENUE_DESC, after: $after) { edges { node { name } } } }",
            json!({ "after": end }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(
        error_message(&body),
        "after is a cursor of another order: page with the orderBy it came from"
    );
    // the id order is an order of its own too
    let body = app
        .gql(
            "query($after: String) { products(after: $after) { edges { node { name } } } }",
            json!({ "after": end }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
}
