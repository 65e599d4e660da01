//! The post-order job: exact figures, exactly once, under retries and concurrency.

use std::collections::{BTreeMap, HashMap};

use jobs::JobKind;
use jobs::analytics::{self, Outcome};
use jobs::fail_points::FailPoints;
use serde_json::json;
use tally::money::Cents;

use crate::harness::{Options, TestApp, data, placed_order_id};

#[tokio::test]
async fn an_order_committed_without_workers_is_applied_once_a_worker_starts() {
    let app = TestApp::spawn_without_workers().await;
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
    let (pizza_id, small, large) = (
        pizza["id"].as_str().unwrap(),
        pizza["variants"][0]["id"].as_str().unwrap(),
        pizza["variants"][1]["id"].as_str().unwrap(),
    );
    let (token, _) = app.register_customer("Ann").await;
    let body = app
        .place_order(
            &token,
            &[(pizza_id, Some(small), 2), (pizza_id, Some(large), 3)],
        )
        .await;
    assert_eq!(data(&body)["placeOrder"]["analyticsStatus"], "PENDING");

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        app.figures(pizza_id).await,
        json!({ "salesCount": 0, "totalRevenue": "0.00", "rating": 4.0 })
    );

    app.start_workers().await;
    app.wait_for_jobs().await;
    // two lines of the same product count together
    assert_eq!(
        app.figures(pizza_id).await,
        json!({ "salesCount": 5, "totalRevenue": "60.00", "rating": 4.0 })
    );
    let orders = app
        .gql_as(
            &token,
            "{ myOrders { edges { node { analyticsStatus } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&orders)["myOrders"]["edges"][0]["node"]["analyticsStatus"],
        "APPLIED"
    );
    assert_eq!(
        app.rows("select status, last_result from apalis.jobs")
            .await,
        vec![json!({ "status": "Done", "last_result": { "Ok": null } })]
    );
}

#[tokio::test]
async fn an_admins_order_counts_for_products_but_gives_no_preferences() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Tiramisu", "desserts", 600)])
        .await;
    let body = app.place_order(&admin, &[(&ids[0], None, 4)]).await;
    placed_order_id(&body);
    app.wait_for_jobs().await;

    assert_eq!(
        app.figures(&ids[0]).await,
        json!({ "salesCount": 4, "totalRevenue": "24.00", "rating": 4.0 })
    );
    assert_eq!(
        app.count("select count(*) from customer_product_stats")
            .await,
        0
    );
    assert_eq!(
        app.count("select count(*) from customer_category_stats")
            .await,
        0
    );
    let me = app
        .gql_as(
            &admin,
            "{ me { role mostOrderedItems { id } favoriteCategories } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&me)["me"],
        json!({ "role": "ADMIN", "mostOrderedItems": [], "favoriteCategories": [] })
    );
}

#[tokio::test]
async fn ratings_follow_the_sales_tiers_at_their_edges() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let units = [0, 9, 10, 49, 50, 99, 100, 199, 200];
    let specs: Vec<(String, &str, i64)> = units
        .iter()
        .map(|u| (format!("P{u}"), "pizza", 100))
        .collect();
    let specs: Vec<(&str, &str, i64)> =
        specs.iter().map(|(n, c, p)| (n.as_str(), *c, *p)).collect();
    let ids = app.create_products(&admin, &specs).await;
    let (token, _) = app.register_customer("Ann").await;
    for (id, units) in ids.iter().zip(units) {
        // at most 99 per line: split the units over lines of the same product
        let mut lines = Vec::new();
        let mut left = units;
        while left > 0 {
            let q = left.min(99);
            lines.push((id.as_str(), None, q));
            left -= q;
        }
        if !lines.is_empty() {
            data(&app.place_order(&token, &lines).await);
        }
    }
    app.wait_for_jobs().await;

    let mut seen = Vec::new();
    for id in &ids {
        let f = app.figures(id).await;
        seen.push((
            f["salesCount"].as_i64().unwrap(),
            f["rating"].as_f64().unwrap(),
        ));
    }
    assert_eq!(
        seen,
        vec![
            (0, 4.0),
            (9, 4.0),
            (10, 4.2),
            (49, 4.2),
            (50, 4.5),
            (99, 4.5),
            (100, 4.7),
            (199, 4.7),
            (200, 5.0)
        ]
    );
}

