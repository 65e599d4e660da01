//! Coalesced placement: concurrent placeOrder requests written by one
//! statement, each answered on its own. The placer's `gather` hook holds each
//! batch until the test's requests are all queued, so what shares a
//! statement does not depend on the machine's timing.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::join_all;
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{Value, json};
use tally::domain::orders::placer::PlacerHooks;
use tally::domain::orders::{PLACE_ORDER_SQL, PLACE_ORDERS_SQL};

use crate::harness::{Options, TestApp, data, error_code};
use crate::orders::{closed_product, menu};

/// An app without workers whose batches the test holds and breaks.
async fn app_with(placer: &PlacerHooks) -> TestApp {
    TestApp::spawn_with(Options {
        worker_pools: 0,
        placer: placer.clone(),
        ..Options::default()
    })
    .await
}

/// How many of `statements` are placement statements (a lone order's or a
/// batch's).
fn placements(statements: &[String]) -> usize {
    statements
        .iter()
        .filter(|sql| *sql == PLACE_ORDERS_SQL.as_str() || *sql == PLACE_ORDER_SQL.as_str())
        .count()
}

/// placeOrder, asking for nothing that runs statements of its own.
async fn place(app: &TestApp, token: &str, input: Value) -> Value {
    app.gql_as(token, PLACE, json!({ "input": input })).await
}

/// [`place`] from 127.0.0.`host`.
async fn place_from(app: &TestApp, host: u8, token: &str, input: Value) -> Value {
    app.gql_as_from(host, token, PLACE, json!({ "input": input }))
        .await
}

const PLACE: &str = "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id total } }";

/// Each customer of `tokens` places its order of `inputs`, all at once and
/// in one batch; their answers, and the statements they ran.
async fn place_together(
    app: &TestApp,
    placer: &PlacerHooks,
    tokens: &[String],
    inputs: &[Value],
) -> (Vec<Value>, Vec<String>) {
    placer.gather.store(inputs.len(), Ordering::SeqCst);
    app.statements.take();
    let answers = join_all(
        tokens
            .iter()
            .zip(inputs)
            .map(|(token, input)| place(app, token, input.clone())),
    )
    .await;
    (answers, app.statements.take())
}

fn line(product: &str, variant: Option<&str>, quantity: i32) -> Value {
    json!({ "productId": product, "variantId": variant, "quantity": quantity })
}

