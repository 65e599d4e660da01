//! Real Chromium against the real servers: the operator's board, and
//! GraphiQL running a query and a subscription. Needs
//! `scripts/install-test-deps` (run by `scripts/test`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::harness::{Options, TestApp, data};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_retries_a_failed_job_from_the_board_in_a_browser() {
    let app = TestApp::spawn_with(Options {
        board: Some(("ops", "board-password")),
        ..Options::default()
    })
    .await;
    let admin = app.admin_token().await;
    let product = app
        .create_product(&admin, "Ramen", "soups", "12.00", &[])
        .await;
    let product = product["id"].as_str().unwrap();
    let (token, _) = app.register_customer("Ann").await;
    app.fail_points.fail_after_product_update(1_000);
    data(&app.place_order(&token, &[(product, None, 2)]).await);
    app.wait_for_jobs().await;
    app.fail_points.fail_after_product_update(0);
    let job_id = app
        .rows("select id from apalis.jobs where status = 'Failed'")
        .await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let board = app.board_url();
    let shots = screenshots("board");

    node(
        "board.mjs",
        &[
            &board,
            "ops",
            "board-password",
            &job_id,
            shots.to_str().unwrap(),
        ],
    )
    .await;

    for shot in [
        "board-failed-job.png",
        "retry-done.png",
        "board-done-job.png",
    ] {
        assert_png(shots.join(shot));
    }
    let body = app
        .gql(
            "query($id: ID!) { product(id: $id) { salesCount totalRevenue } }",
            json!({ "id": product }),
        )
        .await;
    assert_eq!(
        data(&body)["product"],
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
