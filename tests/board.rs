//! What the board's page calls beyond apalis-board's own API: Tally's job
//! JSON (a job, an order's jobs, retries) and the event stream behind the
//! Logs page and each task's Events panel. The browser walks the page itself
//! (`browser.rs`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use tally::config::TrustedProxies;

use crate::harness::{Options, TestApp};
use crate::operations::{failed_order, sales};

const USER: &str = "ops";
const PASSWORD: &str = "s3cret-board";

async fn app_with_board() -> TestApp {
    TestApp::spawn_with(Options {
        board: Some((USER, PASSWORD)),
        ..Options::default()
    })
    .await
}

/// A request to the board as its operator, from the board's own page.
fn operator(app: &TestApp, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    let board = app.board_url();
    app.http()
        .request(method, format!("{board}{path}"))
        .basic_auth(USER, Some(PASSWORD))
        .header("origin", board)
}

async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_job_api_shows_a_failed_job_finds_it_by_order_and_retries_it() {
    let app = app_with_board().await;
    let (_, product, order) = failed_order(&app).await;
    let number = order["orderNumber"].as_str().unwrap().to_owned();
    let id = app.rows("select id from apalis.jobs").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let failed = json!({
        "id": id,
        "status": "Failed",
        "attempts": 3,
        "maxAttempts": 3,
        "orderNumber": number,
        "cancellation": false,
        "lastError": "injected failure at after the product update",
        "url": format!("/queues/{}/tasks/{id}", jobs::QUEUE),
    });
    let get = |path: String| operator(&app, reqwest::Method::GET, &path);

    assert_eq!(
        answer(get(format!("/tally/api/jobs/{id}"))).await,
        (200, failed.clone())
    );
    assert_eq!(
        answer(get("/tally/api/jobs/01NOSUCHJOB".into())).await,
        (
            404,
            json!({ "error": "no job 01NOSUCHJOB in order_analytics" })
        )
    );
    // the number as operators type it: lower case, or its digits alone
    let digits = number.trim_start_matches("ORD-").trim_start_matches('0');
    for typed in [number.to_lowercase(), digits.to_owned()] {
        assert_eq!(
            answer(get(format!("/tally/api/jobs?order={typed}"))).await,
            (200, json!({ "orderNumber": number, "jobs": [failed] })),
            "{typed}"
        );
    }
    assert_eq!(
        answer(get("/tally/api/jobs?order=ORD-99999999".into())).await,
        (200, json!({ "orderNumber": "ORD-99999999", "jobs": [] }))
    );
    for bad in ["/tally/api/jobs?order=pizza", "/tally/api/jobs"] {
        assert_eq!(
            answer(get(bad.into())).await,
            (
                400,
                json!({ "error": "give an order number, such as ORD-00000042" })
            ),
            "{bad}"
        );
    }

    let retry = format!("/tally/api/jobs/{id}/retry");
    let board = app.board_url();
    let http = app.http();
    let anonymous = http
        .post(format!("{board}{retry}"))
        .header("origin", &board)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let cross_site = http
        .post(format!("{board}{retry}"))
        .basic_auth(USER, Some(PASSWORD))
        .header("origin", "http://evil.example");
    let no_origin = http
        .post(format!("{board}{retry}"))
        .basic_auth(USER, Some(PASSWORD));
    let no_origin_all = http
        .post(format!("{board}/tally/api/jobs/retry-failed"))
        .basic_auth(USER, Some(PASSWORD));
    for refused in [cross_site, no_origin, no_origin_all] {
        assert_eq!(
            answer(refused).await,
            (403, json!({ "error": "cross-site request refused" }))
        );
    }
    assert_eq!(
        app.count("select count(*) from apalis.jobs where status = 'Failed'")
            .await,
        1
    );

    assert_eq!(
        answer(operator(&app, reqwest::Method::POST, &retry)).await,
        (200, json!({ "retried": [id] }))
    );
    app.wait_for_jobs().await;
    assert_eq!(
        sales(&app, &product).await,
        json!({ "salesCount": 3, "totalRevenue": "30.00" })
    );
    let (status, done) = answer(get(format!("/tally/api/jobs/{id}"))).await;
    assert_eq!(
        (
            status,
            &done["status"],
            &done["attempts"],
            &done["lastError"]
        ),
        (200, &json!("Done"), &json!(1), &Value::Null)
    );
    // a job no longer failed is not retried, and says why
    assert_eq!(
        answer(operator(&app, reqwest::Method::POST, &retry)).await,
        (
            409,
            json!({ "error": format!("job {id} is Done: only failed or killed jobs are retried") })
        )
    );
    assert_eq!(
        answer(operator(
            &app,
            reqwest::Method::POST,
            "/tally/api/jobs/retry-failed"
        ))
        .await,
        (200, json!({ "retried": [] }))
    );
    assert_eq!(
        sales(&app, &product).await,
        json!({ "salesCount": 3, "totalRevenue": "30.00" })
    );
}

