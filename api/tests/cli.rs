//! The `tally` binary as an operator runs it. These live beside the binary
//! (not in the workspace's `tests/` crate) because only here does cargo
//! build it for tests and say where it is (`CARGO_BIN_EXE_tally`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;

const MAINTENANCE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn tally() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tally"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info");
    command
}

#[test]
fn an_unreachable_database_stops_start_up_with_one_clear_line() {
    let output = tally()
        .arg("serve")
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/tally")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with(
            "error: cannot reach PostgreSQL at 127.0.0.1:1 (database \"tally\", user \"postgres\")"
        ),
        "{stderr}"
    );
    assert!(lines[0].contains("pg_ctlcluster"), "{stderr}");
}

#[test]
fn a_bad_setting_names_its_variable() {
    let output = tally()
        .arg("serve")
        .env("WORKER_CONCURRENCY", "lots")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "error: invalid configuration: WORKER_CONCURRENCY: must be a number from 1 to 256\n"
    );
}

/// Drops the database when the test ends, however it ends.
struct Database(String);

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.0.clone();
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
    }
}

/// Waits for the log line that gives the address, and returns it.
fn listening_address(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("GraphiQL at http://").nth(1) {
                let _ = tx.send(rest.trim_end_matches("/graphql").to_owned());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the server logs its address")
}

#[test]
fn serve_creates_its_database_and_exits_zero_on_sigterm() {
    let name = format!("tally_cli_{}", uuid::Uuid::new_v4().simple());
    let _cleanup = Database(name.clone());
    let mut child = tally()
        .arg("serve")
        .env(
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{name}"),
        )
        .env("BIND_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = listening_address(&mut child);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ready = runtime.block_on(async {
        let response = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    });
    assert_eq!(ready, (200, "ready".to_owned()));

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}