#[tokio::test]
async fn preferences_rank_by_quantity_then_recency_then_id_or_name() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let p = app
        .create_products(
            &admin,
            &[
                ("P1", "pizza", 100),
                ("P2", "burgers", 100),
                ("P3", "salads", 100),
                ("P4", "desserts", 100),
                ("P5", "beverages", 100),
                ("P6", "pizza", 100),
            ],
        )
        .await;
    let (token, _) = app.register_customer("Ann").await;
    data(
        &app.place_order(
            &token,
            &[(&p[0], None, 3), (&p[1], None, 3), (&p[2], None, 1)],
        )
        .await,
    );
    app.wait_for_jobs().await;
    data(
        &app.place_order(
            &token,
            &[(&p[3], None, 3), (&p[4], None, 2), (&p[5], None, 1)],
        )
        .await,
    );
    app.wait_for_jobs().await;

    let me = app
        .gql_as(
            &token,
            "{ me { mostOrderedItems { id } favoriteCategories } }",
            json!({}),
        )
        .await;
    let ranked: Vec<&str> = data(&me)["me"]["mostOrderedItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    // 3 units: P4 (newer), then P1 and P2 (same order: lower id); 2: P5; 1: P6 (newer) before P3
    assert_eq!(ranked, vec![&p[3], &p[0], &p[1], &p[4], &p[5]]);
    // pizza 4; desserts 3 (newer) before burgers 3
    assert_eq!(
        data(&me)["me"]["favoriteCategories"],
        json!(["pizza", "desserts", "burgers"])
    );

    // equal quantities from one order: lower ids, and categories alphabetically
    let q = app
        .create_products(
            &admin,
            &[
                ("Q1", "tea", 100),
                ("Q2", "bread", 100),
                ("Q3", "soups", 100),
                ("Q4", "veg", 100),
            ],
        )
        .await;
    let (bob, _) = app.register_customer("Bob").await;
    data(
        &app.place_order(
            &bob,
            &[
                (&q[3], None, 2),
                (&q[2], None, 2),
                (&q[1], None, 2),
                (&q[0], None, 2),
            ],
        )
        .await,
    );
    app.wait_for_jobs().await;
    let me = app
        .gql_as(
            &bob,
            "{ me { mostOrderedItems { name } favoriteCategories } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&me)["me"],
        json!({
            "mostOrderedItems": [{ "name": "Q1" }, { "name": "Q2" }, { "name": "Q3" }, { "name": "Q4" }],
            "favoriteCategories": ["bread", "soups", "tea"],
        })
    );
}

#[tokio::test]
async fn a_job_run_twice_or_delivered_twice_counts_its_order_once() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Cola", "beverages", 250)])
        .await;
    let (token, user_id) = app.register_customer("Ann").await;
    let first = placed_order_id(&app.place_order(&token, &[(&ids[0], None, 2)]).await);

    // the first order's job, run by hand twice
    let none = FailPoints::default();
    let outcome = analytics::apply_order(&app.db, first, 1, &none)
        .await
        .unwrap();
    assert!(
        matches!(&outcome, Outcome::Applied(a) if a.products_updated == 1 && a.preference_user_ids == vec![user_id]),
        "{outcome:?}"
    );
    assert_eq!(
        analytics::apply_order(&app.db, first, 1, &none)
            .await
            .unwrap(),
        Outcome::AlreadyApplied
    );
    let second = placed_order_id(&app.place_order(&token, &[(&ids[0], None, 3)]).await);

    // the second order's job delivered twice: a copy of its row under another key
    app.count(&format!(
        "with copy as (insert into apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, idempotency_key)
         select apalis.generate_ulid(), job_type, job, 'Pending', 0, max_attempts, run_at, priority, 'copy-' || idempotency_key
         from apalis.jobs where idempotency_key = '{}' returning 1)
         select count(*) from copy",
        JobKind::Count.key(second)
    ))
    .await;
    assert_eq!(app.count("select count(*) from apalis.jobs").await, 3);
    app.start_workers().await;
    app.wait_for_jobs().await;

    assert_eq!(
        app.figures(&ids[0]).await,
        json!({ "salesCount": 5, "totalRevenue": "12.50", "rating": 4.0 })
    );
    assert_eq!(
        app.rows("select quantity from customer_product_stats")
            .await,
        vec![json!({ "quantity": 5 })]
    );
    assert_eq!(
        app.count("select count(*) from apalis.jobs where status = 'Done'")
            .await,
        3
    );
    assert_eq!(app.count(&format!("select count(*) from orders where id in ({first}, {second}) and analytics_applied_at is not null")).await, 2);
}

