//! What sold when: `salesReport` and `Product.salesSeries` by hour and by
//! day of the shop's time zone (daylight-saving days of 23 and 25 hours
//! included), and the rollup that keeps old sales as days.

use std::time::Duration;

use jobs::sales_rollup::{SalesRetention, roll_up_sales};
use serde_json::{Value, json};
use tally::config::Config;

use crate::harness::{Options, TestApp, data, error_code, error_message};
use crate::sales_over_time::{bucket, buckets_as, category, order_at, shop};

const REPORT: &str =
    "query($from: DateTime!, $to: DateTime!, $by: SalesGrain, $category: String, $productId: ID) {
    salesReport(from: $from, to: $to, by: $by, category: $category, productId: $productId) {
        by timeZone units revenue orders
        periods { startsAt endsAt units revenue orders }
    }
}";

const NEW_YORK: &str = "America/New_York";

/// How the buckets' starts are shown (`to_char`, UTC): these tests' span days.
const DAY_AND_TIME: &str = "MM-DD HH24:MI";

/// A shop in New York whose own background rollup leaves these tests'
/// days alone: the rollup test rolls them itself, at an instant it chooses.
fn new_york_shop(config: &mut Config) {
    config.sales.time_zone = NEW_YORK.to_owned();
    config.sales.quarter_hours = Duration::from_secs(3660 * 24 * 3600);
}

async fn spawn_new_york() -> TestApp {
    TestApp::spawn_with(Options {
        worker_pools: 0,
        configure: new_york_shop,
        ..Options::default()
    })
    .await
}

fn period(starts_at: &str, ends_at: &str, units: i64, revenue: &str, orders: i64) -> Value {
    json!({ "startsAt": starts_at, "endsAt": ends_at, "units": units, "revenue": revenue, "orders": orders })
}

async fn report(app: &TestApp, token: &str, variables: Value) -> Value {
    let body = app.gql_as(token, REPORT, variables).await;
    assert!(body.get("errors").is_none(), "{body}");
    data(&body)["salesReport"].clone()
}

#[tokio::test]
async fn a_report_sums_the_hours_and_the_days_of_the_shops_zone_across_daylight_saving() {
    let app = spawn_new_york().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(
            &admin,
            &[("Margherita", "pizza", 1000), ("Cola", "beverages", 250)],
        )
        .await;
    let (pizza, cola) = (ids[0].as_str(), ids[1].as_str());
    let (ann, _) = app.register_customer("Ann").await;
    // 8 March 2026 has 23 hours in New York (clocks go 02:00 → 03:00)
    order_at(&app, &ann, &[(pizza, None, 1)], "2026-03-08 00:30:00-05").await;
    order_at(
        &app,
        &ann,
        &[(pizza, None, 2), (cola, None, 1)],
        "2026-03-08 23:59:59-04",
    )
    .await;
    order_at(&app, &ann, &[(cola, None, 4)], "2026-03-09 00:00:00-04").await;
    // 1 November 2026 has 25 (01:00-01:59 twice): the last instant of the
    // first 1 o'clock, and the first of the second
    order_at(
        &app,
        &ann,
        &[(pizza, None, 3)],
        "2026-11-01 01:59:59.999999-04",
    )
    .await;
    order_at(
        &app,
        &ann,
        &[(pizza, None, 1), (cola, None, 2)],
        "2026-11-01 01:00:00-05",
    )
    .await;
    order_at(&app, &ann, &[(cola, None, 1)], "2026-11-01 23:59:59-05").await;
    order_at(&app, &ann, &[(pizza, None, 5)], "2026-11-02 00:00:00-05").await;
    app.start_workers().await;
    app.wait_for_jobs().await;

    let march = report(
        &app,
        &admin,
        json!({ "from": "2026-03-08T05:00:00Z", "to": "2026-03-10T04:00:00Z" }),
    )
    .await;
    assert_eq!(
        march,
        json!({
            "by": "DAY", "timeZone": NEW_YORK, "units": 8, "revenue": "42.50", "orders": 3,
            "periods": [
                period("2026-03-08T05:00:00+00:00", "2026-03-09T04:00:00+00:00", 4, "32.50", 2),
                period("2026-03-09T04:00:00+00:00", "2026-03-10T04:00:00+00:00", 4, "10.00", 1),
            ]
        })
    );

    // one product's days; `from` late in a day still starts at its midnight
    let november = report(
        &app,
        &admin,
        json!({ "from": "2026-11-01T12:00:00Z", "to": "2026-11-03T05:00:00Z", "productId": pizza }),
    )
    .await;
    assert_eq!(
        november["periods"],
        json!([
            period(
                "2026-11-01T04:00:00+00:00",
                "2026-11-02T05:00:00+00:00",
                4,
                "40.00",
                2
            ),
            period(
                "2026-11-02T05:00:00+00:00",
                "2026-11-03T05:00:00+00:00",
                5,
                "50.00",
                1
            ),
        ])
    );

    // the two 1 o'clocks are hours of their own
    let hours = report(
        &app,
        &admin,
        json!({ "from": "2026-11-01T04:00:00Z", "to": "2026-11-01T08:00:00Z", "by": "HOUR" }),
    )
    .await;
    assert_eq!(
        hours["periods"],
        json!([
            period(
                "2026-11-01T04:00:00+00:00",
                "2026-11-01T05:00:00+00:00",
                0,
                "0.00",
                0
            ),
            period(
                "2026-11-01T05:00:00+00:00",
                "2026-11-01T06:00:00+00:00",
                3,
                "30.00",
                1
            ),
            period(
                "2026-11-01T06:00:00+00:00",
                "2026-11-01T07:00:00+00:00",
                3,
                "15.00",
                1
            ),
            period(
                "2026-11-01T07:00:00+00:00",
                "2026-11-01T08:00:00+00:00",
                0,
                "0.00",
                0
            ),
        ])
    );

    let beverages = report(
        &app,
        &admin,
        json!({ "from": "2026-11-01T04:00:00Z", "to": "2026-11-02T00:00:00Z", "category": "beverages" }),
    )
    .await;
    assert_eq!(
        beverages["periods"],
        json!([period(
            "2026-11-01T04:00:00+00:00",
            "2026-11-02T05:00:00+00:00",
            3,
            "7.50",
            2
        )])
    );

    // a product's days add up to its figures
    let series = app
        .gql_as(
            &admin,
            "query($id: ID!) { product(id: $id) {
                salesCount totalRevenue
                salesSeries(from: \"2026-03-01T00:00:00Z\", to: \"2026-12-01T00:00:00Z\") { units revenue orders }
            } }",
            json!({ "id": pizza }),
        )
        .await;
    assert_eq!(
        data(&series)["product"],
        json!({
            "salesCount": 12, "totalRevenue": "120.00",
            "salesSeries": { "units": 12, "revenue": "120.00", "orders": 5 }
        })
    );
}

