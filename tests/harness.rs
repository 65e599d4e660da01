//! A Tally for one test: its own freshly created and migrated database, the
//! real HTTP server on an ephemeral port, and real apalis workers. Dropping it
//! drops the database, so tests run in parallel and never share state.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jobs::fail_points::FailPoints;
use jobs::{Wakeup, WorkerPool, WorkerSettings};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};
use sqlx::PgPool;
use tally::config::{Config, Secret};
use tally::db::PoolKind;
use tally::live::LiveFigures;
use tally::money::Cents;
use tally::{AppState, db, http};
use tokio_util::sync::CancellationToken;

/// Where test databases are created; the server's own PostgreSQL by default.
fn maintenance_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

const DB_PREFIX: &str = "tally_test_";

pub struct TestApp {
    pub addr: SocketAddr,
    /// For assertions: a connection of the test's own, not counted.
    pub db: DatabaseConnection,
    pub pool: PgPool,
    /// The SQL the server's and workers' SeaORM connection ran, in order.
    pub statements: StatementLog,
    pub fail_points: FailPoints,
    state: AppState,
    /// The workers' connection (no statement timeout), logged like the requests'.
    workers_db: DatabaseConnection,
    settings: WorkerSettings,
    db_name: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
}

#[derive(Clone, Default)]
pub struct StatementLog(Arc<Mutex<Vec<String>>>);

impl StatementLog {
    /// The statements since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

pub struct Options {
    /// Worker pools started with the app (each like a separate `tally worker`).
    pub worker_pools: usize,
    pub settings: WorkerSettings,
    /// Adjusts the server's settings before it starts.
    pub configure: fn(&mut Config),
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
            configure: |_| {},
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
        // server and worker logs go to the test's captured output
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .with_test_writer()
            .try_init();
        sweep_abandoned_databases().await;
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let db_name = format!("{DB_PREFIX}{epoch}_{}", uuid::Uuid::new_v4().simple());
        let mut url = reqwest::Url::parse(&maintenance_url()).expect("TEST_DATABASE_URL");
        url.set_path(&db_name);

        let mut config = Config::from_lookup(|_| None).expect("default config");
        config.database_url = url.to_string();
        config.bind_addr = "127.0.0.1:0".parse().unwrap();
        config.jwt_secret = Secret::new("test-secret-test-secret-test-secret!");
        config.db_pool_size = 20;
        // tests share two cores: a request may wait a while for a connection
        // without that being what the test is about
        config.db_acquire_timeout = Duration::from_secs(30);
        config.workers = options.settings.clone();
        // every test client is 127.0.0.1: tests place hundreds of orders at
        // once and register many customers from it. The limits per address
        // are proved against the binary (api/tests/attacks.rs).
        config.http.auth.free_registrations = 10_000;
        config.http.connections.max_per_address = 10_000;
        // metrics tests read figures right after changing them
        config.http.metrics_refresh = Duration::ZERO;
        (options.configure)(&mut config);

        // creates the database, as `tally serve` would, and migrates it; the
        // workers' pool is sized for several worker pools at once
        let pool = db::connect_and_migrate(&config, PoolKind::Commands)
            .await
            .expect("test database");
        let requests = db::connect(&config, PoolKind::Requests)
            .await
            .expect("requests' pool");
        let statements = StatementLog::default();
        let logged = |pool: &PgPool| {
            let mut orm = db::orm(pool);
            let log = statements.clone();
            orm.set_metric_callback(move |info| {
                log.0.lock().unwrap().push(info.statement.sql.clone());
            });
            orm
        };
        let workers_db = logged(&pool);

        let shutdown = CancellationToken::new();
        // not logged: what subscribers read is no request's statement
        let live = LiveFigures::start(&config, db::orm(&requests), shutdown.clone())
            .await
            .expect("the subscriptions' listener");
        let state = AppState::new(logged(&requests), &config, Wakeup::default(), live);
        let listener = tokio::net::TcpListener::bind(config.bind_addr)
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let router = http::router(state.clone(), config.http.clone());
        tokio::spawn(http::serve(
            listener,
            router,
            config.http.connections.clone(),
            shutdown.clone(),
        ));

