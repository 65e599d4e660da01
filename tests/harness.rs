//! A Tally for one test: its own freshly created and migrated database, the
//! real HTTP server on an ephemeral port, and real apalis workers. Dropping it
//! drops the database, so tests run in parallel and never share state.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobs::WorkerSettings;
use jobs::fail_points::FailPoints;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};
use sqlx::PgPool;
use tally::config::{BoardConfig, Config, Rate, Secret};
use tally::db;
use tally::domain::orders::placer::PlacerHooks;
use tally::money::Cents;
use tally::startup::{self, Hooks, Role, Workers};
use tally_test_support::{TestDatabase, client};
// the answers' readers every test module takes from here
pub use tally_test_support::client::{data, error_code, error_message, placed_order_id};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::{EnvFilter, Layer};

pub struct TestApp {
    pub addr: SocketAddr,
    /// For assertions: a connection of the test's own, not counted.
    pub db: DatabaseConnection,
    pub pool: PgPool,
    /// The SQL the server's and workers' SeaORM connections ran, in order.
    pub statements: StatementLog,
    pub fail_points: FailPoints,
    /// The test's own connection, logged like the server's and the workers'.
    counted_db: DatabaseConnection,
    workers: Workers,
    board: Option<SocketAddr>,
    http: reqwest::Client,
    shutdown: CancellationToken,
    /// Dropped after the app is stopped (fields drop after `Drop::drop`).
    _database: TestDatabase,
}

#[derive(Clone, Default)]
pub struct StatementLog(Arc<Mutex<Vec<(String, usize)>>>);

impl StatementLog {
    /// The statements since the last call.
    pub fn take(&self) -> Vec<String> {
        self.take_with_keys()
            .into_iter()
            .map(|(sql, _)| sql)
            .collect()
    }

    /// The statements since the last call, each with the number of values
    /// bound to it, an array's counted by its items: the keys a batch
    /// (`= any($1)`) loads.
    pub fn take_with_keys(&self) -> Vec<(String, usize)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    fn push(&self, statement: &Statement) {
        let keys = statement.values.as_ref().map_or(0, |values| {
            values
                .0
                .iter()
                .map(|value| match value {
                    sea_orm::Value::Array(_, Some(items)) => items.len(),
                    _ => 1,
                })
                .sum()
        });
        self.0.lock().unwrap().push((statement.sql.clone(), keys));
    }
}

