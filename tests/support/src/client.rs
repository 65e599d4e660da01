//! What every Tally test does as a client or a reader, whether it drives an
//! app in process (`tests/`) or the binary (`api/tests/`): GraphQL over
//! HTTP, the parts of an answer, and single figures read from the database.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::PgPool;

/// An HTTP client whose connections leave from 127.0.0.`host`: a machine
/// of its own, as far as limits kept per address go.
pub fn client_from(host: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, host]))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("a client on another loopback address")
}

/// `{ query, variables }`, as a GraphQL POST's body.
pub fn graphql_body(query: &str, variables: Value) -> Value {
    json!({ "query": query, "variables": variables })
}

/// One GraphQL POST of `body` to `url` (`http://…/graphql`), as `token` or
/// anonymously: the status and the body, whatever the status (a body that
/// is not JSON comes back as a JSON string).
pub async fn post_graphql(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut request = http.post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// The `data` of a response that must have no errors.
pub fn data(body: &Value) -> &Value {
    assert!(body.get("errors").is_none(), "unexpected errors: {body}");
    &body["data"]
}

/// The `extensions.code` of the first error.
pub fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a code: {body}"))
}

/// The message of the first error; empty without one.
pub fn error_message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

/// The id of the order a `placeOrder` answer carries.
pub fn placed_order_id(body: &Value) -> i64 {
    data(body)["placeOrder"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A single bigint from `sql`.
pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// How many figures differ from a recount over the order lines, orders not
/// counted yet included: 0 when all is exact.
pub async fn figure_mismatches(pool: &PgPool) -> i64 {
    count(pool, jobs::rebuild::FIGURE_MISMATCHES_SQL).await
}

/// Waits until the post-order jobs have nothing left to do
/// (`jobs::admin::unsettled`); how long that took. Panics after `limit`.
pub async fn wait_until_settled(pool: &PgPool, limit: Duration) -> Duration {
    let db = tally::db::orm(pool);
    let started = Instant::now();
    loop {
        let unsettled = jobs::admin::unsettled(&db).await.expect("the jobs table");
        if unsettled == 0 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{unsettled} jobs still to run after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