        let app = Self {
            addr,
            db: db::orm(&pool),
            pool,
            statements,
            fail_points: FailPoints::default(),
            state,
            workers_db,
            settings: options.settings,
            db_name,
            http: reqwest::Client::new(),
            shutdown,
        };
        for _ in 0..options.worker_pools {
            app.start_workers();
        }
        app
    }

    /// Starts one more pool of workers, as another `tally worker` process would.
    pub fn start_workers(&self) {
        let workers = WorkerPool {
            pool: self.pool.clone(),
            db: self.workers_db.clone(),
            settings: self.settings.clone(),
            wakeup: self.state.wakeup.clone(),
            fail_points: self.fail_points.clone(),
            metrics: self.state.metrics.jobs.clone(),
        };
        tokio::spawn(workers.run(self.shutdown.clone().cancelled_owned()));
    }

    /// Serves the operators' board (basic auth `user`/`password`) on an
    /// ephemeral port of its own; returns its base URL.
    pub async fn spawn_board(&self, user: &str, password: &str) -> String {
        let credentials = tally::config::BoardConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            username: user.to_owned(),
            password: Secret::new(password),
        };
        let router = tally::board::router(
            &self.pool,
            self.workers_db.clone(),
            self.state.wakeup.clone(),
            credentials,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = self.shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .unwrap();
        });
        format!("http://{addr}")
    }

    /// The workers' connection, whose statements are logged.
    pub fn counted_db(&self) -> &DatabaseConnection {
        &self.workers_db
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

    async fn gql_with(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .http
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        assert!(response.status().is_success(), "HTTP {}", response.status());
        response.json().await.expect("JSON body")
    }

    /// Posts `body` as the whole GraphQL request (say, with `extensions`);
    /// returns the response body.
    pub async fn gql_body(&self, body: Value) -> Value {
        let response = self
            .http
            .post(self.url("/graphql"))
            .json(&body)
            .send()
            .await
            .expect("request");
        assert!(response.status().is_success(), "HTTP {}", response.status());
        response.json().await.expect("JSON body")
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
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let busy = self
                .count(
                    "select count(*) from apalis.jobs where job_type = 'order_analytics'
                     and (status in ('Pending', 'Queued', 'Running')
                          or (status = 'Failed' and attempts < max_attempts))",
                )
                .await;
            if busy == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{busy} jobs still busy after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A single bigint from SQL run on the test's own connection.
    pub async fn count(&self, sql: &str) -> i64 {
        self.db
            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<i64>(0)
            .unwrap()
    }

    /// How many figures differ from a recount over the order lines, orders
    /// not counted yet included: 0 when all is exact.
    pub async fn figure_mismatches(&self) -> i64 {
        self.count(jobs::rebuild::FIGURE_MISMATCHES_SQL).await
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
        let name = self.db_name.clone();
        // Drop can't await: a thread of its own drops the database
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(drop_database(&name));
        })
        .join()
        .unwrap();
    }
}

async fn drop_database(name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(&maintenance_url()).await {
        let sql = format!("drop database if exists \"{name}\" with (force)");
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
    }
}

/// Drops test databases that crashed runs left behind (older than an hour).
async fn sweep_abandoned_databases() {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            use sqlx::Connection;
            let Ok(mut conn) = sqlx::PgConnection::connect(&maintenance_url()).await else {
                return;
            };
            let names: Vec<String> = sqlx::query_scalar(
                "select datname from pg_database where datname like 'tally\\_test\\_%'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
            let _ = conn.close().await;
            let hour_ago = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs()
                - 3600;
            for name in names {
                let epoch = name[DB_PREFIX.len()..]
                    .split('_')
                    .next()
                    .and_then(|e| e.parse::<u64>().ok());
                if epoch.is_some_and(|e| e < hour_ago) {
                    drop_database(&name).await;
                }
            }
        })
        .await;
}

/// The `data` of a response that must have no errors.
/// The id of the order a `placeOrder` answer carries.
pub fn placed_order_id(body: &Value) -> i64 {
    data(body)["placeOrder"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

pub fn data(body: &Value) -> &Value {
    assert!(body.get("errors").is_none(), "unexpected errors: {body}");
    &body["data"]
}

/// The `extensions.code` of the first error.
pub fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a code: {body}"))
}

pub fn error_message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}