pub struct Options {
    /// Worker pools started with the app: its own, then each further one
    /// as a separate `tally worker` would run it.
    pub worker_pools: usize,
    pub settings: WorkerSettings,
    /// The board's user name and password, to serve it.
    pub board: Option<(&'static str, &'static str)>,
    /// Adjusts the server's settings before it starts.
    pub configure: fn(&mut Config),
    /// Holds or breaks the coalescing of placeOrder requests; the test keeps
    /// a clone to arm them.
    pub placer: PlacerHooks,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            worker_pools: 1,
            settings: WorkerSettings {
                concurrency: 2,
                max_attempts: 3,
                batch_size: 100,
                poll_interval: Duration::from_millis(50),
                heartbeat_interval: Duration::from_secs(1),
                missed_heartbeats: 10,
                shutdown_timeout: Duration::from_secs(2),
                // off unless a test turns it on: with it, whether a job or a
                // sweep counts an order is a race, and tests assert exact runs
                sweep_on_wakeup: false,
            },
            board: None,
            configure: |_| {},
            placer: PlacerHooks::default(),
        }
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    /// An app whose jobs wait until [`TestApp::start_workers`].
    pub async fn spawn_without_workers() -> Self {
        Self::spawn_with(Options {
            worker_pools: 0,
            ..Options::default()
        })
        .await
    }

    pub async fn spawn_with(options: Options) -> Self {
        // server and worker logs go to the test's captured output, and to
        // the board's Logs page as `tally serve` sends them there
        tally::telemetry::install(
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(EnvFilter::new(
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
                )),
            tally::config::DEFAULT_BOARD_LOG.parse().unwrap(),
        );
        let database = TestDatabase::migrated("app").await;
        let mut config = Config::from_lookup(|_| None).expect("default config");
        config.database = tally::config::Database::Url(database.url());
        config.bind_addr = "127.0.0.1:0".parse().unwrap();
        config.jwt_secret = Some(Secret::new("test-secret-test-secret-test-secret!"));
        config.db_pool_size = 20;
        // tests share two cores: a request may wait a while for a connection
        // without that being what the test is about
        config.db_acquire_timeout = Duration::from_secs(30);
        config.workers = options.settings.clone();
        // every test client is 127.0.0.1: tests place hundreds of orders at
        // once and register many customers from it. The limits per address
        // are proved against the binary (api/tests/attacks.rs).
        config.http.sign_in.registrations_per_address = Rate {
            burst: 10_000,
            period: Duration::from_secs(3600),
        };
        config.http.connections.max_per_address = 10_000;
        // metrics tests read figures right after changing them
        config.http.metrics_refresh = Duration::ZERO;
        config.board = options.board.map(|(username, password)| BoardConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            username: username.to_owned(),
            password: Secret::new(password),
        });
        (options.configure)(&mut config);

        let statements = StatementLog::default();
        let fail_points = FailPoints::default();
        let log = statements.clone();
        let hooks = Hooks {
            on_statement: Some(Arc::new(move |sql| log.push(sql))),
            fail_points: fail_points.clone(),
            hold_workers: options.worker_pools == 0,
            placer: options.placer.clone(),
        };
        // migrates the database as `tally serve` would: the copy of the
        // template is up to date already
        let shutdown = CancellationToken::new();
        let app = startup::build_with(config.clone(), Role::Serve, shutdown.clone(), hooks)
            .await
            .expect("the app");
        let addr = app.addr().expect("the API's address");
        let board = app.board_addr();
        let workers = app.workers();
        tokio::spawn(async move { app.run_until_stopped().await.expect("the app's run") });

        let pool = db::connect(&config, db::PoolKind::Commands)
            .await
            .expect("the test's own pool");
        let mut counted_db = db::orm(&pool);
        let log = statements.clone();
        counted_db.set_metric_callback(move |info| log.push(info.statement));
        let app = Self {
            addr,
            db: db::orm(&pool),
            pool,
            statements,
            fail_points,
            counted_db,
            workers,
            board,
            http: reqwest::Client::new(),
            shutdown,
            _database: database,
        };
        for _ in 1..options.worker_pools {
            app.start_workers().await;
        }
        app
    }

    /// Starts one more pool of workers, as another `tally worker` process would.
    pub async fn start_workers(&self) {
        let workers = self.workers.pool().await.expect("a worker pool");
        tokio::spawn(workers.run(self.shutdown.clone().cancelled_owned()));
    }

    /// The board's base URL (with `Options::board`).
    pub fn board_url(&self) -> String {
        format!("http://{}", self.board.expect("a test app with a board"))
    }

    /// A connection whose statements are logged with the app's.
    pub fn counted_db(&self) -> &DatabaseConnection {
        &self.counted_db
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Runs a GraphQL operation anonymously; returns the whole response body.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.gql_with(None, query, variables).await
    }

    pub async fn gql_as(&self, token: &str, query: &str, variables: Value) -> Value {
        self.gql_with(Some(token), query, variables).await
    }

    /// [`Self::gql_as`] from 127.0.0.`host`: another client machine, as far
    /// as limits kept per address go.
    pub async fn gql_as_from(&self, host: u8, token: &str, query: &str, variables: Value) -> Value {
        let body = client::graphql_body(query, variables);
        self.answered(&client::client_from(host), Some(token), &body)
            .await
    }

    /// An anonymous GraphQL POST from 127.0.0.`host`, whatever its status:
    /// the status and the body.
    pub async fn post_from(&self, host: u8, query: &str, variables: Value) -> (u16, Value) {
        let body = client::graphql_body(query, variables);
        client::post_graphql(
            &client::client_from(host),
            &self.url("/graphql"),
            None,
            &body,
        )
        .await
    }

    async fn gql_with(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let body = client::graphql_body(query, variables);
        self.answered(&self.http, token, &body).await
    }

    /// Posts `body` as the whole GraphQL request (say, with `extensions`);
    /// returns the response body.
    pub async fn gql_body(&self, body: Value) -> Value {
        self.answered(&self.http, None, &body).await
    }

    /// The body of a GraphQL POST answered with a success status.
    async fn answered(&self, http: &reqwest::Client, token: Option<&str>, body: &Value) -> Value {
        let (status, body) = client::post_graphql(http, &self.url("/graphql"), token, body).await;
        assert!((200..300).contains(&status), "HTTP {status}: {body}");
        body
    }

    /// Registers a customer; returns their token and id.
    pub async fn register_customer(&self, name: &str) -> (String, i64) {
        let email = format!("{}@example.com", name.to_lowercase().replace(' ', "."));
        let body = self
            .gql(
                "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }",
                json!({ "input": { "name": name, "email": email, "password": "correct horse" } }),
            )
            .await;
        let payload = data(&body)["register"].clone();
        (
            payload["token"].as_str().unwrap().to_owned(),
            payload["user"]["id"].as_str().unwrap().parse().unwrap(),
        )
    }

    /// Creates an admin through the same path as `tally create-admin`, then logs in.
    pub async fn admin_token(&self) -> String {
        tally::domain::users::ensure_admin(&self.db, "admin@example.com", "admin password")
            .await
            .map_err(|e| e.message())
            .expect("admin");
        self.login("admin@example.com", "admin password").await
    }

    /// Logs in; returns the token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let body = self
            .gql(
                "mutation($email: String!, $password: String!) { login(input: {email: $email, password: $password}) { token } }",
                json!({ "email": email, "password": password }),
            )
            .await;
        data(&body)["login"]["token"].as_str().unwrap().to_owned()
    }

    /// Creates a product; `variants` are (name, price) pairs. Returns the product JSON
    /// with `id` and `variants { id name price }`.
    pub async fn create_product(
        &self,
        admin: &str,
        name: &str,
        category: &str,
        price: &str,
        variants: &[(&str, &str)],
    ) -> Value {
        let variants: Vec<Value> = variants
            .iter()
            .map(|(n, p)| json!({ "name": n, "price": p }))
            .collect();
        let body = self
            .gql_as(
                admin,
                "mutation($input: CreateProductInput!) { createProduct(input: $input) { id name variants { id name price } } }",
                json!({ "input": { "name": name, "category": category, "price": price, "variants": variants } }),
            )
            .await;
        data(&body)["createProduct"].clone()
    }

    /// Places an order of `(productId, variantId, quantity)` items; returns the response.
    pub async fn place_order(&self, token: &str, items: &[(&str, Option<&str>, i32)]) -> Value {
        let items: Vec<Value> = items
            .iter()
            .map(|(p, v, q)| json!({ "productId": p, "variantId": v, "quantity": q }))
            .collect();
        self.gql_as(
            token,
            "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id orderNumber total analyticsStatus } }",
            json!({ "input": { "items": items } }),
        )
        .await
    }

    /// Creates products (name, category, price in cents) as `admin`; returns
    /// their ids.
    pub async fn create_products(&self, admin: &str, specs: &[(&str, &str, i64)]) -> Vec<String> {
        let mut ids = Vec::new();
        for (name, category, cents) in specs {
            let price = Cents(*cents).to_string();
            let product = self
                .create_product(admin, name, category, &price, &[])
                .await;
            ids.push(product["id"].as_str().unwrap().to_owned());
        }
        ids
    }

    /// A product's `salesCount`, `totalRevenue` and `rating`.
    pub async fn figures(&self, product_id: &str) -> Value {
        let body = self
            .gql(
                "query($id: ID!) { product(id: $id) { salesCount totalRevenue rating } }",
                json!({ "id": product_id }),
            )
            .await;
        data(&body)["product"].clone()
    }

    /// The `/metrics` page as text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until no post-order job is waiting, running or due for a retry.
    pub async fn wait_for_jobs(&self) {
        client::wait_until_settled(&self.pool, Duration::from_secs(60)).await;
    }

    /// A single bigint from SQL run on the test's own connection.
    pub async fn count(&self, sql: &str) -> i64 {
        client::count(&self.pool, sql).await
    }

    /// How many figures differ from a recount over the order lines, orders
    /// not counted yet included: 0 when all is exact.
    pub async fn figure_mismatches(&self) -> i64 {
        client::figure_mismatches(&self.pool).await
    }

    /// Runs a statement on the test's own connection; returns the rows it touched.
    pub async fn execute(&self, sql: &str) -> u64 {
        self.db
            .execute_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .unwrap()
            .rows_affected()
    }

    /// Rows of SQL as JSON objects, for exact comparisons.
    pub async fn rows(&self, sql: &str) -> Vec<Value> {
        let wrapped = format!("select coalesce(json_agg(t), '[]'::json) from ({sql}) t");
        let row = self
            .db
            .query_one_raw(Statement::from_string(DbBackend::Postgres, wrapped))
            .await
            .unwrap()
            .unwrap();
        let value: Value = row.try_get_by_index(0).unwrap();
        value.as_array().unwrap().clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
