//! cancelOrder: who may cancel, and the job that takes a cancelled order's
//! lines back out of the figures exactly once, counted before or not.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use jobs::JobKind;
use jobs::analytics::{self, Applied, Outcome, Reversed};
use jobs::fail_points::FailPoints;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tally::money::Cents;

use crate::harness::{Options, TestApp, data, error_code, error_message, placed_order_id};

const CANCEL: &str =
    "mutation($id: ID!) { cancelOrder(id: $id) { id status cancelledAt analyticsStatus } }";
const ORDER: &str = "query($id: ID!) { order(id: $id) { id status cancelledAt analyticsStatus } }";
const ME: &str = "{ me { mostOrderedItems { id name } favoriteCategories } }";
const REBUILD: &str = "mutation { rebuildAnalytics { ordersMarked productsUpdated customerProductRows customerCategoryRows } }";

fn int(id: &str) -> i64 {
    id.parse().unwrap()
}

async fn cancel(app: &TestApp, token: &str, id: i64) -> Value {
    app.gql_as(token, CANCEL, json!({ "id": id.to_string() }))
        .await
}

async fn order(app: &TestApp, token: &str, id: i64) -> Value {
    let body = app
        .gql_as(token, ORDER, json!({ "id": id.to_string() }))
        .await;
    data(&body)["order"].clone()
}

/// `created_at` of an order, as `rows` renders timestamps.
async fn created_at(app: &TestApp, id: i64) -> Value {
    app.rows(&format!("select created_at from orders where id = {id}"))
        .await[0]["created_at"]
        .clone()
}

async fn customer_products(app: &TestApp) -> Vec<Value> {
    app.rows(
        "select user_id, product_id, quantity, last_ordered_at from customer_product_stats
         order by user_id, product_id",
    )
    .await
}

async fn customer_categories(app: &TestApp) -> Vec<Value> {
    app.rows(
        "select user_id, category, quantity, last_ordered_at from customer_category_stats
         order by user_id, category",
    )
    .await
}

/// Every figure and marker a run could touch, down to `updated_at`.
async fn snapshot(app: &TestApp) -> Value {
    json!({
        "products": app.rows("select id, sales_count, total_revenue_cents, rating, updated_at from products order by id").await,
        "customer_products": customer_products(app).await,
        "customer_categories": customer_categories(app).await,
        "orders": app.rows("select id, status, cancelled_at, analytics_applied_at, analytics_reversed_at from orders order by id").await,
    })
}

/// The queue's rows, by idempotency key.
async fn jobs_by_key(app: &TestApp) -> Vec<Value> {
    app.rows(
        "select idempotency_key, status, attempts, last_result from apalis.jobs
         order by idempotency_key",
    )
    .await
}

/// Each job's key and status only: when an order's two jobs are both waiting,
/// the first to run settles the order and may mark the other done before a
/// worker takes it (no attempt, a result naming the reversal) or after.
async fn job_statuses(app: &TestApp) -> Vec<Value> {
    app.rows("select idempotency_key, status from apalis.jobs order by idempotency_key")
        .await
}

fn status(key: String, status: &str) -> Value {
    json!({ "idempotency_key": key, "status": status })
}

fn done(key: String, attempts: i64) -> Value {
    json!({ "idempotency_key": key, "status": "Done", "attempts": attempts, "last_result": { "Ok": null } })
}

