//! Real Chromium against the real servers: the operator's board, and
//! GraphiQL running a query and a subscription. Needs
//! `scripts/install-test-deps` (run by `scripts/test`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::harness::{Options, TestApp, data};
use crate::held_back::{cure, poison};
use crate::operations::sales;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Where screenshots go: `target/browser-screenshots/<test>/`.
fn screenshots(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/browser-screenshots")
        .join(test);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs one of the browser scripts; panics with its output if it fails.
async fn node(script: &str, args: &[&str]) {
    assert!(
        browser_dir().join("node_modules/playwright-core").is_dir()
            && Path::new("/usr/bin/chromium").exists(),
        "the browser tests need Chromium and playwright-core: run scripts/install-test-deps"
    );
    let mut command = Command::new("node");
    command.current_dir(browser_dir()).arg(script).args(args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("node");
    assert!(
        output.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn assert_png(path: PathBuf) {
    let bytes = std::fs::read(&path).unwrap_or_else(|_| panic!("no screenshot {}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 1_000,
        "{} is no screenshot",
        path.display()
    );
}

/// A board, and orders of a product whose figures reject every update (a
/// trigger, as an operator's constraint would): each order is held back and
/// its job fails on every attempt; then the trigger goes. Returns the app,
/// the product and, oldest first, each order's number and job id.
async fn failed_orders(quantities: &[i32]) -> (TestApp, String, Vec<(String, String)>) {
    let app = TestApp::spawn_with(Options {
        board: Some((BOARD_USER, BOARD_PASSWORD)),
        ..Options::default()
    })
    .await;
    let admin = app.admin_token().await;
    let product = app
        .create_product(&admin, "Ramen", "soups", "12.00", &[])
        .await;
    let product = product["id"].as_str().unwrap().to_owned();
    let (token, _) = app.register_customer("Ann").await;
    poison(&app, &product).await;
    for quantity in quantities {
        data(
            &app.place_order(&token, &[(&product, None, *quantity)])
                .await,
        );
    }
    app.wait_for_jobs().await;
    cure(&app).await;
    let jobs = app
        .rows(
            "select convert_from(job, 'UTF8')::jsonb ->> 'order_number' as number, id
             from apalis.jobs where status = 'Failed' order by number",
        )
        .await
        .iter()
        .map(|row| {
            let field = |name: &str| row[name].as_str().unwrap().to_owned();
            (field("number"), field("id"))
        })
        .collect::<Vec<_>>();
    assert_eq!(jobs.len(), quantities.len());
    (app, product, jobs)
}

const BOARD_USER: &str = "ops";
const BOARD_PASSWORD: &str = "board-password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_works_failed_jobs_in_the_board_in_a_browser() {
    let (app, product, jobs) = failed_orders(&[1, 2, 3]).await;
    let [(_, job_a), (number_b, job_b), _] = &jobs[..] else {
        unreachable!()
    };
    let shots = screenshots("board");

    node(
        "board.mjs",
        &[
            &app.board_url(),
            BOARD_USER,
            BOARD_PASSWORD,
            job_a,
            job_b,
            number_b,
            shots.to_str().unwrap(),
        ],
    )
    .await;

    for shot in [
        "1-failed-tab.png",
        "2-failed-job.png",
        "3-retried-job.png",
        "4-logs.png",
        "5-search.png",
        "6-retry-all.png",
    ] {
        assert_png(shots.join(shot));
    }
    app.wait_for_jobs().await;
    assert_eq!(
        sales(&app, &product).await,
        json!({ "salesCount": 6, "totalRevenue": "72.00" })
    );
    let admin = app.admin_token().await;
    let orders = app
        .gql_as(
            &admin,
            "{ orders(first: 10) { edges { node { orderNumber analyticsStatus } } } }",
            json!({}),
        )
        .await;
    let applied: Vec<_> = jobs
        .iter()
        .rev()
        .map(|(number, _)| json!({ "node": { "orderNumber": number, "analyticsStatus": "APPLIED" } }))
        .collect();
    assert_eq!(data(&orders)["orders"]["edges"], json!(applied));
    assert_eq!(
        app.rows("select status, count(*) as jobs from apalis.jobs group by status")
            .await,
        vec![json!({ "status": "Done", "jobs": 3 })]
    );
    assert_eq!(app.figure_mismatches().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_without_javascript_retries_from_the_retry_page_in_a_browser() {
    let (app, product, jobs) = failed_orders(&[2]).await;
    let shots = screenshots("retry-page");

    node(
        "retry-page.mjs",
        &[
            &app.board_url(),
            BOARD_USER,
            BOARD_PASSWORD,
            &jobs[0].1,
            shots.to_str().unwrap(),
        ],
    )
    .await;

    for shot in ["retry-page.png", "retry-done.png"] {
        assert_png(shots.join(shot));
    }
    assert_eq!(
        sales(&app, &product).await,
        json!({ "salesCount": 2, "totalRevenue": "24.00" })
    );
    assert_eq!(
        app.rows("select status from apalis.jobs").await,
        vec![json!({ "status": "Done" })]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_developer_runs_a_query_in_graphiql_in_a_browser() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.create_product(&admin, "Pho Special", "soups", "13.50", &[])
        .await;
    let shots = screenshots("graphiql");

    node(
        "graphiql.mjs",
        &[&app.url(""), "Pho Special", shots.to_str().unwrap()],
    )
    .await;

    assert_png(shots.join("graphiql.png"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_developer_watches_figures_change_in_graphiql_in_a_browser() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let product = app
        .create_product(&admin, "Pho Special", "soups", "13.50", &[])
        .await;
    let (token, _) = app.register_customer("Ann").await;
    let shots = screenshots("graphiql-subscription");

    // the script subscribes in GraphiQL, places 3 × 13.50 and waits for the
    // figures to show in the result pane
    node(
        "graphiql-subscription.mjs",
        &[
            &app.url(""),
            &token,
            product["id"].as_str().unwrap(),
            shots.to_str().unwrap(),
        ],
    )
    .await;

    assert_png(shots.join("graphiql-subscription.png"));
    assert_eq!(app.figure_mismatches().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_developer_explores_the_schema_in_graphiql_in_a_browser() {
    let app = TestApp::spawn_without_workers().await;
    let shots = screenshots("graphiql-explorer");

    // the script fails unless the explorer lists Query's fields, `{ prod`
    // offers both product fields, and a mistake is marked before it runs
    node(
        "graphiql-explorer.mjs",
        &[&app.url(""), shots.to_str().unwrap()],
    )
    .await;

    for shot in [
        "graphiql-explorer.png",
        "graphiql-completion.png",
        "graphiql-mistake.png",
    ] {
        assert_png(shots.join(shot));
    }
}
