//! What the tests of the `tally` binary share: the binary itself, PostgreSQL
//! clusters of a test's own, and the processes and clients of the tests that
//! run Tally as an operator would. Their databases are the ones every Tally
//! test uses (`tally_test_support::TestDatabase`).

#![allow(dead_code)] // each test binary uses its own part of this

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::PgPool;
// the client's side every Tally test shares (each binary uses its own part)
#[allow(unused_imports)]
pub use tally_test_support::client::{
    self, client_from, count, figure_mismatches, wait_until_settled,
};
use tally_test_support::shop;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &str = "process-test-secret-process-test!!";

/// The binary with a clean environment: only PATH, so no setting of the
/// machine's leaks into a test.
pub fn tally() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tally"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

/// A PostgreSQL server of a test's own, on a port of its own, for tests that
/// stop and start it: the machine's shared server must keep serving the
/// other tests. Made with the installed PostgreSQL's `initdb`; removed, data
/// and all, when dropped.
pub struct Cluster {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl Cluster {
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's programs under /usr/lib/postgresql")
            .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists())
            .max()
            .expect("initdb under /usr/lib/postgresql/<version>/bin");
        let dir = std::env::temp_dir().join(format!("tally-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).unwrap();
        let cluster = Self {
            port: free_port(),
            dir,
            bin,
        };
        if as_root() {
            // PostgreSQL refuses to run as root; its own account runs it
            assert!(
                Command::new("chown")
                    .args(["postgres:postgres", &cluster.dir.to_string_lossy()])
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let data = cluster.dir.join("data");
        let status = cluster
            .pg("initdb")
            .args(["-D", &data.to_string_lossy()])
            .args(["-U", "postgres", "-A", "trust", "--no-sync"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        cluster.start_server();
        cluster
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=200",
            self.port,
            self.dir.to_string_lossy()
        );
        let status = self
            .pg("pg_ctl")
            .args(["-D", &self.dir.join("data").to_string_lossy()])
            .args(["-l", &self.dir.join("log").to_string_lossy()])
            .args(["-o", &options, "-w", "start"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl start failed");
    }

    /// Stops the server the way a crash would (`-m immediate`: no checkpoint,
    /// clients cut off); committed work survives through the WAL.
    pub fn stop_server(&self) {
        let status = self
            .pg("pg_ctl")
            .args(["-D", &self.dir.join("data").to_string_lossy()])
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl stop failed");
    }

    fn pg(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .pg("pg_ctl")
            .args(["-D", &self.dir.join("data").to_string_lossy()])
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the tests run as root (containers, CI).
pub fn as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Child processes killed when the test ends, however it ends.
#[derive(Default)]
pub struct Processes(pub Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `tally <args>` on `url`, logging warnings and errors to the test's stderr.
pub fn spawn(url: &str, args: &[&str], envs: &[(&str, &str)]) -> Child {
    tally()
        .args(args)
        .env("DATABASE_URL", url)
        .env("JWT_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("tally")
}

/// Asks the process to stop as an operator would; returns its exit code.
pub fn sigterm(child: &mut Child) -> Option<i32> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap().code()
}

/// Waits until `addr` answers `/readyz` with 200.
pub async fn wait_until_ready(addr: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = http
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        if status.ok() == Some(200) {
            return;
        }
        assert!(Instant::now() < deadline, "{addr} did not get ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the client tests order from: products, customers, an admin, and a
/// token for each account.
pub struct Shop {
    pub products: Vec<i64>,
    pub tokens: Vec<String>,
}

/// Runs `tally migrate` on `url`, then adds 12 products in 4 categories,
/// 10 customers and an admin (`tally_test_support::shop`).
pub async fn open_shop(url: &str) -> (PgPool, Shop) {
    assert!(spawn(url, &["migrate"], &[]).wait().unwrap().success());
    let pool = PgPool::connect(url).await.unwrap();
    let opened = shop::open(
        &pool,
        12,
        &["pizza", "burgers", "salads", "drinks"],
        10,
        SECRET,
    )
    .await
    .unwrap();
    let products = opened.products.iter().map(|(id, _)| *id).collect();
    // every account's, by id: the customers', then the admin's
    let tokens = opened
        .customers
        .into_iter()
        .chain([opened.admin])
        .map(|(_, token)| token)
        .collect();
    (pool, Shop { products, tokens })
}

/// A token for each account, oldest first, signed with `secret`.
pub async fn tokens_signed_with(pool: &PgPool, secret: &str) -> Vec<String> {
    shop::tokens_signed_with(pool, secret)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, token)| token)
        .collect()
}

impl Shop {
    /// A random order: 1–4 lines of random products (repeats allowed),
    /// quantities 1–5, by a random account.
    pub fn random_order(&self) -> (String, Vec<Value>) {
        use rand::Rng;
        let mut rng = rand::rng();
        let items = (0..rng.random_range(1..=4))
            .map(|_| {
                json!({
                    "productId": self.products[rng.random_range(0..self.products.len())].to_string(),
                    "quantity": rng.random_range(1..=5),
                })
            })
            .collect();
        (
            self.tokens[rng.random_range(0..self.tokens.len())].clone(),
            items,
        )
    }
}

pub const PLACE_ORDER: &str =
    "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }";

/// How the attempts of one order went, as a client that retries with the
/// same idempotency key until it gets an answer would see them.
#[derive(Debug, Default)]
pub struct Attempts {
    /// Orders placed (one per call that returns).
    pub placed: usize,
    /// Of those, cancelled by their client afterwards.
    pub cancelled: usize,
    /// Answers with code SERVICE_UNAVAILABLE, and the slowest of them.
    pub unavailable: usize,
    pub slowest_unavailable: Duration,
    /// No HTTP answer: the server was down or died mid-request.
    pub unanswered: usize,
    /// Any other error: none is expected.
    pub unexpected: Vec<String>,
}

impl Attempts {
    pub fn add(&mut self, other: Attempts) {
        self.placed += other.placed;
        self.cancelled += other.cancelled;
        self.unavailable += other.unavailable;
        self.slowest_unavailable = self.slowest_unavailable.max(other.slowest_unavailable);
        self.unanswered += other.unanswered;
        self.unexpected.extend(other.unexpected);
    }
}

/// One GraphQL request through `addr` as `token`; the response's body.
pub async fn post_graphql(addr: &str, token: &str, query: &str, variables: Value) -> Value {
    let body = client::graphql_body(query, variables);
    let url = format!("http://{addr}/graphql");
    client::post_graphql(&reqwest::Client::new(), &url, Some(token), &body)
        .await
        .1
}

pub const CANCEL_ORDER: &str = "mutation($id: ID!) { cancelOrder(id: $id) { status } }";

/// Places one order through `addr`, retrying with the same idempotency key
/// after an unavailable answer or none at all, for up to a minute; returns
/// the order's id once placed.
pub async fn place_until_answered(
    http: &reqwest::Client,
    addr: &str,
    (token, items): &(String, Vec<Value>),
    attempts: &mut Attempts,
) -> Option<String> {
    let body = json!({
        "query": PLACE_ORDER,
        "variables": { "input": { "items": items, "idempotencyKey": uuid::Uuid::new_v4().to_string() } },
    });
    let data = until_answered(http, addr, token, &body, attempts).await?;
    attempts.placed += 1;
    Some(data["placeOrder"]["id"].as_str().unwrap().to_owned())
}

/// Cancels an order the same way: cancelling again is harmless.
pub async fn cancel_until_answered(
    http: &reqwest::Client,
    addr: &str,
    token: &str,
    id: &str,
    attempts: &mut Attempts,
) {
    let body = json!({ "query": CANCEL_ORDER, "variables": { "id": id } });
    if let Some(data) = until_answered(http, addr, token, &body, attempts).await {
        assert_eq!(data["cancelOrder"]["status"], "CANCELLED");
        attempts.cancelled += 1;
    }
}

/// Sends `body` until it is answered (again after an unavailable answer or
/// none at all) for up to a minute; its `data`, or `None` after an error.
async fn until_answered(
    http: &reqwest::Client,
    addr: &str,
    token: &str,
    body: &Value,
    attempts: &mut Attempts,
) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let started = Instant::now();
        let answer = async {
            http.post(format!("http://{addr}/graphql"))
                .bearer_auth(token)
                .json(body)
                .send()
                .await?
                .json::<Value>()
                .await
        }
        .await;
        match answer {
            Ok(answer) if answer.get("errors").is_none() => return Some(answer["data"].clone()),
            Ok(answer) if answer["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE" => {
                attempts.unavailable += 1;
                attempts.slowest_unavailable = attempts.slowest_unavailable.max(started.elapsed());
            }
            Ok(answer) => {
                attempts.unexpected.push(answer["errors"].to_string());
                return None;
            }
            Err(_) => attempts.unanswered += 1,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    attempts
        .unexpected
        .push("no answer within a minute".to_owned());
    None
}

/// Clients that keep placing random orders through `addr`, each retrying
/// with its key until answered, until [`Clients::stop`]. Every tenth order a
/// client places, it cancels right away (before or after its job counted
/// it, as it happens).
pub struct Clients {
    stop: Arc<AtomicBool>,
    intents: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Attempts>>,
}

impl Clients {
    pub fn start(count: usize, shop: &Arc<Shop>, addr: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let intents = Arc::new(AtomicUsize::new(0));
        let tasks = (0..count)
            .map(|_| {
                let (shop, stop, intents, addr) =
                    (shop.clone(), stop.clone(), intents.clone(), addr.to_owned());
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    let mut attempts = Attempts::default();
                    for n in 1.. {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        intents.fetch_add(1, Ordering::SeqCst);
                        let order = shop.random_order();
                        let placed = place_until_answered(&http, &addr, &order, &mut attempts);
                        if let (Some(id), 0) = (placed.await, n % 10) {
                            cancel_until_answered(&http, &addr, &order.0, &id, &mut attempts).await;
                        }
                    }
                    attempts
                })
            })
            .collect();
        Self {
            stop,
            intents,
            tasks,
        }
    }

    /// Lets each client finish its order; returns the orders they meant to
    /// place and how their attempts went.
    pub async fn stop(self) -> (usize, Attempts) {
        self.stop.store(true, Ordering::SeqCst);
        let mut attempts = Attempts::default();
        for task in self.tasks {
            attempts.add(task.await.unwrap());
        }
        (self.intents.load(Ordering::SeqCst), attempts)
    }
}

/// What the clients' runs end on, once the jobs have settled: `placed` orders
/// exist, each once; the ones clients cancelled are cancelled, each once; and
/// every figure equals a recount over the orders that stand (a cancelled
/// order not yet taken back out counts as a mismatch).
pub async fn assert_exact(pool: &PgPool, placed: usize, attempts: &Attempts) {
    assert_eq!(
        count(pool, "select count(*) from orders").await,
        placed as i64
    );
    assert!(attempts.cancelled > 0, "no order was cancelled");
    assert_eq!(
        count(
            pool,
            "select count(*) from orders where status = 'cancelled'"
        )
        .await,
        attempts.cancelled as i64
    );
    assert_eq!(figure_mismatches(pool).await, 0);
}

pub const PRODUCT_SUBSCRIPTION: &str = "subscription ($ids: [ID!]!) {
    productFiguresChanged(productIds: $ids) { id salesCount totalRevenue rating }
}";

/// The protocol of graphql-ws clients, GraphiQL among them.
pub const GRAPHQL_TRANSPORT_WS: &str = "graphql-transport-ws";
/// The older protocol of subscriptions-transport-ws clients.
pub const GRAPHQL_WS: &str = "graphql-ws";

/// The WebSocket upgrade of `/graphql`, asking for graphql-transport-ws.
pub fn upgrade_request(addr: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    upgrade_request_for(addr, GRAPHQL_TRANSPORT_WS)
}

fn upgrade_request_for(
    addr: &str,
    protocol: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = format!("ws://{addr}/graphql")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    request
}

/// A GraphQL over WebSocket client: graphql-transport-ws unless connected
/// with [`Client::connect_using`].
pub struct Client(pub WebSocketStream<MaybeTlsStream<TcpStream>>);

impl Client {
    /// Connects and sends `connection_init` with `payload`; returns the
    /// server's answer to it too (`connection_ack`, or the close frame).
    pub async fn connect(addr: &str, payload: Value) -> (Self, Value) {
        Self::connect_using(addr, GRAPHQL_TRANSPORT_WS, payload).await
    }

    /// A socket from 127.0.0.`host` (standing for a machine of its own),
    /// with nothing sent yet; the upgrade's error if it is refused.
    pub async fn open_from(
        host: u8,
        addr: &str,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::from(([127, 0, 0, host], 0)))?;
        let stream = socket.connect(addr.parse().unwrap()).await?;
        let (socket, _) =
            tokio_tungstenite::client_async(upgrade_request(addr), MaybeTlsStream::Plain(stream))
                .await?;
        Ok(Self(socket))
    }

    /// [`Client::connect`] with the given subprotocol, which the server must
    /// accept.
    pub async fn connect_using(addr: &str, protocol: &str, payload: Value) -> (Self, Value) {
        let request = upgrade_request_for(addr, protocol);
        let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(response.headers()["sec-websocket-protocol"], protocol);
        let mut client = Self(socket);
        client
            .send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        let answer = client.next(Duration::from_secs(10)).await;
        (client, answer)
    }

    pub async fn send(&mut self, message: Value) {
        self.0
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({
            "id": id,
            "type": "subscribe",
            "payload": { "query": query, "variables": variables },
        }))
        .await;
    }

    /// What operation `id` got, read to its end: the code of its first
    /// error, or `-` when it had data.
    pub async fn outcome(&mut self, id: &str) -> String {
        let first = self.next(Duration::from_secs(10)).await;
        assert_eq!(first["id"], id, "{first}");
        let error = match first["type"].as_str() {
            Some("next") => &first["payload"]["errors"][0],
            Some("error") => &first["payload"][0],
            _ => panic!("{first}"),
        };
        if first["type"] == "next" {
            assert_eq!(
                self.next(Duration::from_secs(10)).await,
                json!({ "id": id, "type": "complete" })
            );
        }
        error["extensions"]["code"]
            .as_str()
            .unwrap_or("-")
            .to_owned()
    }

    /// The next message, or `{"close": code, "reason": …}` when the server closes.
    pub async fn next(&mut self, within: Duration) -> Value {
        match self.receive(within).await {
            Some(Ok(value)) => value,
            Some(Err(frame)) => {
                let frame = frame.expect("a close frame with a code");
                json!({ "close": u16::from(frame.code), "reason": frame.reason.as_str() })
            }
            None => panic!("no message within {within:?}, or the connection broke"),
        }
    }

    /// The next data or error message, or `None` once the connection ends
    /// (or stays silent for `within`).
    pub async fn try_next(&mut self, within: Duration) -> Option<Value> {
        self.receive(within).await?.ok()
    }

    /// The next JSON message, answering pings on the way; `Err` with its close
    /// frame when the server closes; `None` when nothing comes within
    /// `within` or the connection breaks.
    async fn receive(&mut self, within: Duration) -> Option<Result<Value, Option<CloseFrame>>> {
        loop {
            let message = tokio::time::timeout(within, self.0.next())
                .await
                .ok()??
                .ok()?;
            match message {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(&text).unwrap();
                    if value["type"] == "ping" {
                        self.send(json!({ "type": "pong" })).await;
                        continue;
                    }
                    return Some(Ok(value));
                }
                Message::Close(frame) => return Some(Err(frame)),
                _ => continue,
            }
        }
    }

    /// Asserts that nothing comes for a while.
    pub async fn assert_quiet(&mut self, within: Duration) {
        if let Ok(message) = tokio::time::timeout(within, self.0.next()).await {
            panic!("expected nothing, got {message:?}");
        }
    }
}

pub fn bearer(token: &str) -> Value {
    json!({ "Authorization": format!("Bearer {token}") })
}