#[tokio::test]
async fn a_failure_after_the_product_update_leaves_no_trace_and_the_retry_counts_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Burger", "burgers", 1000)])
        .await;
    let (token, _) = app.register_customer("Ann").await;
    app.fail_points.fail_after_product_update(1);

    // the order itself succeeds whatever its job does
    let body = app.place_order(&token, &[(&ids[0], None, 7)]).await;
    assert_eq!(data(&body)["placeOrder"]["total"], "70.00");
    app.wait_for_jobs().await;

    assert_eq!(
        app.figures(&ids[0]).await,
        json!({ "salesCount": 7, "totalRevenue": "70.00", "rating": 4.0 })
    );
    assert_eq!(
        app.rows("select quantity from customer_product_stats")
            .await,
        vec![json!({ "quantity": 7 })]
    );
    // the first attempt failed, the second counted the order
    assert_eq!(
        app.rows("select status, attempts from apalis.jobs").await,
        vec![json!({ "status": "Done", "attempts": 2 })]
    );
}

#[tokio::test]
async fn a_job_failing_on_every_attempt_stays_failed_and_its_order_pending() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Burger", "burgers", 1000)])
        .await;
    let (token, _) = app.register_customer("Ann").await;
    app.fail_points.fail_after_product_update(1_000);

    let body = app.place_order(&token, &[(&ids[0], None, 1)]).await;
    assert_eq!(data(&body)["placeOrder"]["analyticsStatus"], "PENDING");
    app.wait_for_jobs().await;

    let jobs = app
        .rows("select status, attempts, max_attempts from apalis.jobs")
        .await;
    assert_eq!(
        jobs,
        vec![json!({ "status": "Failed", "attempts": 3, "max_attempts": 3 })]
    );
    let error =
        app.rows("select last_result from apalis.jobs").await[0]["last_result"]["Err"].clone();
    assert!(
        error.as_str().unwrap().contains("injected failure"),
        "{error}"
    );
    assert_eq!(
        app.figures(&ids[0]).await,
        json!({ "salesCount": 0, "totalRevenue": "0.00", "rating": 4.0 })
    );
    assert_eq!(
        app.count("select count(*) from orders where analytics_applied_at is null")
            .await,
        1
    );
}