#[tokio::test]
async fn retry_all_puts_every_failed_job_back_and_each_order_counts_once() {
    let app = app_with_board().await;
    let (_, product, _) = failed_order(&app).await;
    let (token, _) = app.register_customer("Bob").await;
    app.fail_points.fail_after_product_update(1_000);
    crate::harness::data(&app.place_order(&token, &[(&product, None, 2)]).await);
    app.wait_for_jobs().await;
    app.fail_points.fail_after_product_update(0);
    let mut failed: Vec<Value> = app
        .rows("select id from apalis.jobs where status = 'Failed' order by id")
        .await
        .into_iter()
        .map(|row| row["id"].clone())
        .collect();
    assert_eq!(failed.len(), 2);

    let (status, body) = answer(operator(
        &app,
        reqwest::Method::POST,
        "/tally/api/jobs/retry-failed",
    ))
    .await;
    let mut retried = body["retried"].as_array().unwrap().clone();
    retried.sort_by_key(|id| id.to_string());
    failed.sort_by_key(|id| id.to_string());
    assert_eq!((status, retried), (200, failed));
    app.wait_for_jobs().await;
    assert_eq!(
        sales(&app, &product).await,
        json!({ "salesCount": 5, "totalRevenue": "50.00" })
    );
    assert_eq!(
        app.rows("select status, count(*) as jobs from apalis.jobs group by status")
            .await,
        vec![json!({ "status": "Done", "jobs": 2 })]
    );
}

/// The board's Logs page and Events panels read `/api/v1/events`: a
/// retried job's run sends its lines there, in the board's own format,
/// filed under its task id and attempt.
#[tokio::test]
async fn a_retried_jobs_lines_reach_the_boards_event_stream() {
    let app = app_with_board().await;
    let (_, _, order) = failed_order(&app).await;
    let number = order["orderNumber"].as_str().unwrap().to_owned();
    let id = app.rows("select id from apalis.jobs").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let anonymous = app
        .http()
        .get(format!("{}/api/v1/events", app.board_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let mut events = operator(&app, reqwest::Method::GET, "/api/v1/events")
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");

    let (status, _) = answer(operator(
        &app,
        reqwest::Method::POST,
        &format!("/tally/api/jobs/{id}/retry"),
    ))
    .await;
    assert_eq!(status, 200);

    let line = next_line(&mut events, |entry| {
        entry["span"]["task_id"] == id
            && entry["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("post-order figures applied"))
    })
    .await;
    assert_eq!(
        (
            &line["span"]["name"],
            &line["span"]["attempt"],
            &line["level"],
            &line["target"]
        ),
        (
            &json!("post_order_job"),
            &json!(1),
            &json!("INFO"),
            &json!("jobs::post_order")
        )
    );
    let message = line["fields"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("order_numbers=[\"{number}\"]"))
            && message.contains("orders_counted=1"),
        "{message}"
    );
}

/// Behind a proxy that rewrites `Host` (to the replica's own address, say),
/// the board's pages still pass its same-origin check: the host the
/// browser asked for comes in `X-Forwarded-Host`, believed from a trusted
/// proxy only.
#[tokio::test]
async fn the_boards_origin_check_holds_behind_a_proxy_that_rewrites_host() {
    let app = TestApp::spawn_with(Options {
        board: Some((USER, PASSWORD)),
        configure: |config| {
            config.http.connections.proxies =
                TrustedProxies::parse("127.0.0.3", tally::config::ForwardedHeader::XForwardedFor)
                    .unwrap();
        },
        ..Options::default()
    })
    .await;
    let retry_from = |host: u8| {
        let http = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, host]))
            .build()
            .unwrap();
        http.post(format!(
            "{}/tally/api/jobs/01JNOSUCHJOB/retry",
            app.board_url()
        ))
        .basic_auth(USER, Some(PASSWORD))
        .header("host", "10.0.0.11:8081")
        .header("x-forwarded-host", "board.shop.test")
        .header("origin", "https://board.shop.test")
        .send()
    };
    // from the proxy: past the origin check, to the job (there is none)
    assert_eq!(retry_from(3).await.unwrap().status(), 404);
    // from anyone else the header is the client's own word: refused
    assert_eq!(retry_from(4).await.unwrap().status(), 403);
}

/// An operator who opens the Logs page after a job failed sees the failure:
/// the stream starts with the recent past, each line filed under its job.
#[tokio::test]
async fn a_failure_logged_before_the_board_was_opened_is_on_its_event_stream() {
    let app = app_with_board().await;
    failed_order(&app).await;
    let id = app.rows("select id from apalis.jobs").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // opened only now, with no retry or run since the failures
    let mut events = operator(&app, reqwest::Method::GET, "/api/v1/events")
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let line = next_line(&mut events, |entry| {
            entry["span"]["task_id"] == id
                && entry["level"] == "WARN"
                && !attempts.contains(&entry["span"]["attempt"])
                && entry["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("post-order run failed"))
        })
        .await;
        let message = line["fields"]["message"].as_str().unwrap();
        assert!(
            message.contains("injected failure at after the product update"),
            "{message}"
        );
        attempts.push(line["span"]["attempt"].clone());
    }
    // one line for each of its three attempts, oldest first
    assert_eq!(attempts, vec![json!(1), json!(2), json!(3)]);
}

