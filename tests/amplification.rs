//! No document costs the server far more than it costs the sender: reads a
//! loader can batch cost one statement per kind however many fields ask,
//! and a document of more fields that run statements of their own than
//! `MAX_COMPLEXITY / STATEMENT` (50) is refused before anything runs.

use serde_json::json;

use crate::harness::{TestApp, data, error_code, error_message};

/// `count` aliased `product(id)` reads, of ids 1..=count.
fn aliased_products(count: usize) -> String {
    let fields: String = (1..=count)
        .map(|n| format!("p{n}:product(id:{n}){{id}} "))
        .collect();
    format!("{{ {fields}}}")
}

#[tokio::test]
async fn two_thousand_aliased_product_reads_cost_two_statements() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(
            &admin,
            &[("Margherita", "pizza", 900), ("Cola", "drinks", 250)],
        )
        .await;
    let document = aliased_products(2_000);
    assert!(document.len() < 64 * 1024, "{}", document.len());

    app.statements.take();
    let body = app.gql(&document, json!({})).await;
    let statements = app.statements.take();

    let answers = data(&body).as_object().unwrap();
    assert_eq!(answers.len(), 2_000);
    let mut found: Vec<&str> = answers
        .values()
        .filter(|v| !v.is_null())
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    found.sort();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(found, expected);
    // the loader's batches hold 1,000 ids each
    assert_eq!(statements.len(), 2, "{statements:#?}");
    assert!(
        statements
            .iter()
            .all(|sql| sql.starts_with(r#"SELECT "products"."id""#)
                && sql.contains(r#"WHERE "id" = ANY($1)"#)),
        "{statements:#?}"
    );
}

#[tokio::test]
async fn a_page_of_orders_reads_its_customers_preferences_in_one_statement_each() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(
            &admin,
            &[
                ("Margherita", "pizza", 900),
                ("Cola", "drinks", 250),
                ("Salad", "salads", 700),
            ],
        )
        .await;
    let (ann, _) = app.register_customer("Ann").await;
    let (bob, _) = app.register_customer("Bob").await;
    let (cid, _) = app.register_customer("Cid").await;
    app.place_order(&ann, &[(&ids[0], None, 3), (&ids[1], None, 1)])
        .await;
    app.place_order(&ann, &[(&ids[1], None, 1)]).await;
    app.place_order(&bob, &[(&ids[2], None, 2)]).await;
    app.place_order(&cid, &[(&ids[1], None, 5), (&ids[2], None, 1)])
        .await;
    app.wait_for_jobs().await;

    app.statements.take();
    let body = app
        .gql_as(
            &admin,
            "{ orders(first: 20) { edges { node { customer { name mostOrderedItems { name } favoriteCategories } } } } }",
            json!({}),
        )
        .await;
    let statements = app.statements.take();

    let mut seen: Vec<String> = data(&body)["orders"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"]["customer"].to_string())
        .collect();
    seen.sort();
    seen.dedup();
    let mut expected = [
            json!({ "name": "Ann", "mostOrderedItems": [{ "name": "Margherita" }, { "name": "Cola" }], "favoriteCategories": ["pizza", "drinks"] }).to_string(),
            json!({ "name": "Bob", "mostOrderedItems": [{ "name": "Salad" }], "favoriteCategories": ["salads"] }).to_string(),
            json!({ "name": "Cid", "mostOrderedItems": [{ "name": "Cola" }, { "name": "Salad" }], "favoriteCategories": ["drinks", "salads"] }).to_string(),
        ];
    expected.sort();
    assert_eq!(seen, expected);
    let reading = |table: &str| statements.iter().filter(|sql| sql.contains(table)).count();
    assert_eq!(reading("customer_top_products"), 1, "{statements:#?}");
    assert_eq!(reading("customer_top_categories"), 1, "{statements:#?}");
    // the caller's token, the orders' page, its customers, their
    // preferences (two statements) and the products these name
    assert_eq!(statements.len(), 6, "{statements:#?}");
}

#[tokio::test]
async fn me_reads_its_preferences_with_its_account_in_one_statement() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(
            &admin,
            &[
                ("Margherita", "pizza", 900),
                ("Cola", "drinks", 250),
                ("Salad", "salads", 700),
                ("Tiramisu", "desserts", 600),
                ("Fries", "sides", 300),
                ("Lemonade", "drinks", 280),
            ],
        )
        .await;
    let (ann, _) = app.register_customer("Ann").await;
    let (bob, bob_id) = app.register_customer("Bob").await;
    // six products, five categories: the top 5 and the top 3 are shown
    app.place_order(
        &ann,
        &[
            (&ids[0], None, 6),
            (&ids[1], None, 5),
            (&ids[2], None, 4),
            (&ids[3], None, 3),
            (&ids[4], None, 2),
            (&ids[5], None, 1),
        ],
    )
    .await;
    app.wait_for_jobs().await;

    let me = "{ me { name mostOrderedItems { name salesCount } favoriteCategories } }";
    app.statements.take();
    let body = app.gql_as(&ann, me, json!({})).await;
    let statements = app.statements.take();
    assert_eq!(
        data(&body)["me"],
        json!({
            "name": "Ann",
            "mostOrderedItems": [
                { "name": "Margherita", "salesCount": 6 },
                { "name": "Cola", "salesCount": 5 },
                { "name": "Salad", "salesCount": 4 },
                { "name": "Tiramisu", "salesCount": 3 },
                { "name": "Fries", "salesCount": 2 },
            ],
            // drinks: Cola 5 + Lemonade 1
            "favoriteCategories": ["drinks", "pizza", "salads"],
        })
    );
    // the account with its preferences, which checks the token too
    assert_eq!(statements.len(), 1, "{statements:#?}");
    for read in [
        "token_version",
        "customer_top_products",
        "customer_top_categories",
    ] {
        assert!(statements[0].contains(read), "{statements:#?}");
    }

    // a customer who never ordered: the account, and empty preferences
    app.statements.take();
    let body = app.gql_as(&bob, me, json!({})).await;
    assert_eq!(app.statements.take().len(), 1);
    assert_eq!(
        data(&body)["me"],
        json!({ "name": "Bob", "mostOrderedItems": [], "favoriteCategories": [] })
    );

    // a token revoked since (a changed password): the same one statement
    // refuses it, and shows nothing of the account
    app.execute(&format!(
        "update users set token_version = token_version + 1 where id = {bob_id}"
    ))
    .await;
    app.statements.take();
    let body = app.gql_as(&bob, me, json!({})).await;
    assert_eq!(app.statements.take().len(), 1);
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    assert_eq!(error_message(&body), "invalid or expired token", "{body}");
    assert_eq!(body["data"], serde_json::Value::Null, "{body}");
    // and so does it once the account is gone
    let (cy, cy_id) = app.register_customer("Cy").await;
    app.execute(&format!("delete from users where id = {cy_id}"))
        .await;
    let body = app.gql_as(&cy, me, json!({})).await;
    assert_eq!(error_message(&body), "invalid or expired token", "{body}");
    assert_eq!(body["data"], serde_json::Value::Null, "{body}");
}

#[tokio::test]
async fn a_document_of_more_than_fifty_statements_is_refused_before_anything_runs() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Cola", "drinks", 250)])
        .await;
    let (token, _) = app.register_customer("Ann").await;

    // 49 reads of the caller's account: 49 statements, answered
    let reads = |n: usize| {
        format!(
            "{{ {} }}",
            (0..n)
                .map(|i| format!("m{i}: me {{ id }}"))
                .collect::<String>()
        )
    };
    let answered = app.gql_as(&token, &reads(49), json!({})).await;
    assert_eq!(data(&answered).as_object().unwrap().len(), 49);

    app.statements.take();
    let refused = app.gql_as(&token, &reads(50), json!({})).await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT");
    assert_eq!(error_message(&refused), "Query is too complex.");
    // nothing: `me` alone checks its token in its own statement, which
    // never ran
    let statements = app.statements.take();
    assert_eq!(statements, Vec::<String>::new());

    // mutations too: 51 aliased writes of one line each, none written
    let adds: String = (0..51)
        .map(|i| {
            format!(
                "a{i}: addToCart(input: {{ productId: \"{}\", quantity: 1 }}) {{ total }} ",
                ids[0]
            )
        })
        .collect();
    let refused = app
        .gql_as(&token, &format!("mutation {{ {adds}}}"), json!({}))
        .await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT");
    assert_eq!(error_message(&refused), "Query is too complex.");
    assert_eq!(app.count("select count(*) from cart_lines").await, 0);
}
