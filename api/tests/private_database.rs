//! `tally` with `DATABASE_URL` unset, as on a newcomer's machine: it runs a
//! PostgreSQL of its own from the installed server programs, in
//! `TALLY_DATA_DIR`, reachable through a socket in that directory only.
//! Processes share it, the last to stop stops it, the next start finds the
//! data; what it cannot use it names and leaves as it was. The machine's own
//! PostgreSQL is neither used nor touched.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Processes, free_port, sigterm, wait_until_ready};

mod common;

/// A data directory of the test's own. As root, Tally runs PostgreSQL as an
/// unprivileged account, which must be able to pass through the parent.
struct DataDir {
    parent: PathBuf,
    dir: PathBuf,
}

impl DataDir {
    fn new() -> Self {
        let parent =
            std::env::temp_dir().join(format!("tally-private-{}", uuid::Uuid::new_v4().simple()));
        std::fs::DirBuilder::new()
            .mode(0o711)
            .create(&parent)
            .unwrap();
        let dir = parent.join("data");
        Self { parent, dir }
    }

    fn cluster(&self) -> PathBuf {
        self.dir.join("postgres")
    }

    /// `tally <args>` with no DATABASE_URL.
    fn tally(&self, args: &[&str]) -> Command {
        let mut command = common::tally();
        command
            .args(args)
            .env("TALLY_DATA_DIR", &self.dir)
            .env("RUST_LOG", "info");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.tally(args).output().unwrap()
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        // a failed test may have left the server running
        let _ = self.run(&["database", "stop"]);
        let _ = std::fs::remove_dir_all(&self.parent);
    }
}

/// A process's log lines as they come (the log is drained on a thread, so
/// the process never blocks on it).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn of(child: &mut Child) -> Self {
        let log = Self::default();
        let lines = log.0.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        log
    }

    fn has(&self, text: &str) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(text))
    }
}

fn serve(data: &DataDir, addr: &str) -> (Child, Log) {
    let mut child = data
        .tally(&["serve"])
        .env("BIND_ADDR", addr)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Log::of(&mut child);
    (child, log)
}

async fn gql(addr: &str, token: Option<&str>, query: &str, variables: Value) -> Value {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let body: Value = request.send().await.unwrap().json().await.unwrap();
    assert!(body["errors"].is_null(), "{body}");
    body["data"].clone()
}

