//! `/metrics`: each app has its own registry, so counters move by exactly
//! what this test did.

use std::time::Duration;

use serde_json::json;

use crate::harness::{TestApp, data};

/// The value of one series, e.g. `tally_jobs{status="Done"}`; 0 when absent.
async fn metric(app: &TestApp, series: &str) -> f64 {
    let response = app.http().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn counters_move_by_exactly_what_happened() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let product = app
        .create_product(&admin, "Soup", "soups", "4.00", &[])
        .await;
    let product = product["id"].as_str().unwrap();
    let (token, _) = app.register_customer("Ann").await;
    let place =
        "mutation PlaceOrder($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }";
    let input = json!({ "input": { "items": [{ "productId": product, "quantity": 1 }], "idempotencyKey": "k1" } });

    assert_eq!(metric(&app, "tally_orders_placed_total").await, 0.0);
    data(&app.gql_as(&token, place, input.clone()).await);
    app.wait_for_jobs().await;
    // a replayed key places nothing
    data(&app.gql_as(&token, place, input).await);
    assert_eq!(metric(&app, "tally_orders_placed_total").await, 1.0);
    assert_eq!(
        metric(&app, "tally_job_runs_total{outcome=\"applied\"}").await,
        1.0
    );
    assert_eq!(
        metric(
            &app,
            "tally_graphql_request_duration_seconds_count{operation=\"PlaceOrder\"}"
        )
        .await,
        2.0
    );

    app.fail_points.fail_after_product_update(1_000);
    data(&app.place_order(&token, &[(product, None, 2)]).await);
    app.wait_for_jobs().await;
    assert_eq!(metric(&app, "tally_orders_placed_total").await, 2.0);
    // three attempts (the test harness's maximum), all failed
    assert_eq!(
        metric(&app, "tally_job_runs_total{outcome=\"failed\"}").await,
        3.0
    );
    assert_eq!(
        metric(&app, "tally_job_runs_total{outcome=\"applied\"}").await,
        1.0
    );
    assert_eq!(metric(&app, "tally_job_duration_seconds_count").await, 4.0);
    assert_eq!(metric(&app, "tally_jobs{status=\"Done\"}").await, 1.0);
    assert_eq!(metric(&app, "tally_jobs{status=\"Failed\"}").await, 1.0);
    assert_eq!(metric(&app, "tally_jobs{status=\"Pending\"}").await, 0.0);
}

#[tokio::test]
async fn the_analytics_lag_is_the_age_of_the_oldest_uncounted_order() {
    let app = TestApp::spawn_without_workers().await;
    let admin = app.admin_token().await;
    let product = app
        .create_product(&admin, "Soup", "soups", "4.00", &[])
        .await;
    let product = product["id"].as_str().unwrap();
    let (token, _) = app.register_customer("Ann").await;
    assert_eq!(metric(&app, "tally_analytics_lag_seconds").await, 0.0);

    data(&app.place_order(&token, &[(product, None, 1)]).await);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let lag = metric(&app, "tally_analytics_lag_seconds").await;
    assert!((1.0..30.0).contains(&lag), "lag {lag}");
    assert_eq!(metric(&app, "tally_jobs{status=\"Pending\"}").await, 1.0);

    app.start_workers().await;
    app.wait_for_jobs().await;
    assert_eq!(metric(&app, "tally_analytics_lag_seconds").await, 0.0);
}