#[tokio::test]
async fn cancelling_a_counted_order_takes_exactly_its_lines_back_out() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let pizza = app
        .create_product(
            &admin,
            "Margherita",
            "pizza",
            "9.00",
            &[("Small", "9.00"), ("Large", "14.00")],
        )
        .await;
    let (a, small, large) = (
        pizza["id"].as_str().unwrap().to_owned(),
        pizza["variants"][0]["id"].as_str().unwrap().to_owned(),
        pizza["variants"][1]["id"].as_str().unwrap().to_owned(),
    );
    // ids in creation order: a < d < b < c
    let ids = app
        .create_products(
            &admin,
            &[
                ("Garlic bread", "appetizers", 400),
                ("Cola", "beverages", 250),
                ("Tiramisu", "desserts", 600),
            ],
        )
        .await;
    let (d, b, c) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    let (token, ann) = app.register_customer("Ann").await;

    // the order that stays, placed first
    let body = app
        .place_order(
            &token,
            &[(&a, Some(&small), 5), (&d, None, 12), (&b, None, 12)],
        )
        .await;
    assert_eq!(data(&body)["placeOrder"]["total"], "123.00");
    let remaining = placed_order_id(&body);
    app.wait_for_jobs().await;
    // the order to cancel: two lines of the pizza (95 units, 100 in all)
    let body = app
        .place_order(
            &token,
            &[
                (&a, Some(&small), 60),
                (&a, Some(&large), 35),
                (&b, None, 40),
                (&c, None, 3),
            ],
        )
        .await;
    assert_eq!(data(&body)["placeOrder"]["total"], "1148.00");
    let cancelled = placed_order_id(&body);
    app.wait_for_jobs().await;

    let (r_at, x_at) = (
        created_at(&app, remaining).await,
        created_at(&app, cancelled).await,
    );
    assert_ne!(r_at, x_at);
    let before = [
        (
            &a,
            json!({ "salesCount": 100, "totalRevenue": "1075.00", "rating": 4.7 }),
        ),
        (
            &d,
            json!({ "salesCount": 12, "totalRevenue": "48.00", "rating": 4.2 }),
        ),
        (
            &b,
            json!({ "salesCount": 52, "totalRevenue": "130.00", "rating": 4.5 }),
        ),
        (
            &c,
            json!({ "salesCount": 3, "totalRevenue": "18.00", "rating": 4.0 }),
        ),
    ];
    for (id, expected) in &before {
        assert_eq!(&app.figures(id).await, expected, "product {id} before");
    }
    let row = |product: &str, quantity: i64, at: &Value| json!({ "user_id": ann, "product_id": int(product), "quantity": quantity, "last_ordered_at": at });
    let cat = |category: &str, quantity: i64, at: &Value| json!({ "user_id": ann, "category": category, "quantity": quantity, "last_ordered_at": at });
    assert_eq!(
        customer_products(&app).await,
        vec![
            row(&a, 100, &x_at),
            row(&d, 12, &r_at),
            row(&b, 52, &x_at),
            row(&c, 3, &x_at)
        ]
    );
    assert_eq!(
        customer_categories(&app).await,
        vec![
            cat("appetizers", 12, &r_at),
            cat("beverages", 52, &x_at),
            cat("desserts", 3, &x_at),
            cat("pizza", 100, &x_at)
        ]
    );
    assert_eq!(
        data(&app.gql_as(&token, ME, json!({})).await)["me"],
        json!({
            "mostOrderedItems": [
                { "id": a, "name": "Margherita" }, { "id": b, "name": "Cola" },
                { "id": d, "name": "Garlic bread" }, { "id": c, "name": "Tiramisu" },
            ],
            "favoriteCategories": ["pizza", "beverages", "appetizers"],
        })
    );
    assert_eq!(app.figure_mismatches().await, 0);

    let body = cancel(&app, &token, cancelled).await;
    let response = data(&body)["cancelOrder"].clone();
    let cancelled_at = response["cancelledAt"]
        .as_str()
        .expect("cancelledAt")
        .to_owned();
    assert_eq!(
        response,
        json!({ "id": cancelled.to_string(), "status": "CANCELLED", "cancelledAt": cancelled_at, "analyticsStatus": "PENDING" })
    );
    assert_eq!(
        app.count(&format!(
            "select count(*) from orders where id = {cancelled} and status = 'cancelled'
             and cancelled_at = '{cancelled_at}'::timestamptz"
        ))
        .await,
        1
    );
    app.wait_for_jobs().await;

    assert_eq!(
        order(&app, &token, cancelled).await,
        json!({ "id": cancelled.to_string(), "status": "CANCELLED", "cancelledAt": cancelled_at, "analyticsStatus": "REVERSED" })
    );
    assert_eq!(
        order(&app, &token, remaining).await["analyticsStatus"],
        "APPLIED"
    );
    // back to the remaining order's figures, rating tiers included
    let after = [
        (
            &a,
            json!({ "salesCount": 5, "totalRevenue": "45.00", "rating": 4.0 }),
        ),
        (
            &d,
            json!({ "salesCount": 12, "totalRevenue": "48.00", "rating": 4.2 }),
        ),
        (
            &b,
            json!({ "salesCount": 12, "totalRevenue": "30.00", "rating": 4.2 }),
        ),
        (
            &c,
            json!({ "salesCount": 0, "totalRevenue": "0.00", "rating": 4.0 }),
        ),
    ];
    for (id, expected) in &after {
        assert_eq!(&app.figures(id).await, expected, "product {id} after");
    }
    // as if only the remaining order had been placed: reduced rows take its
    // created_at, the dessert's rows (only in the cancelled order) are gone
    assert_eq!(
        customer_products(&app).await,
        vec![row(&a, 5, &r_at), row(&d, 12, &r_at), row(&b, 12, &r_at)]
    );
    assert_eq!(
        customer_categories(&app).await,
        vec![
            cat("appetizers", 12, &r_at),
            cat("beverages", 12, &r_at),
            cat("pizza", 5, &r_at)
        ]
    );
    // ties at 12: same last order, so the lower id (bread) and then the
    // category first in the alphabet; with a stale last_ordered_at the cola
    // and beverages would come first
    assert_eq!(
        data(&app.gql_as(&token, ME, json!({})).await)["me"],
        json!({
            "mostOrderedItems": [
                { "id": d, "name": "Garlic bread" }, { "id": b, "name": "Cola" },
                { "id": a, "name": "Margherita" },
            ],
            "favoriteCategories": ["appetizers", "beverages", "pizza"],
        })
    );
    assert_eq!(
        app.count(&format!(
            "select count(*) from orders where id = {cancelled}
             and analytics_applied_at is not null and analytics_reversed_at is not null"
        ))
        .await,
        1
    );
    assert_eq!(app.figure_mismatches().await, 0);
    assert_eq!(
        jobs_by_key(&app).await,
        vec![
            done(JobKind::Reverse.key(cancelled), 1),
            done(JobKind::Count.key(remaining), 1),
            done(JobKind::Count.key(cancelled), 1),
        ]
    );
    // operators tell the cancellation's job from the order's
    let listed = app
        .gql_as(
            &admin,
            "{ jobs { orderNumber cancellation status } }",
            json!({}),
        )
        .await;
    let numbers = app.rows("select id, order_number from orders").await;
    let number = |id: i64| {
        let row = numbers.iter().find(|row| row["id"] == json!(id)).unwrap();
        row["order_number"].clone()
    };
    let (cancelled_number, remaining_number) = (number(cancelled), number(remaining));
    let mut jobs = data(&listed)["jobs"].as_array().unwrap().clone();
    jobs.sort_by_key(|job| {
        (
            job["orderNumber"].to_string(),
            job["cancellation"].as_bool(),
        )
    });
    let mut expected = vec![
        json!({ "orderNumber": remaining_number, "cancellation": false, "status": "DONE" }),
        json!({ "orderNumber": cancelled_number, "cancellation": false, "status": "DONE" }),
        json!({ "orderNumber": cancelled_number, "cancellation": true, "status": "DONE" }),
    ];
    expected.sort_by_key(|job| {
        (
            job["orderNumber"].to_string(),
            job["cancellation"].as_bool(),
        )
    });
    assert_eq!(jobs, expected);

    // a rebuild from the history arrives at the same figures
    let before_rebuild = snapshot(&app).await;
    let body = app.gql_as(&admin, REBUILD, json!({})).await;
    assert_eq!(
        data(&body)["rebuildAnalytics"],
        json!({ "ordersMarked": 0, "productsUpdated": 0, "customerProductRows": 3, "customerCategoryRows": 3 })
    );
    assert_eq!(snapshot(&app).await, before_rebuild);
    assert_eq!(app.figure_mismatches().await, 0);
}