const SALES: &str = "query($id: ID!) { product(id: $id) { salesCount } }";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn server_runs(cluster: &Path) -> bool {
    cluster.join("postmaster.pid").exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_serves_orders_from_a_private_postgres_that_keeps_them() {
    let data = DataDir::new();
    let mut processes = Processes::default();
    let addr = format!("127.0.0.1:{}", free_port());

    let began = Instant::now();
    let (child, log) = serve(&data, &addr);
    processes.0.push(child);
    wait_until_ready(&addr).await;
    let first_start = began.elapsed();
    let cluster = data.cluster().canonicalize().unwrap();
    assert!(
        log.has(&format!(
            "using the database database=a private PostgreSQL in {}",
            data.dir.canonicalize().unwrap().display()
        )),
        "{:?}",
        log.0.lock().unwrap()
    );
    assert!(log.has("made the private PostgreSQL's data directory"));
    assert!(log.has("started the private PostgreSQL"));
    // the server gets none of Tally's environment (secrets live there)
    let postmaster = std::fs::read_to_string(cluster.join("postmaster.pid")).unwrap();
    let environ = std::fs::read(format!(
        "/proc/{}/environ",
        postmaster.lines().next().unwrap()
    ))
    .unwrap();
    let names: Vec<String> = environ
        .split(|b| *b == 0)
        .filter(|var| !var.is_empty())
        .map(|var| {
            String::from_utf8_lossy(var)
                .split('=')
                .next()
                .unwrap()
                .to_owned()
        })
        .filter(|name| !name.starts_with("PG_")) // what the server sets itself
        .collect();
    assert!(
        names.iter().all(|name| name == "PATH" || name == "TZ"),
        "{names:?}"
    );
    assert_eq!(
        std::fs::read_to_string(cluster.join("PG_VERSION"))
            .unwrap()
            .trim()
            .parse::<u32>()
            .map(|major| major >= 10),
        Ok(true)
    );

    // other processes share the running server and leave it running
    let seeded = data.run(&["seed-demo"]);
    assert!(seeded.status.success(), "{}", stderr(&seeded));
    assert!(stdout(&seeded).starts_with("demo catalog: 20 products added"));
    assert!(!stderr(&seeded).contains("started the private PostgreSQL"));
    assert!(!stderr(&seeded).contains("stopped the private PostgreSQL"));
    let refused = data.run(&["database", "stop"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("Tally processes are using the private PostgreSQL in"),
        "{}",
        stderr(&refused)
    );
    let url = stdout(&data.run(&["database", "url"]));
    assert!(url.starts_with("postgres://postgres@%2F"), "{url}");
    assert!(
        url.trim_end().ends_with("%2Fdata%2Fpostgres/tally"),
        "{url}"
    );

    // an order through GraphQL, counted by this process's workers
    let token = gql(
        &addr,
        None,
        "mutation { login(input: {email: \"demo@tally.test\", password: \"demo-password\"}) { token } }",
        json!({}),
    )
    .await["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let menu = gql(
        &addr,
        None,
        "{ products(first: 20) { edges { node { id variants { id } } } } }",
        json!({}),
    )
    .await;
    let product = menu["products"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| &edge["node"])
        .find(|node| node["variants"].as_array().unwrap().is_empty())
        .expect("a demo product without sizes")["id"]
        .clone();
    gql(
        &addr,
        Some(&token),
        "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }",
        json!({ "input": { "items": [{ "productId": product, "quantity": 2 }] } }),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while gql(&addr, None, SALES, json!({ "id": product })).await["product"]["salesCount"] != 2 {
        assert!(Instant::now() < deadline, "the order was not counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // the last process to stop stops the server
    assert_eq!(sigterm(&mut processes.0[0]), Some(0));
    assert!(log.has("stopped the private PostgreSQL: no Tally process uses it"));
    assert!(!server_runs(&cluster));

    // the next start finds everything where it was
    let began = Instant::now();
    let (child, log) = serve(&data, &addr);
    processes.0[0] = child;
    wait_until_ready(&addr).await;
    let restart = began.elapsed();
    assert!(!log.has("made the private PostgreSQL's data directory"));
    assert!(log.has("started the private PostgreSQL"));
    assert_eq!(
        gql(&addr, None, SALES, json!({ "id": product })).await["product"]["salesCount"],
        2
    );
    assert_eq!(sigterm(&mut processes.0[0]), Some(0));
    assert!(!server_runs(&cluster));
    eprintln!(
        "private PostgreSQL: first start to ready {} ms (initdb included), restart {} ms",
        first_start.as_millis(),
        restart.as_millis()
    );

    // a lock file another program holds: named, kept, and no server
    // started. PostgreSQL takes a process of another user for a stale
    // lock's, so the program runs as PostgreSQL's account does.
    let mut other = Command::new("sleep");
    other.arg("60");
    if common::as_root() {
        let id = |flag| {
            let out = Command::new("id")
                .args([flag, "postgres"])
                .output()
                .unwrap();
            String::from_utf8(out.stdout)
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        other.uid(id("-u")).gid(id("-g"));
    }
    let mut other = other.spawn().unwrap();
    let lock_file = cluster.join("postmaster.pid");
    std::fs::write(&lock_file, format!("{}\n", other.id())).unwrap();
    let held = data.run(&["migrate"]);
    assert_eq!(held.status.code(), Some(1));
    let said = stderr(&held);
    assert!(
        said.contains(&format!(
            "If no PostgreSQL runs from {}, remove {} and start again",
            cluster.display(),
            lock_file.display()
        )),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(&lock_file).unwrap(),
        format!("{}\n", other.id())
    );
    // once that program is gone, the file is stale and the start goes on
    other.kill().unwrap();
    other.wait().unwrap();
    let migrated = data.run(&["migrate"]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    assert_eq!(stdout(&migrated), "database is up to date\n");
    assert!(!server_runs(&cluster));
}

#[test]
fn a_database_url_starts_nothing_of_tallys_own_and_its_password_is_never_logged() {
    let data = DataDir::new();
    let database = tally_test_support::TestDatabase::new("cli");
    let (user, rest) = database
        .url()
        .split_once('@')
        .map(|(u, r)| (u.to_owned(), r.to_owned()))
        .unwrap();
    // trust authentication never asks for it, so any password connects
    let url = format!("{user}:hunter2@{rest}");
    let out = data
        .tally(&["migrate"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    let using = said
        .lines()
        .find(|line| line.contains("using the database database="))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        using.contains(&format!("(database \"{}\", user ", database.name())),
        "{using}"
    );
    assert!(!said.contains("hunter2"), "{said}");
    assert!(!said.contains("private PostgreSQL"), "{said}");
    assert!(!data.dir.exists());
}

#[test]
fn a_database_made_by_another_version_is_named_and_left_as_it_was() {
    let data = DataDir::new();
    let cluster = data.cluster();
    std::fs::create_dir_all(cluster.join("base")).unwrap();
    std::fs::write(cluster.join("PG_VERSION"), "9.6\n").unwrap();
    std::fs::write(cluster.join("base/1"), "rows").unwrap();

    let out = data.run(&["migrate"]);
    assert_eq!(out.status.code(), Some(1));
    let said = stderr(&out);
    let last = said.lines().last().unwrap();
    let cluster = cluster.canonicalize().unwrap();
    assert!(
        last.starts_with(&format!(
            "error: the private database in {} was made by PostgreSQL 9.6, and this machine has \
             the server programs of PostgreSQL ",
            cluster.display()
        )),
        "{said}"
    );
    assert!(
        last.ends_with(&format!(
            "Install PostgreSQL 9.6's server to use it, upgrade it with pg_upgrade, or move {} \
             aside to start with an empty one (nothing was changed)",
            data.dir.canonicalize().unwrap().display()
        )),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(cluster.join("PG_VERSION")).unwrap(),
        "9.6\n"
    );
    assert_eq!(
        std::fs::read_to_string(cluster.join("base/1")).unwrap(),
        "rows"
    );
    let mut left: Vec<String> = std::fs::read_dir(&cluster)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["PG_VERSION", "base"]);
}

#[test]
fn a_directory_that_is_not_a_database_is_refused_untouched() {
    let data = DataDir::new();
    let cluster = data.cluster();
    std::fs::create_dir_all(&cluster).unwrap();
    std::fs::write(cluster.join("notes.txt"), "mine").unwrap();

    let out = data.run(&["migrate"]);
    assert_eq!(out.status.code(), Some(1));
    let said = stderr(&out);
    assert!(
        said.lines().last().unwrap().ends_with(&format!(
            "{} holds files but no PostgreSQL data directory (it has no PG_VERSION): move it \
             aside, or set TALLY_DATA_DIR to another directory (nothing was changed)",
            cluster.canonicalize().unwrap().display()
        )),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(cluster.join("notes.txt")).unwrap(),
        "mine"
    );
}
