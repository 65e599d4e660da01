//! The `tally` binary as an operator runs it. These live beside the binary
//! (not in the workspace's `tests/` crate) because only here does cargo
//! build it for tests and say where it is (`CARGO_BIN_EXE_tally`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;

use tally_test_support::TestDatabase;

mod common;

/// Logs at info: some tests wait for a log line.
fn tally() -> Command {
    let mut command = common::tally();
    command.env("RUST_LOG", "info");
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
    assert!(
        lines[0].ends_with(
            "Is it running? Start it, point DATABASE_URL at a running server, or unset \
             DATABASE_URL for Tally to run a PostgreSQL of its own"
        ),
        "{stderr}"
    );
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
        "error: invalid configuration: WORKER_CONCURRENCY: must be a number from 0 to 256\n"
    );
}

#[test]
fn a_store_time_zone_postgresql_does_not_know_stops_start_up() {
    let database = TestDatabase::new("cli");
    let output = tally()
        .arg("serve")
        .env("DATABASE_URL", database.url())
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("STORE_TIME_ZONE", "Mars/Olympus_Mons")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr.lines().last(),
        Some(
            "error: STORE_TIME_ZONE \"Mars/Olympus_Mons\" is no time zone PostgreSQL knows \
             (select name from pg_timezone_names lists them), such as Europe/Paris or UTC"
        ),
        "{stderr}"
    );
}