#[tokio::test]
async fn a_report_is_for_admins_over_a_bounded_span_of_one_scope() {
    let app = spawn_new_york().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Margherita", "pizza", 1000)])
        .await;
    let (ann, _) = app.register_customer("Ann").await;
    let span = json!({ "from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z" });

    let anonymous = app.gql(REPORT, span.clone()).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
    let customer = app.gql_as(&ann, REPORT, span).await;
    assert_eq!(error_code(&customer), "FORBIDDEN");
    let series = app
        .gql_as(
            &ann,
            "query($id: ID!) { product(id: $id) { salesSeries(from: \"2026-11-01T00:00:00Z\", to: \"2026-11-02T00:00:00Z\") { units } } }",
            json!({ "id": ids[0] }),
        )
        .await;
    assert_eq!(error_code(&series), "FORBIDDEN");

    for (variables, message) in [
        (
            json!({ "from": "2026-11-01T00:00:00Z", "to": "2026-11-01T00:00:00Z" }),
            "from must be before to",
        ),
        (
            json!({ "from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z", "by": "HOUR" }),
            "a report spans at most 1000 hours: ask for a shorter span, or by DAY",
        ),
        (
            json!({ "from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z" }),
            "a report spans at most 1000 days: ask for a shorter span",
        ),
        (
            json!({ "from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z",
                    "category": "pizza", "productId": ids[0] }),
            "a report is of a category or of a product, not both",
        ),
    ] {
        let refused = app.gql_as(&admin, REPORT, variables).await;
        assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
        assert_eq!(error_message(&refused), message);
    }
}

