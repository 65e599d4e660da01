//! What Tally's tests share, in process (`tests/`) and against the binary
//! (`api/tests/`): the client's side ([`client`]: GraphQL over HTTP, the
//! parts of an answer, figures read from the database), a shop to order
//! from ([`shop`]), and a database of
//! each test's own, named so that a later run
//! can tell when a killed run left it behind, and dropped when the test ends.
//! Either Tally creates it as it starts, as it would in production
//! ([`TestDatabase::new`]), or it is a copy of a database this process
//! migrated once ([`TestDatabase::migrated`]): copying is about four times
//! faster than migrating.

pub mod client;
pub mod shop;

use std::path::PathBuf;
use std::sync::{Once, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Connection;
use tally::db::private::PrivateServer;

/// What every test database's name starts with.
const PREFIX: &str = "tally_test_";

/// A test database left this long ago belongs to no running test.
const ABANDONED_AFTER_SECS: u64 = 3600;

/// The PostgreSQL server tests make their databases on: `TEST_DATABASE_URL`,
/// or, unset, the tests' private server ([`tests_data_dir`]), which Tally
/// runs from the installed server programs as it does for `tally serve`.
pub fn maintenance_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| tests_private_server().url("postgres"))
}

/// Where the tests' private PostgreSQL keeps its data: beside, not inside,
/// the user's own (`tally serve`'s); short, as a socket's path must be.
/// `scripts/test` stops the server when the run ends.
pub fn tests_data_dir() -> PathBuf {
    std::env::temp_dir().join("tally-test-postgres")
}

/// Started by the first test process that needs it, shared by the others.
/// Each process holds its share until it exits (a static is never dropped),
/// so the server outlives one test binary and serves the next at once.
fn tests_private_server() -> &'static PrivateServer {
    static SERVER: OnceLock<PrivateServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        // room for a test binary's apps, each with its request, worker and
        // listener pools, beside the harness's own connections; no
        // autovacuum, as on the CI machine's own server: a test's database
        // lives seconds, and a vacuum waking amid a latency test is noise
        PrivateServer::open(
            &tests_data_dir(),
            &[("max_connections", "200"), ("autovacuum", "off")],
        )
        .unwrap_or_else(|e| panic!("the tests' private PostgreSQL: {e}"))
    })
}

/// A database name of a test's own, dropped when the value is, however the
/// test ends (and by a later run, once abandoned, if the process was killed).
pub struct TestDatabase {
    name: String,
}

impl TestDatabase {
    /// A new name; `label` (a few letters: `app`, `cli`) says which tests
    /// made it, for whoever finds it in `\l`.
    pub fn new(label: &str) -> Self {
        Self {
            name: fresh_name(label),
        }
    }

    /// A new database, migrated: a copy of the one this process migrated
    /// first (its template, left for a later run to sweep).
    pub async fn migrated(label: &str) -> Self {
        let database = Self::new(label);
        let template = template().await;
        let mut conn = sqlx::PgConnection::connect(&maintenance_url())
            .await
            .expect("the maintenance database");
        let create = format!(
            "create database \"{}\" template \"{template}\"",
            database.name
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut conn)
            .await
            .expect("a copy of the template database");
        let _ = conn.close().await;
        database
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its URL on the maintenance server.
    pub fn url(&self) -> String {
        url_of(&self.name)
    }
}

fn url_of(database: &str) -> String {
    let mut url = reqwest::Url::parse(&maintenance_url()).expect("TEST_DATABASE_URL");
    url.set_path(database);
    url.to_string()
}

/// The database this process migrated once, for [`TestDatabase::migrated`]
/// to copy. Nothing stays connected to it: PostgreSQL copies only a
/// database no one is using.
async fn template() -> String {
    static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            // named as a test's database is, so the same sweep removes it
            let name = fresh_name("template");
            let mut conn = sqlx::PgConnection::connect(&maintenance_url())
                .await
                .expect("the maintenance database");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database \"{name}\"")))
                .execute(&mut conn)
                .await
                .expect("the template database");
            let _ = conn.close().await;
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&url_of(&name))
                .await
                .expect("the template database");
            migration::prepare(&pool)
                .await
                .expect("migrating the template database");
            pool.close().await;
            name
        })
        .await
        .clone()
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        on_a_runtime_of_its_own(async move { drop_database(&name).await });
    }
}

/// A database name no other test has: the time it was made (for the sweep),
/// `label`, and 12 hex digits of randomness.
fn fresh_name(label: &str) -> String {
    static SWEPT: Once = Once::new();
    SWEPT.call_once(|| on_a_runtime_of_its_own(sweep_abandoned()));
    // PostgreSQL keeps 63 bytes of a name
    let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let name = format!("{PREFIX}{}_{label}_{id}", now_secs());
    assert!(name.len() <= 63, "{name} is too long for PostgreSQL");
    name
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Runs `work` to its end on a thread and runtime of its own: callers may be
/// inside a tokio runtime or not (Drop, a test's first line).
fn on_a_runtime_of_its_own(work: impl Future<Output = ()> + Send + 'static) {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work)
    })
    .join()
    .unwrap();
}

/// Drops `name`, closing its connections; a failure is reported, not fatal:
/// a later run sweeps what is left.
async fn drop_database(name: &str) {
    let dropped = async {
        let mut conn = sqlx::PgConnection::connect(&maintenance_url()).await?;
        let sql = format!("drop database if exists \"{name}\" with (force)");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
        conn.close().await
    };
    if let Err(e) = dropped.await {
        eprintln!("could not drop the test database {name}: {e}");
    }
}

/// Drops the test databases that killed runs left behind.
async fn sweep_abandoned() {
    let Ok(mut conn) = sqlx::PgConnection::connect(&maintenance_url()).await else {
        return;
    };
    let names: Vec<String> =
        sqlx::query_scalar("select datname from pg_database where starts_with(datname, $1)")
            .bind(PREFIX)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    let _ = conn.close().await;
    let cutoff = now_secs() - ABANDONED_AFTER_SECS;
    for name in names {
        let made_at = name[PREFIX.len()..]
            .split('_')
            .next()
            .and_then(|secs| secs.parse::<u64>().ok());
        if made_at.is_some_and(|secs| secs < cutoff) {
            drop_database(&name).await;
        }
    }
}