/// When one run counts orders that have jobs of their own, those jobs are
/// done without running: each one's Events panel says which run counted it.
#[tokio::test]
async fn a_job_whose_order_another_run_counted_is_told_which_run() {
    let defaults = Options::default();
    let app = TestApp::spawn_with(Options {
        board: Some((USER, PASSWORD)),
        worker_pools: 0,
        // one job taken at a time: the first run counts all three orders
        settings: jobs::WorkerSettings {
            concurrency: 1,
            ..defaults.settings.clone()
        },
        ..defaults
    })
    .await;
    let admin = app.admin_token().await;
    let product = app
        .create_product(&admin, "Tea", "drinks", "2.00", &[])
        .await;
    let product = product["id"].as_str().unwrap();
    let (token, _) = app.register_customer("Ann").await;
    for _ in 0..3 {
        crate::harness::data(&app.place_order(&token, &[(product, None, 1)]).await);
    }
    let mut events = operator(&app, reqwest::Method::GET, "/api/v1/events")
        .send()
        .await
        .unwrap();
    app.start_workers().await;
    app.wait_for_jobs().await;

    // one run counted the three orders: the jobs it did not run are the
    // ones done without an attempt
    let ran = app
        .rows("select id from apalis.jobs where attempts > 0")
        .await;
    let settled = app
        .rows("select id from apalis.jobs where attempts = 0 order by id")
        .await;
    assert_eq!((ran.len(), settled.len()), (1, 2), "{ran:?} {settled:?}");
    let runner = ran[0]["id"].as_str().unwrap();
    for job in &settled {
        let line = next_line(&mut events, |entry| entry["span"]["task_id"] == job["id"]).await;
        assert_eq!(
            (&line["level"], &line["target"], &line["fields"]["message"]),
            (
                &json!("DEBUG"),
                &json!("jobs::settled"),
                &json!(format!(
                    "this job's order was counted with others' by another run: done without running counted_by=the job {runner}"
                ))
            )
        );
    }
    assert_eq!(
        sales(&app, product).await,
        json!({ "salesCount": 3, "totalRevenue": "6.00" })
    );
}

/// Reads the board's event stream until an entry `wanted` picks, for at
/// most 20 s. Other tests of this process log to the same stream: what they
/// send is read past, and checked to carry nothing personal either.
async fn next_line(events: &mut reqwest::Response, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut pending, mut seen) = (String::new(), Vec::new());
    loop {
        // whole events only: a chunk may end inside one
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            assert!(
                !data.contains('@') && !data.contains("eyJ"),
                "an email or a token on the board: {data}"
            );
            let entry: Value = serde_json::from_str(data).expect("each event is one JSON entry");
            if wanted(&entry) {
                return entry;
            }
            seen.push(data.to_owned());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, events.chunk())
            .await
            .unwrap_or_else(|_| {
                let last = &seen[seen.len().saturating_sub(20)..];
                panic!("the line awaited is not on the board's stream; the last seen:\n{last:#?}")
            })
            .unwrap()
            .expect("the stream stays open");
        pending.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// A cancelled order has two jobs, its own and its cancellation's: the
/// search lists both, and says which is which.
#[tokio::test]
async fn the_search_finds_both_jobs_of_a_cancelled_order() {
    let app = app_with_board().await;
    let admin = app.admin_token().await;
    let product = app
        .create_product(&admin, "Tea", "drinks", "2.00", &[])
        .await;
    let (token, _) = app.register_customer("Ann").await;
    let placed = app
        .place_order(&token, &[(product["id"].as_str().unwrap(), None, 1)])
        .await;
    let order = crate::harness::data(&placed)["placeOrder"].clone();
    app.wait_for_jobs().await;
    let cancelled = app
        .gql_as(
            &token,
            "mutation($id: ID!) { cancelOrder(id: $id) { status } }",
            json!({ "id": order["id"] }),
        )
        .await;
    assert_eq!(
        crate::harness::data(&cancelled)["cancelOrder"]["status"],
        "CANCELLED"
    );
    app.wait_for_jobs().await;

    let number = order["orderNumber"].as_str().unwrap();
    let (status, found) = answer(operator(
        &app,
        reqwest::Method::GET,
        &format!("/tally/api/jobs?order={number}"),
    ))
    .await;
    let jobs: Vec<_> = found["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| {
            (
                job["orderNumber"].clone(),
                job["cancellation"].clone(),
                job["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        (status, jobs),
        (
            200,
            vec![
                (json!(number), json!(false), json!("Done")),
                (json!(number), json!(true), json!("Done")),
            ]
        )
    );
}