#[tokio::test]
async fn an_order_cancelled_before_its_job_ran_is_never_counted() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(
            &admin,
            &[
                ("Margherita", "pizza", 900),
                ("Cola", "beverages", 250),
                ("Tiramisu", "desserts", 600),
            ],
        )
        .await;
    let (token, ann) = app.register_customer("Ann").await;
    let cancelled = placed_order_id(
        &app.place_order(&token, &[(&ids[0], None, 3), (&ids[1], None, 2)])
            .await,
    );
    let body = cancel(&app, &token, cancelled).await;
    assert_eq!(
        (
            &data(&body)["cancelOrder"]["status"],
            &data(&body)["cancelOrder"]["analyticsStatus"]
        ),
        (&json!("CANCELLED"), &json!("PENDING"))
    );
    // placed after the cancelled one, whose id a batch reaches first
    let body = app.place_order(&token, &[(&ids[2], None, 1)]).await;
    let standing = placed_order_id(&body);
    let standing_number = data(&body)["placeOrder"]["orderNumber"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.rows("select idempotency_key, status from apalis.jobs order by idempotency_key")
            .await,
        vec![
            json!({ "idempotency_key": JobKind::Reverse.key(cancelled), "status": "Pending" }),
            json!({ "idempotency_key": JobKind::Count.key(cancelled), "status": "Pending" }),
            json!({ "idempotency_key": JobKind::Count.key(standing), "status": "Pending" }),
        ]
    );

    // a batch run and a sweep pass over the cancelled order
    let none = FailPoints::default();
    assert_eq!(
        analytics::apply_order(&app.db, standing, 100, &none)
            .await
            .unwrap(),
        Outcome::Applied(Applied {
            order_numbers: vec![standing_number],
            products_updated: 1,
            preference_user_ids: vec![ann],
            retired_jobs: vec![],
        })
    );
    assert_eq!(
        analytics::apply_waiting(&app.db, 100, &none).await.unwrap(),
        Outcome::AlreadyApplied
    );
    assert_eq!(
        app.count(&format!(
            "select count(*) from orders where id = {cancelled} and analytics_applied_at is null"
        ))
        .await,
        1
    );

    app.start_workers().await;
    app.wait_for_jobs().await;

    for id in &ids[..2] {
        assert_eq!(
            app.figures(id).await,
            json!({ "salesCount": 0, "totalRevenue": "0.00", "rating": 4.0 }),
            "product {id}"
        );
    }
    assert_eq!(
        app.figures(&ids[2]).await,
        json!({ "salesCount": 1, "totalRevenue": "6.00", "rating": 4.0 })
    );
    let at = created_at(&app, standing).await;
    assert_eq!(
        customer_products(&app).await,
        vec![
            json!({ "user_id": ann, "product_id": int(&ids[2]), "quantity": 1, "last_ordered_at": at })
        ]
    );
    assert_eq!(
        customer_categories(&app).await,
        vec![
            json!({ "user_id": ann, "category": "desserts", "quantity": 1, "last_ordered_at": at })
        ]
    );
    assert_eq!(
        order(&app, &token, cancelled).await["analyticsStatus"],
        "REVERSED"
    );
    assert_eq!(
        app.count(&format!(
            "select count(*) from orders where id = {cancelled}
             and analytics_applied_at is null and analytics_reversed_at is not null"
        ))
        .await,
        1
    );
    assert_eq!(
        job_statuses(&app).await,
        vec![
            status(JobKind::Reverse.key(cancelled), "Done"),
            status(JobKind::Count.key(cancelled), "Done"),
            status(JobKind::Count.key(standing), "Done"),
        ]
    );
    assert_eq!(
        data(&app.gql_as(&token, ME, json!({})).await)["me"],
        json!({ "mostOrderedItems": [{ "id": ids[2], "name": "Tiramisu" }], "favoriteCategories": ["desserts"] })
    );
    assert_eq!(app.figure_mismatches().await, 0);
}