#[tokio::test]
async fn a_failed_job_is_done_once_a_later_run_counts_its_order() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Burger", "burgers", 1000)])
        .await;
    let (token, _) = app.register_customer("Ann").await;
    // all three attempts of the first order's job fail (a database outage
    // longer than its retries, say)
    app.fail_points.fail_after_product_update(3);
    let first = app.place_order(&token, &[(&ids[0], None, 1)]).await;
    assert_eq!(data(&first)["placeOrder"]["orderNumber"], "ORD-00000001");
    app.wait_for_jobs().await;
    assert_eq!(
        app.rows("select status from apalis.jobs").await,
        vec![json!({ "status": "Failed" })]
    );

    let second = app.place_order(&token, &[(&ids[0], None, 2)]).await;
    let second_number = data(&second)["placeOrder"]["orderNumber"].clone();
    app.wait_for_jobs().await;

    // the second order's run counted both, and the failed job has nothing
    // left to retry
    assert_eq!(
        app.figures(&ids[0]).await,
        json!({ "salesCount": 3, "totalRevenue": "30.00", "rating": 4.0 })
    );
    let jobs = app
        .rows("select status, last_result from apalis.jobs order by id")
        .await;
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        jobs[0],
        json!({ "status": "Done", "last_result": { "Ok": format!("counted with {}", second_number.as_str().unwrap()) } })
    );
    assert_eq!(jobs[1]["status"], "Done");
    assert_eq!(
        app.count("select count(*) from orders where analytics_applied_at is null")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_on_the_same_products_are_counted_exactly() {
    let mut options = Options {
        worker_pools: 4,
        ..Options::default()
    };
    options.settings.batch_size = 20;
    // sweeps after placements race the jobs for the same orders
    options.settings.sweep_on_wakeup = true;
    let app = TestApp::spawn_with(options).await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(
            &admin,
            &[
                ("A", "pizza", 900),
                ("B", "burgers", 1150),
                ("C", "beverages", 250),
            ],
        )
        .await;
    let prices: HashMap<&str, i64> = ids
        .iter()
        .map(String::as_str)
        .zip([900, 1150, 250])
        .collect();
    let mut customers = Vec::new();
    for n in 0..8 {
        customers.push(app.register_customer(&format!("Customer {n}")).await);
    }

    // 8 clients × 50 orders; lines in rotating order, so two orders often
    // hold the same products in opposite orders
    let placed = futures::future::join_all(customers.iter().enumerate().map(|(c, (token, _))| {
        let app = &app;
        let ids = &ids;
        let prices = &prices;
        async move {
            let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
            for n in 0..50usize {
                let mut lines: Vec<(&str, Option<&str>, i32)> = (0..3)
                    .map(|k| {
                        (
                            ids[(n + c + k) % 3].as_str(),
                            None,
                            ((n * 7 + c * 3 + k) % 5 + 1) as i32,
                        )
                    })
                    .collect();
                if n % 2 == 1 {
                    lines.reverse();
                }
                lines.truncate(1 + (n + c) % 3);
                data(&app.place_order(token, &lines).await);
                for (id, _, q) in lines {
                    let e = expected.entry(id.to_owned()).or_default();
                    e.0 += i64::from(q);
                    e.1 += i64::from(q) * prices[id];
                }
            }
            expected
        }
    }))
    .await;
    app.wait_for_jobs().await;

    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for per_client in placed {
        for (id, (units, revenue)) in per_client {
            let e = expected.entry(id).or_default();
            e.0 += units;
            e.1 += revenue;
        }
    }
    for (id, (units, revenue)) in &expected {
        let f = app.figures(id).await;
        assert_eq!(f["salesCount"].as_i64().unwrap(), *units, "product {id}");
        assert_eq!(
            f["totalRevenue"].as_str().unwrap(),
            Cents(*revenue).to_string(),
            "product {id}"
        );
    }
    assert_eq!(app.count("select count(*) from orders").await, 400);
    assert_eq!(
        app.count("select count(*) from orders where analytics_applied_at is null")
            .await,
        0
    );
    assert_eq!(
        app.count("select count(*) from apalis.jobs where status <> 'Done'")
            .await,
        0
    );
    // and the same from SQL: every figure equals a recount over the order lines
    assert_eq!(app.figure_mismatches().await, 0);
}

#[tokio::test]
async fn statements_per_order_do_not_grow_with_its_lines() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let specs: Vec<(String, &str, i64)> = (0..40)
        .map(|n| (format!("Dish {n}"), "pizza", 500))
        .collect();
    let specs: Vec<(&str, &str, i64)> =
        specs.iter().map(|(n, c, p)| (n.as_str(), *c, *p)).collect();
    let ids = app.create_products(&admin, &specs).await;
    let (token, _) = app.register_customer("Ann").await;

    let mut counts = Vec::new();
    for lines in [1, 40] {
        let items: Vec<(&str, Option<&str>, i32)> = ids[..lines]
            .iter()
            .map(|id| (id.as_str(), None, 2))
            .collect();
        app.statements.take();
        let id = placed_order_id(&app.place_order(&token, &items).await);
        let placement = app.statements.take();
        let outcome = analytics::apply_order(app.counted_db(), id, 1, &FailPoints::default())
            .await
            .unwrap();
        let job = app.statements.take();
        assert!(
            matches!(&outcome, Outcome::Applied(a) if a.products_updated == lines),
            "{outcome:?}"
        );

        let cancelled = app
            .gql_as(
                &token,
                "mutation ($id: ID!) { cancelOrder(id: $id) { status } }",
                json!({ "id": id.to_string() }),
            )
            .await;
        assert_eq!(data(&cancelled)["cancelOrder"]["status"], "CANCELLED");
        app.statements.take();
        let outcome = analytics::apply_order(app.counted_db(), id, 1, &FailPoints::default())
            .await
            .unwrap();
        let reversal = app.statements.take();
        assert!(
            matches!(&outcome, Outcome::Reversed(r) if r.products_updated == lines),
            "{outcome:?}"
        );
        counts.push((lines, placement.len(), job.len(), reversal.len()));
        println!(
            "{lines} line(s): placeOrder ran {placement:#?}\njob ran {job:#?}\nreversal ran {reversal:#?}"
        );
    }
    assert_eq!(
        counts,
        // placeOrder: one statement, which confirms the caller's token and
        // places the order; a run and a reversal write the sales per
        // quarter hour in their products' statement
        vec![(1, 1, 8, 10), (40, 1, 8, 10)],
        "(lines, placeOrder statements, job statements, reversal statements)"
    );
}

