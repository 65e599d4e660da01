//! One order that cannot be counted never stops the others: a batch that
//! fails on its data is split until the failing order stands alone, that
//! order is held back (left out of every other batch, the sweep and the
//! rebuild) until an operator retries its job, and the rest are counted.
//! The poison is real: a trigger that rejects any change to one product's
//! figures, as an operator's constraint or a corrupt row would.

use std::time::Duration;

use futures::future::join_all;
use jobs::JobKind;
use jobs::analytics::{self, Outcome};
use jobs::fail_points::FailPoints;
use serde_json::{Value, json};

use crate::harness::{TestApp, data, error_code, placed_order_id};

const JOBS: &str = "query($status: JobStatus) { jobs(status: $status) { id status attempts maxAttempts orderNumber lastError } }";

/// Customers, products and a poisoned product.
struct Shop {
    tokens: Vec<String>,
    cola: String,
    pizza: String,
    /// Orders of it fail to be counted while the trigger stands.
    poisoned: String,
}

async fn shop(app: &TestApp) -> Shop {
    let admin = app.admin_token().await;
    let ids = app
        .create_products(
            &admin,
            &[
                ("Cola", "beverages", 250),
                ("Pizza", "pizza", 1000),
                ("Broken", "pizza", 700),
            ],
        )
        .await;
    let mut tokens = Vec::new();
    for name in ["Ann", "Bob", "Cy", "Di"] {
        tokens.push(app.register_customer(name).await.0);
    }
    Shop {
        tokens,
        cola: ids[0].clone(),
        pizza: ids[1].clone(),
        poisoned: ids[2].clone(),
    }
}

pub(crate) async fn poison(app: &TestApp, product_id: &str) {
    app.execute(
        "create function reject_figures() returns trigger language plpgsql as $$
         begin
             raise exception 'figures of product % are frozen', new.id;
         end
         $$",
    )
    .await;
    app.execute(&format!(
        "create trigger freeze_figures before update of sales_count on products
         for each row when (new.id = {product_id}) execute function reject_figures()"
    ))
    .await;
}

pub(crate) async fn cure(app: &TestApp) {
    app.execute("drop trigger freeze_figures on products").await;
}

/// Places `n` orders at once (quantity 1 + i % 3 of cola, and a pizza on
/// every fourth), and the poisoned order as number `poisoned_at` among them.
/// Returns the poisoned order's id, if `poisoned_at` is below `n`.
async fn place_many(app: &TestApp, shop: &Shop, n: usize, poisoned_at: usize) -> Option<i64> {
    let orders = (0..n).map(|i| {
        let token = &shop.tokens[i % shop.tokens.len()];
        let quantity = 1 + (i % 3) as i32;
        async move {
            let items: Vec<(&str, Option<&str>, i32)> = if i == poisoned_at {
                vec![(&shop.cola, None, 2), (&shop.poisoned, None, 1)]
            } else if i % 4 == 0 {
                vec![(&shop.cola, None, quantity), (&shop.pizza, None, 1)]
            } else {
                vec![(&shop.cola, None, quantity)]
            };
            (i, placed_order_id(&app.place_order(token, &items).await))
        }
    });
    let placed = join_all(orders).await;
    placed
        .into_iter()
        .find(|(i, _)| *i == poisoned_at)
        .map(|(_, id)| id)
}

/// The figures of cola and pizza when every order but the poisoned one counts.
fn others_figures(n: usize, poisoned_at: usize) -> (Value, Value) {
    let (mut cola, mut pizza) = (0, 0);
    for i in (0..n).filter(|i| *i != poisoned_at) {
        cola += 1 + (i % 3) as i64;
        pizza += i64::from(i % 4 == 0);
    }
    let figures = |units: i64, cents: i64| {
        let rating = match units {
            200.. => 5.0,
            100.. => 4.7,
            50.. => 4.5,
            10.. => 4.2,
            _ => 4.0,
        };
        json!({
            "salesCount": units,
            "totalRevenue": tally::money::Cents(units * cents).to_string(),
            "rating": rating,
        })
    };
    (figures(cola, 250), figures(pizza, 1000))
}

async fn held_back_orders(app: &TestApp) -> Vec<Value> {
    app.rows(
        "select id,
                analytics_applied_at is null as waiting,
                starts_with(analytics_failure, 'database error: Query Error: error returned from \
                    database: figures of product 3 are frozen') as frozen
         from orders where analytics_held_back_at is not null order by id",
    )
    .await
}