#[tokio::test]
async fn a_failing_reversal_is_retried_and_takes_the_order_out_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(
            &admin,
            &[("Margherita", "pizza", 900), ("Cola", "beverages", 250)],
        )
        .await;
    let (token, ann) = app.register_customer("Ann").await;
    let remaining = placed_order_id(&app.place_order(&token, &[(&ids[0], None, 3)]).await);
    app.wait_for_jobs().await;
    let cancelled = placed_order_id(
        &app.place_order(&token, &[(&ids[0], None, 4), (&ids[1], None, 2)])
            .await,
    );
    app.wait_for_jobs().await;
    assert_eq!(
        app.figures(&ids[0]).await,
        json!({ "salesCount": 7, "totalRevenue": "63.00", "rating": 4.0 })
    );

    // the reversal's first two runs fail after taking the products back out
    app.fail_points.fail_after_product_update(2);
    data(&cancel(&app, &token, cancelled).await);
    app.wait_for_jobs().await;

    assert_eq!(
        app.rows(&format!(
            "select status, attempts, last_result from apalis.jobs
             where idempotency_key = '{}'",
            JobKind::Reverse.key(cancelled)
        ))
        .await,
        vec![json!({ "status": "Done", "attempts": 3, "last_result": { "Ok": null } })]
    );
    assert_eq!(
        app.figures(&ids[0]).await,
        json!({ "salesCount": 3, "totalRevenue": "27.00", "rating": 4.0 })
    );
    assert_eq!(
        app.figures(&ids[1]).await,
        json!({ "salesCount": 0, "totalRevenue": "0.00", "rating": 4.0 })
    );
    let at = created_at(&app, remaining).await;
    assert_eq!(
        customer_products(&app).await,
        vec![
            json!({ "user_id": ann, "product_id": int(&ids[0]), "quantity": 3, "last_ordered_at": at })
        ]
    );
    assert_eq!(
        customer_categories(&app).await,
        vec![json!({ "user_id": ann, "category": "pizza", "quantity": 3, "last_ordered_at": at })]
    );
    assert_eq!(
        order(&app, &token, cancelled).await["analyticsStatus"],
        "REVERSED"
    );
    assert_eq!(app.figure_mismatches().await, 0);
    let settled = snapshot(&app).await;

    // the job's work run again by hand finds the order settled
    assert_eq!(
        analytics::apply_order(&app.db, cancelled, 100, &FailPoints::default())
            .await
            .unwrap(),
        Outcome::AlreadyReversed
    );
    assert_eq!(snapshot(&app).await, settled);

    // an operator puts both of the order's jobs back in the queue
    assert_eq!(
        app.execute(&format!(
            "update apalis.jobs
             set status = 'Pending', attempts = 0, run_at = now(), lock_by = null,
                 lock_at = null, done_at = null, last_result = null
             where idempotency_key in ('{}', '{}')",
            JobKind::Count.key(cancelled),
            JobKind::Reverse.key(cancelled)
        ))
        .await,
        2
    );
    app.wait_for_jobs().await;
    assert_eq!(
        jobs_by_key(&app).await,
        vec![
            done(JobKind::Reverse.key(cancelled), 1),
            done(JobKind::Count.key(remaining), 1),
            done(JobKind::Count.key(cancelled), 1),
        ]
    );
    assert_eq!(snapshot(&app).await, settled);
    assert_eq!(app.figure_mismatches().await, 0);
}