/// Customers named `Customer 0` … : their tokens.
async fn customers(app: &TestApp, n: usize) -> Vec<String> {
    let mut tokens = Vec::new();
    for i in 0..n {
        tokens.push(app.register_customer(&format!("Customer {i}")).await.0);
    }
    tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_statement_writes_a_batch_and_a_bad_order_fails_alone() {
    let placer = PlacerHooks::default();
    let app = app_with(&placer).await;
    let admin = app.admin_token().await;
    let m = menu(&app, &admin).await;
    let closed = closed_product(&app, &admin).await;
    let tokens = customers(&app, 5).await;
    let inputs = [
        json!({ "items": [line(&m.cola, None, 2)] }),
        json!({ "items": [line(&m.pizza, Some(&m.large), 1)] }),
        json!({ "items": [line(&m.cola, None, 1), line(&closed, None, 1)] }),
        json!({ "items": [line("999999", None, 1)] }),
        json!({ "items": [line(&m.cola, None, 1), line(&m.pizza, Some(&m.small), 1)] }),
    ];

    let (answers, statements) = place_together(&app, &placer, &tokens, &inputs).await;

    let totals: Vec<&Value> = [0, 1, 4]
        .iter()
        .map(|&i| &data(&answers[i])["placeOrder"]["total"])
        .collect();
    assert_eq!(totals, ["5.00", "14.00", "11.50"]);
    assert_eq!(error_code(&answers[2]), "BAD_USER_INPUT");
    assert_eq!(
        answers[2]["errors"][0]["message"],
        format!("product {closed} (Closed) is not available")
    );
    assert_eq!(error_code(&answers[3]), "NOT_FOUND");
    assert_eq!(
        answers[3]["errors"][0]["message"],
        "product 999999 does not exist"
    );
    // one statement confirmed the five callers' tokens and wrote the three
    // orders: nothing else ran
    assert_eq!(statements, [PLACE_ORDERS_SQL.as_str()]);

    // three orders, with their own lines and their own jobs
    let mut orders = Vec::new();
    for order in app
        .rows(
            "select o.order_number, o.total_cents, count(l.*) as lines
             from orders o
             join order_lines l on l.order_id = o.id
             group by o.id order by o.total_cents",
        )
        .await
    {
        let number = order["order_number"].as_str().unwrap();
        let jobs = jobs::admin::jobs_of_order(&app.db, number).await.unwrap();
        orders.push(json!({
            "total_cents": order["total_cents"],
            "lines": order["lines"],
            "jobs": jobs.len(),
        }));
    }
    assert_eq!(
        orders,
        [
            json!({ "total_cents": 500, "lines": 1, "jobs": 1 }),
            json!({ "total_cents": 1150, "lines": 2, "jobs": 1 }),
            json!({ "total_cents": 1400, "lines": 1, "jobs": 1 }),
        ]
    );
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 3);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("tally_order_batch_size_sum 5.0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tally_order_batch_size_count 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_repeated_within_a_batch_and_across_batches_returns_the_first_order() {
    let placer = PlacerHooks::default();
    let app = app_with(&placer).await;
    let admin = app.admin_token().await;
    let m = menu(&app, &admin).await;
    let (ann, _) = app.register_customer("Ann").await;
    let (bob, _) = app.register_customer("Bob").await;
    let order = |key: &str, quantity: i32| json!({ "items": [line(&m.cola, None, quantity)], "idempotencyKey": key });

    // one batch: the same key three times
    placer.gather.store(3, Ordering::SeqCst);
    app.statements.take();
    let first = join_all((0..3).map(|_| place(&app, &ann, order("tap", 2)))).await;
    let statements = app.statements.take();
    let ids: Vec<&Value> = first.iter().map(|a| &data(a)["placeOrder"]["id"]).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{first:?}");
    assert_eq!(data(&first[0])["placeOrder"]["total"], "5.00");
    assert_eq!(placements(&statements), 1, "{statements:#?}");
    assert_eq!(app.count("select count(*) from orders").await, 1);

    // the next batch: the key again (its first order, even with other
    // lines), a new key, and the same key from another customer
    let answers = join_all([
        place(&app, &ann, order("tap", 5)),
        place(&app, &ann, order("tap-2", 1)),
        place(&app, &bob, order("tap", 3)),
    ])
    .await;
    let statements = app.statements.take();
    assert_eq!(placements(&statements), 1, "{statements:#?}");
    assert_eq!(
        data(&answers[0])["placeOrder"],
        data(&first[0])["placeOrder"]
    );
    let totals: Vec<&Value> = answers
        .iter()
        .map(|a| &data(a)["placeOrder"]["total"])
        .collect();
    assert_eq!(totals, ["5.00", "2.50", "7.50"]);
    assert_ne!(data(&answers[1])["placeOrder"]["id"], *ids[0]);
    assert_ne!(data(&answers[2])["placeOrder"]["id"], *ids[0]);

    assert_eq!(
        app.rows(
            "select u.name, o.idempotency_key, o.total_cents
             from orders o join users u on u.id = o.user_id
             order by u.name, o.idempotency_key"
        )
        .await,
        [
            json!({ "name": "Ann", "idempotency_key": "tap", "total_cents": 500 }),
            json!({ "name": "Ann", "idempotency_key": "tap-2", "total_cents": 250 }),
            json!({ "name": "Bob", "idempotency_key": "tap", "total_cents": 750 }),
        ]
    );
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_of_any_size_is_one_statement() {
    let placer = PlacerHooks::default();
    let app = app_with(&placer).await;
    let admin = app.admin_token().await;
    let m = menu(&app, &admin).await;
    let tokens = customers(&app, 32).await;

    let mut counts = Vec::new();
    for n in [1, 8, 32] {
        placer.gather.store(n, Ordering::SeqCst);
        app.statements.take();
        let answers = join_all(tokens[..n].iter().map(|token| {
            place(
                &app,
                token,
                json!({ "items": [line(&m.cola, None, 1), line(&m.pizza, Some(&m.large), 2)] }),
            )
        }))
        .await;
        let statements = app.statements.take();
        for answer in &answers {
            assert_eq!(data(answer)["placeOrder"]["total"], "30.50");
        }
        counts.push((n, placements(&statements), statements.len()));
    }
    // (orders, placement statements, statements in all)
    assert_eq!(counts, [(1, 1, 1), (8, 1, 1), (32, 1, 1)]);
    assert_eq!(app.count("select count(*) from orders").await, 41);
    assert_eq!(app.count("select count(*) from order_lines").await, 82);
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 41);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_whose_answers_were_lost_after_the_commit_come_back_on_retry() {
    let placer = PlacerHooks::default();
    let app = app_with(&placer).await;
    let admin = app.admin_token().await;
    let m = menu(&app, &admin).await;
    let tokens = customers(&app, 4).await;
    let order = |n: usize| json!({ "items": [line(&m.cola, None, n as i32 + 1)], "idempotencyKey": format!("checkout-{n}") });

    // written and committed, then the process "dies" before answering
    placer.gather.store(tokens.len(), Ordering::SeqCst);
    placer.lose_answers.store(1, Ordering::SeqCst);
    let lost = join_all(
        tokens
            .iter()
            .enumerate()
            .map(|(n, token)| place(&app, token, order(n))),
    )
    .await;
    for answer in &lost {
        assert_eq!(error_code(answer), "INTERNAL_SERVER_ERROR", "{answer}");
    }
    assert_eq!(app.count("select count(*) from orders").await, 4);

    // each client retries with its key, and gets the order written then
    let retried = join_all(
        tokens
            .iter()
            .enumerate()
            .map(|(n, token)| place(&app, token, order(n))),
    )
    .await;
    let totals: Vec<&Value> = retried
        .iter()
        .map(|a| &data(a)["placeOrder"]["total"])
        .collect();
    assert_eq!(totals, ["2.50", "5.00", "7.50", "10.00"]);
    assert_eq!(app.count("select count(*) from orders").await, 4);
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 4);

    // and each is counted once
    app.start_workers().await;
    app.wait_for_jobs().await;
    assert_eq!(app.figures(&m.cola).await["salesCount"], 10);
    assert_eq!(app.figure_mismatches().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_that_fails_as_a_whole_places_its_good_orders_alone() {
    let placer = PlacerHooks::default();
    let app = app_with(&placer).await;
    let admin = app.admin_token().await;
    let m = menu(&app, &admin).await;
    let odd = app
        .create_product(&admin, "Odd", "pizza", "7.77", &[])
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // a rule the statement breaks for one order only, as a row no line
    // check foresees would: the statement fails, and nothing of it stays
    app.execute("alter table orders add constraint no_odd_totals check (total_cents <> 777)")
        .await;
    let tokens = customers(&app, 3).await;
    let inputs = [
        json!({ "items": [line(&m.cola, None, 2)] }),
        json!({ "items": [line(&odd, None, 1)] }),
        json!({ "items": [line(&m.pizza, Some(&m.small), 1)] }),
    ];

    let (answers, statements) = place_together(&app, &placer, &tokens, &inputs).await;

    assert_eq!(data(&answers[0])["placeOrder"]["total"], "5.00");
    assert_eq!(error_code(&answers[1]), "INTERNAL_SERVER_ERROR");
    assert_eq!(data(&answers[2])["placeOrder"]["total"], "9.00");
    // the batch, then each of its orders alone
    assert_eq!(placements(&statements), 4, "{statements:#?}");
    assert_eq!(
        app.rows("select total_cents from orders order by total_cents")
            .await,
        [json!({ "total_cents": 500 }), json!({ "total_cents": 900 })]
    );
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 2);
}

/// The answer of a placeOrder whose token its account no longer confirms,
/// refused by the placement statement itself.
fn assert_refused_token(answer: &Value) {
    assert_eq!(error_code(answer), "UNAUTHENTICATED", "{answer}");
    assert_eq!(answer["errors"][0]["message"], "invalid or expired token");
    assert_eq!(
        answer["errors"][0]["path"],
        json!(["placeOrder"]),
        "{answer}"
    );
    assert_eq!(answer["data"], Value::Null, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_placement_statement_refuses_a_revoked_token_and_places_its_neighbours() {
    let placer = PlacerHooks::default();
    let app = app_with(&placer).await;
    let admin = app.admin_token().await;
    let m = menu(&app, &admin).await;
    let tokens = customers(&app, 4).await;
    let keyed = json!({ "items": [line(&m.cola, None, 1)], "idempotencyKey": "lunch" });
    let earlier = data(&place(&app, &tokens[1], keyed.clone()).await)["placeOrder"].clone();
    // a changed password moves the account's token version on; an account
    // deleted takes its tokens with it
    app.execute("update users set password_hash = 'changed' where name = 'Customer 1'")
        .await;
    app.execute("delete from users where name = 'Customer 2'")
        .await;
    let inputs = [
        json!({ "items": [line(&m.cola, None, 2)] }),
        // the revoked token's key does not bring back its earlier order
        keyed.clone(),
        json!({ "items": [line(&m.cola, None, 3)] }),
        json!({ "items": [line(&m.pizza, Some(&m.small), 1)] }),
    ];

    let (answers, statements) = place_together(&app, &placer, &tokens, &inputs).await;

    assert_eq!(data(&answers[0])["placeOrder"]["total"], "5.00");
    assert_refused_token(&answers[1]);
    assert_refused_token(&answers[2]);
    assert_eq!(data(&answers[3])["placeOrder"]["total"], "9.00");
    // one statement, which neither the revoked token nor the deleted
    // account failed as a whole
    assert_eq!(statements, [PLACE_ORDERS_SQL.as_str()]);

    // alone, by the one-order statement: the same
    placer.gather.store(0, Ordering::SeqCst);
    app.statements.take();
    assert_refused_token(&place(&app, &tokens[1], keyed.clone()).await);
    assert_eq!(app.statements.take(), [PLACE_ORDER_SQL.as_str()]);

    // a request with anything beside placeOrder has its caller confirmed
    // before it runs: refused as a whole, by the account read alone
    let mixed = app
        .gql_as(
            &tokens[1],
            "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id } __typename }",
            json!({ "input": keyed }),
        )
        .await;
    assert_eq!(error_code(&mixed), "UNAUTHENTICATED", "{mixed}");
    assert_eq!(mixed["errors"][0]["message"], "invalid or expired token");
    assert_eq!(mixed["errors"][0].get("path"), None, "{mixed}");
    assert_eq!(mixed["data"], Value::Null, "{mixed}");
    let statements = app.statements.take();
    assert_eq!(placements(&statements), 0, "{statements:#?}");
    assert!(
        matches!(statements.as_slice(), [read] if read.contains(r#"FROM "users""#)),
        "{statements:#?}"
    );

    // and with a standing token, the same request runs after that read
    let both = app
        .gql_as(
            &tokens[0],
            "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { total } __typename }",
            json!({ "input": { "items": [line(&m.cola, None, 4)] } }),
        )
        .await;
    assert_eq!(
        data(&both),
        &json!({ "placeOrder": { "total": "10.00" }, "__typename": "Mutation" })
    );
    let statements = app.statements.take();
    assert_eq!(statements.len(), 2, "{statements:#?}");
    assert_eq!(statements[1], PLACE_ORDER_SQL.as_str());

    assert_eq!(
        // by total: ids drawn within one statement come in no set order
        app.rows(
            "select u.name, o.idempotency_key, o.total_cents
             from orders o join users u on u.id = o.user_id
             order by o.total_cents"
        )
        .await,
        [
            json!({ "name": "Customer 1", "idempotency_key": "lunch", "total_cents": 250 }),
            json!({ "name": "Customer 0", "idempotency_key": null, "total_cents": 500 }),
            json!({ "name": "Customer 3", "idempotency_key": null, "total_cents": 900 }),
            json!({ "name": "Customer 0", "idempotency_key": null, "total_cents": 1000 }),
        ]
    );
    assert_eq!(earlier["total"], "2.50");
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_the_database_is_too_slow_for_is_refused_at_once_not_order_by_order() {
    let placer = PlacerHooks::default();
    let app = TestApp::spawn_with(Options {
        worker_pools: 0,
        placer: placer.clone(),
        configure: |c| c.db_statement_timeout = Duration::from_millis(500),
        ..Options::default()
    })
    .await;
    let admin = app.admin_token().await;
    let m = menu(&app, &admin).await;
    let tokens = customers(&app, 3).await;
    let inputs = vec![json!({ "items": [line(&m.cola, None, 1)] }); 3];

    // a transaction that holds off every insert into orders, as an
    // operator's long maintenance would
    let maintenance = app.db.begin().await.unwrap();
    maintenance
        .execute_unprepared("lock table orders in share mode")
        .await
        .unwrap();
    let (answers, statements) = place_together(&app, &placer, &tokens, &inputs).await;
    maintenance.rollback().await.unwrap();

    for answer in &answers {
        assert_eq!(error_code(answer), "SERVICE_UNAVAILABLE", "{answer}");
        assert_eq!(
            answer["errors"][0]["message"],
            "the database took too long to answer; try again shortly"
        );
    }
    // the batch's statement, and no statement timeout more for each order
    assert_eq!(statements, [PLACE_ORDERS_SQL.as_str()]);
    assert_eq!(app.count("select count(*) from orders").await, 0);

    // the clients' retries, once the lock is gone, are placed
    let (answers, _) = place_together(&app, &placer, &tokens, &inputs).await;
    for answer in &answers {
        assert_eq!(data(answer)["placeOrder"]["total"], "2.50");
    }
    assert_eq!(app.count("select count(*) from orders").await, 3);
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_address_takes_at_most_half_a_batch_while_another_address_waits() {
    let placer = PlacerHooks::default();
    let app = app_with(&placer).await;
    let admin = app.admin_token().await;
    let m = menu(&app, &admin).await;
    let tokens = customers(&app, 2).await;
    let largest = json!({ "items": vec![line(&m.cola, None, 1); 100] });

    // eight orders of 100 lines from one address and one small order from
    // another, all queued before the first batch is taken
    placer.gather.store(9, Ordering::SeqCst);
    let (large, small) = tokio::join!(
        join_all((0..8).map(|_| place(&app, &tokens[0], largest.clone()))),
        async {
            let answer = place_from(
                &app,
                2,
                &tokens[1],
                json!({ "items": [line(&m.cola, None, 1)] }),
            )
            .await;
            // the small order was in the first batch: let the rest go
            placer.gather.store(0, Ordering::SeqCst);
            answer
        }
    );

    assert_eq!(data(&small)["placeOrder"]["total"], "2.50");
    for answer in &large {
        assert_eq!(data(answer)["placeOrder"]["total"], "250.00");
    }
    // the first statement: the small order and five of the large (500
    // lines, the address's share); the second: the three others
    let metrics = app.metrics().await;
    for line in [
        "tally_order_batch_size_count 2",
        "tally_order_batch_size_sum 9.0",
        r#"tally_order_batch_size_bucket{le="4.0"} 1"#,
        r#"tally_order_batch_size_bucket{le="8.0"} 2"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}: {metrics}");
    }
    assert_eq!(app.count("select count(*) from orders").await, 9);
    assert_eq!(app.count("select count(*) from order_lines").await, 801);
}