/// Reads the child's log (stderr) until each marker has shown up; returns, for each,
/// what follows it up to the next space or slash (say, an address). The log
/// keeps being drained so the child never blocks on it.
fn logged_after(child: &mut Child, markers: &[&'static str]) -> Vec<String> {
    let log = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let markers = markers.to_vec();
    let count = markers.len();
    std::thread::spawn(move || {
        for line in BufReader::new(log).lines().map_while(Result::ok) {
            // a log read from a pipe is plain text: no terminal colour codes
            if line.contains('\x1b') {
                let _ = tx.send((usize::MAX, line.clone()));
            }
            for (n, marker) in markers.iter().enumerate() {
                if let Some(rest) = line.split(marker).nth(1) {
                    let value: String = rest
                        .chars()
                        .take_while(|c| *c != ' ' && *c != '/')
                        .collect();
                    let _ = tx.send((n, value));
                }
            }
        }
    });
    let mut found = vec![String::new(); count];
    for _ in 0..count {
        let (n, value) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the process logs what we wait for");
        assert_ne!(
            n,
            usize::MAX,
            "a terminal escape code in the log: {value:?}"
        );
        found[n] = value;
    }
    found
}

fn sigterm_and_wait(child: &mut Child) -> Option<i32> {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(
            Instant::now() < deadline,
            "still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_creates_its_database_serves_the_board_and_exits_zero_on_sigterm() {
    let database = TestDatabase::new("cli");
    let mut child = tally()
        .arg("serve")
        .env("DATABASE_URL", database.url())
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("BOARD_ADDR", "127.0.0.1:0")
        .env("BOARD_USERNAME", "ops")
        .env("BOARD_PASSWORD", "board-password")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addresses = logged_after(
        &mut child,
        &["GraphiQL at http://", "apalis board at http://"],
    );
    let (api, board) = (&addresses[0], &addresses[1]);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (ready, board_anonymous, board_signed_in) = runtime.block_on(async {
        let http = reqwest::Client::new();
        let ready = http
            .get(format!("http://{api}/readyz"))
            .send()
            .await
            .unwrap();
        let ready = (ready.status().as_u16(), ready.text().await.unwrap());
        let anonymous = http
            .get(format!("http://{board}/retry"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        let signed_in = http
            .get(format!("http://{board}/retry"))
            .basic_auth("ops", Some("board-password"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        (ready, anonymous, signed_in)
    });
    assert_eq!(ready, (200, "ready".to_owned()));
    assert_eq!((board_anonymous, board_signed_in), (401, 200));

    // the board's Logs page, open: the process's own log layer feeds it
    let (line, events) = runtime.block_on(async {
        let http = reqwest::Client::new();
        let mut events = http
            .get(format!("http://{board}/api/v1/events"))
            .basic_auth("ops", Some("board-password"))
            .send()
            .await
            .unwrap();
        let retried = http
            .post(format!("http://{board}/tally/api/jobs/retry-failed"))
            .basic_auth("ops", Some("board-password"))
            .header("origin", format!("http://{board}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(retried, r#"{"retried":[]}"#);
        let mut text = String::new();
        while !text.contains("put back in the queue from the board") {
            let chunk = tokio::time::timeout(Duration::from_secs(10), events.chunk())
                .await
                .unwrap_or_else(|_| panic!("no board line within 10 s: {text:?}"))
                .unwrap()
                .expect("the stream stays open");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        (text, events)
    });
    assert!(
        line.contains(r#""span":{"attempt":0,"task_id":"tally::board","name":"tally::board"}"#)
            && line.contains(r#""fields":{"message":"failed jobs put back in the queue from the board operator=ops job_ids=[]"}"#),
        "{line}"
    );

    // a board tab still open does not hold the shutdown
    assert_eq!(sigterm_and_wait(&mut child), Some(0));
    drop(events);
}

#[test]
fn without_credentials_the_board_is_off_and_the_log_says_so() {
    let database = TestDatabase::new("cli");
    let mut child = tally()
        .args(["worker", "--board"])
        .env("DATABASE_URL", database.url())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let said = logged_after(&mut child, &["the apalis board is off: "]);
    assert_eq!(said, vec!["set".to_owned()]);
    assert_eq!(sigterm_and_wait(&mut child), Some(0));
}

#[test]
fn the_jobs_commands_list_and_retry_failed_jobs() {
    let database = TestDatabase::new("cli");
    let url = database.url();
    let run = |args: &[&str]| {
        let output = tally()
            .args(args)
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(run(&["migrate"]), "database is up to date\n");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query(
            r#"insert into apalis.jobs (id, job_type, job, status, attempts, max_attempts, last_result)
               values ('01JFA0000000000000000000AB', $1, $2,
                       'Failed', 5, 5, '{"Err": "database error: boom"}')"#,
        )
        // the arguments as apalis's JsonCodec writes them
        .bind(jobs::QUEUE)
        .bind(
            serde_json::to_vec(&jobs::PostOrderJob {
                order_id: 1,
                order_number: "ORD-00000001".to_owned(),
            })
            .unwrap(),
        )
        .execute(&mut conn)
        .await
        .unwrap();
    });

    let listed = run(&["jobs", "list", "--status", "failed"]);
    let rows: Vec<&str> = listed.lines().collect();
    assert_eq!(rows.len(), 2, "{listed}");
    for expected in [
        "01JFA0000000000000000000AB",
        "Failed",
        "5/5",
        "ORD-00000001",
        "database error: boom",
    ] {
        assert!(
            rows[1].contains(expected),
            "{expected:?} missing from {listed}"
        );
    }
    assert_eq!(
        run(&["jobs", "list", "--status", "done"]).lines().count(),
        1
    );

    assert_eq!(
        run(&["jobs", "retry", "--all-failed"]),
        "1 failed job(s) pending again\n"
    );
    let pending = run(&["jobs", "list", "--status", "pending"]);
    assert!(
        pending.contains("01JFA0000000000000000000AB") && pending.contains("0/5"),
        "{pending}"
    );

    let missing = tally()
        .args(["jobs", "retry", "01JFA0000000000000000000AB"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8(missing.stderr).unwrap();
    assert_eq!(
        stderr.lines().last(),
        Some("error: no failed job 01JFA0000000000000000000AB"),
        "{stderr}"
    );
    assert_eq!(
        run(&["rebuild-analytics"]),
        "rebuilt: 0 orders newly counted, 0 products changed, 0 customer product rows, 0 customer category rows\n"
    );
}

#[test]
fn every_graphql_operation_is_logged_with_its_name_and_duration() {
    let database = TestDatabase::new("cli");
    let mut child = tally()
        .arg("serve")
        .env("DATABASE_URL", database.url())
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<serde_json::Value>();
    let log = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(log).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str(&line) {
                let _ = tx.send(event);
            }
        }
    });
    let next_matching = |wanted: &dyn Fn(&serde_json::Value) -> bool| loop {
        let event = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the log line we wait for");
        if wanted(&event) {
            return event;
        }
    };
    let listening = next_matching(&|e| {
        e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Tally is listening"))
    });
    let api = listening["message"].as_str().unwrap()
        ["Tally is listening: GraphiQL at http://".len()..]
        .trim_end_matches("/graphql")
        .to_owned();

    tokio::runtime::Runtime::new().unwrap().block_on(async {
        reqwest::Client::new()
            .post(format!("http://{api}/graphql"))
            .json(&serde_json::json!({
                "query": "mutation SignUp($input: RegisterInput!) { register(input: $input) { token } }",
                "variables": { "input": { "name": "Ann", "email": "ann@log.test", "password": "password-1" } },
            }))
            .send()
            .await
            .unwrap();
    });

    // what the resolver logs carries the operation
    let registered = next_matching(&|e| e["message"] == "registered a customer");
    // and no personal data
    assert!(
        !registered.to_string().contains("ann@log.test"),
        "{registered}"
    );
    let spans = registered["spans"].as_array().unwrap();
    assert_eq!(
        spans[0],
        serde_json::json!({ "name": "graphql", "operation": "SignUp" }),
        "{registered}"
    );
    // and the operation itself is logged once done, with its duration
    let done = next_matching(&|e| e["message"] == "graphql operation");
    assert_eq!(done["operation"], "SignUp");
    assert_eq!(done["errors"], 0);
    assert!(
        done["duration_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{done}"
    );
    assert_eq!(sigterm_and_wait(&mut child), Some(0));
}