#[tokio::test]
async fn a_failed_order_job_is_done_once_the_reversal_settles_its_order() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Margherita", "pizza", 900)])
        .await;
    let (token, _) = app.register_customer("Ann").await;
    // every attempt of the order's own job fails: the order is never counted
    app.fail_points.fail_after_product_update(3);
    let cancelled = placed_order_id(&app.place_order(&token, &[(&ids[0], None, 2)]).await);
    app.wait_for_jobs().await;
    assert_eq!(
        app.rows("select status, attempts from apalis.jobs").await,
        vec![json!({ "status": "Failed", "attempts": 3 })]
    );

    data(&cancel(&app, &token, cancelled).await);
    app.wait_for_jobs().await;
    assert_eq!(
        order(&app, &token, cancelled).await["analyticsStatus"],
        "REVERSED"
    );
    // nothing is left for an operator to retry: the failed job is done, and
    // says which run settled its order
    let number = app
        .rows(&format!(
            "select order_number from orders where id = {cancelled}"
        ))
        .await[0]["order_number"]
        .clone();
    assert_eq!(
        jobs_by_key(&app).await,
        vec![
            done(JobKind::Reverse.key(cancelled), 1),
            json!({
                "idempotency_key": JobKind::Count.key(cancelled),
                "status": "Done",
                "attempts": 3,
                "last_result": { "Ok": format!("settled with the reversal of {}", number.as_str().unwrap()) },
            }),
        ]
    );
    let settled = snapshot(&app).await;

    // so retrying it is refused, and its work run again by hand changes nothing
    let job_id = app
        .rows(&format!(
            "select id from apalis.jobs where idempotency_key = '{}'",
            JobKind::Count.key(cancelled)
        ))
        .await[0]["id"]
        .clone();
    let body = app
        .gql_as(
            &admin,
            "mutation($id: ID!) { retryJob(id: $id) }",
            json!({ "id": job_id }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    assert_eq!(
        analytics::apply_order(&app.db, cancelled, 100, &FailPoints::default())
            .await
            .unwrap(),
        Outcome::AlreadyReversed
    );
    assert_eq!(snapshot(&app).await, settled);
    assert_eq!(
        app.figures(&ids[0]).await,
        json!({ "salesCount": 0, "totalRevenue": "0.00", "rating": 4.0 })
    );
    assert_eq!(
        app.count("select count(*) from orders where analytics_applied_at is null and analytics_reversed_at is not null")
            .await,
        1
    );
    assert_eq!(
        app.count("select count(*) from customer_product_stats")
            .await,
        0
    );
    assert_eq!(app.figure_mismatches().await, 0);
}

#[tokio::test]
async fn only_its_customer_or_an_admin_may_cancel_an_order_and_cancelling_twice_does_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Margherita", "pizza", 900)])
        .await;
    let (ann, _) = app.register_customer("Ann").await;
    let (bob, _) = app.register_customer("Bob").await;
    let id = placed_order_id(&app.place_order(&ann, &[(&ids[0], None, 2)]).await);
    app.wait_for_jobs().await;
    let untouched = snapshot(&app).await;

    let refused = [
        (
            "another customer",
            Some(bob.as_str()),
            id.to_string(),
            "NOT_FOUND",
        ),
        ("no token", None, id.to_string(), "UNAUTHENTICATED"),
        (
            "a malformed id",
            Some(ann.as_str()),
            "abc".to_owned(),
            "BAD_USER_INPUT",
        ),
        ("id 0", Some(ann.as_str()), "0".to_owned(), "BAD_USER_INPUT"),
        (
            "an unknown order",
            Some(ann.as_str()),
            "999999".to_owned(),
            "NOT_FOUND",
        ),
    ];
    for (case, token, id, code) in refused {
        let vars = json!({ "id": id });
        let body = match token {
            Some(token) => app.gql_as(token, CANCEL, vars).await,
            None => app.gql(CANCEL, vars).await,
        };
        assert_eq!(error_code(&body), code, "{case}: {body}");
        assert_eq!(body["data"], Value::Null, "{case}");
    }
    // another customer's order does not exist for them, in any answer
    assert_eq!(
        error_message(&cancel(&app, &bob, id).await),
        error_message(&cancel(&app, &bob, 999_999).await).replace("999999", &id.to_string())
    );
    assert_eq!(snapshot(&app).await, untouched);
    assert_eq!(
        app.count(&format!(
            "select count(*) from apalis.jobs where idempotency_key = '{}'",
            JobKind::Reverse.key(id)
        ))
        .await,
        0
    );

    let first = data(&cancel(&app, &ann, id).await)["cancelOrder"].clone();
    assert_eq!(first["status"], "CANCELLED");
    app.wait_for_jobs().await;
    let settled = snapshot(&app).await;
    // again by the customer and by an admin: the same order, nothing written
    for token in [&ann, &admin] {
        let again = data(&cancel(&app, token, id).await)["cancelOrder"].clone();
        assert_eq!(
            again,
            json!({ "id": id.to_string(), "status": "CANCELLED", "cancelledAt": first["cancelledAt"], "analyticsStatus": "REVERSED" })
        );
    }
    app.wait_for_jobs().await;
    assert_eq!(snapshot(&app).await, settled);
    assert_eq!(
        jobs_by_key(&app).await,
        vec![
            done(JobKind::Reverse.key(id), 1),
            done(JobKind::Count.key(id), 1)
        ]
    );
    // and still nobody else's
    assert_eq!(error_code(&cancel(&app, &bob, id).await), "NOT_FOUND");
    assert_eq!(
        app.figures(&ids[0]).await,
        json!({ "salesCount": 0, "totalRevenue": "0.00", "rating": 4.0 })
    );
    assert_eq!(app.figure_mismatches().await, 0);
}

#[tokio::test]
async fn past_the_window_only_an_admin_may_cancel() {
    let app = TestApp::spawn_with(Options {
        configure: |c| c.order_cancel_window = Duration::ZERO,
        ..Options::default()
    })
    .await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Margherita", "pizza", 900)])
        .await;
    let (ann, _) = app.register_customer("Ann").await;
    let id = placed_order_id(&app.place_order(&ann, &[(&ids[0], None, 2)]).await);
    app.wait_for_jobs().await;
    let untouched = snapshot(&app).await;

    let body = cancel(&app, &ann, id).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    assert!(
        error_message(&body).contains("ask an admin"),
        "{}",
        error_message(&body)
    );
    assert_eq!(body["data"], Value::Null);
    assert_eq!(snapshot(&app).await, untouched);
    assert_eq!(
        app.rows("select status, cancelled_at from orders").await,
        vec![json!({ "status": "placed", "cancelled_at": null })]
    );
    assert_eq!(
        app.count(&format!(
            "select count(*) from apalis.jobs where idempotency_key = '{}'",
            JobKind::Reverse.key(id)
        ))
        .await,
        0
    );
    assert_eq!(
        app.figures(&ids[0]).await,
        json!({ "salesCount": 2, "totalRevenue": "18.00", "rating": 4.0 })
    );

    let body = cancel(&app, &admin, id).await;
    assert_eq!(data(&body)["cancelOrder"]["status"], "CANCELLED");
    app.wait_for_jobs().await;
    assert_eq!(order(&app, &ann, id).await["analyticsStatus"], "REVERSED");
    assert_eq!(
        app.figures(&ids[0]).await,
        json!({ "salesCount": 0, "totalRevenue": "0.00", "rating": 4.0 })
    );
    // the customer retrying is answered with the cancelled order, not refused
    let again = cancel(&app, &ann, id).await;
    assert_eq!(data(&again)["cancelOrder"]["status"], "CANCELLED");
    assert_eq!(
        jobs_by_key(&app).await,
        vec![
            done(JobKind::Reverse.key(id), 1),
            done(JobKind::Count.key(id), 1)
        ]
    );
    assert_eq!(app.figure_mismatches().await, 0);
}

