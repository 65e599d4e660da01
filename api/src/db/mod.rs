//! Reaching PostgreSQL: the pool, the database created when missing, and
//! the private server Tally runs when no `DATABASE_URL` names one.

pub mod private;
mod programs;

use std::str::FromStr;

use sea_orm::sea_query::extension::postgres::PgFunc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, DatabaseConnection, SqlxPostgresConnector};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{Connection, PgPool};

use crate::config::{Config, Database, Secret};

/// Why a process could not get its database ready. The causes are kept as
/// they came (not flattened into text); sqlx's own messages already hold
/// their inner error, so they are shown once, in the line, rather than
/// again as a source.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "cannot reach PostgreSQL at {target}: {cause}. Is it running? Start it, point \
         DATABASE_URL at a running server, or unset DATABASE_URL for Tally to run a \
         PostgreSQL of its own"
    )]
    Unreachable { target: String, cause: sqlx::Error },
    #[error(transparent)]
    Private(#[from] private::PrivateError),
    #[error("DATABASE_URL is not a PostgreSQL URL: {0}")]
    BadUrl(sqlx::Error),
    #[error("creating database {name:?} failed: {cause}")]
    CreateDatabase { name: String, cause: sqlx::Error },
    /// Its source chain reads down to the statement that failed.
    #[error(transparent)]
    Migrate(#[from] migration::Error),
}

/// What a pool's connections are for, which decides its size and limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// One-off commands (`migrate`, `rebuild-analytics`, …): no time limit.
    Commands,
    /// GraphQL requests: `DATABASE_POOL_SIZE` connections whose statements
    /// stop at `DATABASE_STATEMENT_TIMEOUT_MS`, and wait for a row lock at
    /// most `DATABASE_LOCK_TIMEOUT_MS`, so a slow or blocked statement costs
    /// a client an error it may retry, not an unbounded wait.
    Requests,
    /// Post-order workers, the board and retention: a pool of their own, so a
    /// flood of requests never takes the connections that keep figures up to
    /// date; no time limit, as a big batch may legitimately take a while.
    Workers,
    /// The LISTEN connection that feeds this process's subscriptions.
    Listener,
    /// `rebuildAnalytics` called through the API: two connections (the
    /// second only to find the first busy), connected when first used, with
    /// no time limit, so a long rebuild runs to its end whatever becomes of
    /// the request that asked for it.
    Rebuilds,
}

/// Connects a pool to the configured database. SeaORM and apalis share a
/// pool. The database must exist: [`connect_and_migrate`], which every
/// command runs first, creates it.
pub async fn connect(config: &Config, kind: PoolKind) -> Result<PgPool, StartupError> {
    let mut options = connect_options(&url(&config.database))?
        .application_name(match kind {
            PoolKind::Commands => "tally",
            PoolKind::Requests => "tally-requests",
            PoolKind::Workers => "tally-workers",
            PoolKind::Listener => "tally-listener",
            PoolKind::Rebuilds => "tally-rebuilds",
        })
        .log_statements(tracing::log::LevelFilter::Trace);
    let max_connections = match kind {
        PoolKind::Commands | PoolKind::Requests => config.db_pool_size,
        // one per running job, and the fetch, heartbeat, sweep, board and
        // retention beside them
        PoolKind::Workers => config.workers.concurrency as u32 + 4,
        PoolKind::Listener => 1,
        PoolKind::Rebuilds => 2,
    };
    if kind == PoolKind::Requests {
        let statements = config.db_statement_timeout.as_millis().to_string();
        let locks = config.db_lock_timeout.as_millis().to_string();
        options = options.options([
            ("statement_timeout", statements.as_str()),
            ("lock_timeout", locks.as_str()),
        ]);
    }
    if kind == PoolKind::Rebuilds {
        return Ok(PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(config.db_acquire_timeout)
            .connect_lazy_with(options));
    }
    PgPoolOptions::new()
        .max_connections(max_connections)
        // sqlx pings a pooled connection before every use by default: one
        // more round trip per statement, which doubled the requests' trips
        // to PostgreSQL. Without it, a connection that died while idle (say,
        // PostgreSQL restarted) fails its next statement once, answered
        // SERVICE_UNAVAILABLE, and leaves the pool.
        .test_before_acquire(kind != PoolKind::Requests)
        .acquire_timeout(config.db_acquire_timeout)
        .connect_with(options.clone())
        .await
        .map_err(|e| unreachable(&options, e))
}

