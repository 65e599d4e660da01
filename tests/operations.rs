//! Operating Tally: failed jobs and their retry (GraphQL, board), the board's
//! authentication, job history retention, rebuilding figures.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Options, TestApp, data, error_code};

const JOBS: &str = "query($status: JobStatus) { jobs(status: $status) { id status attempts maxAttempts orderNumber lastError } }";

/// A product, a customer and one order of 3 units whose job has failed on every attempt.
pub(crate) async fn failed_order(app: &TestApp) -> (String, String, Value) {
    let admin = app.admin_token().await;
    let product = app
        .create_product(&admin, "Burger", "burgers", "10.00", &[])
        .await;
    let product = product["id"].as_str().unwrap().to_owned();
    let (token, _) = app.register_customer("Ann").await;
    app.fail_points.fail_after_product_update(1_000);
    let order = data(&app.place_order(&token, &[(&product, None, 3)]).await)["placeOrder"].clone();
    app.wait_for_jobs().await;
    app.fail_points.fail_after_product_update(0);
    (admin, product, order)
}

pub(crate) async fn sales(app: &TestApp, product: &str) -> Value {
    let body = app
        .gql(
            "query($id: ID!) { product(id: $id) { salesCount totalRevenue } }",
            json!({ "id": product }),
        )
        .await;
    data(&body)["product"].clone()
}