/// The poisoned run's error, as operators read it (PostgreSQL adds where it was raised).
const FAILURE: &str =
    "database error: Query Error: error returned from database: figures of product 3 are frozen";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poisoned_order_among_200_fails_alone_and_counts_once_after_a_retry() {
    let app = TestApp::spawn_without_workers().await;
    let shop = shop(&app).await;
    poison(&app, &shop.poisoned).await;
    let poisoned = place_many(&app, &shop, 200, 57).await.unwrap();

    app.start_workers().await;
    app.wait_for_jobs().await;

    let (cola, pizza) = others_figures(200, 57);
    assert_eq!(app.figures(&shop.cola).await, cola);
    assert_eq!(app.figures(&shop.pizza).await, pizza);
    assert_eq!(
        app.figures(&shop.poisoned).await,
        json!({ "salesCount": 0, "totalRevenue": "0.00", "rating": 4.0 })
    );
    assert_eq!(
        app.count("select count(*) from orders where analytics_applied_at is not null")
            .await,
        199
    );
    assert_eq!(
        held_back_orders(&app).await,
        vec![json!({ "id": poisoned, "waiting": true, "frozen": true })]
    );

    let metrics = app.metrics().await;
    assert!(
        metrics.lines().any(|l| l == "tally_orders_held_back 1"),
        "{metrics}"
    );

    // the poisoned order's job is the one failed job, with its error
    let admin = app.admin_token().await;
    let failed = app
        .gql_as(&admin, JOBS, json!({ "status": "FAILED" }))
        .await;
    let failed = data(&failed)["jobs"].as_array().unwrap().clone();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let number = app
        .rows(&format!(
            "select order_number from orders where id = {poisoned}"
        ))
        .await[0]["order_number"]
        .clone();
    assert_eq!(failed[0]["orderNumber"], number);
    assert_eq!(failed[0]["attempts"], 3);
    let last_error = failed[0]["lastError"].as_str().unwrap();
    assert!(last_error.starts_with(FAILURE), "{last_error}");
    assert_eq!(
        app.count("select count(*) from apalis.jobs where status = 'Done'")
            .await,
        199
    );

    // cause removed, job retried: counted exactly once, released
    cure(&app).await;
    let retried = app
        .gql_as(
            &admin,
            "mutation($id: ID!) { retryJob(id: $id) }",
            json!({ "id": failed[0]["id"] }),
        )
        .await;
    assert_eq!(data(&retried)["retryJob"], true);
    app.wait_for_jobs().await;
    assert_eq!(app.figure_mismatches().await, 0);
    assert_eq!(held_back_orders(&app).await, Vec::<Value>::new());
    assert_eq!(
        app.figures(&shop.poisoned).await,
        json!({ "salesCount": 1, "totalRevenue": "7.00", "rating": 4.0 })
    );
    let cola_units = cola["salesCount"].as_i64().unwrap() + 2;
    assert_eq!(app.figures(&shop.cola).await["salesCount"], cola_units);
    assert_eq!(
        app.count("select count(*) from apalis.jobs where status = 'Done'")
            .await,
        200
    );
}