/// The URL of the configured database. The private server's is its
/// socket's; [`private::PrivateServer::open`] must have started it.
pub fn url(database: &Database) -> String {
    match database {
        Database::Url(url) => url.clone(),
        Database::Private { data_dir } => private::url(data_dir, "tally"),
    }
}

/// What the log says Tally uses: the private server's directory, or the
/// server's address and database, never a password.
pub fn describe(database: &Database) -> String {
    match database {
        Database::Private { data_dir } => {
            format!("a private PostgreSQL in {}", data_dir.display())
        }
        Database::Url(url) => match connect_options(url) {
            Ok(options) => target(&options),
            Err(_) => "an unreadable DATABASE_URL".to_owned(),
        },
    }
}

/// `url`'s options. On the same machine (a loopback address or a socket)
/// TLS protects nothing and costs a handshake per connection and work on
/// every round trip, so it is off there unless the URL or `PGSSLMODE` asks
/// for a mode; elsewhere sqlx's default, `prefer`, stands.
fn connect_options(url: &str) -> Result<PgConnectOptions, StartupError> {
    let options = PgConnectOptions::from_str(url).map_err(StartupError::BadUrl)?;
    let asks_for_a_mode = url.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|pair| pair.starts_with("sslmode=") || pair.starts_with("ssl-mode="))
    }) || std::env::var_os("PGSSLMODE").is_some();
    let on_this_machine = options.get_socket().is_some()
        || options.get_host() == "localhost"
        || options
            .get_host()
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    Ok(match on_this_machine && !asks_for_a_mode {
        true => options.ssl_mode(PgSslMode::Disable),
        false => options,
    })
}

pub fn orm(pool: &PgPool) -> DatabaseConnection {
    SqlxPostgresConnector::from_sqlx_postgres_pool(pool.clone())
}

/// Connects and brings the schema up to date: what `tally migrate` does, and
/// what every other command does before it starts.
pub async fn connect_and_migrate(config: &Config, kind: PoolKind) -> Result<PgPool, StartupError> {
    create_database_if_missing(&connect_options(&url(&config.database))?).await?;
    let pool = connect(config, kind).await?;
    migration::prepare(&pool).await?;
    tracing::info!(database = %describe(&config.database), "using the database");
    Ok(pool)
}

/// The secret that signs tokens when `JWT_SECRET` is unset: made by the
/// first process that needs it and kept in the database, so every replica
/// signs and accepts the same tokens, across restarts. Never logged.
pub async fn shared_token_secret(db: &DatabaseConnection) -> anyhow::Result<Secret> {
    use sea_orm::{ConnectionTrait, Statement};
    // two statements: a process that lost the race to insert must read
    // the winner's row with a snapshot taken after it committed
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "insert into server_secrets (name, value) values ('token', $1) on conflict (name) do nothing",
        [Secret::random().expose().into()],
    ))
    .await?;
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "select value from server_secrets where name = 'token'",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("the token secret is missing from server_secrets"))?;
    Ok(Secret::new(row.try_get::<String>("", "value")?))
}

/// Refuses a `STORE_TIME_ZONE` PostgreSQL does not know: the reports and
/// the rollup compute days in it there. Case is PostgreSQL's own
/// (`europe/paris` is the same zone), so a known name is taken as written.
pub async fn check_time_zone(db: &DatabaseConnection, name: &str) -> anyhow::Result<()> {
    use sea_orm::{ConnectionTrait, Statement};
    // the default, in every PostgreSQL's list: listing the zones reads
    // every zone file (40 ms), at each start of each process and test app
    if name == "UTC" {
        return Ok(());
    }
    let known = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "select exists (select from pg_timezone_names where lower(name) = lower($1)) as known",
            [name.into()],
        ))
        .await?
        .map(|row| row.try_get::<bool>("", "known"))
        .transpose()?;
    if known != Some(true) {
        anyhow::bail!(
            "STORE_TIME_ZONE {name:?} is no time zone PostgreSQL knows \
             (select name from pg_timezone_names lists them), such as Europe/Paris or UTC"
        );
    }
    Ok(())
}