#[tokio::test]
async fn one_run_counts_a_backlog_and_marks_the_jobs_of_its_orders_done() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Cola", "beverages", 250)])
        .await;
    let (token, _) = app.register_customer("Ann").await;
    let mut orders = Vec::new();
    for _ in 0..10 {
        orders.push(placed_order_id(
            &app.place_order(&token, &[(&ids[0], None, 1)]).await,
        ));
    }

    let outcome = analytics::apply_order(&app.db, orders[0], 100, &FailPoints::default())
        .await
        .unwrap();
    let Outcome::Applied(applied) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        (applied.order_numbers.len(), applied.retired_jobs.len()),
        (10, 9)
    );
    let first = applied.order_numbers[0].clone();
    assert_eq!(
        app.rows(
            "select status, last_result, count(*) as jobs from apalis.jobs group by 1, 2 order by 1"
        )
        .await,
        vec![
            json!({ "status": "Done", "last_result": { "Ok": format!("counted with {first}") }, "jobs": 9 }),
            json!({ "status": "Pending", "last_result": null, "jobs": 1 }),
        ]
    );
    assert_eq!(
        app.figures(&ids[0]).await,
        json!({ "salesCount": 10, "totalRevenue": "25.00", "rating": 4.2 })
    );

    // the first order's own job still runs, and finds nothing left to count
    app.start_workers().await;
    app.wait_for_jobs().await;
    assert_eq!(
        app.count("select count(*) from apalis.jobs where status = 'Done'")
            .await,
        10
    );
    assert_eq!(
        app.figures(&ids[0]).await,
        json!({ "salesCount": 10, "totalRevenue": "25.00", "rating": 4.2 })
    );
}

#[tokio::test]
async fn a_run_whose_order_is_counted_still_counts_the_orders_waiting() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Cola", "beverages", 250)])
        .await;
    let (token, _) = app.register_customer("Ann").await;
    let older = data(&app.place_order(&token, &[(&ids[0], None, 1)]).await)["placeOrder"].clone();
    let newer = placed_order_id(&app.place_order(&token, &[(&ids[0], None, 2)]).await);
    let none = FailPoints::default();

    // one order per run: the newer order's run counts only it
    let Outcome::Applied(first) = analytics::apply_order(&app.db, newer, 1, &none)
        .await
        .unwrap()
    else {
        panic!("the newer order was not counted")
    };
    assert_eq!(first.order_numbers.len(), 1);
    // run again, its own order counted: it sweeps up the older one
    let Outcome::Applied(sweep) = analytics::apply_order(&app.db, newer, 10, &none)
        .await
        .unwrap()
    else {
        panic!("the waiting order was not counted")
    };
    assert_eq!(
        sweep.order_numbers,
        vec![older["orderNumber"].as_str().unwrap().to_owned()]
    );
    assert_eq!(sweep.retired_jobs.len(), 1);
    assert_eq!(
        analytics::apply_order(&app.db, newer, 10, &none)
            .await
            .unwrap(),
        Outcome::AlreadyApplied
    );
    assert_eq!(
        app.figures(&ids[0]).await,
        json!({ "salesCount": 3, "totalRevenue": "7.50", "rating": 4.0 })
    );
}

#[tokio::test]
async fn a_sweep_counts_the_waiting_orders_and_marks_their_jobs_done() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Cola", "beverages", 250)])
        .await;
    let (token, _) = app.register_customer("Ann").await;
    for quantity in [1, 2, 3] {
        data(&app.place_order(&token, &[(&ids[0], None, quantity)]).await);
    }

    let Outcome::Applied(swept) = analytics::apply_waiting(&app.db, 100, &FailPoints::default())
        .await
        .unwrap()
    else {
        panic!("nothing was swept")
    };
    assert_eq!(
        (swept.order_numbers.len(), swept.retired_jobs.len()),
        (3, 3)
    );
    assert_eq!(
        app.rows("select status, last_result, count(*) as jobs from apalis.jobs group by 1, 2")
            .await,
        vec![
            json!({ "status": "Done", "last_result": { "Ok": "counted with the sweep after a placement" }, "jobs": 3 })
        ]
    );
    assert_eq!(
        analytics::apply_waiting(&app.db, 100, &FailPoints::default())
            .await
            .unwrap(),
        Outcome::AlreadyApplied
    );
    assert_eq!(
        app.figures(&ids[0]).await,
        json!({ "salesCount": 6, "totalRevenue": "15.00", "rating": 4.0 })
    );
}