#[tokio::test]
async fn an_admin_retries_a_job_that_failed_past_its_attempts_and_the_order_counts_once() {
    let app = TestApp::spawn().await;
    let (admin, product, order) = failed_order(&app).await;

    let failed = app
        .gql_as(&admin, JOBS, json!({ "status": "FAILED" }))
        .await;
    let jobs = data(&failed)["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 1, "{failed}");
    assert_eq!(jobs[0]["status"], "FAILED");
    assert_eq!(
        (
            jobs[0]["attempts"].as_i64(),
            jobs[0]["maxAttempts"].as_i64()
        ),
        (Some(3), Some(3))
    );
    assert_eq!(jobs[0]["orderNumber"], order["orderNumber"]);
    assert_eq!(
        jobs[0]["lastError"],
        "injected failure at after the product update"
    );
    assert_eq!(
        sales(&app, &product).await,
        json!({ "salesCount": 0, "totalRevenue": "0.00" })
    );

    let (customer, _) = app.register_customer("Bob").await;
    let retry = "mutation($id: ID!) { retryJob(id: $id) }";
    let forbidden = app
        .gql_as(&customer, retry, json!({ "id": jobs[0]["id"] }))
        .await;
    assert_eq!(error_code(&forbidden), "FORBIDDEN");
    let unknown = app
        .gql_as(&admin, retry, json!({ "id": "01NOSUCHJOB" }))
        .await;
    assert_eq!(error_code(&unknown), "NOT_FOUND");

    let retried = app
        .gql_as(&admin, retry, json!({ "id": jobs[0]["id"] }))
        .await;
    assert_eq!(data(&retried)["retryJob"], true);
    app.wait_for_jobs().await;
    assert_eq!(
        sales(&app, &product).await,
        json!({ "salesCount": 3, "totalRevenue": "30.00" })
    );
    assert_eq!(
        app.rows("select status, attempts from apalis.jobs").await,
        vec![json!({ "status": "Done", "attempts": 1 })]
    );
    // a job no longer failed cannot be retried again
    let again = app
        .gql_as(&admin, retry, json!({ "id": jobs[0]["id"] }))
        .await;
    assert_eq!(error_code(&again), "NOT_FOUND");
    assert_eq!(
        sales(&app, &product).await,
        json!({ "salesCount": 3, "totalRevenue": "30.00" })
    );
}

#[tokio::test]
async fn retry_failed_jobs_puts_every_failed_job_back() {
    let app = TestApp::spawn().await;
    let (admin, product, _) = failed_order(&app).await;
    let (token, _) = app.register_customer("Bob").await;
    app.fail_points.fail_after_product_update(1_000);
    data(&app.place_order(&token, &[(&product, None, 2)]).await);
    app.wait_for_jobs().await;
    app.fail_points.fail_after_product_update(0);
    assert_eq!(
        app.count("select count(*) from apalis.jobs where status = 'Failed'")
            .await,
        2
    );

    let body = app
        .gql_as(&admin, "mutation { retryFailedJobs }", json!({}))
        .await;
    assert_eq!(data(&body)["retryFailedJobs"], 2);
    app.wait_for_jobs().await;
    assert_eq!(
        sales(&app, &product).await,
        json!({ "salesCount": 5, "totalRevenue": "50.00" })
    );
    let none = app
        .gql_as(&admin, JOBS, json!({ "status": "FAILED" }))
        .await;
    assert_eq!(data(&none)["jobs"], json!([]));
    let bad = app
        .gql_as(&admin, JOBS, json!({ "status": "broken" }))
        .await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT");
}

#[tokio::test]
async fn the_board_refuses_missing_and_wrong_credentials() {
    let app = TestApp::spawn_with(Options {
        board: Some(("ops", "s3cret-board")),
        ..Options::default()
    })
    .await;
    // the board lists the queues that have jobs
    let admin = app.admin_token().await;
    let product = app
        .create_product(&admin, "Tea", "drinks", "2.00", &[])
        .await;
    data(
        &app.place_order(&admin, &[(product["id"].as_str().unwrap(), None, 1)])
            .await,
    );
    app.wait_for_jobs().await;
    let board = app.board_url();
    let http = app.http();

    let anonymous = http.get(format!("{board}/")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Basic realm=\"Tally board\", charset=\"UTF-8\""
    );
    for (user, password) in [("ops", "wrong"), ("nobody", "s3cret-board"), ("ops", "")] {
        let response = http
            .get(format!("{board}/api/v1/queues"))
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{user}:{password}");
    }

    let ui = http
        .get(format!("{board}/"))
        .basic_auth("ops", Some("s3cret-board"))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 200);
    assert!(
        ui.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let queues: Value = http
        .get(format!("{board}/api/v1/queues"))
        .basic_auth("ops", Some("s3cret-board"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(queues.to_string().contains(jobs::QUEUE), "{queues}");
}

#[tokio::test]
async fn the_retry_page_lists_failed_jobs_and_retries_them() {
    let app = TestApp::spawn_with(Options {
        board: Some(("ops", "s3cret-board")),
        ..Options::default()
    })
    .await;
    let (_, product, order) = failed_order(&app).await;
    let board = app.board_url();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let job_id: String = app.rows("select id from apalis.jobs").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let page = http
        .get(format!("{board}/retry"))
        .basic_auth("ops", Some("s3cret-board"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page_headers = page.headers().clone();
    let html = page.text().await.unwrap();
    for expected in [
        job_id.as_str(),
        order["orderNumber"].as_str().unwrap(),
        "injected failure at after the product update",
        "3/3",
    ] {
        assert!(
            html.contains(expected),
            "{expected:?} missing from the page"
        );
    }

    let unauthenticated = http
        .post(format!("{board}/retry"))
        .form(&[("id", &job_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let cross_site = http
        .post(format!("{board}/retry"))
        .basic_auth("ops", Some("s3cret-board"))
        .header("origin", "http://evil.example")
        .form(&[("id", &job_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    // no Origin at all: no form of the board's page either
    let no_origin = http
        .post(format!("{board}/retry"))
        .basic_auth("ops", Some("s3cret-board"))
        .form(&[("id", &job_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(no_origin.status(), 403);
    // a wrong password of another length is refused like any other
    let short = http
        .get(format!("{board}/retry"))
        .basic_auth("ops", Some("s3"))
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), 401);
    assert_eq!(
        page_headers.get("content-security-policy").unwrap(),
        "frame-ancestors 'none'"
    );
    assert_eq!(page_headers.get("x-frame-options").unwrap(), "DENY");
    assert_eq!(
        app.count("select count(*) from apalis.jobs where status = 'Failed'")
            .await,
        1
    );

    let retried = http
        .post(format!("{board}/retry"))
        .basic_auth("ops", Some("s3cret-board"))
        .header("origin", board.as_str())
        .form(&[("id", &job_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 303);
    assert_eq!(retried.headers()["location"], "/retry?retried=1");
    app.wait_for_jobs().await;
    assert_eq!(
        sales(&app, &product).await,
        json!({ "salesCount": 3, "totalRevenue": "30.00" })
    );
    let html = http
        .get(format!("{board}/retry?retried=1"))
        .basic_auth("ops", Some("s3cret-board"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("1 job(s) put back in the queue.") && html.contains("No failed jobs."),
        "{html}"
    );
}

#[tokio::test]
async fn pruning_deletes_only_successful_jobs_past_their_retention() {
    let app = TestApp::spawn_without_workers().await;
    let inserted = app
        .count(&format!(
        "with jobs as (
            insert into apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, done_at)
            select apalis.generate_ulid(), '{}', '\\x7b7d', status, 1, 3, now() - age, now() - age
            from (values ('Done', interval '8 days'), ('Done', interval '8 days'), ('Done', interval '30 days'),
                         ('Done', interval '1 day'), ('Failed', interval '30 days'), ('Killed', interval '30 days'))
                 as t (status, age)
            returning 1)
         select count(*) from jobs",
        jobs::QUEUE
    ))
    .await;
    assert_eq!(inserted, 6);

    let deleted = jobs::admin::prune_finished_jobs(&app.db, Duration::from_secs(7 * 24 * 3600))
        .await
        .unwrap();
    assert_eq!(deleted, 3);
    assert_eq!(
        app.rows("select status, extract(day from now() - done_at)::int as days from apalis.jobs order by status, days").await,
        vec![
            json!({ "status": "Done", "days": 1 }),
            json!({ "status": "Failed", "days": 30 }),
            json!({ "status": "Killed", "days": 30 }),
        ]
    );
}

#[tokio::test]
async fn a_rebuild_recomputes_every_figure_as_if_each_order_were_counted_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut products = Vec::new();
    for (name, category, price) in [
        ("A", "pizza", "9.00"),
        ("B", "burgers", "11.50"),
        ("C", "drinks", "2.50"),
        ("D", "pizza", "7.00"),
    ] {
        let product = app.create_product(&admin, name, category, price, &[]).await;
        products.push(product["id"].as_str().unwrap().to_owned());
    }
    let (ann, _) = app.register_customer("Ann").await;
    app.register_customer("Bob").await;
    // a few orders the normal way, counted by their jobs
    data(
        &app.place_order(&ann, &[(&products[0], None, 2), (&products[2], None, 1)])
            .await,
    );
    data(&app.place_order(&admin, &[(&products[1], None, 4)]).await);
    app.wait_for_jobs().await;

    // 10,000 imported orders, written straight into the tables with no jobs
    let lines = app
        .count(
        "with imported as (
            insert into orders (user_id, total_cents, created_at)
            select u.id, 0, now() - make_interval(mins => n)
            from generate_series(1, 10000) n
            join users u on u.id = (select min(id) from users) + n % 3
            returning id, created_at
         ), lines as (
            insert into order_lines (order_id, line_no, product_id, product_name, category, unit_price_cents, quantity, subtotal_cents)
            select o.id, k, p.id, p.name, p.category, p.price_cents, 1 + (o.id + k) % 4, p.price_cents * (1 + (o.id + k) % 4)
            from imported o
            cross join generate_series(1, 2) k
            join products p on p.id = (select min(id) from products) + (o.id + k) % 3
            returning 1
         )
         select count(*) from lines",
    )
    .await;
    assert_eq!(lines, 20_000);
    let totals = app
        .execute("update orders set total_cents = (select sum(subtotal_cents) from order_lines where order_id = orders.id) where total_cents = 0")
        .await;
    assert_eq!(totals, 10_000);
    // and a figure someone broke by hand
    app.execute("update products set sales_count = 999999 where name = 'D'")
        .await;

    let body = app
        .gql_as(
            &admin,
            "mutation { rebuildAnalytics { ordersMarked productsUpdated } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&body)["rebuildAnalytics"],
        json!({ "ordersMarked": 10000, "productsUpdated": 4 })
    );
    let customer = app
        .gql_as(
            &ann,
            "mutation { rebuildAnalytics { ordersMarked } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&customer), "FORBIDDEN");

    assert_eq!(app.figure_mismatches().await, 0);
    assert_eq!(
        app.count("select sales_count from products where name = 'D'")
            .await,
        0
    );
    // the admin's orders count for products only
    assert_eq!(
        app.count("select count(*) from customer_product_stats c join users u on u.id = c.user_id where u.role = 'admin'").await,
        0
    );

    // nothing left to change: a second rebuild writes nothing
    let again = app
        .gql_as(
            &admin,
            "mutation { rebuildAnalytics { ordersMarked productsUpdated } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&again)["rebuildAnalytics"],
        json!({ "ordersMarked": 0, "productsUpdated": 0 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_while_orders_and_jobs_keep_running_leaves_exact_figures() {
    let mut options = crate::harness::Options {
        worker_pools: 2,
        ..Default::default()
    };
    options.settings.batch_size = 10;
    options.settings.sweep_on_wakeup = true;
    let app = TestApp::spawn_with(options).await;
    let admin = app.admin_token().await;
    let mut products = Vec::new();
    for (name, price) in [("A", "9.00"), ("B", "4.50")] {
        let product = app.create_product(&admin, name, "pizza", price, &[]).await;
        products.push(product["id"].as_str().unwrap().to_owned());
    }
    let mut tokens = Vec::new();
    for n in 0..4 {
        tokens.push(app.register_customer(&format!("Client {n}")).await.0);
    }

    let clients = futures::future::join_all(tokens.iter().enumerate().map(|(c, token)| {
        let (app, products) = (&app, &products);
        async move {
            for n in 0..40 {
                let lines = [
                    (products[(n + c) % 2].as_str(), None, 1 + (n % 3) as i32),
                    (products[(n + c + 1) % 2].as_str(), None, 1),
                ];
                data(&app.place_order(token, &lines).await);
            }
        }
    }));
    let rebuilds = async {
        for _ in 0..5 {
            let body = app
                .gql_as(
                    &admin,
                    "mutation { rebuildAnalytics { ordersMarked } }",
                    json!({}),
                )
                .await;
            data(&body);
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    };
    tokio::join!(clients, rebuilds);
    app.wait_for_jobs().await;

    assert_eq!(app.figure_mismatches().await, 0);
    assert_eq!(
        app.count("select count(*) from apalis.jobs where status <> 'Done'")
            .await,
        0
    );
}
