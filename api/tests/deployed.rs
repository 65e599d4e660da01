//! Tally as it is deployed: Debian's nginx, with the configuration the
//! README gives (`docs/deploy/nginx.conf`), ending the clients' connections
//! in front of two `tally serve` replicas and a `tally worker` on one
//! database, with `JWT_SECRET` unset. nginx reaches the replicas from
//! 127.0.0.250, the one address they trust (`TRUSTED_PROXIES`); clients
//! stand for machines of their own by their loopback source addresses.
//! Needs nginx (`scripts/install-test-deps` installs Debian's nginx-light).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{Value, json};
use sqlx::PgPool;
use tally_test_support::TestDatabase;

use crate::common::{
    Client, Clients, PRODUCT_SUBSCRIPTION, Processes, Shop, assert_exact, client_from, free_port,
    wait_until_ready, wait_until_settled,
};

mod common;

/// The address nginx connects to the replicas from: what they trust.
const PROXY_ADDRESS: &str = "127.0.0.250";

const LOGIN: &str = "mutation($email: String!, $password: String!) {
    login(input: { email: $email, password: $password }) { token }
}";

const REGISTER: &str = "mutation($email: String!, $password: String!) {
    register(input: { name: \"Someone\", email: $email, password: $password }) { token }
}";

struct Deployment {
    /// Where clients reach nginx.
    proxy: String,
    replicas: [String; 2],
    pool: PgPool,
    shop: Arc<Shop>,
    url: String,
    /// The two replicas, then the worker.
    processes: Processes,
    _nginx: Nginx,
    _database: TestDatabase,
}

impl Deployment {
    async fn start() -> Self {
        let database = TestDatabase::new("deployed");
        let url = database.url();
        let (pool, mut shop) = common::open_shop(&url).await;
        let replicas = [0, 1].map(|_| format!("127.0.0.1:{}", free_port()));
        let mut processes = Processes(
            replicas
                .iter()
                .map(|addr| replica(&url, addr))
                .collect::<Vec<_>>(),
        );
        processes
            .0
            .push(tally(&url).arg("worker").spawn().expect("tally worker"));
        for addr in &replicas {
            wait_until_ready(addr).await;
        }
        let proxy = format!("127.0.0.1:{}", free_port());
        let nginx = Nginx::start(&proxy, &replicas);
        wait_until_ready(&proxy).await;
        // signed with the secret the replicas made and keep in the database
        let secret: String =
            sqlx::query_scalar("select value from server_secrets where name = 'token'")
                .fetch_one(&pool)
                .await
                .expect("the replicas' shared token secret");
        shop.tokens = common::tokens_signed_with(&pool, &secret).await;
        Self {
            proxy,
            replicas,
            pool,
            shop: Arc::new(shop),
            url,
            processes,
            _nginx: nginx,
            _database: database,
        }
    }

    fn through_proxy(&self) -> String {
        format!("http://{}/graphql", self.proxy)
    }

    fn at_replica(&self, n: usize) -> String {
        format!("http://{}/graphql", self.replicas[n])
    }

    /// Kills replica `n` as a crash would (SIGKILL).
    fn kill_replica(&mut self, n: usize) {
        let child = &mut self.processes.0[n];
        child.kill().unwrap();
        child.wait().unwrap();
    }

    async fn restart_replica(&mut self, n: usize) {
        self.processes.0[n] = replica(&self.url, &self.replicas[n]);
        wait_until_ready(&self.replicas[n]).await;
    }
}

/// `tally` on `url` with nothing else configured: no `JWT_SECRET`.
fn tally(url: &str) -> Command {
    let mut command = common::tally();
    command
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    command
}

/// An API replica on `addr`, trusting nginx's address and running no
/// workers (the worker process counts).
fn replica(url: &str, addr: &str) -> Child {
    tally(url)
        .arg("serve")
        .env("BIND_ADDR", addr)
        .env("TRUSTED_PROXIES", PROXY_ADDRESS)
        .env("WORKER_CONCURRENCY", "0")
        .spawn()
        .expect("tally serve")
}

/// nginx as a child process, on the README's configuration.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    fn start(listen: &str, replicas: &[String; 2]) -> Self {
        let dir =
            std::env::temp_dir().join(format!("tally-nginx-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).unwrap();
        let template = include_str!("../../docs/deploy/nginx.conf");
        let config = template
            .replace("{listen}", listen)
            .replace("{replica_1}", &replicas[0])
            .replace("{replica_2}", &replicas[1])
            .replace("{proxy_address}", PROXY_ADDRESS)
            .replace("{dir}", &dir.to_string_lossy());
        let file = dir.join("nginx.conf");
        std::fs::write(&file, config).unwrap();
        let mut globals = "daemon off;".to_owned();
        if common::as_root() {
            // its workers would otherwise run as nobody, outside `dir`
            globals.push_str(" user root;");
        }
        // Debian's, under /usr/sbin, which a user's PATH may leave out
        let program = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("nginx");
        let child = Command::new(program)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&file)
            // its log (a replica killed makes a line per request it held)
            // stays in `dir`
            .arg("-e")
            .arg(dir.join("error.log"))
            .args(["-g", &globals])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx: run scripts/install-test-deps");
        Self { child, dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers (SIGKILL would orphan them)
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One GraphQL POST; its status and body (status 0: no answer).
async fn post(
    http: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
    query: &str,
    variables: Value,
) -> (u16, Value) {
    let mut request = http
        .post(url)
        .json(&json!({ "query": query, "variables": variables }));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, json!(e.to_string())),
    }
}

async fn login(url: &str, host: u8, email: &str, password: &str) -> String {
    outcome(
        &post(
            &client_from(host),
            url,
            &[],
            LOGIN,
            json!({ "email": email, "password": password }),
        )
        .await,
    )
}

async fn register(url: &str, host: u8, email: &str) -> String {
    let variables = json!({ "email": email, "password": "the right password" });
    outcome(&post(&client_from(host), url, &[], REGISTER, variables).await)
}

/// `"200 token"` for a sign-in, else the status and error code.
fn outcome((status, body): &(u16, Value)) -> String {
    if body["data"]["login"]["token"].is_string() || body["data"]["register"]["token"].is_string() {
        return format!("{status} token");
    }
    let code = body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("-");
    format!("{status} {code}")
}

/// How many of each outcome.
fn counts(outcomes: &[String]) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for outcome in outcomes {
        *counts.entry(outcome.clone()).or_default() += 1;
    }
    counts.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_clients_failed_sign_ins_and_sign_ups_hold_back_no_other_client() {
    let deployment = Deployment::start().await;
    let url = deployment.through_proxy();
    assert_eq!(register(&url, 3, "ann@shop.test").await, "200 token");

    // one machine: 20 failed logins, then 30 sign-ups
    let mut failures = Vec::new();
    for n in 0..20 {
        failures.push(login(&url, 2, &format!("nobody{n}@shop.test"), "a guess").await);
    }
    let mut sign_ups = Vec::new();
    for n in 0..30 {
        sign_ups.push(register(&url, 2, &format!("bot{n}@shop.test")).await);
    }
    // LOGIN_FAILURES_PER_ADDRESS 10 per 10 minutes, REGISTRATIONS_PER_ADDRESS
    // 20 per hour: counted once whichever replica each request reached
    assert_eq!(
        counts(&failures),
        [
            ("200 UNAUTHENTICATED".into(), 10),
            ("429 TOO_MANY_REQUESTS".into(), 10)
        ]
    );
    assert_eq!(
        counts(&sign_ups),
        [
            ("200 token".into(), 20),
            ("429 TOO_MANY_REQUESTS".into(), 10)
        ]
    );

    // the others: a sign-in, a sign-up, a typo, each from its own machine
    let started = Instant::now();
    assert_eq!(
        login(&url, 3, "ann@shop.test", "the right password").await,
        "200 token"
    );
    assert_eq!(register(&url, 4, "bob@shop.test").await, "200 token");
    assert_eq!(
        login(&url, 5, "ann@shop.test", "a typo").await,
        "200 UNAUTHENTICATED"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_at_one_account_over_both_replicas_count_as_over_one() {
    let deployment = Deployment::start().await;
    assert_eq!(
        register(&deployment.through_proxy(), 9, "victim@shop.test").await,
        "200 token"
    );
    // 20 machines, each guessing once, straight at one replica or the other
    let mut guesses = Vec::new();
    for n in 0..20u8 {
        let url = deployment.at_replica(usize::from(n % 2));
        guesses.push(login(&url, 100 + n, "victim@shop.test", "a guess").await);
    }
    // LOGIN_FAILURES_PER_ACCOUNT, 5 per 15 minutes: 5 in all, not 5 each
    assert_eq!(
        &guesses[..6],
        [
            "200 UNAUTHENTICATED",
            "200 UNAUTHENTICATED",
            "200 UNAUTHENTICATED",
            "200 UNAUTHENTICATED",
            "200 UNAUTHENTICATED",
            "429 TOO_MANY_REQUESTS"
        ]
    );
    assert_eq!(
        counts(&guesses),
        [
            ("200 UNAUTHENTICATED".into(), 5),
            ("429 TOO_MANY_REQUESTS".into(), 15)
        ]
    );
    // its owner, from the machine it registered from, is not held back
    assert_eq!(
        login(
            &deployment.through_proxy(),
            9,
            "victim@shop.test",
            "the right password"
        )
        .await,
        "200 token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_naming_its_own_address_gains_nothing() {
    let deployment = Deployment::start().await;
    let proxy = deployment.through_proxy();
    // ten failures through the proxy, each claiming another address
    let mut outcomes = Vec::new();
    for n in 0..11 {
        let spoofed = format!("127.0.0.{}", 60 + n);
        let variables = json!({ "email": format!("x{n}@shop.test"), "password": "a guess" });
        let headers = [
            ("x-forwarded-for", spoofed.as_str()),
            ("x-real-ip", spoofed.as_str()),
        ];
        outcomes.push(outcome(
            &post(&client_from(7), &proxy, &headers, LOGIN, variables).await,
        ));
    }
    assert_eq!(
        counts(&outcomes),
        [
            ("200 UNAUTHENTICATED".into(), 10),
            ("429 TOO_MANY_REQUESTS".into(), 1)
        ]
    );
    // straight at a replica, which does not trust 127.0.0.7: the same
    for replica in 0..2 {
        let variables = json!({ "email": "y@shop.test", "password": "a guess" });
        let headers = [
            ("x-forwarded-for", "127.0.0.90"),
            ("forwarded", "for=127.0.0.90"),
        ];
        let url = deployment.at_replica(replica);
        let answer = post(&client_from(7), &url, &headers, LOGIN, variables).await;
        assert_eq!(outcome(&answer), "429 TOO_MANY_REQUESTS");
    }
    // the machines it named were charged nothing
    assert_eq!(
        login(&proxy, 60, "z@shop.test", "a guess").await,
        "200 UNAUTHENTICATED"
    );
    assert_eq!(
        login(&proxy, 90, "z@shop.test", "a guess").await,
        "200 UNAUTHENTICATED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_and_sockets_through_the_proxy_are_held_to_their_own_shares() {
    let deployment = Deployment::start().await;
    let url = deployment.through_proxy();

    // 256 clients at once (4 on each of 64 machines), 20 requests each:
    // every one answered. The replicas see them all come from nginx's one
    // address, which they trust, so no client's connection share is nginx's
    let answers = join_all((0..256).map(|n| {
        let url = url.clone();
        async move {
            let http = client_from(10 + (n % 64) as u8);
            let mut codes = Vec::new();
            for _ in 0..20 {
                let answer = post(&http, &url, &[], "{ __typename }", json!({})).await;
                codes.push(match answer {
                    (200, body) if body == json!({ "data": { "__typename": "Query" } }) => {
                        "200 ok".to_owned()
                    }
                    other => outcome(&other),
                });
            }
            codes
        }
    }))
    .await;
    let answers: Vec<String> = answers.into_iter().flatten().collect();
    assert_eq!(counts(&answers), [("200 ok".into(), 256 * 20)]);

    // 24 machines open a socket each: all acknowledged
    let proxy = deployment.proxy.clone();
    let sockets = join_all((0..24u8).map(|n| {
        let proxy = proxy.clone();
        async move {
            let mut client = Client::open_from(120 + n, &proxy).await.unwrap();
            client
                .send(json!({ "type": "connection_init", "payload": {} }))
                .await;
            let ack = client.next(Duration::from_secs(10)).await;
            (client, ack)
        }
    }))
    .await;
    for (_, ack) in &sockets {
        assert_eq!(ack, &json!({ "type": "connection_ack" }));
    }
    // one machine holds MAX_WEBSOCKETS_PER_ADDRESS (16): its 17th is refused
    let held: Vec<_> = join_all((0..16).map(|_| Client::open_from(150, &proxy))).await;
    assert!(held.iter().all(Result::is_ok));
    let refused = Client::open_from(150, &proxy)
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        refused.as_deref().is_some_and(|e| e.contains("429")),
        "{refused:?}"
    );
    // while another machine still gets in
    assert!(Client::open_from(151, &proxy).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_tokens_and_figures() {
    let mut deployment = Deployment::start().await;
    // a token one replica made is good at the other, and after a restart
    let (_, body) = post(
        &client_from(3),
        &deployment.at_replica(0),
        &[],
        REGISTER,
        json!({ "email": "ann@shop.test", "password": "the right password" }),
    )
    .await;
    let token = body["data"]["register"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = |n: usize, deployment: &Deployment| {
        let (url, token) = (deployment.at_replica(n), token.clone());
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "query": "{ me { email } }" }))
                .send()
                .await
                .unwrap();
            response.json::<Value>().await.unwrap()
        }
    };
    let ann = json!({ "data": { "me": { "email": "ann@shop.test" } } });
    assert_eq!(me(1, &deployment).await, ann);
    deployment.kill_replica(0);
    deployment.restart_replica(0).await;
    assert_eq!(me(0, &deployment).await, ann);

    // a subscription on one replica sees an order placed through the other
    let product = deployment.shop.products[0].to_string();
    let (mut subscriber, ack) = Client::connect(&deployment.replicas[0], json!({})).await;
    assert_eq!(ack, json!({ "type": "connection_ack" }));
    subscriber
        .subscribe("figures", PRODUCT_SUBSCRIPTION, json!({ "ids": [product] }))
        .await;
    // the product as it is, at once
    let sales =
        |event: Value| event["payload"]["data"]["productFiguresChanged"]["salesCount"].clone();
    assert_eq!(
        sales(subscriber.next(Duration::from_secs(10)).await),
        json!(0)
    );
    let customer = deployment.shop.tokens[0].clone();
    let placed = common::post_graphql(
        &deployment.replicas[1],
        &customer,
        common::PLACE_ORDER,
        json!({ "input": { "items": [{ "productId": product, "quantity": 3 }] } }),
    )
    .await;
    assert!(placed["data"]["placeOrder"]["id"].is_string(), "{placed}");
    // counted by the worker process, told to replica 0 by PostgreSQL
    assert_eq!(
        sales(subscriber.next(Duration::from_secs(20)).await),
        json!(3)
    );
}

/// An anonymous read one replica keeps in memory changes as soon as a
/// product is edited through the other replica, and as soon as the worker
/// counts an order placed through it: every change reaches every replica by
/// NOTIFY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_one_replica_keeps_changes_with_what_the_other_replica_changes() {
    let deployment = Deployment::start().await;
    let product = deployment.shop.products[0].to_string();
    let admin = deployment.shop.tokens.last().unwrap().clone();
    let read = "query ($id: ID!) { product(id: $id) { name salesCount } }";
    let at_zero = || async {
        let (status, body) = post(
            &client_from(3),
            &deployment.at_replica(0),
            &[],
            read,
            json!({ "id": product }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body["data"]["product"].clone()
    };
    let kept = at_zero().await;
    assert_eq!(kept["salesCount"], 0);
    assert_eq!(at_zero().await, kept);

    // until `changed` shows at replica 0: how long that took
    let until = |changed: fn(&Value) -> bool| async move {
        let started = Instant::now();
        loop {
            let now = at_zero().await;
            if changed(&now) {
                return started.elapsed();
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{now}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let edited = common::post_graphql(
        &deployment.replicas[1],
        &admin,
        "mutation ($id: ID!) { updateProduct(id: $id, input: { name: \"Renamed\" }) { name } }",
        json!({ "id": product }),
    )
    .await;
    assert_eq!(
        edited["data"]["updateProduct"]["name"], "Renamed",
        "{edited}"
    );
    let edit_seen = until(|now| now["name"] == "Renamed").await;

    let placed = common::post_graphql(
        &deployment.replicas[1],
        &deployment.shop.tokens[0],
        common::PLACE_ORDER,
        json!({ "input": { "items": [{ "productId": product, "quantity": 3 }] } }),
    )
    .await;
    assert!(placed["data"]["placeOrder"]["id"].is_string(), "{placed}");
    let count_seen = until(|now| now["salesCount"] == 3).await;
    eprintln!(
        "replica 0's kept read: the edit on replica 1 seen after {} ms, the order counted by \
         the worker after {} ms (its job's run included)",
        edit_seen.as_millis(),
        count_seen.as_millis()
    );
}

/// Apollo Client's automatic persisted queries: the hash alone, then the
/// text with it when the server says it does not know the hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persisted_query_misses_once_whichever_replica_answers() {
    use sha2::{Digest, Sha256};
    let deployment = Deployment::start().await;
    let query = "query Menu { products(first: 3) { edges { node { name } } } }";
    let hash = format!("{:x}", Sha256::digest(query.as_bytes()));
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let send = |n: usize, with_text: bool| {
        let url = deployment.at_replica(n);
        let mut body = json!({ "extensions": extensions });
        if with_text {
            body["query"] = json!(query);
        }
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            response.json::<Value>().await.unwrap()
        }
    };
    let missed = send(1, false).await;
    assert_eq!(
        missed["errors"][0]["message"], "PersistedQueryNotFound",
        "{missed}"
    );
    let registered = send(1, true).await;
    assert!(
        registered["data"]["products"]["edges"].is_array(),
        "{registered}"
    );
    // the other replica knows it from the first
    let elsewhere = send(0, false).await;
    assert_eq!(elsewhere["data"], registered["data"], "{elsewhere}");
    assert_eq!(
        sqlx::query_scalar::<_, String>("select hash from persisted_queries")
            .fetch_all(&deployment.pool)
            .await
            .unwrap(),
        vec![hash]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_and_doubles_no_order() {
    let mut deployment = Deployment::start().await;
    // 16 clients through nginx, each retrying with its idempotency key until
    // answered (nginx answers 502 for a request its replica died under)
    let clients = Clients::start(16, &deployment.shop, &deployment.proxy);
    // the clients are all 127.0.0.1, which nginx sends to one replica: each
    // is killed in turn, so the one serving them is killed mid-load
    for replica in [0, 1] {
        tokio::time::sleep(Duration::from_secs(2)).await;
        deployment.kill_replica(replica);
        tokio::time::sleep(Duration::from_secs(2)).await;
        deployment.restart_replica(replica).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (placed, attempts) = clients.stop().await;
    eprintln!(
        "replica killed: {placed} orders, {} cancelled, {} unanswered and retried, {} unavailable",
        attempts.cancelled, attempts.unanswered, attempts.unavailable
    );
    assert!(attempts.unexpected.is_empty(), "{:?}", attempts.unexpected);
    assert!(placed >= 50, "{placed}");
    wait_until_settled(&deployment.pool, Duration::from_secs(60)).await;
    assert_exact(&deployment.pool, placed, &attempts).await;
}