#[tokio::test]
async fn the_sweep_splits_its_batch_and_holds_back_only_the_poisoned_order() {
    let app = TestApp::spawn_without_workers().await;
    let shop = shop(&app).await;
    poison(&app, &shop.poisoned).await;
    let poisoned = place_many(&app, &shop, 40, 13).await.unwrap();
    let none = FailPoints::default();

    let Outcome::Applied(swept) = analytics::apply_waiting(&app.db, 100, &none).await.unwrap()
    else {
        panic!("the sweep counted nothing")
    };
    assert_eq!(
        (swept.order_numbers.len(), swept.retired_jobs.len()),
        (39, 39)
    );
    assert_eq!(swept.products_updated, 2);
    let (cola, pizza) = others_figures(40, 13);
    assert_eq!(app.figures(&shop.cola).await, cola);
    assert_eq!(app.figures(&shop.pizza).await, pizza);
    assert_eq!(
        held_back_orders(&app).await,
        vec![json!({ "id": poisoned, "waiting": true, "frozen": true })]
    );
    // its job is left for a worker: not settled with the others
    assert_eq!(
        app.rows("select status, count(*) as jobs from apalis.jobs group by 1 order by 1")
            .await,
        vec![
            json!({ "status": "Done", "jobs": 39 }),
            json!({ "status": "Pending", "jobs": 1 }),
        ]
    );

    // held back: the next sweep and the next batch leave it out, and fail on nothing
    let fresh = placed_order_id(
        &app.place_order(&shop.tokens[0], &[(&shop.cola, None, 1)])
            .await,
    );
    let Outcome::Applied(next) = analytics::apply_waiting(&app.db, 100, &none).await.unwrap()
    else {
        panic!("the new order was not swept")
    };
    assert_eq!(next.order_numbers.len(), 1);
    let another = placed_order_id(
        &app.place_order(&shop.tokens[1], &[(&shop.cola, None, 1)])
            .await,
    );
    let Outcome::Applied(batch) = analytics::apply_order(&app.db, another, 100, &none)
        .await
        .unwrap()
    else {
        panic!("the order's own run counted nothing")
    };
    assert_eq!(batch.order_numbers.len(), 1);
    assert!(fresh < another);

    // its own job still tries it, alone, and fails with the same error
    let own = analytics::apply_order(&app.db, poisoned, 100, &none).await;
    let own = own.unwrap_err().to_string();
    assert!(own.starts_with(FAILURE), "{own}");
    assert_eq!(held_back_orders(&app).await.len(), 1);

    cure(&app).await;
    let counted = analytics::apply_order(&app.db, poisoned, 100, &none)
        .await
        .unwrap();
    assert!(
        matches!(&counted, Outcome::Applied(a) if a.order_numbers.len() == 1),
        "{counted:?}"
    );
    assert_eq!(held_back_orders(&app).await, Vec::<Value>::new());
    assert_eq!(app.figure_mismatches().await, 0);
    assert_eq!(
        analytics::apply_order(&app.db, poisoned, 100, &none)
            .await
            .unwrap(),
        Outcome::AlreadyApplied
    );
}

#[tokio::test]
async fn a_job_whose_batch_fails_counts_its_own_order_alone() {
    let app = TestApp::spawn_without_workers().await;
    let shop = shop(&app).await;
    poison(&app, &shop.poisoned).await;
    // the poisoned order is the oldest: every batch claims it first
    let poisoned = placed_order_id(
        &app.place_order(&shop.tokens[0], &[(&shop.poisoned, None, 1)])
            .await,
    );
    let mut others = Vec::new();
    for quantity in 1..=5 {
        others.push(placed_order_id(
            &app.place_order(&shop.tokens[1], &[(&shop.cola, None, quantity)])
                .await,
        ));
    }
    let none = FailPoints::default();

    let outcome = analytics::apply_order(&app.db, others[4], 100, &none)
        .await
        .unwrap();
    let Outcome::Applied(own) = outcome else {
        panic!("{outcome:?}")
    };
    // its own order alone: the rest are counted by splitting, not in its result
    assert_eq!(own.order_numbers.len(), 1);
    assert_eq!(
        app.figures(&shop.cola).await,
        json!({ "salesCount": 15, "totalRevenue": "37.50", "rating": 4.2 })
    );
    assert_eq!(
        held_back_orders(&app).await,
        vec![json!({ "id": poisoned, "waiting": true, "frozen": true })]
    );
    // the four others' jobs were settled by the split, the run's own by apalis
    assert_eq!(
        app.count("select count(*) from apalis.jobs where status = 'Done'")
            .await,
        4
    );
}