#[tokio::test]
async fn replaying_an_idempotency_key_after_a_cancellation_returns_the_cancelled_order() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Margherita", "pizza", 900)])
        .await;
    let (ann, _) = app.register_customer("Ann").await;
    let place = "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id status cancelledAt analyticsStatus } }";
    let input = json!({ "input": { "items": [{ "productId": ids[0], "quantity": 2 }], "idempotencyKey": "checkout-1" } });

    let placed = data(&app.gql_as(&ann, place, input.clone()).await)["placeOrder"].clone();
    let id = int(placed["id"].as_str().unwrap());
    let cancelled = data(&cancel(&app, &ann, id).await)["cancelOrder"].clone();
    app.wait_for_jobs().await;

    let replayed = data(&app.gql_as(&ann, place, input).await)["placeOrder"].clone();
    assert_eq!(
        replayed,
        json!({ "id": id.to_string(), "status": "CANCELLED", "cancelledAt": cancelled["cancelledAt"], "analyticsStatus": "REVERSED" })
    );
    app.wait_for_jobs().await;
    assert_eq!(app.count("select count(*) from orders").await, 1);
    assert_eq!(
        job_statuses(&app).await,
        vec![
            status(JobKind::Reverse.key(id), "Done"),
            status(JobKind::Count.key(id), "Done"),
        ]
    );
    assert_eq!(
        app.figures(&ids[0]).await,
        json!({ "salesCount": 0, "totalRevenue": "0.00", "rating": 4.0 })
    );
    assert_eq!(app.figure_mismatches().await, 0);
}

/// Waits until `n` backends of the test's database wait for a row lock.
async fn lock_waiters(app: &TestApp, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting = app
            .count(
                "select count(*) from pg_stat_activity
                 where datname = current_database() and wait_event_type = 'Lock'",
            )
            .await;
        if waiting == n {
            return;
        }
        assert!(Instant::now() < deadline, "{waiting} lock waiters, not {n}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reversal_waits_for_a_run_counting_the_same_customers_category() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(
            &admin,
            &[
                ("Margherita", "pizza", 900),
                ("Diavola", "pizza", 1100),
                ("Cola", "beverages", 250),
            ],
        )
        .await;
    let (ann, ann_id) = app.register_customer("Ann").await;
    let (bob, bob_id) = app.register_customer("Bob").await;
    let none = FailPoints::default();
    // Ann's only pizza so far, counted, then cancelled
    let body = app.place_order(&ann, &[(&ids[0], None, 2)]).await;
    let cancelled = placed_order_id(&body);
    let cancelled_number = data(&body)["placeOrder"]["orderNumber"].clone();
    assert!(matches!(
        analytics::apply_order(&app.db, cancelled, 1, &none)
            .await
            .unwrap(),
        Outcome::Applied(_)
    ));
    data(&cancel(&app, &ann, cancelled).await);
    // another pizza of Ann's (another product, so no product lock in
    // common with the reversal), and an order of Bob's
    let body = app.place_order(&ann, &[(&ids[1], None, 3)]).await;
    let (pizza, pizza_number) = (
        placed_order_id(&body),
        data(&body)["placeOrder"]["orderNumber"].clone(),
    );
    let body = app.place_order(&bob, &[(&ids[2], None, 1)]).await;
    let (cola, cola_number) = (
        placed_order_id(&body),
        data(&body)["placeOrder"]["orderNumber"].clone(),
    );

    // Bob's job row locked elsewhere: the run that counts Ann's pizza and
    // Bob's order stops at retiring that job, holding Ann's pizza total
    let mut blocker = app.pool.begin().await.unwrap();
    let cola_job: String =
        sqlx::query_scalar("select id from apalis.jobs where idempotency_key = $1 for update")
            .bind(JobKind::Count.key(cola))
            .fetch_one(&mut *blocker)
            .await
            .unwrap();
    let db = app.db.clone();
    let counting =
        tokio::spawn(
            async move { analytics::apply_order(&db, pizza, 2, &FailPoints::default()).await },
        );
    lock_waiters(&app, 1).await;
    // the reversal starts meanwhile, and must wait for that total
    let db = app.db.clone();
    let reversing = tokio::spawn(async move {
        analytics::apply_order(&db, cancelled, 1, &FailPoints::default()).await
    });
    lock_waiters(&app, 2).await;
    blocker.rollback().await.unwrap();

    assert_eq!(
        counting.await.unwrap().unwrap(),
        Outcome::Applied(Applied {
            order_numbers: vec![
                pizza_number.as_str().unwrap().to_owned(),
                cola_number.as_str().unwrap().to_owned()
            ],
            products_updated: 2,
            preference_user_ids: vec![ann_id, bob_id],
            retired_jobs: vec![cola_job],
        })
    );
    assert_eq!(
        reversing.await.unwrap().unwrap(),
        Outcome::Reversed(Reversed {
            order_number: cancelled_number.as_str().unwrap().to_owned(),
            was_counted: true,
            products_updated: 1,
            preference_user_ids: vec![ann_id],
        })
    );
    let (pizza_at, cola_at) = (created_at(&app, pizza).await, created_at(&app, cola).await);
    assert_eq!(
        customer_categories(&app).await,
        vec![
            json!({ "user_id": ann_id, "category": "pizza", "quantity": 3, "last_ordered_at": pizza_at }),
            json!({ "user_id": bob_id, "category": "beverages", "quantity": 1, "last_ordered_at": cola_at }),
        ]
    );
    assert_eq!(
        customer_products(&app).await,
        vec![
            json!({ "user_id": ann_id, "product_id": int(&ids[1]), "quantity": 3, "last_ordered_at": pizza_at }),
            json!({ "user_id": bob_id, "product_id": int(&ids[2]), "quantity": 1, "last_ordered_at": cola_at }),
        ]
    );
    assert_eq!(
        app.figures(&ids[0]).await,
        json!({ "salesCount": 0, "totalRevenue": "0.00", "rating": 4.0 })
    );
    assert_eq!(app.figure_mismatches().await, 0);
}

