//! Anonymous reads answered from memory, never staler than the figures:
//! a kept menu costs no statement, changes as soon as an order's counting
//! run commits (its NOTIFY) or a product is edited, is never given to a
//! caller with credentials, and stays within its bound.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Options, TestApp, data};

const MENU: &str = "{ products(first: 5) { edges { node { name price salesCount } } } }";

fn first_product(body: &Value) -> &Value {
    &data(body)["products"]["edges"][0]["node"]
}

#[tokio::test]
async fn a_kept_menu_costs_nothing_and_changes_as_soon_as_an_orders_run_commits() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Cola", "drinks", 250)])
        .await;

    let first = app.gql(MENU, json!({})).await;
    assert_eq!(first_product(&first)["salesCount"], 0);
    app.statements.take();
    let again = app.gql(MENU, json!({})).await;
    assert_eq!(again, first);
    assert_eq!(app.statements.take(), Vec::<String>::new());

    let (ann, _) = app.register_customer("Ann").await;
    app.place_order(&ann, &[(&ids[0], None, 2)]).await;
    app.wait_for_jobs().await;
    // the run has committed; its NOTIFY is on its way to this process
    let committed = Instant::now();
    let mut reads = 0;
    loop {
        reads += 1;
        let body = app.gql(MENU, json!({})).await;
        if first_product(&body)["salesCount"] == 2 {
            break;
        }
        assert_eq!(first_product(&body)["salesCount"], 0, "{body}");
        assert!(
            committed.elapsed() < Duration::from_secs(5),
            "still stale after 5 s"
        );
    }
    eprintln!(
        "a kept menu showed the new figures {} ms after the run committed ({reads} reads)",
        committed.elapsed().as_millis()
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"tally_public_answers_total{result="hit"} "#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_product_edit_drops_the_kept_answer_at_once() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Cola", "drinks", 250)])
        .await;
    let before = app.gql(MENU, json!({})).await;
    assert_eq!(first_product(&before)["name"], "Cola");
    assert_eq!(app.gql(MENU, json!({})).await, before);

    let edited = app
        .gql_as(
            &admin,
            "mutation ($id: ID!) { updateProduct(id: $id, input: { name: \"Cola Zero\", price: \"2.75\" }) { name } }",
            json!({ "id": ids[0] }),
        )
        .await;
    assert_eq!(data(&edited)["updateProduct"]["name"], "Cola Zero");
    // the very next read, in the process that made the edit
    let after = app.gql(MENU, json!({})).await;
    assert_eq!(first_product(&after)["name"], "Cola Zero");
    assert_eq!(first_product(&after)["price"], "2.75");

    // a new product too
    app.create_products(&admin, &[("Water", "drinks", 100)])
        .await;
    let menu = app.gql(MENU, json!({})).await;
    assert_eq!(
        data(&menu)["products"]["edges"].as_array().unwrap().len(),
        2
    );
}

#[tokio::test]
async fn an_answer_with_a_callers_data_is_never_shared() {
    let app = TestApp::spawn_without_workers().await;
    let (token, _) = app.register_customer("Ann").await;
    let document = "{ me { name } products(first: 1) { edges { node { id } } } }";

    let anonymous = app.gql(document, json!({})).await;
    assert_eq!(data(&anonymous)["me"], Value::Null);
    let hers = app.gql_as(&token, document, json!({})).await;
    assert_eq!(data(&hers)["me"]["name"], "Ann");
    let again = app.gql(document, json!({})).await;
    assert_eq!(data(&again)["me"], Value::Null);
    let hers_again = app.gql_as(&token, document, json!({})).await;
    assert_eq!(data(&hers_again)["me"]["name"], "Ann");
}

#[tokio::test]
async fn the_kept_answers_stay_within_their_bound_under_ten_thousand_documents() {
    let app = TestApp::spawn_with(Options {
        configure: |config| config.http.public_cache_bytes = 64 * 1024,
        worker_pools: 0,
        ..Options::default()
    })
    .await;
    let admin = app.admin_token().await;
    app.create_products(&admin, &[("Cola", "drinks", 250)])
        .await;
    for n in 0..10_000 {
        // a comment makes each document, and so its key, new
        let document = format!("# {n}\n{{ products(first: 1) {{ edges {{ node {{ name }} }} }} }}");
        let body = app.gql(&document, json!({})).await;
        assert_eq!(first_product(&body)["name"], "Cola");
    }
    let metrics = app.metrics().await;
    let bytes: usize = metrics
        .lines()
        .find_map(|line| line.strip_prefix("tally_public_answers_bytes "))
        .expect("the gauge")
        .trim()
        .parse()
        .unwrap();
    assert!(bytes > 60 * 1024 && bytes <= 64 * 1024, "{bytes}");
}

#[tokio::test]
async fn clients_missing_the_same_answer_at_once_wait_for_one_computation() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    app.create_products(&admin, &[("Cola", "drinks", 250), ("Salad", "salads", 700)])
        .await;
    let menu = "{ products(first: 5) { edges { node { name price variants { name } } } } }";

    // as after a counting run's NOTIFY: nothing kept, every client asks
    app.statements.take();
    let answers = futures::future::join_all((0..24).map(|_| app.gql(menu, json!({})))).await;
    let statements = app.statements.take();
    assert!(answers.iter().all(|answer| *answer == answers[0]));
    assert_eq!(
        data(&answers[0])["products"]["edges"][1]["node"],
        json!({ "name": "Salad", "price": "7.00", "variants": [] })
    );
    // one page and its variants, whatever the number of clients
    assert_eq!(statements.len(), 2, "{statements:#?}");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"tally_public_answers_total{result="miss"} 1"#),
        "{metrics}"
    );
}
