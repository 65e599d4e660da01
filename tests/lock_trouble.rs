//! Lock trouble is the client's to retry: a deadlock, a serialization
//! failure or a wait past `DATABASE_LOCK_TIMEOUT_MS` answers
//! `SERVICE_UNAVAILABLE`, never `INTERNAL_SERVER_ERROR`; a held row lock
//! costs a request the lock timeout, not the statement timeout; and nobody
//! can hold up an order they may not see.

use std::time::{Duration, Instant};

use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, IsolationLevel, Statement,
    TransactionTrait,
};
use serde_json::json;
use tally::error::ApiError;

use crate::harness::{Options, TestApp, data, error_code, error_message, placed_order_id};

const CONFLICT: &str =
    "the database was busy with a conflicting change to the same rows; try again shortly";

async fn run(db: &impl ConnectionTrait, sql: &str) -> Result<(), DbErr> {
    db.execute_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .map(|_| ())
}

fn retryable(err: DbErr) {
    let api = ApiError::from(err);
    assert_eq!(api.code(), "SERVICE_UNAVAILABLE");
    assert_eq!(api.message(), CONFLICT);
}

async fn two_rows(db: &DatabaseConnection) {
    run(db, "create table pair (id int primary key, v int not null)")
        .await
        .unwrap();
    run(db, "insert into pair values (1, 0), (2, 0)")
        .await
        .unwrap();
}

#[tokio::test]
async fn deadlocks_serialization_failures_and_lock_timeouts_are_worth_a_retry() {
    let app = TestApp::spawn_without_workers().await;
    let db = &app.db;
    two_rows(db).await;

    // a wait past lock_timeout
    let holder = db.begin().await.unwrap();
    run(&holder, "select * from pair where id = 1 for update")
        .await
        .unwrap();
    let waiter = db.begin().await.unwrap();
    run(&waiter, "set local lock_timeout = '50ms'")
        .await
        .unwrap();
    let err = run(&waiter, "select * from pair where id = 1 for update")
        .await
        .unwrap_err();
    retryable(err);
    waiter.rollback().await.unwrap();
    holder.rollback().await.unwrap();

    // a deadlock: each holds the row the other wants
    let (a, b) = (db.begin().await.unwrap(), db.begin().await.unwrap());
    run(&a, "update pair set v = v + 1 where id = 1")
        .await
        .unwrap();
    run(&b, "update pair set v = v + 1 where id = 2")
        .await
        .unwrap();
    let (from_a, from_b) = tokio::join!(
        run(&a, "update pair set v = v + 1 where id = 2"),
        run(&b, "update pair set v = v + 1 where id = 1"),
    );
    let failed: Vec<DbErr> = [from_a, from_b]
        .into_iter()
        .filter_map(Result::err)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    failed.into_iter().for_each(retryable);
    a.rollback().await.unwrap();
    b.rollback().await.unwrap();

    // a serialization failure: a row changed since the snapshot was taken
    let reader = db
        .begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadWrite),
        )
        .await
        .unwrap();
    run(&reader, "select v from pair where id = 1")
        .await
        .unwrap();
    run(db, "update pair set v = 10 where id = 1")
        .await
        .unwrap();
    let err = run(&reader, "update pair set v = 20 where id = 1")
        .await
        .unwrap_err();
    retryable(err);
    reader.rollback().await.unwrap();
}

#[tokio::test]
async fn a_held_order_costs_its_owner_the_lock_timeout_and_others_nothing() {
    let app = TestApp::spawn_with(Options {
        // far past the lock timeout (1 s): which of the two ended the wait shows
        configure: |config| config.db_statement_timeout = Duration::from_secs(20),
        worker_pools: 0,
        ..Options::default()
    })
    .await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Cola", "drinks", 250)])
        .await;
    let (ann, _) = app.register_customer("Ann").await;
    let (bob, _) = app.register_customer("Bob").await;
    let order = placed_order_id(&app.place_order(&bob, &[(&ids[0], None, 1)]).await);
    let cancel = "mutation ($id: ID!) { cancelOrder(id: $id) { status } }";
    let variables = json!({ "id": order.to_string() });

    // what the post-order job or another cancellation would hold
    let holder = app.db.begin().await.unwrap();
    run(
        &holder,
        &format!("select * from orders where id = {order} for update"),
    )
    .await
    .unwrap();

    // another customer: told it does not exist, at once, without queueing
    // behind the lock
    let started = Instant::now();
    let answer = app.gql_as(&ann, cancel, variables.clone()).await;
    assert_eq!(error_code(&answer), "NOT_FOUND");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // its owner: a retryable answer after the lock timeout
    let started = Instant::now();
    let answer = app.gql_as(&bob, cancel, variables.clone()).await;
    let waited = started.elapsed();
    assert_eq!(error_code(&answer), "SERVICE_UNAVAILABLE");
    assert_eq!(error_message(&answer), CONFLICT);
    assert!(waited < Duration::from_secs(10), "{waited:?}");

    // once the lock is gone, the retry goes through
    holder.rollback().await.unwrap();
    let answer = app.gql_as(&bob, cancel, variables).await;
    assert_eq!(data(&answer)["cancelOrder"]["status"], "CANCELLED");
    assert_eq!(
        app.count(&format!(
            "select count(*) from orders where id = {order} and status = 'cancelled'"
        ))
        .await,
        1
    );
}

const REBUILD: &str = "mutation { rebuildAnalytics { ordersMarked } }";

#[tokio::test]
async fn a_rebuild_runs_one_at_a_time_and_to_its_end_whatever_becomes_of_its_request() {
    let app = TestApp::spawn_with(Options {
        configure: |config| config.http.request_timeout = Duration::from_secs(1),
        worker_pools: 0,
        ..Options::default()
    })
    .await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Cola", "drinks", 250)])
        .await;
    let (ann, _) = app.register_customer("Ann").await;
    let order = placed_order_id(&app.place_order(&ann, &[(&ids[0], None, 3)]).await);

    // a counting run in progress, as far as the rebuild can tell: it waits
    // for the figures' lock, longer than a request's lock timeout (1 s)
    let holder = app.db.begin().await.unwrap();
    run(
        &holder,
        &format!(
            "select pg_advisory_xact_lock_shared({})",
            jobs::analytics::FIGURES_LOCK
        ),
    )
    .await
    .unwrap();

    // the first request gives up after HTTP_REQUEST_TIMEOUT; its rebuild
    // goes on waiting
    let first = app
        .http()
        .post(app.url("/graphql"))
        .bearer_auth(&admin)
        .json(&json!({ "query": REBUILD }))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 503);
    let first: serde_json::Value = first.json().await.unwrap();
    assert_eq!(error_code(&first), "SERVICE_UNAVAILABLE", "{first}");

    // a second one, meanwhile: refused at once
    let started = Instant::now();
    let second = app.gql_as(&admin, REBUILD, json!({})).await;
    assert_eq!(error_code(&second), "CONFLICT", "{second}");
    assert_eq!(
        error_message(&second),
        "a rebuild of the figures is already running; wait for it to finish"
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    tokio::time::sleep(Duration::from_millis(1_500)).await;
    holder.rollback().await.unwrap();

    // the first rebuild ran to its end: the order is counted, once
    let deadline = Instant::now() + Duration::from_secs(20);
    let counted = format!(
        "select count(*) from orders where id = {order} and analytics_applied_at is not null"
    );
    while app.count(&counted).await == 0 {
        assert!(Instant::now() < deadline, "the rebuild never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.figures(&ids[0]).await["salesCount"], 3);
    assert_eq!(app.figure_mismatches().await, 0);
}
