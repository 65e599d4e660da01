//! Hostile requests against a real server: malformed transports, oversized
//! and deeply nested documents, abusive GraphQL, out-of-range and SQL-looking
//! values, and forged, expired or malformed tokens. Every request gets an
//! exact status (and, for a GraphQL answer, an exact error code), writes
//! nothing, leaks nothing, and leaves the server answering.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestApp, data, error_code, error_message};

/// The secret the harness gives the server: tokens signed here with it are genuine.
const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

/// Strings that must never reach a client: they would reveal the code,
/// the database or a crash.
const LEAKS: [&str; 12] = [
    "sqlx",
    "sea_orm",
    "sea-orm",
    "panicked",
    ".rs:",
    "SELECT",
    "relation",
    "postgres",
    "stack backtrace",
    "INTERNAL_SERVER_ERROR",
    "internal server error",
    "/work/",
];

/// One raw HTTP request.
#[derive(Clone)]
struct Request {
    method: Method,
    path: &'static str,
    /// Raw values: some are not valid UTF-8 on purpose.
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
}

impl Request {
    fn new(method: Method, path: &'static str) -> Self {
        Self {
            method,
            path,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A POST to `/graphql` of these bytes, with this content type if any.
    fn post(content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Self {
        let mut request = Self::new(Method::POST, "/graphql");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.body = body.into();
        request
    }

    /// A POST of a JSON document.
    fn json(body: &Value) -> Self {
        Self::post(Some("application/json"), body.to_string())
    }

    /// A GraphQL operation as clients send it.
    fn gql(query: &str, variables: Value) -> Self {
        Self::json(&json!({ "query": query, "variables": variables }))
    }

    fn header(mut self, name: &'static str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }
}

/// What a case must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A GraphQL answer with this status whose first error has this code.
    Error(StatusCode, &'static str),
    /// The same, with this exact first error message.
    Message(StatusCode, &'static str, &'static str),
    /// A GraphQL answer without errors.
    Data,
    /// A refusal before GraphQL: this status, whatever the (non-JSON) body.
    Refused(StatusCode),
}

use Expect::{Data, Error, Message, Refused};

const OK: StatusCode = StatusCode::OK;
const BAD_REQUEST: StatusCode = StatusCode::BAD_REQUEST;
const TOO_LARGE: StatusCode = StatusCode::PAYLOAD_TOO_LARGE;
const METHOD_NOT_ALLOWED: StatusCode = StatusCode::METHOD_NOT_ALLOWED;
const NOT_FOUND: StatusCode = StatusCode::NOT_FOUND;
const UNSUPPORTED: StatusCode = StatusCode::UNSUPPORTED_MEDIA_TYPE;

struct Case {
    name: String,
    request: Request,
    expect: Expect,
}

fn case(name: impl Into<String>, request: Request, expect: Expect) -> Case {
    Case {
        name: name.into(),
        request,
        expect,
    }
}

/// What one response was, for the assertions and the printed table.
struct Answer {
    status: StatusCode,
    text: String,
    json: Option<Value>,
    elapsed: Duration,
}

impl Answer {
    fn code(&self) -> Option<&str> {
        self.json.as_ref()?["errors"][0]["extensions"]["code"].as_str()
    }
}

async fn send(app: &TestApp, request: &Request) -> Answer {
    let mut builder = app
        .http()
        .request(request.method.clone(), app.url(request.path))
        .timeout(Duration::from_secs(30))
        .body(request.body.clone());
    for (name, value) in &request.headers {
        let value = reqwest::header::HeaderValue::from_bytes(value).expect("a header value");
        builder = builder.header(*name, value);
    }
    let started = Instant::now();
    let response = builder.send().await.expect("an answer within 30 s");
    let status = response.status();
    let bytes = response.bytes().await.expect("a body");
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).ok();
    Answer {
        status,
        text,
        json,
        elapsed,
    }
}

/// Every count the brief names, and the rows a write could change.
async fn snapshot(app: &TestApp) -> Value {
    let mut counts = serde_json::Map::new();
    for table in [
        "users",
        "products",
        "product_variants",
        "orders",
        "order_lines",
        "cart_lines",
        "apalis.jobs",
    ] {
        let count = app.count(&format!("select count(*) from {table}")).await;
        counts.insert(table.to_owned(), count.into());
    }
    json!({
        "counts": counts,
        "users": app.rows("select id, name, email, role, password_hash from users order by id").await,
        "products": app
            .rows("select id, name, description, category, price_cents, available, updated_at from products order by id")
            .await,
        "variants": app.rows("select id, product_id, name, price_cents from product_variants order by id").await,
        "cart": app.rows("select id, user_id, product_id, variant_id, quantity from cart_lines order by id").await,
        "orders": app.rows("select id, user_id, total_cents, idempotency_key from orders order by id").await,
        "jobs": app.rows("select id, status, attempts, run_at from apalis.jobs order by id").await,
    })
}

/// The server still answers, anonymously and with a token that needs the database.
async fn assert_still_answers(app: &TestApp, token: &str, user_id: i64, after: &str) {
    let body = app.gql("{ __typename }", json!({})).await;
    assert_eq!(
        body,
        json!({ "data": { "__typename": "Query" } }),
        "after {after}"
    );
    let body = app.gql_as(token, "{ me { id } }", json!({})).await;
    assert_eq!(
        body,
        json!({ "data": { "me": { "id": user_id.to_string() } } }),
        "after {after}"
    );
}

/// Why an answer is not the expected one, if it is not.
fn mismatch(expect: Expect, answer: &Answer) -> Option<String> {
    if answer.status == StatusCode::INTERNAL_SERVER_ERROR {
        return Some("a 500".into());
    }
    if let Some(leak) = LEAKS.iter().find(|leak| answer.text.contains(*leak)) {
        return Some(format!("leaks {leak:?}"));
    }
    let json_error = |status: StatusCode, code: &str| {
        if answer.status != status {
            return Some(format!("status {} instead of {status}", answer.status));
        }
        match answer.code() {
            Some(got) if got == code => None,
            Some(got) => Some(format!("code {got} instead of {code}")),
            None => Some(format!("no error code, expected {code}")),
        }
    };
    match expect {
        Error(status, code) => json_error(status, code),
        Message(status, code, message) => json_error(status, code).or_else(|| {
            let got = answer.json.as_ref().map(error_message).unwrap_or_default();
            (got != message).then(|| format!("message {got:?} instead of {message:?}"))
        }),
        Data => {
            let ok = answer.status == OK
                && answer
                    .json
                    .as_ref()
                    .is_some_and(|body| body.get("errors").is_none() && body["data"].is_object());
            (!ok).then(|| "expected data without errors".to_owned())
        }
        Refused(status) => {
            if answer.status != status {
                return Some(format!("status {} instead of {status}", answer.status));
            }
            match &answer.json {
                // the handler's answer to a body that is no GraphQL request
                Some(body)
                    if answer.code() == Some("BAD_USER_INPUT")
                        && body["data"].is_null()
                        && error_message(body)
                            .starts_with("the request is not a GraphQL request") =>
                {
                    None
                }
                Some(_) => {
                    Some("a JSON body other than the refusal: the request reached GraphQL".into())
                }
                // refused by the HTTP layers (body limit, method, headers)
                None => None,
            }
        }
    }
}

/// Runs every case, each followed by the checks that nothing was written and
/// the server still answers; prints the observed table and fails listing
/// every case that answered otherwise.
async fn run(app: &TestApp, token: &str, user_id: i64, cases: Vec<Case>) {
    let baseline = snapshot(app).await;
    let mut failures = Vec::new();
    println!(
        "{:<72} {:>6} {:<16} {:>6}  message",
        "case", "status", "code", "ms"
    );
    for case in &cases {
        let answer = send(app, &case.request).await;
        let message: String = match &answer.json {
            Some(body) => error_message(body).to_owned(),
            None => answer.text.clone(),
        };
        println!(
            "{:<72} {:>6} {:<16} {:>6}  {}",
            case.name,
            answer.status.as_u16(),
            answer.code().unwrap_or("-"),
            answer.elapsed.as_millis(),
            message
                .chars()
                .take(70)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect::<String>()
        );
        if let Some(why) = mismatch(case.expect, &answer) {
            let excerpt: String = answer.text.chars().take(300).collect();
            failures.push(format!(
                "{}: {why} (expected {:?}); answered {} {excerpt}",
                case.name, case.expect, answer.status
            ));
        }
        assert_eq!(
            snapshot(app).await,
            baseline,
            "{} wrote to the database",
            case.name
        );
        assert_still_answers(app, token, user_id, &case.name).await;
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases answered otherwise:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

// ---- tokens signed by hand: base64url, SHA-256 and HMAC (no crates for them) ----

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn sha256(message: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut state: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut padded = message.to_vec();
    padded.push(0x80);
    while padded.len() % 64 != 56 {
        padded.push(0);
    }
    padded.extend_from_slice(&(message.len() as u64 * 8).to_be_bytes());
    for block in padded.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_be_bytes(bytes.try_into().unwrap());
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = state;
        for (k, w) in K.iter().zip(w) {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(*k)
                .wrapping_add(w);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut digest = [0u8; 32];
    for (bytes, word) in digest.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = block
        .iter()
        .map(|b| b ^ 0x36)
        .chain(message.iter().copied())
        .collect();
    let outer: Vec<u8> = block
        .iter()
        .map(|b| b ^ 0x5c)
        .chain(sha256(&inner))
        .collect();
    sha256(&outer)
}

/// A JWT of this header and these claims, HMAC-SHA256-signed with `key`, or
/// with an empty signature without one.
fn jwt(header: &Value, claims: &Value, key: Option<&[u8]>) -> String {
    let signing_input = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let signature = key
        .map(|key| base64url(&hmac_sha256(key, signing_input.as_bytes())))
        .unwrap_or_default();
    format!("{signing_input}.{signature}")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn hs256() -> Value {
    json!({ "typ": "JWT", "alg": "HS256" })
}

/// The claims Tally issues, for `sub` as `role`, expiring `exp_in` seconds from now.
fn claims(sub: impl ToString, role: &str, exp_in: i64) -> Value {
    json!({ "sub": sub.to_string(), "role": role, "iat": now() - 60, "exp": now() + exp_in })
}

// ---- the fixture and the cases ----

const PLACE_ORDER: &str =
    "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id total } }";
const ADD_TO_CART: &str =
    "mutation($input: AddToCartInput!) { addToCart(input: $input) { total } }";
const CREATE_PRODUCT: &str =
    "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }";

/// An admin, a customer with a cart line and an order, and a product with two
/// variants; no workers, so the order's job stays as it is.
struct Fixture {
    admin: String,
    admin_id: i64,
    customer: String,
    customer_id: i64,
    product: String,
    variant: String,
    cart_line: String,
    order: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    let admin = app.admin_token().await;
    let admin_id = app
        .count("select id from users where email = 'admin@example.com'")
        .await;
    let product = app
        .create_product(
            &admin,
            "Cola",
            "beverages",
            "2.50",
            &[("Small", "2.00"), ("Large", "3.50")],
        )
        .await;
    let (customer, customer_id) = app.register_customer("Ann").await;
    let variant = product["variants"][0]["id"].as_str().unwrap().to_owned();
    let product = product["id"].as_str().unwrap().to_owned();
    let cart = app
        .gql_as(
            &customer,
            "mutation($input: AddToCartInput!) { addToCart(input: $input) { lines { id } } }",
            json!({ "input": { "productId": product, "quantity": 2 } }),
        )
        .await;
    let cart_line = data(&cart)["addToCart"]["lines"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let order = app
        .place_order(&customer, &[(product.as_str(), Some(variant.as_str()), 1)])
        .await;
    let order = data(&order)["placeOrder"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Fixture {
        admin,
        admin_id,
        customer,
        customer_id,
        product,
        variant,
        cart_line,
        order,
    }
}

fn order_of(f: &Fixture, quantity: Value) -> Value {
    json!({ "input": { "items": [{ "productId": f.product, "quantity": quantity }] } })
}

fn product_input(name: &str, category: &str, price: Value) -> Value {
    json!({ "input": { "name": name, "category": category, "price": price } })
}

/// `{ "query": "{ __typename }<spaces>" }` of exactly `len` bytes.
fn sized_body(len: usize) -> String {
    let frame = "{\"query\":\"{ __typename }\"}".len();
    format!(
        "{{\"query\":\"{{ __typename }}{}\"}}",
        " ".repeat(len - frame)
    )
}

fn transport_cases(f: &Fixture) -> Vec<Case> {
    let mutation = json!({ "query": PLACE_ORDER, "variables": order_of(f, json!(1)) });
    let mut invalid_utf8 = b"{\"query\":\"{ __typename }\",\"variables\":{\"x\":\"".to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    invalid_utf8.extend_from_slice(b"\"}}");
    let deep_json = format!(
        "{{\"query\":\"{{ __typename }}\",\"variables\":{{\"x\":{}{}}}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let batch_of_1000: Vec<Value> = (0..1000)
        .map(|_| json!({ "query": "{ __typename }" }))
        .collect();
    let batch_of_orders = vec![mutation.clone(), mutation.clone()];
    let form = format!(
        "query={}",
        "mutation%7BplaceOrder%28input%3A%7Bitems%3A%5B%5D%7D%29%7Bid%7D%7D"
    );
    vec![
        case(
            "invalid JSON: an unterminated object",
            Request::post(Some("application/json"), "{\"query\": "),
            Refused(BAD_REQUEST),
        ),
        case(
            "an empty body",
            Request::post(Some("application/json"), ""),
            Refused(BAD_REQUEST),
        ),
        case(
            "the JSON null",
            Request::post(Some("application/json"), "null"),
            Refused(BAD_REQUEST),
        ),
        case(
            "a query that is null",
            Request::post(Some("application/json"), "{\"query\": null}"),
            Refused(BAD_REQUEST),
        ),
        case(
            "an object without a query",
            Request::post(Some("application/json"), "{}"),
            Error(OK, "BAD_USER_INPUT"),
        ),
        case(
            "variables that are an array",
            Request::json(&json!({ "query": "{ __typename }", "variables": [1, 2] })),
            Refused(BAD_REQUEST),
        ),
        case(
            "variables that are a string",
            Request::json(&json!({ "query": "{ __typename }", "variables": "x" })),
            Refused(BAD_REQUEST),
        ),
        case(
            "a number too large for JSON (1e400)",
            Request::post(
                Some("application/json"),
                "{\"query\":\"{ __typename }\",\"variables\":{\"x\":1e400}}",
            ),
            Refused(BAD_REQUEST),
        ),
        case(
            "a duplicated query key smuggling a mutation",
            Request::post(
                Some("application/json"),
                format!(
                    "{{\"query\":\"{{ __typename }}\",\"query\":{}}}",
                    json!(PLACE_ORDER)
                ),
            )
            .bearer(&f.customer),
            Refused(BAD_REQUEST),
        ),
        case(
            "invalid UTF-8 bytes in the body",
            Request::post(Some("application/json"), invalid_utf8),
            Refused(BAD_REQUEST),
        ),
        case(
            "a lone UTF-16 surrogate escaped in the query",
            Request::post(
                Some("application/json"),
                "{\"query\":\"{ __typename \\ud800 }\"}",
            ),
            Refused(BAD_REQUEST),
        ),
        case(
            "a NUL character in the query",
            Request::json(&json!({ "query": "{ __typename \u{0} }" })),
            Error(OK, "BAD_USER_INPUT"),
        ),
        case(
            "variables nested 10,000 arrays deep",
            Request::post(Some("application/json"), deep_json),
            Refused(BAD_REQUEST),
        ),
        case(
            "a body of 64 KiB + 1 byte",
            Request::post(Some("application/json"), sized_body(64 * 1024 + 1)),
            Refused(TOO_LARGE),
        ),
        case(
            "a body of 8 MiB",
            Request::post(Some("application/json"), sized_body(8 << 20)),
            Refused(TOO_LARGE),
        ),
        case(
            "a JSON array batch of 1,000 operations",
            Request::json(&Value::Array(batch_of_1000)),
            Refused(BAD_REQUEST),
        ),
        case(
            "a batch of two orders with a token",
            Request::json(&Value::Array(batch_of_orders)).bearer(&f.customer),
            Refused(BAD_REQUEST),
        ),
        case(
            "an empty batch",
            Request::post(Some("application/json"), "[]"),
            Error(OK, "BAD_USER_INPUT"),
        ),
        case(
            "an order as text/plain JSON without a token",
            Request::post(Some("text/plain"), mutation.to_string()),
            Error(UNSUPPORTED, "BAD_USER_INPUT"),
        ),
        case(
            "text/plain that is not JSON",
            Request::post(Some("text/plain"), "placeOrder please"),
            Error(UNSUPPORTED, "BAD_USER_INPUT"),
        ),
        case(
            "a form-encoded mutation",
            Request::post(Some("application/x-www-form-urlencoded"), form).bearer(&f.customer),
            Error(UNSUPPORTED, "BAD_USER_INPUT"),
        ),
        case(
            "multipart/form-data without a boundary",
            Request::post(Some("multipart/form-data"), "--x\r\n\r\n--x--\r\n"),
            Error(UNSUPPORTED, "BAD_USER_INPUT"),
        ),
        case(
            "multipart/form-data with a broken body",
            Request::post(Some("multipart/form-data; boundary=x"), "garbage").bearer(&f.customer),
            Error(UNSUPPORTED, "BAD_USER_INPUT"),
        ),
        case(
            "a content type that does not parse",
            Request::post(Some(";;;"), mutation.to_string()).bearer(&f.customer),
            Error(UNSUPPORTED, "BAD_USER_INPUT"),
        ),
        case(
            "an XML body",
            Request::post(Some("application/xml"), "<query>{ __typename }</query>"),
            Error(UNSUPPORTED, "BAD_USER_INPUT"),
        ),
        case(
            "an Authorization header of 100 kB",
            Request::json(&mutation).header("authorization", format!("Bearer {}", "a".repeat(100_000))),
            Error(OK, "UNAUTHENTICATED"),
        ),
        case(
            "an Authorization header of 1 MB",
            Request::json(&mutation).header("authorization", format!("Bearer {}", "a".repeat(1_000_000))),
            Refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        ),
        case(
            "150 headers",
            (0..150).fold(Request::json(&mutation).bearer(&f.customer), |r, _| r.header("x-junk", "junk")),
            Refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        ),
        case(
            "PUT /graphql",
            {
                let mut r = Request::json(&mutation).bearer(&f.customer);
                r.method = Method::PUT;
                r
            },
            Refused(METHOD_NOT_ALLOWED),
        ),
        case(
            "DELETE /graphql",
            Request::new(Method::DELETE, "/graphql").bearer(&f.customer),
            Refused(METHOD_NOT_ALLOWED),
        ),
        case(
            "GET /graphql with a mutation in the query string",
            Request::new(
                Method::GET,
                "/graphql?query=mutation%7BplaceOrder(input%3A%7Bitems%3A%5B%7BproductId%3A%221%22%2Cquantity%3A1%7D%5D%7D)%7Bid%7D%7D",
            )
            .bearer(&f.customer),
            Error(METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
        ),
        case(
            "POST to /graphql/ with a trailing slash",
            {
                let mut r = Request::json(&mutation).bearer(&f.customer);
                r.path = "/graphql/";
                r
            },
            Refused(NOT_FOUND),
        ),
    ]
}

fn variable_cases(f: &Fixture) -> Vec<Case> {
    let order_lines = |n: usize| -> Value {
        let items: Vec<Value> = (0..n)
            .map(|_| json!({ "productId": f.product, "quantity": 1 }))
            .collect();
        json!({ "input": { "items": items } })
    };
    let as_customer =
        |query: &str, variables: Value| Request::gql(query, variables).bearer(&f.customer);
    let as_admin = |query: &str, variables: Value| Request::gql(query, variables).bearer(&f.admin);
    let bad = Error(OK, "BAD_USER_INPUT");
    let mut cases = vec![
        case(
            "a string for an Int quantity",
            as_customer(PLACE_ORDER, order_of(f, json!("one"))),
            bad,
        ),
        case(
            "an object for an ID",
            as_customer(
                PLACE_ORDER,
                json!({ "input": { "items": [{ "productId": { "id": 1 }, "quantity": 1 }] } }),
            ),
            bad,
        ),
        case(
            "a number for a Decimal price",
            as_admin(
                CREATE_PRODUCT,
                product_input("Tea", "beverages", json!(9.5)),
            ),
            bad,
        ),
        case(
            "a missing required variable",
            as_customer(PLACE_ORDER, json!({})),
            bad,
        ),
        case(
            "an input field the schema does not have",
            as_customer(
                PLACE_ORDER,
                json!({ "input": { "items": [{ "productId": f.product, "quantity": 1, "unitPrice": "0.01" }] } }),
            ),
            bad,
        ),
        case(
            "quantity 0",
            as_customer(PLACE_ORDER, order_of(f, json!(0))),
            bad,
        ),
        case(
            "quantity -1",
            as_customer(PLACE_ORDER, order_of(f, json!(-1))),
            bad,
        ),
        case(
            "quantity 100",
            as_customer(PLACE_ORDER, order_of(f, json!(100))),
            bad,
        ),
        case(
            "quantity 2^31",
            as_customer(PLACE_ORDER, order_of(f, json!(2_147_483_648_i64))),
            bad,
        ),
        case(
            "quantity 2^63",
            as_customer(
                PLACE_ORDER,
                order_of(f, json!(9_223_372_036_854_775_808_u64)),
            ),
            bad,
        ),
        case(
            "quantity 1.5",
            as_customer(PLACE_ORDER, order_of(f, json!(1.5))),
            bad,
        ),
        case(
            "quantity -2^31 added to the cart",
            as_customer(
                ADD_TO_CART,
                json!({ "input": { "productId": f.product, "quantity": -2_147_483_648_i64 } }),
            ),
            bad,
        ),
        case(
            "quantity 98 added to a cart line of 2",
            as_customer(
                ADD_TO_CART,
                json!({ "input": { "productId": f.product, "quantity": 98 } }),
            ),
            bad,
        ),
        case(
            "a quantity of 10^30 written into the query",
            as_customer(
                &format!(
                    "mutation {{ placeOrder(input: {{ items: [{{ productId: \"{}\", quantity: 1000000000000000000000000000000 }}] }}) {{ id }} }}",
                    f.product
                ),
                json!({}),
            ),
            bad,
        ),
        case(
            "an order of 101 lines",
            as_customer(PLACE_ORDER, order_lines(101)),
            Message(OK, "BAD_USER_INPUT", "an order has at most 100 lines"),
        ),
        case(
            "an order of 1,500 lines (inside the body limit)",
            as_customer(PLACE_ORDER, order_lines(1500)),
            Message(OK, "BAD_USER_INPUT", "an order has at most 100 lines"),
        ),
        case(
            "an order of 10,000 lines (over the body limit)",
            as_customer(PLACE_ORDER, order_lines(10_000)),
            Refused(TOO_LARGE),
        ),
        case(
            "a product name of 1,000 characters",
            as_admin(
                CREATE_PRODUCT,
                product_input(&"n".repeat(1000), "beverages", json!("1.00")),
            ),
            Message(OK, "BAD_USER_INPUT", "name must have 1 to 200 characters"),
        ),
        case(
            "a product name of 100,000 characters",
            as_admin(
                CREATE_PRODUCT,
                product_input(&"n".repeat(100_000), "beverages", json!("1.00")),
            ),
            Refused(TOO_LARGE),
        ),
        case(
            "a product name of 201 four-byte emoji",
            as_admin(
                CREATE_PRODUCT,
                product_input(&"\u{1F600}".repeat(201), "beverages", json!("1.00")),
            ),
            Message(OK, "BAD_USER_INPUT", "name must have 1 to 200 characters"),
        ),
        case(
            "a product name of spaces and tabs only",
            as_admin(
                CREATE_PRODUCT,
                product_input(" \t \n ", "beverages", json!("1.00")),
            ),
            Message(OK, "BAD_USER_INPUT", "name must have 1 to 200 characters"),
        ),
        case(
            "a description of 5,001 characters",
            as_admin(
                CREATE_PRODUCT,
                json!({ "input": { "name": "Tea", "category": "beverages", "price": "1.00", "description": "d".repeat(5001) } }),
            ),
            Message(
                OK,
                "BAD_USER_INPUT",
                "description must have at most 5000 characters",
            ),
        ),
        case(
            "a variant name of 101 characters",
            as_admin(
                CREATE_PRODUCT,
                json!({ "input": { "name": "Tea", "category": "beverages", "price": "1.00", "variants": [{ "name": "v".repeat(101), "price": "1.00" }] } }),
            ),
            Message(
                OK,
                "BAD_USER_INPUT",
                "variant name must have 1 to 100 characters",
            ),
        ),
        case(
            "a customer name of 101 characters",
            Request::gql(
                "mutation($input: RegisterInput!) { register(input: $input) { token } }",
                json!({ "input": { "name": "x".repeat(101), "email": "long@example.com", "password": "correct horse" } }),
            ),
            Message(OK, "BAD_USER_INPUT", "name must have 1 to 100 characters"),
        ),
        case(
            "a password of 129 characters",
            Request::gql(
                "mutation($input: RegisterInput!) { register(input: $input) { token } }",
                json!({ "input": { "name": "Long", "email": "long@example.com", "password": "p".repeat(129) } }),
            ),
            Message(
                OK,
                "BAD_USER_INPUT",
                "password must have 8 to 128 characters",
            ),
        ),
        case(
            "an email of 300 characters",
            Request::gql(
                "mutation($input: RegisterInput!) { register(input: $input) { token } }",
                json!({ "input": { "name": "Long", "email": format!("{}@example.com", "e".repeat(288)), "password": "correct horse" } }),
            ),
            Message(OK, "BAD_USER_INPUT", "email is not a valid address"),
        ),
        case(
            "an idempotency key of 10 kB",
            as_customer(
                PLACE_ORDER,
                json!({ "input": { "items": [{ "productId": f.product, "quantity": 1 }], "idempotencyKey": "k".repeat(10_000) } }),
            ),
            Message(
                OK,
                "BAD_USER_INPUT",
                "idempotencyKey must have 1 to 200 characters",
            ),
        ),
        case(
            "an idempotency key of 201 characters",
            as_customer(
                PLACE_ORDER,
                json!({ "input": { "items": [{ "productId": f.product, "quantity": 1 }], "idempotencyKey": "k".repeat(201) } }),
            ),
            Message(
                OK,
                "BAD_USER_INPUT",
                "idempotencyKey must have 1 to 200 characters",
            ),
        ),
    ];
    for (price, why) in [
        ("1e9", "an exponent"),
        ("-1.00", "a negative amount"),
        ("1.234", "three decimals"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("", "an empty string"),
        (" 1.00", "a leading space"),
        ("1,00", "a decimal comma"),
        ("92233720368547758.08", "one cent over i64::MAX cents"),
        ("0x10", "hexadecimal"),
    ] {
        cases.push(case(
            format!("a price of {price:?} ({why})"),
            as_admin(
                CREATE_PRODUCT,
                product_input("Tea", "beverages", json!(price)),
            ),
            bad,
        ));
    }
    cases
}

fn injection_cases(f: &Fixture) -> Vec<Case> {
    let sql = "pizza'; drop table users;--";
    let as_customer =
        |query: &str, variables: Value| Request::gql(query, variables).bearer(&f.customer);
    let as_admin = |query: &str, variables: Value| Request::gql(query, variables).bearer(&f.admin);
    let bad = Error(OK, "BAD_USER_INPUT");
    vec![
        case(
            "a category with SQL in createProduct",
            as_admin(CREATE_PRODUCT, product_input("Tea", sql, json!("1.00"))),
            bad,
        ),
        case(
            "a category with SQL in products",
            Request::gql(
                "query($c: String) { products(category: $c) { nodes { id } } }",
                json!({ "c": sql }),
            ),
            bad,
        ),
        case(
            "a category with SQL in updateProduct",
            as_admin(
                "mutation($id: ID!, $c: String) { updateProduct(id: $id, input: { category: $c }) { id } }",
                json!({ "id": f.product, "c": sql }),
            ),
            bad,
        ),
        case(
            "a product id of `1 or 1=1`",
            Request::gql(
                "query($id: ID!) { product(id: $id) { id } }",
                json!({ "id": "1 or 1=1" }),
            ),
            bad,
        ),
        case(
            "an order id with a stacked statement",
            as_customer(
                "query($id: ID!) { order(id: $id) { id } }",
                json!({ "id": format!("{}; delete from orders", f.order) }),
            ),
            bad,
        ),
        case(
            "an order id over i64::MAX",
            as_customer(
                "query($id: ID!) { order(id: $id) { id } }",
                json!({ "id": "9223372036854775808" }),
            ),
            bad,
        ),
        case(
            "an order id of 0",
            as_customer(
                "query($id: ID!) { order(id: $id) { id } }",
                json!({ "id": "0" }),
            ),
            bad,
        ),
        case(
            "an order id that does not exist",
            as_customer(
                "query($id: ID!) { order(id: $id) { id } }",
                json!({ "id": "9223372036854775807" }),
            ),
            Error(OK, "NOT_FOUND"),
        ),
        case(
            "a cart line id with SQL",
            as_customer(
                "mutation($id: ID!) { removeCartLine(lineId: $id) { total } }",
                json!({ "id": format!("{} or 1=1", f.cart_line) }),
            ),
            bad,
        ),
        case(
            "a variant id with SQL",
            as_customer(
                ADD_TO_CART,
                json!({ "input": { "productId": f.product, "variantId": format!("{}' --", f.variant), "quantity": 1 } }),
            ),
            bad,
        ),
        case(
            "a cursor with SQL",
            Request::gql(
                "{ products(after: \"' or 1=1 --\") { nodes { id } } }",
                json!({}),
            ),
            bad,
        ),
        case(
            "an email with SQL at login",
            Request::gql(
                "mutation($input: LoginInput!) { login(input: $input) { token } }",
                json!({ "input": { "email": "admin@example.com' or '1'='1", "password": "x' or '1'='1" } }),
            ),
            Message(OK, "UNAUTHENTICATED", "invalid email or password"),
        ),
        case(
            "a well-formed email with SQL at login",
            Request::gql(
                "mutation($input: LoginInput!) { login(input: $input) { token } }",
                json!({ "input": { "email": "a'or'1'='1@example.com", "password": "x'or'1'='1" } }),
            ),
            Message(OK, "UNAUTHENTICATED", "invalid email or password"),
        ),
        case(
            "an email with SQL at registration",
            Request::gql(
                "mutation($input: RegisterInput!) { register(input: $input) { token } }",
                json!({ "input": { "name": "Eve", "email": "eve@example.com'; drop table users;--", "password": "correct horse" } }),
            ),
            Message(OK, "BAD_USER_INPUT", "email is not a valid address"),
        ),
        case(
            "an idempotency key with SQL, for an unknown product",
            as_customer(
                PLACE_ORDER,
                json!({ "input": { "items": [{ "productId": "999999", "quantity": 1 }], "idempotencyKey": "k'); delete from orders; --" } }),
            ),
            Message(OK, "NOT_FOUND", "product 999999 does not exist"),
        ),
        case(
            "a job status with SQL",
            as_admin("{ jobs(status: \"Failed' or '1'='1\") { id } }", json!({})),
            bad,
        ),
        case(
            "a job id with SQL",
            as_admin("mutation { retryJob(id: \"x' or '1'='1\") }", json!({})),
            Error(OK, "NOT_FOUND"),
        ),
        case(
            "a queue name with SQL",
            as_admin(
                "mutation { retryFailedJobs(queue: \"order_analytics'; delete from apalis.jobs; --\") }",
                json!({}),
            ),
            Error(OK, "NOT_FOUND"),
        ),
        case(
            "jobs(first: 2^31 - 1)",
            as_admin("{ jobs(first: 2147483647) { id } }", json!({})),
            bad,
        ),
        case(
            "products(first: -1)",
            Request::gql("{ products(first: -1) { nodes { id } } }", json!({})),
            bad,
        ),
    ]
}

/// F0 spreads F1 twice, F1 spreads F2 twice, …, F`levels` selects `leaf`:
/// a document of a few hundred bytes with 2^`levels` paths through its fragments.
fn fragment_bomb(levels: usize, leaf: &str) -> String {
    let mut document = String::from("query { ...F0 }");
    for level in 0..levels {
        document.push_str(&format!(
            " fragment F{level} on Query {{ ...F{next} ...F{next} }}",
            next = level + 1
        ));
    }
    document.push_str(&format!(" fragment F{levels} on Query {{ {leaf} }}"));
    document
}

fn document_cases(f: &Fixture) -> Vec<Case> {
    let bad = Error(OK, "BAD_USER_INPUT");
    let aliases = |n: usize| {
        let fields: Vec<String> = (0..n)
            .map(|i| format!("a{i}: products(first: 100) {{ nodes {{ id }} }}"))
            .collect();
        format!("{{ {} }}", fields.join(" "))
    };
    let fragment_bomb =
        |levels: usize, leaf: &str| Request::gql(&fragment_bomb(levels, leaf), json!({}));
    let schema_aliases = |n: usize| {
        let fields: Vec<String> = (0..n)
            .map(|i| {
                format!("s{i}:__schema{{types{{name fields{{name args{{name}} type{{name}}}}}}}}")
            })
            .collect();
        format!("{{ {} }}", fields.join(" "))
    };
    let deep_type = format!(
        "{{ __type(name: \"Query\") {{ {}name{} }} }}",
        "fields { type { ".repeat(7),
        " } }".repeat(7)
    );
    vec![
        case(
            "a query 13 fields deep through real types",
            Request::gql(
                "{ myOrders { edges { node { lines { product { variants { id } } } } } } }",
                json!({}),
            )
            .bearer(&f.customer),
            Data,
        ),
        case(
            "an introspection query nesting its lists of fields 7 deep",
            Request::gql(&deep_type, json!({})),
            Message(
                OK,
                "BAD_USER_INPUT",
                "Introspection is nested too deep: fields, interfaces, possibleTypes and inputFields may nest at most 2 deep.",
            ),
        ),
        case(
            "10,000 nested selection sets",
            Request::gql(
                &format!("{{{}}}", "a {".repeat(10_000) + &"}".repeat(10_000)),
                json!({}),
            ),
            bad,
        ),
        case(
            "100 nested inline fragments",
            Request::gql(
                &format!(
                    "{{ {} __typename {} }}",
                    "... on Query { ".repeat(100),
                    "}".repeat(100)
                ),
                json!({}),
            ),
            bad,
        ),
        case(
            "1,000 aliases of products(first: 100)",
            Request::gql(&aliases(1000), json!({})),
            Message(OK, "BAD_USER_INPUT", "Query is too complex."),
        ),
        case(
            "2,000 aliases of products(first: 100)",
            Request::gql(&aliases(2000), json!({})),
            Refused(TOO_LARGE),
        ),
        case(
            "5,001 repetitions of __typename (merged into one field)",
            Request::gql(&format!("{{ {} }}", "__typename ".repeat(5001)), json!({})),
            Data,
        ),
        case(
            "a fragment that spreads itself",
            Request::gql(
                "query { ...A } fragment A on Query { ...A }",
                json!({}),
            ),
            bad,
        ),
        case(
            "a cycle of two fragments",
            Request::gql(
                "query { ...A } fragment A on Query { __typename ...B } fragment B on Query { ...A }",
                json!({}),
            ),
            bad,
        ),
        case(
            "a fragment bomb of 2^5 paths to `me { id }` (complexity 3,232: `me` runs a statement)",
            fragment_bomb(5, "me { id }"),
            Data,
        ),
        case(
            "a fragment bomb of 2^6 paths to `me { id }` (complexity 6,464)",
            fragment_bomb(6, "me { id }"),
            Message(OK, "BAD_USER_INPUT", "Query is too complex."),
        ),
        case(
            "a fragment bomb of 2^12 paths to `me { id }` (complexity 413,696)",
            fragment_bomb(12, "me { id }"),
            Message(OK, "BAD_USER_INPUT", "Query is too complex."),
        ),
        case(
            "a fragment bomb of 2^10 paths to `__typename`",
            fragment_bomb(10, "__typename"),
            Data,
        ),
        case(
            "5 aliases of the whole __schema",
            Request::gql(&schema_aliases(5), json!({})),
            Data,
        ),
        case(
            "200 aliases of the whole __schema (inside the complexity limit)",
            Request::gql(&schema_aliases(200), json!({})),
            Message(
                OK,
                "BAD_USER_INPUT",
                "An operation may read the schema at most 5 times (__schema or __type fields).",
            ),
        ),
        case(
            "1,000 @skip(if: false) on one field",
            Request::gql(
                &format!("{{ __typename {} }}", "@skip(if: false) ".repeat(1000)),
                json!({}),
            ),
            Data,
        ),
        case(
            "an unknown operation name",
            Request::json(&json!({ "query": "query A { __typename }", "operationName": "B" })),
            bad,
        ),
        case(
            "two anonymous operations",
            Request::gql("{ __typename } { __typename }", json!({})),
            bad,
        ),
        case(
            "a subscription",
            Request::gql("subscription { orders { id } }", json!({})),
            bad,
        ),
        case(
            "a field name of 50,000 characters",
            Request::gql(&format!("{{ {} }}", "f".repeat(50_000)), json!({})),
            bad,
        ),
        case(
            "49 aliased orders of an unknown product in one mutation (50 are too complex)",
            Request::gql(
                &format!(
                    "mutation {{ {} }}",
                    (0..49)
                        .map(|i| format!("o{i}: placeOrder(input: {{ items: [{{ productId: \"999999\", quantity: 1 }}] }}) {{ id }}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                json!({}),
            )
            .bearer(&f.customer),
            Error(OK, "NOT_FOUND"),
        ),
    ]
}

fn token_cases(f: &Fixture) -> Vec<Case> {
    let invalid = Message(OK, "UNAUTHENTICATED", "invalid or expired token");
    let required = Message(OK, "UNAUTHENTICATED", "authentication required");
    let tea = product_input("Tea", "beverages", json!("1.00"));
    let create = |header: &[u8]| {
        Request::gql(CREATE_PRODUCT, tea.clone()).header("authorization", header.to_vec())
    };
    let create_as = |token: &str| Request::gql(CREATE_PRODUCT, tea.clone()).bearer(token);
    let admin = |exp_in: i64| claims(f.admin_id, "admin", exp_in);
    vec![
        case(
            "an order without a token",
            Request::gql(PLACE_ORDER, order_of(f, json!(1))),
            required,
        ),
        case(
            "createProduct without a token",
            Request::gql(CREATE_PRODUCT, tea.clone()),
            required,
        ),
        case("the scheme alone: `Bearer`", create(b"Bearer"), required),
        case("`Bearer ` and nothing", create(b"Bearer "), required),
        case("`Bearer x.y`", create(b"Bearer x.y"), invalid),
        case("`Basic abc`", create(b"Basic abc"), required),
        case(
            "the admin token in a Basic scheme",
            create(format!("Basic {}", f.admin).as_bytes()),
            required,
        ),
        case(
            "a header of bytes that are not text",
            create(b"Bearer \xff\xfe\xfd"),
            required,
        ),
        case(
            "a token of 10 kB",
            create(format!("Bearer {}", "a".repeat(10_000)).as_bytes()),
            invalid,
        ),
        case(
            "an admin token signed with another secret",
            create_as(&jwt(
                &hs256(),
                &admin(3600),
                Some(b"another-secret-another-secret-another!"),
            )),
            invalid,
        ),
        case(
            "an admin token with `alg: none` and no signature",
            create_as(&jwt(
                &json!({ "typ": "JWT", "alg": "none" }),
                &admin(3600),
                None,
            )),
            invalid,
        ),
        case(
            "an admin token with `alg: NONE` and no signature",
            create_as(&jwt(
                &json!({ "typ": "JWT", "alg": "NONE" }),
                &admin(3600),
                None,
            )),
            invalid,
        ),
        case(
            "an admin token with `alg: RS256` signed with the secret",
            create_as(&jwt(
                &json!({ "typ": "JWT", "alg": "RS256" }),
                &admin(3600),
                Some(SECRET),
            )),
            invalid,
        ),
        case(
            "an admin token with a `kid` path, signed with an empty key",
            create_as(&jwt(
                &json!({ "typ": "JWT", "alg": "HS256", "kid": "../../../../dev/null" }),
                &admin(3600),
                Some(b""),
            )),
            invalid,
        ),
        case(
            "a genuine admin token that expired an hour ago",
            create_as(&jwt(&hs256(), &admin(-3600), Some(SECRET))),
            invalid,
        ),
        case(
            "a genuine admin token without `exp`",
            create_as(&jwt(
                &hs256(),
                &json!({ "sub": f.admin_id.to_string(), "role": "admin", "iat": now() }),
                Some(SECRET),
            )),
            invalid,
        ),
        case(
            "a genuine token of role `superuser`",
            create_as(&jwt(
                &hs256(),
                &claims(f.admin_id, "superuser", 3600),
                Some(SECRET),
            )),
            invalid,
        ),
        case(
            "a genuine token of role `ADMIN`",
            create_as(&jwt(
                &hs256(),
                &claims(f.admin_id, "ADMIN", 3600),
                Some(SECRET),
            )),
            invalid,
        ),
        case(
            "a genuine admin token whose sub is SQL",
            create_as(&jwt(
                &hs256(),
                &claims("1 or 1=1", "admin", 3600),
                Some(SECRET),
            )),
            invalid,
        ),
        case(
            "a genuine admin token whose sub is a number, not a string",
            create_as(&jwt(
                &hs256(),
                &json!({ "sub": f.admin_id, "role": "admin", "iat": now(), "exp": now() + 3600 }),
                Some(SECRET),
            )),
            invalid,
        ),
        case(
            "the customer's token with its payload swapped for an admin's",
            {
                let parts: Vec<&str> = f.customer.split('.').collect();
                create_as(&format!(
                    "{}.{}.{}",
                    parts[0],
                    base64url(admin(3600).to_string().as_bytes()),
                    parts[2]
                ))
            },
            invalid,
        ),
        case(
            "the customer's token, then a forged admin one, in two headers",
            create_as(&f.customer).header(
                "authorization",
                format!(
                    "Bearer {}",
                    jwt(&json!({ "alg": "none" }), &admin(3600), None)
                ),
            ),
            Message(OK, "FORBIDDEN", "you are not allowed to do this"),
        ),
    ]
}

// ---- the tests ----

async fn run_table(cases: fn(&Fixture) -> Vec<Case>) {
    let app = TestApp::spawn_without_workers().await;
    let f = fixture(&app).await;
    run(&app, &f.customer, f.customer_id, cases(&f)).await;
}

#[tokio::test]
async fn malformed_oversized_and_misrouted_requests_are_refused_before_graphql() {
    run_table(transport_cases).await;
}

#[tokio::test]
async fn variables_of_the_wrong_type_or_out_of_range_are_bad_input() {
    run_table(variable_cases).await;
}

#[tokio::test]
async fn sql_in_ids_categories_emails_keys_and_cursors_is_bad_input_or_not_found() {
    run_table(injection_cases).await;
}

#[tokio::test]
async fn deep_wide_cyclic_and_exponential_documents_are_refused_quickly() {
    run_table(document_cases).await;
}

#[tokio::test]
async fn malformed_forged_expired_and_unsigned_tokens_are_unauthenticated() {
    run_table(token_cases).await;
}

#[tokio::test]
async fn a_token_signed_by_hand_with_the_servers_secret_is_accepted() {
    let app = TestApp::spawn_without_workers().await;
    let f = fixture(&app).await;

    // the hand-made SHA-256 and HMAC match RFC 4231's test case 2
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );

    // tokens made here are accepted like the server's own, so each forgery in
    // the token table is refused for its own flaw, not for a bad signature
    let customer = jwt(
        &hs256(),
        &claims(f.customer_id, "customer", 3600),
        Some(SECRET),
    );
    let body = app.gql_as(&customer, "{ me { id role } }", json!({})).await;
    assert_eq!(
        data(&body)["me"],
        json!({ "id": f.customer_id.to_string(), "role": "CUSTOMER" })
    );
    let admin = jwt(&hs256(), &claims(f.admin_id, "admin", 3600), Some(SECRET));
    let body = app
        .gql_as(&admin, "{ jobs { orderNumber status } }", json!({}))
        .await;
    assert_eq!(
        data(&body)["jobs"],
        json!([{ "orderNumber": "ORD-00000001", "status": "PENDING" }])
    );
}

#[tokio::test]
async fn the_token_of_a_deleted_customer_is_refused_everywhere() {
    let app = TestApp::spawn_without_workers().await;
    let f = fixture(&app).await;
    let (bob, bob_id) = app.register_customer("Bob").await;
    data(
        &app.gql_as(
            &bob,
            ADD_TO_CART,
            json!({ "input": { "productId": f.product, "quantity": 1 } }),
        )
        .await,
    );
    assert_eq!(
        app.execute(&format!("delete from users where id = {bob_id}"))
            .await,
        1
    );
    let baseline = snapshot(&app).await;

    // the account is gone, so is what its token stood for
    for query in [
        "{ me { id } }",
        "{ cart { total lines { id } } }",
        "{ myOrders { nodes { id } } }",
        "mutation { placeOrderFromCart { id } }",
    ] {
        let body = app.gql_as(&bob, query, json!({})).await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{query}: {body}");
        assert_eq!(error_message(&body), "invalid or expired token", "{query}");
        assert_eq!(body["data"], Value::Null, "{query}: {body}");
    }

    assert_eq!(snapshot(&app).await, baseline);
    assert_still_answers(&app, &f.customer, f.customer_id, "a deleted customer").await;
}

#[tokio::test]
async fn the_token_of_a_deleted_customer_cannot_add_to_a_cart_or_order() {
    let app = TestApp::spawn_without_workers().await;
    let f = fixture(&app).await;
    let (bob, bob_id) = app.register_customer("Bob").await;
    app.execute(&format!("delete from users where id = {bob_id}"))
        .await;
    let baseline = snapshot(&app).await;

    for (query, variables) in [
        (
            ADD_TO_CART,
            json!({ "input": { "productId": f.product, "quantity": 1 } }),
        ),
        (PLACE_ORDER, order_of(&f, json!(1))),
    ] {
        let body = app.gql_as(&bob, query, variables).await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{query}: {body}");
        assert_eq!(body["data"], Value::Null, "{query}: {body}");
    }

    assert_eq!(snapshot(&app).await, baseline);
    assert_still_answers(&app, &f.customer, f.customer_id, "a deleted customer").await;
}

#[tokio::test]
async fn two_variants_of_one_name_in_one_request_are_bad_input() {
    let app = TestApp::spawn_without_workers().await;
    let f = fixture(&app).await;
    let baseline = snapshot(&app).await;
    let twins = json!([{ "name": "Small", "price": "1.00" }, { "name": "Small", "price": "2.00" }]);

    let created = app
        .gql_as(
            &f.admin,
            CREATE_PRODUCT,
            json!({ "input": { "name": "Tea", "category": "beverages", "price": "1.00", "variants": twins } }),
        )
        .await;
    let updated = app
        .gql_as(
            &f.admin,
            "mutation($id: ID!, $input: UpdateProductInput!) { updateProduct(id: $id, input: $input) { id } }",
            json!({ "id": f.product, "input": { "variants": twins } }),
        )
        .await;

    for body in [created, updated] {
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(
            error_message(&body),
            "variant names must be unique within a product"
        );
        assert_eq!(body["data"], Value::Null);
    }
    assert_eq!(snapshot(&app).await, baseline);
}

#[tokio::test]
async fn a_fragment_bomb_of_under_a_kilobyte_is_refused_within_a_second() {
    let app = TestApp::spawn_without_workers().await;
    let f = fixture(&app).await;
    let baseline = snapshot(&app).await;
    let document = fragment_bomb(22, "me { id }");
    assert!(document.len() < 1024, "{} bytes", document.len());

    let answer = send(
        &app,
        &Request::gql(&document, json!({})).bearer(&f.customer),
    )
    .await;

    assert_eq!(
        mismatch(
            Message(
                OK,
                "BAD_USER_INPUT",
                "Query is too large: over 10000 fields once its fragments are expanded."
            ),
            &answer
        ),
        None
    );
    assert!(
        answer.elapsed < Duration::from_secs(1),
        "refused after {:?}",
        answer.elapsed
    );
    assert_eq!(snapshot(&app).await, baseline);
    assert_still_answers(&app, &f.customer, f.customer_id, "a fragment bomb").await;
}

#[tokio::test]
async fn control_characters_in_any_string_are_bad_input_and_write_nothing() {
    let app = TestApp::spawn_without_workers().await;
    let f = fixture(&app).await;
    let baseline = snapshot(&app).await;
    let register = "mutation($input: RegisterInput!) { register(input: $input) { token } }";
    let product =
        |name: &str| json!({ "input": { "name": name, "category": "pizza", "price": "5.00" } });
    let mut order_with_key = order_of(&f, json!(1));
    order_with_key["input"]["idempotencyKey"] = json!("key\u{1b}[2J");
    for (token, query, variables) in [
        (
            None,
            register,
            json!({ "input": { "name": "Nul\u{0}", "email": "nul@example.com", "password": "correct horse" } }),
        ),
        (
            None,
            register,
            json!({ "input": { "name": "Ann", "email": "a\u{0}@example.com", "password": "correct horse" } }),
        ),
        (Some(&f.admin), CREATE_PRODUCT, product("Pizza\u{7f}")),
        (Some(&f.customer), PLACE_ORDER, order_with_key),
        // in the document itself, as a GraphQL escape
        (
            Some(&f.admin),
            "mutation { createProduct(input: { name: \"A\\u0000\", category: \"pizza\", price: \"1.00\" }) { id } }",
            json!({}),
        ),
    ] {
        let body = match token {
            Some(token) => app.gql_as(token, query, variables.clone()).await,
            None => app.gql(query, variables.clone()).await,
        };
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{variables}: {body}");
        assert_eq!(
            error_message(&body),
            "A string may not hold control characters (such as NUL) other than tab and line breaks."
        );
    }
    assert_eq!(snapshot(&app).await, baseline);
    // tabs and line breaks are text like any other
    let created = app
        .gql_as(&f.admin, CREATE_PRODUCT, product("Two\tlines\r\nof pizza"))
        .await;
    assert!(
        data(&created)["createProduct"]["id"].is_string(),
        "{created}"
    );
}