#[tokio::test]
async fn the_rebuild_holds_back_a_poisoned_order_and_recounts_the_rest() {
    let app = TestApp::spawn_without_workers().await;
    let shop = shop(&app).await;
    let poisoned = place_many(&app, &shop, 60, 31).await.unwrap();
    poison(&app, &shop.poisoned).await;

    let report = jobs::rebuild::rebuild_analytics(&app.db).await.unwrap();
    // the recount found every order counted by the drain before it
    assert_eq!(report.orders_marked, 0);
    let (cola, pizza) = others_figures(60, 31);
    assert_eq!(app.figures(&shop.cola).await, cola);
    assert_eq!(app.figures(&shop.pizza).await, pizza);
    assert_eq!(
        held_back_orders(&app).await,
        vec![json!({ "id": poisoned, "waiting": true, "frozen": true })]
    );

    // a second rebuild leaves the held-back order out and fails on nothing
    let again = jobs::rebuild::rebuild_analytics(&app.db).await.unwrap();
    assert_eq!((again.orders_marked, again.products_updated), (0, 0));

    // an operator retries all failed jobs: the worker fails it, is retried
    // after the cure, and counts it once
    app.start_workers().await;
    app.wait_for_jobs().await;
    assert_eq!(
        app.count("select count(*) from apalis.jobs where status = 'Failed'")
            .await,
        1
    );
    cure(&app).await;
    let admin = app.admin_token().await;
    let retried = app
        .gql_as(&admin, "mutation { retryFailedJobs }", json!({}))
        .await;
    assert_eq!(data(&retried)["retryFailedJobs"], 1);
    app.wait_for_jobs().await;
    assert_eq!(app.figure_mismatches().await, 0);
    assert_eq!(held_back_orders(&app).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_killed_job_is_settled_once_its_order_is_counted() {
    let app = TestApp::spawn_without_workers().await;
    let shop = shop(&app).await;
    let killed = placed_order_id(
        &app.place_order(&shop.tokens[0], &[(&shop.cola, None, 2)])
            .await,
    );
    let other = placed_order_id(
        &app.place_order(&shop.tokens[1], &[(&shop.cola, None, 1)])
            .await,
    );
    app.execute(&format!(
        "update apalis.jobs set status = 'Killed', attempts = 1, done_at = now(),
                last_result = '{{\"Err\": \"aborted\"}}'
         where idempotency_key = '{}'",
        JobKind::Count.key(killed)
    ))
    .await;

    let outcome = analytics::apply_order(&app.db, other, 100, &FailPoints::default())
        .await
        .unwrap();
    assert!(
        matches!(&outcome, Outcome::Applied(a) if a.order_numbers.len() == 2 && a.retired_jobs.len() == 1),
        "{outcome:?}"
    );
    let number = data(
        &app.gql_as(
            &shop.tokens[1],
            "query($id: ID!) { order(id: $id) { orderNumber } }",
            json!({ "id": other.to_string() }),
        )
        .await,
    )["order"]["orderNumber"]
        .clone();
    assert_eq!(
        app.rows(&format!(
            "select status, last_result from apalis.jobs where idempotency_key = '{}'",
            JobKind::Count.key(killed)
        ))
        .await,
        vec![
            json!({ "status": "Done", "last_result": { "Ok": format!("counted with {}", number.as_str().unwrap()) } })
        ]
    );
    assert_eq!(app.figure_mismatches().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_product_created_while_a_rebuild_runs_ends_with_exact_figures() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    place_many(&app, &shop, 20, usize::MAX).await;
    app.wait_for_jobs().await;
    app.execute("update products set sales_count = 0, total_revenue_cents = 0")
        .await;

    // hold the rebuild between its product recount and its customer totals
    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::query("lock table customer_product_stats in access exclusive mode")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let db = app.db.clone();
    let rebuild = tokio::spawn(async move { jobs::rebuild::rebuild_analytics(&db).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!rebuild.is_finished());

    // meanwhile: a new product, ordered, and its job waiting for the rebuild
    let admin = app.admin_token().await;
    let late = app
        .create_products(&admin, &[("Late", "pizza", 900)])
        .await
        .remove(0);
    let order = placed_order_id(
        &app.place_order(&shop.tokens[0], &[(&late, None, 3), (&shop.cola, None, 1)])
            .await,
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        app.count(&format!(
            "select count(*) from orders where id = {order} and analytics_applied_at is null"
        ))
        .await,
        1,
        "a job counted an order while the rebuild held the figures"
    );

    blocker.rollback().await.unwrap();
    let report = rebuild.await.unwrap().unwrap();
    assert_eq!(report.products_updated, 2);
    app.wait_for_jobs().await;
    assert_eq!(app.figure_mismatches().await, 0);
    assert_eq!(
        app.figures(&late).await,
        json!({ "salesCount": 3, "totalRevenue": "27.00", "rating": 4.0 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_row_no_worker_can_read_stops_neither_the_list_nor_the_retries_of_the_others() {
    let app = TestApp::spawn_without_workers().await;
    let shop = shop(&app).await;
    poison(&app, &shop.poisoned).await;
    let poisoned = place_many(&app, &shop, 1, 0).await.unwrap();
    app.start_workers().await;
    app.wait_for_jobs().await;
    assert_eq!(
        held_back_orders(&app).await,
        vec![json!({ "id": poisoned, "waiting": true, "frozen": true })]
    );
    // rows that no code of Tally's writes (an operator's hand, a damaged
    // page): bytes that are no UTF-8, and text that is no JSON
    app.execute(&format!(
        "insert into apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at,
                                  idempotency_key)
         values (apalis.generate_ulid(), '{queue}', '\\xff'::bytea, 'Failed', 3, 3,
                 now() - interval '1 minute', 'by-hand-bytes'),
                (apalis.generate_ulid(), '{queue}', convert_to('not json', 'UTF8'), 'Killed', 1, 3,
                 now() - interval '2 minutes', 'by-hand-text')",
        queue = jobs::QUEUE
    ))
    .await;
    let by_hand = app
        .rows(
            "select id from apalis.jobs where idempotency_key like 'by-hand-%'
             order by idempotency_key",
        )
        .await;
    let (bytes, text) = (by_hand[0]["id"].clone(), by_hand[1]["id"].clone());

    let admin = app.admin_token().await;
    let listed = app.gql_as(&admin, JOBS, json!({})).await;
    let number = app
        .rows(&format!(
            "select order_number from orders where id = {poisoned}"
        ))
        .await[0]["order_number"]
        .clone();
    let listed: Vec<Value> = data(&listed)["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| json!([job["id"], job["status"], job["orderNumber"]]))
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(listed[0][1], "FAILED");
    assert_eq!(listed[0][2], number);
    assert_eq!(
        listed[1..],
        [
            json!([bytes, "FAILED", null]),
            json!([text, "KILLED", null])
        ]
    );

    // a retry of all puts back the one job a worker can read: the rows it
    // could not are left failed (apalis's fetch would end its worker's poll
    // loop on each, again at every fetch, for the jobs fetched with it)
    cure(&app).await;
    let retried = app
        .gql_as(&admin, "mutation { retryFailedJobs }", json!({}))
        .await;
    assert_eq!(data(&retried)["retryFailedJobs"], 1, "{retried}");
    for id in [&bytes, &text] {
        let alone = app
            .gql_as(
                &admin,
                "mutation($id: ID!) { retryJob(id: $id) }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(error_code(&alone), "BAD_USER_INPUT", "{alone}");
        assert_eq!(
            alone["errors"][0]["message"],
            format!(
                "job {} cannot be read by a worker (its id is no ULID, or its payload no \
                 post-order job's JSON): it stays failed; delete it",
                id.as_str().unwrap()
            )
        );
    }
    assert_eq!(held_back_orders(&app).await, Vec::<Value>::new());
    app.wait_for_jobs().await;
    assert_eq!(app.figures(&shop.poisoned).await["salesCount"], 1);
    assert_eq!(app.figure_mismatches().await, 0);
    assert_eq!(
        app.rows(
            "select idempotency_key, status, attempts from apalis.jobs
             where idempotency_key like 'by-hand-%' order by idempotency_key"
        )
        .await,
        [
            json!({ "idempotency_key": "by-hand-bytes", "status": "Failed", "attempts": 3 }),
            json!({ "idempotency_key": "by-hand-text", "status": "Killed", "attempts": 1 }),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_job_no_worker_can_read_is_killed_and_every_other_order_counted() {
    let app = TestApp::spawn_without_workers().await;
    let shop = shop(&app).await;
    assert_eq!(place_many(&app, &shop, 20, 20).await, None);
    // a row no code of Tally's writes, waiting first in the queue: apalis's
    // fetch cannot decode it, and ends the poll loop of the worker it hands
    // it to
    app.execute(&format!(
        "insert into apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at,
                                  idempotency_key)
         values (apalis.generate_ulid(), '{queue}', convert_to('not json', 'UTF8'), 'Pending', 0,
                 3, now() - interval '1 hour', 'by-hand')",
        queue = jobs::QUEUE
    ))
    .await;

    app.start_workers().await;
    app.wait_for_jobs().await;

    let (cola, pizza) = others_figures(20, 20);
    assert_eq!(app.figures(&shop.cola).await, cola);
    assert_eq!(app.figures(&shop.pizza).await, pizza);
    assert_eq!(app.figure_mismatches().await, 0);
    assert_eq!(
        app.count("select count(*) from apalis.jobs where status = 'Done'")
            .await,
        20
    );
    // the worker that ended on it was replaced, and its successor killed it
    assert_eq!(
        app.rows(
            "select status, last_result ->> 'Err' as last_error, lock_by
             from apalis.jobs where idempotency_key = 'by-hand'"
        )
        .await,
        [json!({
            "status": "Killed",
            "last_error": jobs::admin::UNREADABLE_REASON,
            "lock_by": null
        })]
    );
}