/// 1 to 3 lines of random products, 1 to 9 units each.
fn random_lines(rng: &mut StdRng, products: usize) -> Vec<(usize, i32)> {
    (0..rng.random_range(1..=3))
        .map(|_| (rng.random_range(0..products), rng.random_range(1..=9)))
        .collect()
}

struct Placed {
    id: i64,
    user_id: i64,
    lines: Vec<(usize, i32)>,
    cancelled: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_and_cancellations_leave_exact_figures_and_a_rebuild_agrees() {
    let mut options = Options {
        // started below, once some cancellations surely came before any job
        worker_pools: 0,
        ..Options::default()
    };
    options.settings.batch_size = 5;
    options.settings.sweep_on_wakeup = true;
    let app = TestApp::spawn_with(options).await;
    let admin = app.admin_token().await;
    let specs = [
        ("A", "pizza", 900),
        ("B", "pizza", 1150),
        ("C", "beverages", 250),
        ("D", "desserts", 600),
    ];
    let ids = app.create_products(&admin, &specs).await;
    let mut customers = Vec::new();
    for n in 0..3 {
        customers.push(app.register_customer(&format!("Customer {n}")).await);
    }
    let seed = std::env::var("CANCELLATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("CANCELLATION_SEED={seed}");
    let n_products = ids.len();
    let items = |lines: &[(usize, i32)]| -> Vec<(String, i32)> {
        lines.iter().map(|(p, q)| (ids[*p].clone(), *q)).collect()
    };

    // 6 orders with no worker running; every third is cancelled before any
    // job or sweep could count it
    let mut placed: Vec<Placed> = Vec::new();
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..2 {
        for (token, user_id) in &customers {
            let lines = random_lines(&mut rng, n_products);
            let owned = items(&lines);
            let borrowed: Vec<_> = owned.iter().map(|(p, q)| (p.as_str(), None, *q)).collect();
            let id = placed_order_id(&app.place_order(token, &borrowed).await);
            let cancelled = placed.len().is_multiple_of(3);
            if cancelled {
                let body = cancel(&app, token, id).await;
                assert_eq!(data(&body)["cancelOrder"]["status"], "CANCELLED");
            }
            placed.push(Placed {
                id,
                user_id: *user_id,
                lines,
                cancelled,
            });
        }
    }
    let cancelled_uncounted: Vec<i64> = placed
        .iter()
        .filter(|p| p.cancelled)
        .map(|p| p.id)
        .collect();
    assert_eq!(cancelled_uncounted.len(), 2);

    app.start_workers().await;
    app.start_workers().await;

    // 3 customers × 18 orders at once; every third order is cancelled as soon
    // as it is placed, every sixth only once it was counted (so both cases
    // surely happen); customer 0's by an admin
    let (tx, rx) = futures::channel::mpsc::unbounded::<(i64, String, bool)>();
    let app = &app;
    let placing =
        futures::future::join_all(customers.iter().enumerate().map(|(c, (token, user_id))| {
            let tx = tx.clone();
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(c as u64 + 1));
            let items = &items;
            let canceller = if c == 0 { admin.clone() } else { token.clone() };
            async move {
                let mut mine = Vec::new();
                for n in 0..18 {
                    let lines = random_lines(&mut rng, n_products);
                    let owned = items(&lines);
                    let borrowed: Vec<_> =
                        owned.iter().map(|(p, q)| (p.as_str(), None, *q)).collect();
                    let id = placed_order_id(&app.place_order(token, &borrowed).await);
                    let cancelled = n % 3 == 2;
                    if cancelled {
                        tx.unbounded_send((id, canceller.clone(), n % 6 == 5))
                            .unwrap();
                    }
                    mine.push(Placed {
                        id,
                        user_id: *user_id,
                        lines,
                        cancelled,
                    });
                }
                mine
            }
        }));
    drop(tx);
    let waited = std::sync::Mutex::new(Vec::new());
    let cancelling = rx.for_each_concurrent(None, |(id, token, after_counting)| {
        let waited = &waited;
        async move {
            if after_counting {
                let deadline = Instant::now() + Duration::from_secs(30);
                while order(app, &token, id).await["analyticsStatus"] != "APPLIED" {
                    assert!(Instant::now() < deadline, "order {id} never counted");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                waited.lock().unwrap().push(id);
            }
            let body = cancel(app, &token, id).await;
            assert_eq!(
                (
                    &data(&body)["cancelOrder"]["status"],
                    &data(&body)["cancelOrder"]["analyticsStatus"]
                ),
                (&json!("CANCELLED"), &json!("PENDING")),
                "order {id}"
            );
        }
    });
    let (concurrent, ()) = futures::join!(placing, cancelling);
    placed.extend(concurrent.into_iter().flatten());
    let cancelled_counted = waited.into_inner().unwrap();
    assert_eq!(cancelled_counted.len(), 9);
    app.wait_for_jobs().await;

    // what the standing orders add up to, computed here
    let mut by_product: BTreeMap<usize, (i64, i64)> = BTreeMap::new();
    let mut by_customer_product: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    let mut by_customer_category: BTreeMap<(i64, &str), i64> = BTreeMap::new();
    for order in placed.iter().filter(|o| !o.cancelled) {
        for (p, q) in &order.lines {
            let q = i64::from(*q);
            let e = by_product.entry(*p).or_default();
            e.0 += q;
            e.1 += q * specs[*p].2;
            *by_customer_product
                .entry((order.user_id, int(&ids[*p])))
                .or_default() += q;
            *by_customer_category
                .entry((order.user_id, specs[*p].1))
                .or_default() += q;
        }
    }
    let cancelled: Vec<i64> = placed
        .iter()
        .filter(|o| o.cancelled)
        .map(|o| o.id)
        .collect();
    assert_eq!((placed.len(), cancelled.len()), (60, 20));
    assert_eq!(
        app.count("select count(*) from orders where status = 'cancelled'")
            .await,
        20
    );

    assert_eq!(app.figure_mismatches().await, 0);
    for (p, id) in ids.iter().enumerate() {
        let (units, revenue) = by_product.get(&p).copied().unwrap_or_default();
        let f = app.figures(id).await;
        assert_eq!(f["salesCount"].as_i64().unwrap(), units, "product {id}");
        assert_eq!(
            f["totalRevenue"].as_str().unwrap(),
            Cents(revenue).to_string(),
            "product {id}"
        );
    }
    // and the same from SQL over the placed orders' lines
    assert_eq!(
        app.count(
            "select count(*) from products p
             where p.sales_count <> (select coalesce(sum(l.quantity), 0) from order_lines l
                                     join orders o on o.id = l.order_id
                                     where l.product_id = p.id and o.status = 'placed')"
        )
        .await,
        0
    );
    let expected: Vec<Value> = by_customer_product
        .iter()
        .map(|((u, p), q)| json!({ "user_id": u, "product_id": p, "quantity": q }))
        .collect();
    assert_eq!(
        app.rows("select user_id, product_id, quantity from customer_product_stats order by 1, 2")
            .await,
        expected
    );
    let expected: Vec<Value> = by_customer_category
        .iter()
        .map(|((u, c), q)| json!({ "user_id": u, "category": c, "quantity": q }))
        .collect();
    assert_eq!(
        app.rows("select user_id, category, quantity from customer_category_stats order by 1, 2")
            .await,
        expected
    );

    for id in &cancelled {
        assert_eq!(
            order(app, &admin, *id).await["analyticsStatus"],
            "REVERSED",
            "order {id}"
        );
    }
    assert_eq!(
        app.count(
            "select count(*) from orders where status = 'placed' and analytics_applied_at is null"
        )
        .await,
        0
    );
    let list = |ids: &[i64]| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    assert_eq!(
        app.count(&format!(
            "select count(*) from orders where id in ({}) and analytics_applied_at is null",
            list(&cancelled_uncounted)
        ))
        .await,
        2
    );
    assert_eq!(
        app.count(&format!(
            "select count(*) from orders where id in ({}) and analytics_applied_at is not null",
            list(&cancelled_counted)
        ))
        .await,
        9
    );
    println!(
        "cancelled orders counted before their reversal: {} of 20",
        app.count("select count(*) from orders where status = 'cancelled' and analytics_applied_at is not null")
            .await
    );
    println!(
        "jobs with more than one attempt: {:?}",
        app.rows("select idempotency_key, attempts from apalis.jobs where attempts > 1")
            .await
    );
    assert_eq!(
        app.rows(
            "select split_part(idempotency_key, '-', 1) as kind, status, count(*) as jobs
             from apalis.jobs group by 1, 2 order by 1, 2"
        )
        .await,
        vec![
            json!({ "kind": "cancel", "status": "Done", "jobs": 20 }),
            json!({ "kind": "order", "status": "Done", "jobs": 60 }),
        ]
    );

    // a rebuild from the history leaves every figure as the jobs did
    let settled = snapshot(app).await;
    let body = app.gql_as(&admin, REBUILD, json!({})).await;
    assert_eq!(
        data(&body)["rebuildAnalytics"],
        json!({
            "ordersMarked": 0,
            "productsUpdated": 0,
            "customerProductRows": by_customer_product.len(),
            "customerCategoryRows": by_customer_category.len(),
        })
    );
    assert_eq!(snapshot(app).await, settled);
    assert_eq!(app.figure_mismatches().await, 0);
}
