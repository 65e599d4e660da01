//! Hostile clients against the real binary, with its defaults, over
//! loopback. Attackers connect from 127.0.0.2 and up, each address standing
//! for a machine of its own; a legitimate client on 127.0.0.1 keeps placing
//! orders and reading products meanwhile. Each attack asserts what that
//! client saw (at least 99 % answered, its p99 within a few times its quiet
//! p99, its orders placed) and the server's memory after it. The numbers go
//! to stderr, for RELIABILITY.md.
//!
//! The attacks run one at a time: each measures latency, which attacks of
//! other tests would disturb.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use futures::SinkExt;
use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message as TungsteniteMessage;

use crate::common::{Client, Processes, Shop, client_from, spawn};
use tally_test_support::TestDatabase;

mod common;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PRODUCTS: &str = "{ products(first: 5) { edges { node { id name salesCount } } } }";

struct Server {
    addr: SocketAddr,
    processes: Processes,
    pool: PgPool,
    shop: Arc<Shop>,
    _database: TestDatabase,
}

impl Server {
    async fn start() -> Self {
        Self::start_with(&[]).await
    }

    async fn start_with(settings: &[(&str, &str)]) -> Self {
        let database = TestDatabase::new("attacks");
        let url = database.url();
        let (pool, shop) = common::open_shop(&url).await;
        let addr: SocketAddr = format!("127.0.0.1:{}", common::free_port())
            .parse()
            .unwrap();
        // clients bound to 127.0.0.2 and up reach 127.0.0.1 all the same
        let bind = addr.to_string();
        let mut envs = vec![("BIND_ADDR", bind.as_str()), ("RUST_LOG", "error")];
        envs.extend_from_slice(settings);
        let processes = Processes(vec![spawn(&url, &["serve"], &envs)]);
        common::wait_until_ready(&addr.to_string()).await;
        Self {
            addr,
            processes,
            pool,
            shop: Arc::new(shop),
            _database: database,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    fn rss_mib(&self) -> u64 {
        let pid = self.processes.0[0].id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap();
        kib / 1024
    }

    async fn orders(&self) -> i64 {
        sqlx::query_scalar("select count(*) from orders")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// An account with a real password, registered from an address of its own.
    async fn register(&self, from: u8, email: &str, password: &str) -> Value {
        graphql(
            &client_from(from),
            &self.url(),
            None,
            "mutation($input: RegisterInput!) { register(input: $input) { token } }",
            json!({ "input": { "name": "Victim", "email": email, "password": password } }),
        )
        .await
        .1
    }

    /// Runs the legitimate client alone for a while, then beside `attack`;
    /// asserts what it saw and the server's memory; returns the attack's
    /// result and the report line.
    async fn under_attack<T>(&self, name: &str, attack: impl Future<Output = T>) -> (T, String) {
        let quiet = Legit::run(self, Duration::from_secs(3)).await;
        let before = self.rss_mib();
        let legit = tokio::spawn(Legit::run_until_stopped(self.url(), self.shop.clone()));
        let started = Instant::now();
        let outcome = attack.await;
        let lasted = started.elapsed();
        STOP.store(true, Ordering::SeqCst);
        let during = legit.await.unwrap();
        STOP.store(false, Ordering::SeqCst);
        let after = self.rss_mib();

        let quiet_p99 = quiet.p99();
        let allowed = 5 * quiet_p99.max(Duration::from_millis(25));
        let line = format!(
            "{name}: {:.1} s; the legitimate client: {} of {} answered, {} orders placed, \
             p99 {} ms (quiet {} ms); RSS {before} MiB before, {after} MiB after",
            lasted.as_secs_f64(),
            during.answered,
            during.sent,
            during.placed,
            during.p99().as_millis(),
            quiet_p99.as_millis(),
        );
        eprintln!("{line}");
        assert!(during.sent >= 20, "{line}");
        assert!(
            during.answered * 100 >= during.sent * 99,
            "{line}\n{:?}",
            during.failures
        );
        assert!(during.placed > 0, "{line}");
        assert!(during.p99() <= allowed, "{line}");
        assert!(after <= before + 100, "{line}");
        (outcome, line)
    }
}

/// Tells the legitimate client the attack is over.
static STOP: AtomicBool = AtomicBool::new(false);

#[derive(Default)]
struct Legit {
    sent: usize,
    answered: usize,
    placed: usize,
    latencies: Vec<Duration>,
    failures: Vec<String>,
}

impl Legit {
    async fn run(server: &Server, duration: Duration) -> Self {
        let until = Instant::now() + duration;
        let mut legit = Self::default();
        let http = client_from(1);
        while Instant::now() < until {
            legit.one(&http, &server.url(), &server.shop).await;
        }
        legit
    }

    async fn run_until_stopped(url: String, shop: Arc<Shop>) -> Self {
        let mut legit = Self::default();
        let http = client_from(1);
        while !STOP.load(Ordering::SeqCst) {
            legit.one(&http, &url, &shop).await;
        }
        legit
    }

    /// An order every other time, the first page of products otherwise,
    /// then a pause, as an app's user would.
    async fn one(&mut self, http: &reqwest::Client, url: &str, shop: &Shop) {
        let ordering = self.sent.is_multiple_of(2);
        self.sent += 1;
        let started = Instant::now();
        let (status, body) = if ordering {
            let (token, items) = shop.random_order();
            graphql(
                http,
                url,
                Some(&token),
                common::PLACE_ORDER,
                json!({ "input": { "items": items } }),
            )
            .await
        } else {
            graphql(http, url, None, PRODUCTS, json!({})).await
        };
        self.latencies.push(started.elapsed());
        if status == 200 && body.get("errors").is_none() {
            self.answered += 1;
            self.placed += usize::from(ordering);
        } else {
            self.failures.push(format!("{status} {body}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    fn p99(&self) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted
            .get((sorted.len() * 99).div_ceil(100).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    }
}

/// The status and body of a POST of `body`; status 0 when no answer came.
async fn post_body(http: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    match http.post(url).json(&body).send().await {
        Ok(response) => (
            response.status().as_u16(),
            response.json().await.unwrap_or_default(),
        ),
        Err(e) => (0, json!(e.to_string())),
    }
}

/// The status and body of one GraphQL POST; status 0 when no answer came.
async fn graphql(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> (u16, Value) {
    let mut request = http
        .post(url)
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut body: Value = response.json().await.unwrap_or_default();
            if let Some(retry_after) = retry_after {
                body["retry-after header"] = json!(retry_after);
            }
            (status, body)
        }
        Err(e) => (0, json!(e.to_string())),
    }
}

/// A raw TCP connection from 127.0.0.`host`.
async fn connect_from(host: u8, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(Ipv4Addr::new(127, 0, 0, host).into(), 0))?;
    socket.connect(server).await
}

/// What the server did with a connection that dribbles `head` and then
/// `dribble`, a byte every `every`, for at most `limit`; and how long after
/// the connection was made.
#[derive(Debug, PartialEq, Eq)]
enum Dribbled {
    /// The server answered with this status line, then or later closed.
    Answered(String),
    /// Closed without an answer.
    Closed,
    /// Still open when the client gave up.
    Open,
    /// Not accepted at all.
    Refused,
}

async fn dribble(
    host: u8,
    server: SocketAddr,
    head: &'static str,
    dribble: &'static [u8],
    every: Duration,
    limit: Duration,
) -> (Dribbled, Duration) {
    let Ok(mut stream) = connect_from(host, server).await else {
        return (Dribbled::Refused, Duration::ZERO);
    };
    // from the connection on: under a burst of connects the kernel may
    // drop SYNs, and the client's retries (1 s, 3 s …) are not the server's
    let started = Instant::now();
    if stream.write_all(head.as_bytes()).await.is_err() {
        return (Dribbled::Closed, started.elapsed());
    }
    let mut answer = Vec::new();
    let mut next = dribble.iter();
    let mut buffer = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let tick = tokio::time::sleep(every);
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            },
            _ = tick => {
                if let Some(byte) = next.next() {
                    // the server may have closed its side already
                    let _ = stream.write_all(&[*byte]).await;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                return (Dribbled::Open, started.elapsed());
            }
        }
    }
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    match text.lines().next() {
        Some(status) if !status.is_empty() => (Dribbled::Answered(status.to_owned()), elapsed),
        _ => (Dribbled::Closed, elapsed),
    }
}

/// Tallies of the outcomes: how many of each, and the longest any took.
fn tally(outcomes: &[(Dribbled, Duration)]) -> (Vec<(String, usize)>, Duration) {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (outcome, _) in outcomes {
        *counts.entry(format!("{outcome:?}")).or_default() += 1;
    }
    let longest = outcomes.iter().map(|(_, d)| *d).max().unwrap_or_default();
    (counts.into_iter().collect(), longest)
}

const SLOW_BODY_HEAD: &str = "POST /graphql HTTP/1.1\r\nHost: tally\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n";
const SLOW_HEADERS_HEAD: &str = "GET /graphql HTTP/1.1\r\nHost: tally\r\n";
const DRIBBLE: &[u8] =
    b"{\"query\":\"{ __typename }\"                                                              ";
const HEADER_DRIBBLE: &[u8] = b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_slow_bodies_are_answered_408_and_hold_no_request_slot() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start().await;
    let placed_before = server.orders().await;
    let addr = server.addr;
    let (outcomes, line) = server
        .under_attack(
            "300 slow bodies (a byte every 3 s) from 5 addresses",
            join_all((0..300).map(|n| {
                dribble(
                    2 + (n % 5) as u8,
                    addr,
                    SLOW_BODY_HEAD,
                    DRIBBLE,
                    Duration::from_secs(3),
                    Duration::from_secs(16),
                )
            })),
        )
        .await;
    let (counts, longest) = tally(&outcomes);
    eprintln!(
        "slow bodies: {counts:?}, the last answered after {} ms",
        longest.as_millis()
    );
    // HTTP_BODY_TIMEOUT (10 s): every one of them is answered, and closed
    assert_eq!(
        counts,
        vec![("Answered(\"HTTP/1.1 408 Request Timeout\")".to_owned(), 300)],
        "{line}"
    );
    assert!(longest < Duration::from_secs(14), "{longest:?}");
    assert!(server.orders().await > placed_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_dropped_and_one_address_gets_at_most_its_share_of_connections() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start().await;
    let addr = server.addr;
    let ((slow, crowd), line) = server
        .under_attack(
            "300 slow headers from 5 addresses, and 100 connections from one more",
            async {
                let slow = join_all((0..300).map(|n| {
                    dribble(
                        2 + (n % 5) as u8,
                        addr,
                        SLOW_HEADERS_HEAD,
                        HEADER_DRIBBLE,
                        Duration::from_secs(3),
                        Duration::from_secs(16),
                    )
                }));
                // idle connections that send nothing at all
                let crowd = join_all((0..100).map(|_| {
                    dribble(
                        7,
                        addr,
                        "",
                        b"",
                        Duration::from_secs(60),
                        Duration::from_secs(16),
                    )
                }));
                tokio::join!(slow, crowd)
            },
        )
        .await;
    let (counts, longest) = tally(&slow);
    eprintln!(
        "slow headers: {counts:?}, the last closed after {} ms",
        longest.as_millis()
    );
    // HTTP_HEADER_TIMEOUT (10 s): closed (no request, so no answer)
    assert_eq!(counts, vec![("Closed".to_owned(), 300)], "{line}");
    assert!(longest < Duration::from_secs(14), "{longest:?}");
    // MAX_CONNECTIONS_PER_ADDRESS (64): the rest are closed as soon as the
    // server accepts them, long before the 10 s header timeout (on a loaded
    // machine, accepting 400 connections at once can take a few seconds)
    let closed_at_once = crowd
        .iter()
        .filter(|(outcome, took)| *outcome == Dribbled::Closed && *took < Duration::from_secs(6))
        .count();
    let slowest_refusal = crowd
        .iter()
        .map(|(_, took)| *took)
        .filter(|took| *took < Duration::from_secs(6))
        .max()
        .unwrap_or_default();
    let timed_out = crowd
        .iter()
        .filter(|(_, took)| *took >= Duration::from_secs(9))
        .count();
    eprintln!(
        "one address, 100 idle connections: {closed_at_once} closed at once (the last after {} ms), {timed_out} after the header timeout",
        slowest_refusal.as_millis()
    );
    assert_eq!((closed_at_once, timed_out), (36, 64), "{:?}", tally(&crowd));
}

const LOGIN: &str = "mutation($email: String!, $password: String!) { login(input: { email: $email, password: $password }) { token } }";
const REGISTER: &str = "mutation($input: RegisterInput!) { register(input: $input) { token } }";

/// How many clients, how many requests each (at most), for how long (at
/// most), with what pause between a client's requests.
struct Flood {
    workers: usize,
    each: usize,
    lasting: Duration,
    pause: Duration,
}

/// `flood.workers` concurrent clients sending requests; `request(worker,
/// n)` says from which 127.0.0.x host the n-th request of a worker leaves,
/// and its query and variables. Every answer, in no particular order.
async fn flood(
    url: &str,
    flood: Flood,
    request: impl Fn(usize, usize) -> (u8, &'static str, Value),
) -> Vec<(u16, Value)> {
    let Flood {
        workers,
        each,
        lasting,
        pause,
    } = flood;
    let until = Instant::now() + lasting;
    let request = &request;
    let answers = join_all((0..workers).map(|worker| async move {
        let mut clients = std::collections::HashMap::new();
        let mut answers = Vec::new();
        for n in 0..each {
            if Instant::now() >= until {
                break;
            }
            let (host, query, variables) = request(worker, n);
            let http = clients.entry(host).or_insert_with(|| client_from(host));
            // no query: `variables` is the whole body
            let answer = match query {
                "" => post_body(http, url, variables).await,
                query => graphql(http, url, None, query, variables).await,
            };
            answers.push(answer);
            tokio::time::sleep(pause).await;
        }
        answers
    }))
    .await;
    answers.into_iter().flatten().collect()
}

/// A login from 127.0.0.1, as the account's owner signs in.
async fn owner_logs_in(server: &Server, email: &str, password: &str) -> Value {
    let (status, body) = graphql(
        &client_from(1),
        &server.url(),
        None,
        LOGIN,
        json!({ "email": email, "password": password }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// How many answers came with each HTTP status and error code.
fn codes(answers: &[(u16, Value)]) -> Vec<(String, usize)> {
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for (status, body) in answers {
        let code = body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("-");
        *codes.entry(format!("{status} {code}")).or_default() += 1;
    }
    codes.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliased_logins_are_refused_before_any_password_is_checked() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start().await;
    server
        .register(9, "victim@shop.test", "the right password")
        .await;
    let aliases: String = (0..200)
        .map(|n| format!("g{n}: login(input: {{ email: \"victim@shop.test\", password: \"guess {n}\" }}) {{ token }} "))
        .collect();
    let query: &'static str = Box::leak(format!("mutation {{ {aliases} }}").into_boxed_str());
    let (answers, _) = server
        .under_attack(
            "requests of 200 aliased logins from one address, for 5 s",
            flood(
                &server.url(),
                Flood {
                    workers: 1,
                    each: 1_000,
                    lasting: Duration::from_secs(5),
                    pause: Duration::ZERO,
                },
                |_, _| (2, query, json!({})),
            ),
        )
        .await;
    eprintln!("aliased logins: {} requests of 200 each", answers.len());
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["data"], Value::Null, "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{body}"
        );
        assert_eq!(
            body["errors"][0]["message"],
            "An operation may sign in or register once: at most one login or register field."
        );
    }
    // no guess was counted against the account: its owner signs in at once
    let body = owner_logs_in(&server, "victim@shop.test", "the right password").await;
    assert!(body["data"]["login"]["token"].is_string(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_guesses_at_one_account_are_throttled_with_429_and_a_wait() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start().await;
    server
        .register(9, "victim@shop.test", "the right password")
        .await;
    server
        .register(9, "other@shop.test", "another password")
        .await;
    let (answers, _) = server
        .under_attack(
            "guesses at one account from one address, 10 at a time, for 6 s",
            flood(
                &server.url(),
                Flood {
                    workers: 10,
                    each: 10_000,
                    lasting: Duration::from_secs(6),
                    pause: Duration::ZERO,
                },
                |worker, n| {
                    let guess = format!("guess {worker}-{n}");
                    (
                        2,
                        LOGIN,
                        json!({ "email": "victim@shop.test", "password": guess }),
                    )
                },
            ),
        )
        .await;
    let checked = answers
        .iter()
        .filter(|(status, body)| {
            *status == 200 && body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        })
        .count();
    let throttled: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 429)
        .collect();
    eprintln!(
        "guesses: {} sent, {checked} passwords checked, {} refused with 429",
        answers.len(),
        throttled.len()
    );
    // LOGIN_FAILURES_PER_ACCOUNT, 5 per 15 minutes, counted before each
    // password is checked: 10 at a time get no more than 5 between them
    assert_eq!(checked, 5, "{:?}", codes(&answers));
    assert_eq!(checked + throttled.len(), answers.len());
    for (_, body) in &throttled {
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "TOO_MANY_REQUESTS",
            "{body}"
        );
        let wait = body["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap();
        assert_eq!(
            body["retry-after header"],
            json!(wait.to_string()),
            "{body}"
        );
        // the next of the account's attempts: one step (15 minutes / 5) on
        assert!((170..=180).contains(&wait), "{body}");
    }
    // another account signs in from another machine as usual
    let body = owner_logs_in(&server, "other@shop.test", "another password").await;
    assert!(body["data"]["login"]["token"].is_string(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_flood_from_one_address_gets_its_free_share_then_429() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start().await;
    let users = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from users")
            .fetch_one(&server.pool)
            .await
            .unwrap()
    };
    let users_before = users().await;
    let (answers, _) = server
        .under_attack(
            "registrations from one address, 10 at a time, 40 ms apart, for 5 s",
            flood(
                &server.url(),
                Flood {
                    workers: 10,
                    each: 100,
                    lasting: Duration::from_secs(5),
                    pause: Duration::from_millis(40),
                },
                |worker, n| {
                    let input = json!({
                        "name": "Bot",
                        "email": format!("bot{worker}-{n}@flood.test"),
                        "password": "a password of bots",
                    });
                    (3, REGISTER, json!({ "input": input }))
                },
            ),
        )
        .await;
    let registered = answers
        .iter()
        .filter(|(_, body)| body["data"]["register"]["token"].is_string())
        .count();
    let throttled = answers.iter().filter(|(status, _)| *status == 429).count();
    eprintln!("registrations: {registered} accounts created, {throttled} refused with 429");
    // REGISTRATIONS_PER_ADDRESS, 20 per hour, each counted before its hash
    assert_eq!(registered, 20, "{:?}", codes(&answers));
    assert_eq!(registered + throttled, answers.len());
    assert_eq!(users().await, users_before + registered as i64);
    // someone else registers as usual
    let fresh = server.register(4, "fresh@shop.test", "a real person").await;
    assert!(fresh["data"]["register"]["token"].is_string(), "{fresh}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_from_two_hundred_addresses_keeps_hashing_to_the_cores_and_memory_flat() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start().await;
    let (answers, _) = server
        .under_attack(
            "wrong logins from 200 addresses, 50 at a time, for 6 s",
            // each address stays within its free failures: 4 each at most
            flood(
                &server.url(),
                Flood {
                    workers: 50,
                    each: 16,
                    lasting: Duration::from_secs(6),
                    pause: Duration::ZERO,
                },
                |worker, n| {
                    let host = 10 + ((worker * 16 + n) % 200) as u8;
                    let email = format!("nobody{worker}-{n}@x.test");
                    (
                        host,
                        LOGIN,
                        json!({ "email": email, "password": "wrong wrong" }),
                    )
                },
            ),
        )
        .await;
    let codes = codes(&answers);
    eprintln!("login flood: {codes:?}");
    // every guess was checked, or refused at once while the cores were busy
    let allowed = [
        "200 UNAUTHENTICATED",
        "503 SERVICE_UNAVAILABLE",
        "200 SERVICE_UNAVAILABLE",
    ];
    assert!(
        codes.iter().all(|(c, _)| allowed.contains(&c.as_str())),
        "{codes:?}"
    );
    assert!(
        codes
            .iter()
            .any(|(c, n)| c == "200 UNAUTHENTICATED" && *n > 0),
        "{codes:?}"
    );
}

/// One socket subscribing to an unknown product over and over (each one a
/// read, before) is held to `WEBSOCKET_OPERATION_RATE`: its burst of 200,
/// then 20 a second, the rest refused with TOO_MANY_REQUESTS before anything
/// runs; the socket stays open, and other clients keep their latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_subscribing_in_a_loop_is_held_to_its_rate_and_stays_open() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start().await;
    let addr = server.addr.to_string();
    let ((codes, lasted, mut client), _) = server
        .under_attack(
            "one socket subscribing to an unknown product in a loop (at most 5,000, 5 s)",
            async {
                let mut client = Client::open_from(2, &addr).await.unwrap();
                client
                    .send(json!({ "type": "connection_init", "payload": {} }))
                    .await;
                let ack = client.next(Duration::from_secs(10)).await;
                assert_eq!(ack["type"], "connection_ack", "{ack}");
                let started = Instant::now();
                let mut codes = std::collections::BTreeMap::<String, usize>::new();
                for n in 0..5_000 {
                    if started.elapsed() >= Duration::from_secs(5) {
                        break;
                    }
                    let id = format!("s{n}");
                    let unknown = json!({ "ids": ["999999"] });
                    client
                        .subscribe(&id, common::PRODUCT_SUBSCRIPTION, unknown)
                        .await;
                    *codes.entry(client.outcome(&id).await).or_default() += 1;
                }
                (codes, started.elapsed(), client)
            },
        )
        .await;
    eprintln!("a socket subscribing in a loop: {codes:?} in {lasted:?}");
    let read = codes.get("NOT_FOUND").copied().unwrap_or(0);
    let refused = codes.get("TOO_MANY_REQUESTS").copied().unwrap_or(0);
    assert_eq!(read + refused, codes.values().sum::<usize>(), "{codes:?}");
    let allowed = 200 + (lasted.as_secs_f64() * 20.0).ceil() as usize + 1;
    assert!(
        (200..=allowed).contains(&read),
        "{codes:?} (at most {allowed})"
    );
    assert!(refused > 0, "{codes:?}");
    // still open: once its rate allows one more, it goes through
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.subscribe("last", "{ __typename }", json!({})).await;
    assert_eq!(
        client.next(Duration::from_secs(10)).await,
        json!({ "id": "last", "type": "next", "payload": { "data": { "__typename": "Query" } } })
    );
}

/// `count` sign-ins of the owner from 127.0.0.1, one after the other with a
/// pause: each one's answer and how long it took.
async fn owner_signs_in(server: &Server, count: usize) -> Vec<(Value, Duration)> {
    let mut seen = Vec::new();
    for _ in 0..count {
        let started = Instant::now();
        let body = owner_logs_in(server, "owner@shop.test", "the owner's password").await;
        seen.push((body, started.elapsed()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

fn p99(seen: &[(Value, Duration)]) -> Duration {
    let mut sorted: Vec<Duration> = seen.iter().map(|(_, took)| *took).collect();
    sorted.sort();
    sorted[(sorted.len() * 99).div_ceil(100) - 1]
}

/// One address signing in to its own account over and over, 60 at once
/// (within its 64 connections), gets its share of the password threads,
/// not the whole queue: the owner of another account signs in each time,
/// a few hashes' time later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_signing_in_over_and_over_leaves_others_their_sign_ins() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start().await;
    server
        .register(3, "busy@shop.test", "the busy password")
        .await;
    server
        .register(1, "owner@shop.test", "the owner's password")
        .await;
    let quiet = owner_signs_in(&server, 10).await;

    let url = server.url();
    let attack = flood(
        &url,
        Flood {
            workers: 60,
            each: 10_000,
            lasting: Duration::from_secs(6),
            pause: Duration::ZERO,
        },
        |_, _| {
            let login = json!({ "email": "busy@shop.test", "password": "the busy password" });
            (3, LOGIN, login)
        },
    );
    let owner = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        owner_signs_in(&server, 20).await
    };
    let (answers, during) = tokio::join!(attack, owner);
    let codes = codes(&answers);
    let line = format!(
        "sign-ins to one account from 60 clients on one address: {codes:?}; the owner of \
         another: p99 {} ms (quiet {} ms)",
        p99(&during).as_millis(),
        p99(&quiet).as_millis()
    );
    eprintln!("{line}");
    for (body, _) in &during {
        assert!(body["data"]["login"]["token"].is_string(), "{line}\n{body}");
    }
    assert!(
        codes.iter().any(|(c, n)| c == "200 -" && *n >= 20),
        "{line}"
    );
    assert!(
        p99(&during) <= 5 * p99(&quiet).max(Duration::from_millis(50)),
        "{line}"
    );
}

/// The close code a socket ends with, and when: `None` if it was still open
/// after `limit`, `Some(0)` if it broke without a close frame.
async fn closed_with(client: &mut Client, limit: Duration) -> (Option<u16>, Duration) {
    let started = Instant::now();
    let until = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(until, client.0.next()).await {
            Err(_) => return (None, started.elapsed()),
            Ok(None | Some(Err(_))) => return (Some(0), started.elapsed()),
            Ok(Some(Ok(TungsteniteMessage::Close(frame)))) => {
                return (
                    Some(frame.map_or(0, |f| u16::from(f.code))),
                    started.elapsed(),
                );
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_that_never_init_are_closed_with_4408_and_real_subscribers_still_get_in() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start().await;
    let addr = server.addr.to_string();
    let ((closes, over_share, subscriber), _) = server
        .under_attack(
            "640 WebSockets from 40 addresses that never send connection_init, within 0.64 s",
            async {
                let sockets = join_all((0..640).map(|n| {
                    let addr = addr.clone();
                    async move {
                        // 40 machines opening one each every 40 ms: all 640
                        // handshakes in one instant measured this test
                        // process's own CPU (640 clients, debug build) more
                        // than the server's
                        tokio::time::sleep(Duration::from_millis(n)).await;
                        let mut client = Client::open_from(10 + (n % 40) as u8, &addr)
                            .await
                            .expect("within the address's share");
                        closed_with(&mut client, Duration::from_secs(10)).await
                    }
                }));
                // one address past its share (MAX_WEBSOCKETS_PER_ADDRESS 16)
                let over_share = async {
                    let held = join_all((0..16).map(|_| Client::open_from(60, &addr))).await;
                    let refused = Client::open_from(60, &addr)
                        .await
                        .err()
                        .map(|e| e.to_string());
                    drop(held);
                    refused
                };
                // a real subscriber connects and is acknowledged meanwhile
                let subscriber = async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let (_client, ack) = Client::connect(&addr, json!({})).await;
                    ack
                };
                tokio::join!(sockets, over_share, subscriber)
            },
        )
        .await;
    let mut codes = std::collections::BTreeMap::<Option<u16>, usize>::new();
    for (code, _) in &closes {
        *codes.entry(*code).or_default() += 1;
    }
    let slowest = closes.iter().map(|(_, took)| *took).max().unwrap();
    eprintln!(
        "uninitialised sockets: {codes:?}, the last closed after {} ms; one address past its share: {over_share:?}",
        slowest.as_millis()
    );
    // WEBSOCKET_INIT_TIMEOUT (3 s)
    assert_eq!(codes, [(Some(4408), 640)].into_iter().collect());
    assert!(slowest < Duration::from_secs(6), "{slowest:?}");
    assert!(
        over_share.as_deref().is_some_and(|e| e.contains("429")),
        "{over_share:?}"
    );
    assert_eq!(subscriber, json!({ "type": "connection_ack" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_socket_messages_and_aliased_logins_over_a_socket_are_refused() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start().await;
    server
        .register(9, "victim@shop.test", "the right password")
        .await;
    let addr = server.addr.to_string();
    let aliases: String = (0..100)
        .map(|n| format!("g{n}: login(input: {{ email: \"victim@shop.test\", password: \"guess {n}\" }}) {{ token }} "))
        .collect();
    let ((oversized, aliased), _) = server
        .under_attack(
            "10 clients sending 70 KiB socket messages, 2 sending 100 aliased logins, 20 ms apart, for 5 s",
            async {
                let until = Instant::now() + Duration::from_secs(5);
                let oversized = join_all((0..10).map(|n| {
                    let addr = addr.clone();
                    async move {
                        let mut closes = Vec::new();
                        while Instant::now() < until && closes.len() < 100 {
                            let mut client = Client::open_from(2 + (n % 4) as u8, &addr).await.unwrap();
                            client.send(json!({ "type": "connection_init", "payload": {} })).await;
                            let _ack = client.next(Duration::from_secs(5)).await;
                            let huge = json!({ "id": "1", "type": "subscribe", "payload": { "query": "x".repeat(70 * 1024) } });
                            let _ = client.0.send(TungsteniteMessage::Text(huge.to_string().into())).await;
                            closes.push(closed_with(&mut client, Duration::from_secs(5)).await);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        closes
                    }
                }));
                let aliased = join_all((0..2).map(|n| {
                    let (addr, aliases) = (addr.clone(), aliases.clone());
                    async move {
                        let mut client = Client::open_from(6 + (n % 4) as u8, &addr).await.unwrap();
                        client.send(json!({ "type": "connection_init", "payload": {} })).await;
                        let _ack = client.next(Duration::from_secs(5)).await;
                        let mut answers = Vec::new();
                        while Instant::now() < until && answers.len() < 1_000 {
                            let id = answers.len().to_string();
                            client.subscribe(&id, &format!("mutation {{ {aliases} }}"), json!({})).await;
                            answers.push(client.next(Duration::from_secs(5)).await);
                            let complete = client.next(Duration::from_secs(5)).await;
                            assert_eq!(complete, json!({ "id": id, "type": "complete" }));
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        answers
                    }
                }));
                let (oversized, aliased) = tokio::join!(oversized, aliased);
                (
                    oversized.into_iter().flatten().collect::<Vec<_>>(),
                    aliased.into_iter().flatten().collect::<Vec<_>>(),
                )
            },
        )
        .await;
    eprintln!(
        "oversized messages: {} sockets closed; aliased logins over sockets: {} refused",
        oversized.len(),
        aliased.len()
    );
    // the message is over the 64 KiB limit: the socket is closed at once
    for (code, took) in &oversized {
        assert_eq!(*code, Some(1009), "after {took:?}");
        assert!(*took < Duration::from_secs(2), "{took:?}");
    }
    // refused before anything ran: a result with no data
    for answer in &aliased {
        assert_eq!(answer["type"], "next", "{answer}");
        assert_eq!(answer["payload"]["data"], Value::Null, "{answer}");
        assert_eq!(
            answer["payload"]["errors"][0]["message"],
            "An operation may sign in or register once: at most one login or register field.",
            "{answer}"
        );
    }
    let body = owner_logs_in(&server, "victim@shop.test", "the right password").await;
    assert!(body["data"]["login"]["token"].is_string(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_is_closed_with_4403_when_its_token_expires() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start().await;
    let now = chrono::Utc::now().timestamp();
    let claims = json!({ "sub": "1", "role": "customer", "iat": now, "exp": now + 2 });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(common::SECRET.as_bytes()),
    )
    .unwrap();
    let (mut client, ack) = Client::connect(&server.addr.to_string(), common::bearer(&token)).await;
    assert_eq!(ack, json!({ "type": "connection_ack" }));
    let (code, took) = closed_with(&mut client, Duration::from_secs(6)).await;
    assert_eq!(code, Some(4403));
    assert!(took <= Duration::from_secs(3), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_whose_token_is_revoked_is_refused_at_once_and_closed_with_4403() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start_with(&[("WEBSOCKET_PING_INTERVAL", "2s")]).await;
    let addr = server.addr.to_string();
    let token = &server.shop.tokens[0];
    let (mut client, ack) = Client::connect(&addr, common::bearer(token)).await;
    assert_eq!(ack, json!({ "type": "connection_ack" }));
    client.subscribe("1", "{ me { id } }", json!({})).await;
    assert_eq!(
        client.next(Duration::from_secs(5)).await["payload"]["data"]["me"]["id"],
        "1"
    );
    let _complete = client.next(Duration::from_secs(5)).await;

    // an operator promotes the account: its earlier tokens no longer stand
    sqlx::query("update users set role = 'admin' where id = 1")
        .execute(&server.pool)
        .await
        .unwrap();
    let started = Instant::now();
    client.subscribe("2", "{ me { id } }", json!({})).await;
    let refused = client.next(Duration::from_secs(5)).await;
    assert_eq!(
        refused["payload"]["errors"][0]["message"], "invalid or expired token",
        "{refused}"
    );
    assert_eq!(refused["payload"]["data"], Value::Null, "{refused}");
    let _complete = client.next(Duration::from_secs(5)).await;
    // and the socket is closed at the next ping (every 2 s here)
    let (code, _) = closed_with(&mut client, Duration::from_secs(6)).await;
    assert_eq!(code, Some(4403));
    assert!(
        started.elapsed() <= Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_large_persisted_queries_keeps_the_cache_to_its_bytes() {
    use sha2::{Digest, Sha256};
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start().await;
    let url = server.url();
    let (answers, _) = server
        .under_attack(
            "100 distinct 60 KB persisted queries from one address, 20 ms apart (at most 20 s)",
            // bounded by count: 100 × 60 KB is more than the cache's 4 MiB
            // however slow the machine (a slow one sent 64 in 8 s)
            flood(
                &url,
                Flood {
                    workers: 1,
                    each: 100,
                    lasting: Duration::from_secs(20),
                    pause: Duration::from_millis(20),
                },
                |worker, n| {
                    // valid, so each would be kept: 60 KB, all but a few
                    // bytes of it a comment
                    let padding = "x".repeat(60_000);
                    let query = format!("query Q{worker}x{n} {{ __typename }} # {padding}");
                    let hash = format!("{:x}", Sha256::digest(query.as_bytes()));
                    let body = json!({
                        "query": query,
                        "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } },
                    });
                    (2 + worker as u8, "", body)
                },
            ),
        )
        .await;
    let codes = codes(&answers);
    eprintln!("persisted queries: {} sent, {codes:?}", answers.len());
    assert!(codes.iter().all(|(c, _)| c == "200 -"), "{codes:?}");
    // more than the cache's 4 MiB were sent
    assert!(
        answers.len() * 60_000 > 4 * 1024 * 1024,
        "{}",
        answers.len()
    );
}

/// graphql-js 16's standard introspection query (`getIntrospectionQuery()`),
/// as GraphiQL, code generators and IDEs send it.
const INTROSPECTION: &str = include_str!("fixtures/introspection-query.graphql");

/// Clients asking for the whole schema over and over get it from memory:
/// the query is executed once, and the others keep their latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_the_standard_introspection_query_leaves_other_clients_their_latency() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start().await;
    let url = server.url();
    let (bodies, _) = server
        .under_attack(
            "the standard introspection query from 4 clients on one address (at most 800 each, 5 s)",
            async {
                let until = Instant::now() + Duration::from_secs(5);
                let body = json!({ "query": INTROSPECTION });
                let bodies = join_all((0..4).map(|_| async {
                    let http = client_from(2);
                    let mut bodies = Vec::new();
                    while Instant::now() < until && bodies.len() < 800 {
                        // the bytes, unparsed: parsing 60 KB answers as fast
                        // as they come took this test process a core, which
                        // the legitimate client's latency then measured
                        let answer = http.post(&url).json(&body).send().await.unwrap();
                        assert_eq!(answer.status(), 200);
                        bodies.push(answer.bytes().await.unwrap());
                    }
                    bodies
                }))
                .await;
                bodies.into_iter().flatten().collect::<Vec<_>>()
            },
        )
        .await;
    eprintln!("introspection: {} answered", bodies.len());
    assert!(bodies.len() >= 100, "{}", bodies.len());
    // the whole schema, without errors, and every answer the same bytes
    let first: Value = serde_json::from_slice(&bodies[0]).unwrap();
    assert_eq!(first.get("errors"), None, "{first}");
    let types = first["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "Product"), "{types:?}");
    assert!(bodies.iter().all(|body| *body == bodies[0]));
}

/// Introspection documents that differ each time cannot be answered from
/// memory: they are computed one at a time (9 clients: one computed, 8
/// waiting, the most that may), off the threads that serve requests, and
/// the other clients keep their latency. (Those past the 8 waiting are
/// refused: `introspection_past_the_waiting_ones_is_refused` in the unit
/// tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_ever_different_introspection_queries_leaves_other_clients_their_latency() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start().await;
    let url = server.url();
    let (answers, _) = server
        .under_attack(
            "distinct introspection queries from 9 clients on one address (at most 100 each, 5 s)",
            flood(
                &url,
                Flood {
                    workers: 9,
                    each: 100,
                    lasting: Duration::from_secs(5),
                    pause: Duration::ZERO,
                },
                |worker, n| {
                    // a comment makes each text, and so each answer's key, new
                    let body = json!({ "query": format!("# {worker} {n}\n{INTROSPECTION}") });
                    (2, "", body)
                },
            ),
        )
        .await;
    let codes = codes(&answers);
    eprintln!("distinct introspection: {} sent, {codes:?}", answers.len());
    assert_eq!(codes, vec![("200 -".to_owned(), answers.len())]);
    assert!(answers.len() >= 5, "{codes:?}");
}

/// 2,000 aliased `product(id)` reads in one 52 KB document: the product
/// loader answers them all with two statements (each document took 406 ms
/// and 2,000 statements before), the document is parsed off the request
/// threads in its turn (two of one address's at once: the others are
/// refused with 503), and four clients sending it in a loop from one
/// address leave the others their latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliased_product_reads_in_a_loop_leave_other_clients_their_latency() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start().await;
    let url = server.url();
    let reads: String = (1..=2_000)
        .map(|n| format!("p{n}:product(id:{n}){{id}} "))
        .collect();
    let body = json!({ "query": format!("{{ {reads}}}") });
    let (answers, _) = server
        .under_attack(
            "2,000 aliased product reads a document from 4 clients on one address (at most 200 each, 5 s)",
            flood(
                &url,
                Flood {
                    workers: 4,
                    each: 200,
                    lasting: Duration::from_secs(5),
                    pause: Duration::ZERO,
                },
                |_, _| (2, "", body.clone()),
            ),
        )
        .await;
    let codes = codes(&answers);
    eprintln!("aliased product reads: {} sent, {codes:?}", answers.len());
    let answered = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(
        codes,
        vec![
            ("200 -".to_owned(), answered),
            (
                "503 SERVICE_UNAVAILABLE".to_owned(),
                answers.len() - answered
            )
        ]
    );
    // served in its turn, not shut out: a document costs a debug build
    // about two thirds of a second here, two at a time, so 5 s give
    // 14 to 18 answers on a slow day of this machine, 20 and more on others
    assert!(answered >= 5, "{codes:?}");
    // every answer holds the shop's 12 products and 1,988 nulls
    for (_, answer) in answers.iter().filter(|(status, _)| *status == 200) {
        let fields = answer["data"].as_object().unwrap();
        assert_eq!(fields.len(), 2_000);
        assert_eq!(fields.values().filter(|v| !v.is_null()).count(), 12);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_flood_leaves_other_clients_their_latency() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start().await;
    let metrics = format!("http://{}/metrics", server.addr);
    let (scrapes, _) = server
        .under_attack("/metrics from 20 clients on one address for 5 s", async {
            let until = Instant::now() + Duration::from_secs(5);
            let scrapes = join_all((0..20).map(|_| {
                let metrics = metrics.clone();
                async move {
                    let http = client_from(3);
                    let mut ok = 0usize;
                    while Instant::now() < until && ok < 5_000 {
                        let answer = http.get(&metrics).send().await;
                        if answer.is_ok_and(|a| a.status() == 200) {
                            ok += 1;
                        }
                    }
                    ok
                }
            }))
            .await;
            scrapes.into_iter().sum::<usize>()
        })
        .await;
    eprintln!("metrics: {scrapes} scrapes answered");
    assert!(scrapes >= 100, "{scrapes}");
}

/// The board's listener is served like the API's: an address gets at most
/// its share of connections, and a connection that sends no request is
/// closed after the header timeout, so idle sockets on the board cannot
/// take the file descriptors the API's clients need.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_to_the_board_are_capped_and_closed() {
    let _one = ONE_AT_A_TIME.lock().await;
    let board: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let board_addr = board.to_string();
    let server = Server::start_with(&[
        ("BOARD_ADDR", board_addr.as_str()),
        ("BOARD_USERNAME", "ops"),
        ("BOARD_PASSWORD", "board-password"),
    ])
    .await;
    let (idle, line) = server
        .under_attack(
            "200 idle connections to the board from 2 addresses (64 each at most)",
            join_all((0..200).map(|n| {
                dribble(
                    2 + (n % 2) as u8,
                    board,
                    "",
                    b"",
                    Duration::from_secs(60),
                    Duration::from_secs(16),
                )
            })),
        )
        .await;
    let at_once = idle
        .iter()
        .filter(|(outcome, took)| *outcome == Dribbled::Closed && *took < Duration::from_secs(6))
        .count();
    let after_timeout = idle
        .iter()
        .filter(|(outcome, took)| *outcome == Dribbled::Closed && *took >= Duration::from_secs(9))
        .count();
    let open = idle
        .iter()
        .filter(|(outcome, _)| *outcome == Dribbled::Open)
        .count();
    eprintln!(
        "the board, 200 idle connections: {at_once} closed at once, {after_timeout} after the header timeout, {open} still open at 16 s"
    );
    // MAX_CONNECTIONS_PER_ADDRESS (64) each; HTTP_HEADER_TIMEOUT (10 s)
    assert_eq!((at_once, after_timeout, open), (72, 128, 0), "{line}");
    // the operator still gets the board
    let status = reqwest::Client::new()
        .get(format!("http://{board}/retry"))
        .basic_auth("ops", Some("board-password"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

/// Orders of the most lines an order may have, from 16 clients on one
/// address, each sending its next as soon as the last is answered: they
/// fill the placement statements (a batch holds at most 1,000 lines), and
/// the legitimate client's small orders queue behind theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "at the edge of the suite's bound: the legitimate client's p99 was 78-117 ms in six runs \
            against 125 ms allowed (RELIABILITY.md), with both cores busy"]
async fn an_address_placing_the_largest_orders_leaves_other_clients_their_latency() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start().await;
    let url = server.url();
    let shop = server.shop.clone();
    let (placed, _) = server
        .under_attack(
            "100-line orders from 16 clients on one address for 5 s",
            async {
                let until = Instant::now() + Duration::from_secs(5);
                let placed = join_all((0..16).map(|client| {
                    let (url, shop) = (url.clone(), shop.clone());
                    async move {
                        let http = client_from(3);
                        let token = &shop.tokens[client % shop.tokens.len()];
                        let items: Vec<Value> = (0..100)
                        .map(|line| {
                            json!({
                                "productId": shop.products[line % shop.products.len()].to_string(),
                                "quantity": 1 + line % 5,
                            })
                        })
                        .collect();
                        let mut placed = 0usize;
                        for _ in 0..500 {
                            if Instant::now() >= until {
                                break;
                            }
                            let (status, body) = graphql(
                                &http,
                                &url,
                                Some(token),
                                common::PLACE_ORDER,
                                json!({ "input": { "items": items } }),
                            )
                            .await;
                            placed += usize::from(status == 200 && body.get("errors").is_none());
                        }
                        placed
                    }
                }))
                .await;
                placed.into_iter().sum::<usize>()
            },
        )
        .await;
    eprintln!("largest orders: {placed} placed");
    assert!(placed >= 16, "{placed}");
    // each answered order is there, whole
    let largest = common::count(
        &server.pool,
        "select count(*) from orders o
         where (select count(*) from order_lines l where l.order_id = o.id) = 100",
    )
    .await;
    assert_eq!(largest, placed as i64);
}
