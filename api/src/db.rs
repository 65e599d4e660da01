//! Reaching PostgreSQL: the pool, and the database created when missing.

use std::str::FromStr;

use sea_orm::{DatabaseConnection, SqlxPostgresConnector};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "cannot reach PostgreSQL at {target}: {cause}. Is it running? Start it \
         (for example `pg_ctlcluster 15 main start`) or point DATABASE_URL at a running server"
    )]
    Unreachable { target: String, cause: String },
    #[error("DATABASE_URL: {0}")]
    BadUrl(String),
    #[error("creating database {name:?} failed: {cause}")]
    CreateDatabase { name: String, cause: String },
    #[error("{0}")]
    Migrate(String),
}

/// Connects to the configured database, creating it first when it does not
/// exist, and returns the one pool that SeaORM and apalis share.
pub async fn connect(config: &Config) -> Result<PgPool, StartupError> {
    let options = PgConnectOptions::from_str(&config.database_url)
        .map_err(|e| StartupError::BadUrl(e.to_string()))?
        .application_name("tally")
        .log_statements(tracing::log::LevelFilter::Trace);
    create_database_if_missing(&options).await?;
    PgPoolOptions::new()
        .max_connections(config.db_pool_size)
        .acquire_timeout(config.db_acquire_timeout)
        .connect_with(options.clone())
        .await
        .map_err(|e| unreachable(&options, e))
}

pub fn orm(pool: &PgPool) -> DatabaseConnection {
    SqlxPostgresConnector::from_sqlx_postgres_pool(pool.clone())
}

/// Connects and brings the schema up to date: what `tally migrate` does, and
/// what every other command does before it starts.
pub async fn connect_and_migrate(config: &Config) -> Result<PgPool, StartupError> {
    let pool = connect(config).await?;
    migration::prepare(&pool).await.map_err(|e| {
        StartupError::Migrate(format!(
            "{e}: {}",
            std::error::Error::source(&e).map_or(String::new(), |s| s.to_string())
        ))
    })?;
    Ok(pool)
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
                return Err(StartupError::CreateDatabase {
                    name,
                    cause: e.to_string(),
                });
            }
        }
    }
    let _ = conn.close().await;
    Ok(())
}

fn unreachable(options: &PgConnectOptions, err: sqlx::Error) -> StartupError {
    StartupError::Unreachable {
        target: format!(
            "{}:{} (database {:?}, user {:?})",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("postgres"),
            options.get_username()
        ),
        cause: err.to_string(),
    }
}