#[tokio::test]
async fn old_quarter_hours_roll_into_days_that_read_the_same_and_take_cancellations() {
    let app = spawn_new_york().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(
            &admin,
            &[("Margherita", "pizza", 1000), ("Cola", "beverages", 250)],
        )
        .await;
    let (pizza, cola) = (ids[0].as_str(), ids[1].as_str());
    let (ann, _) = app.register_customer("Ann").await;
    // 1 November (25 hours in New York), the next day, and one day later on
    order_at(
        &app,
        &ann,
        &[(pizza, None, 3)],
        "2026-11-01 05:59:59.999999+00",
    )
    .await;
    let both = order_at(
        &app,
        &ann,
        &[(pizza, None, 1), (cola, None, 2)],
        "2026-11-01 06:00:00+00",
    )
    .await;
    order_at(&app, &ann, &[(pizza, None, 5)], "2026-11-02 00:00:00-05").await;
    order_at(&app, &ann, &[(cola, None, 1)], "2026-11-20 12:00:00+00").await;
    app.start_workers().await;
    app.wait_for_jobs().await;
    let days = json!({ "from": "2026-11-01T04:00:00Z", "to": "2026-11-21T05:00:00Z" });
    let before = report(&app, &admin, days.clone()).await;
    assert_eq!(before["units"], 12);

    // quarter hours are kept 35 days: at noon on 7 December, 1 November
    // (all of it before 2 November 12:00 UTC) is rolled, 2 November is not
    let retention = SalesRetention {
        quarter_hours: Duration::from_secs(35 * 24 * 3600),
        time_zone: NEW_YORK.to_owned(),
    };
    let now = "2026-12-07T12:00:00Z".parse().unwrap();
    let db = app.counted_db();
    assert_eq!(roll_up_sales(db, &retention, now).await.unwrap(), 1);
    assert_eq!(roll_up_sales(db, &retention, now).await.unwrap(), 0);
    let product = bucket;
    assert_eq!(
        buckets_as(&app, DAY_AND_TIME).await,
        (
            vec![
                product("Cola", "11-01 04:00", 2, 500, 1),
                product("Cola", "11-20 12:00", 1, 250, 1),
                product("Margherita", "11-01 04:00", 4, 4000, 2),
                product("Margherita", "11-02 05:00", 5, 5000, 1),
            ],
            vec![
                category("beverages", "11-01 04:00", 2, 500, 1),
                category("beverages", "11-20 12:00", 1, 250, 1),
                category("pizza", "11-01 04:00", 4, 4000, 2),
                category("pizza", "11-02 05:00", 5, 5000, 1),
            ],
            vec![
                shop("11-01 04:00", 6, 4500, 2),
                shop("11-02 05:00", 5, 5000, 1),
                shop("11-20 12:00", 1, 250, 1),
            ],
        )
    );
    assert_eq!(
        app.rows("select days_before::text, time_zone from sales_rollup")
            .await,
        [json!({ "days_before": "2026-11-02 05:00:00+00", "time_zone": NEW_YORK })]
    );
    assert_eq!(app.figure_mismatches().await, 0);
    assert_eq!(report(&app, &admin, days.clone()).await, before);

    // a rolled-up hour is not shown as its day; a kept one is
    let rolled_hour = app
        .gql_as(
            &admin,
            REPORT,
            json!({ "from": "2026-11-01T05:00:00Z", "to": "2026-11-01T07:00:00Z", "by": "HOUR" }),
        )
        .await;
    assert_eq!(error_code(&rolled_hour), "BAD_USER_INPUT");
    assert_eq!(
        error_message(&rolled_hour),
        "sales by hour are kept since 2026-11-02T05:00:00+00:00 (SALES_HOURS_RETENTION), \
         by day before: ask for DAY, or from a later instant"
    );
    let kept_hour = report(
        &app,
        &admin,
        json!({ "from": "2026-11-02T05:00:00Z", "to": "2026-11-02T06:00:00Z", "by": "HOUR" }),
    )
    .await;
    assert_eq!(kept_hour["units"], 5);

    // a rolled-up order cancelled comes out of its day, and no quarter hour
    // appears before the horizon
    let cancelled = app
        .gql_as(
            &admin,
            "mutation($id: ID!) { cancelOrder(id: $id) { status } }",
            json!({ "id": both.to_string() }),
        )
        .await;
    assert_eq!(data(&cancelled)["cancelOrder"]["status"], "CANCELLED");
    app.wait_for_jobs().await;
    let (products, _, shops) = buckets_as(&app, DAY_AND_TIME).await;
    assert_eq!(
        products[..2],
        [
            product("Cola", "11-01 04:00", 0, 0, 0),
            product("Cola", "11-20 12:00", 1, 250, 1)
        ]
    );
    assert_eq!(
        products[2],
        product("Margherita", "11-01 04:00", 3, 3000, 1)
    );
    assert_eq!(shops[0], shop("11-01 04:00", 3, 3000, 1));
    assert_eq!(shops.len(), 3);
    assert_eq!(app.figure_mismatches().await, 0);

    // a rebuild makes the same days from the orders
    let rebuilt = app
        .gql_as(
            &admin,
            "mutation { rebuildAnalytics { ordersMarked } }",
            json!({}),
        )
        .await;
    assert!(rebuilt.get("errors").is_none(), "{rebuilt}");
    assert_eq!(
        buckets_as(&app, DAY_AND_TIME).await.2,
        vec![
            shop("11-01 04:00", 3, 3000, 1),
            shop("11-02 05:00", 5, 5000, 1),
            shop("11-20 12:00", 1, 250, 1),
        ]
    );
    assert_eq!(app.figure_mismatches().await, 0);
}
