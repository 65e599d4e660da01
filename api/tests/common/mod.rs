//! What the tests of the `tally` binary share.

use std::process::Command;

use sqlx::Connection;

pub const MAINTENANCE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The binary with a clean environment: only PATH, so no setting of the
/// machine's leaks into a test.
pub fn tally() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tally"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

/// A database name of a test's own, dropped when the test ends, however it
/// ends. Tally creates the database itself.
pub struct Database(pub String);

impl Database {
    pub fn new(prefix: &str) -> Self {
        Self(format!("{prefix}_{}", uuid::Uuid::new_v4().simple()))
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.0)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.0.clone();
        // a thread of its own: Drop may run inside a tokio runtime or not
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(async move {
                    let mut conn = sqlx::PgConnection::connect(MAINTENANCE_URL).await.unwrap();
                    let sql = format!("drop database if exists \"{name}\" with (force)");
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await
                        .unwrap();
                });
        })
        .join()
        .unwrap();
    }
}