async fn create_database_if_missing(options: &PgConnectOptions) -> Result<(), StartupError> {
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let maintenance = options.clone().database("postgres");
    let mut conn = sqlx::PgConnection::connect_with(&maintenance)
        .await
        .map_err(|e| unreachable(options, e))?;
    let exists: bool =
        sqlx::query_scalar("select exists (select from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| unreachable(options, e))?;
    if !exists {
        // a quoted identifier, with its quotes doubled: nothing else can get in
        let create = format!("create database \"{}\"", name.replace('"', "\"\""));
        match sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut conn)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created the database"),
            // another process created it between our check and our create
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => {
                return Err(StartupError::CreateDatabase { name, cause: e });
            }
        }
    }
    let _ = conn.close().await;
    Ok(())
}

fn unreachable(options: &PgConnectOptions, err: sqlx::Error) -> StartupError {
    StartupError::Unreachable {
        target: target(options),
        cause: err,
    }
}

fn target(options: &PgConnectOptions) -> String {
    let server = match options.get_socket() {
        Some(dir) => format!("the socket in {}", dir.display()),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    format!(
        "{server} (database {:?}, user {:?})",
        options.get_database().unwrap_or("postgres"),
        options.get_username()
    )
}

/// `column = any($1)`, the ids as one array: one statement text whatever
/// their number, so each connection prepares it once and PostgreSQL plans it
/// once. An `in (...)` list is a statement of its own for every length,
/// parsed and planned again, and pushes the others out of the connection's
/// statement cache.
pub fn any_of<C: ColumnTrait>(column: C, ids: &[i64]) -> Expr {
    Expr::col(column).eq(PgFunc::any(Expr::val(ids.to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mode's name (PgSslMode has no PartialEq).
    fn mode(url: &str) -> String {
        format!("{:?}", connect_options(url).unwrap().get_ssl_mode())
    }

    #[test]
    fn the_log_names_the_database_and_never_its_password() {
        let named = "postgres://tally:hunter2@db.example.com:5433/shop";
        assert_eq!(
            describe(&Database::Url(named.to_owned())),
            r#"db.example.com:5433 (database "shop", user "tally")"#
        );
        let private = Database::Private {
            data_dir: "/var/lib/tally".into(),
        };
        assert_eq!(describe(&private), "a private PostgreSQL in /var/lib/tally");
        assert_eq!(
            url(&private),
            "postgres://postgres@%2Fvar%2Flib%2Ftally%2Fpostgres/tally"
        );
    }

    #[test]
    fn this_machine_connects_without_tls_unless_the_url_asks() {
        // PGSSLMODE, when the environment sets it, is a request too
        let default = match std::env::var_os("PGSSLMODE") {
            Some(_) => mode("postgres://db.example.com/tally"),
            None => "Disable".to_owned(),
        };
        for local in [
            "postgres://postgres@127.0.0.1:5432/tally",
            "postgres://postgres@127.0.0.2/tally",
            "postgres://postgres@localhost/tally",
            "postgres://postgres@[::1]:5432/tally",
            "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/tally",
        ] {
            assert_eq!(mode(local), default, "{local}");
        }
        assert_eq!(
            mode("postgres://postgres@127.0.0.1/tally?sslmode=require"),
            "Require"
        );
        assert_eq!(
            mode("postgres://postgres@127.0.0.1/tally?application_name=x&sslmode=prefer"),
            "Prefer"
        );
        if std::env::var_os("PGSSLMODE").is_none() {
            assert_eq!(mode("postgres://tally@db.example.com/tally"), "Prefer");
            assert_eq!(mode("postgres://tally@10.0.0.5/tally"), "Prefer");
        }
    }
}
