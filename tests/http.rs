//! The HTTP surface: probes, GraphiQL, malformed and oversized requests,
//! and the limits checked before anything runs.

use reqwest::StatusCode;
use serde_json::{Value, json};

use tally::config::AllowedOrigins;

use crate::harness::{Options, TestApp, error_code, error_message};

/// Posts a raw body to `/graphql` as JSON; returns the status and the body text.
async fn post_raw(app: &TestApp, body: impl Into<String>) -> (StatusCode, String) {
    let response = app
        .http()
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(body.into())
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.text().await.expect("body"))
}

/// Posts a query; returns the status and the JSON body.
async fn post_query(app: &TestApp, query: &str) -> (StatusCode, Value) {
    let (status, text) = post_raw(app, json!({ "query": query }).to_string()).await;
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, body)
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, String) {
    let response = app.http().get(app.url(path)).send().await.expect("request");
    let status = response.status();
    (status, response.text().await.expect("body"))
}

/// `__schema { types { fields { type { ofType { … { name } } } } } }` with
/// `of_types` levels of `ofType`: `5 + of_types` fields deep.
fn introspection_nested(of_types: usize) -> String {
    format!(
        "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(of_types),
        " }".repeat(of_types)
    )
}

#[tokio::test]
async fn the_probes_answer_ok_and_ready() {
    let app = TestApp::spawn().await;

    assert_eq!(
        get(&app, "/healthz").await,
        (StatusCode::OK, "ok".to_owned())
    );
    assert_eq!(
        get(&app, "/readyz").await,
        (StatusCode::OK, "ready".to_owned())
    );
}

#[tokio::test]
async fn get_graphql_serves_graphiql() {
    let app = TestApp::spawn().await;

    // what a browser sends when it opens the address
    let response = app
        .http()
        .get(app.url("/graphql"))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "text/html; charset=utf-8");
    let html = response.text().await.unwrap();
    assert!(html.to_lowercase().contains("graphiql"), "{html}");
    assert!(html.contains("Tally GraphiQL"), "{html}");
    // everything it loads comes from this server, not a CDN
    assert!(!html.contains("://"), "{html}");
    for (asset, content_type, min_len) in [
        (
            "/graphiql/graphiql.min.js",
            "application/javascript",
            1_000_000,
        ),
        ("/graphiql/graphiql.min.css", "text/css", 100_000),
        (
            "/graphiql/react.production.min.js",
            "application/javascript",
            10_000,
        ),
        (
            "/graphiql/react-dom.production.min.js",
            "application/javascript",
            100_000,
        ),
    ] {
        assert!(html.contains(asset), "{asset} not referenced");
        let response = app.http().get(app.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert_eq!(response.headers()["content-type"], content_type, "{asset}");
        assert!(response.bytes().await.unwrap().len() > min_len, "{asset}");
    }
    let missing = app
        .http()
        .get(app.url("/graphiql/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_invalid_json_body_is_a_client_error_that_reveals_no_internals() {
    let app = TestApp::spawn().await;

    for body in ["{\"query\": ", "not json at all", "{\"query\": 42}", ""] {
        let (status, text) = post_raw(&app, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}: {text}");
        for leak in [
            "sqlx", "sea_orm", "panicked", ".rs", "/src/", "/home/", "/work/", "/root/",
        ] {
            assert!(!text.contains(leak), "{body:?} answered {leak:?}: {text}");
        }
    }
    assert_eq!(app.count("select count(*) from users").await, 0);
}

#[tokio::test]
async fn a_body_over_64_kib_is_refused_with_413() {
    let app = TestApp::spawn().await;
    const LIMIT: usize = 64 * 1024;

    // `{"query":"{ __typename }<spaces>"}` of an exact length
    let sized = |len: usize| {
        let frame = "{\"query\":\"{ __typename }\"}".len();
        format!(
            "{{\"query\":\"{{ __typename }}{}\"}}",
            " ".repeat(len - frame)
        )
    };
    assert_eq!(sized(LIMIT).len(), LIMIT);

    let (status, text) = post_raw(&app, sized(LIMIT)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({ "data": { "__typename": "Query" } })
    );

    let (status, text) = post_raw(&app, sized(LIMIT + 1)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");

    let (status, _) = post_raw(&app, sized(4 * LIMIT)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_syntax_error_is_bad_input_with_null_data() {
    let app = TestApp::spawn().await;

    let (status, body) = post_query(&app, "{ products { ").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{body}");
    assert!(app.statements.take().is_empty());
}

#[tokio::test]
async fn an_unknown_field_is_bad_input_naming_the_field() {
    let app = TestApp::spawn().await;

    let (status, body) = post_query(&app, "{ products { edges { node { id flavour } } } }").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(
        error_message(&body),
        "Unknown field \"flavour\" on type \"Product\".",
        "{body}"
    );
    assert_eq!(body["data"], Value::Null, "{body}");
    // validation rejects it before any resolver runs
    assert!(app.statements.take().is_empty());
}

#[tokio::test]
async fn a_query_nested_deeper_than_the_limit_is_refused_before_it_runs() {
    let app = TestApp::spawn().await;
    assert_eq!(tally::graphql::MAX_DEPTH, 12);
    let nested = |depth: usize| {
        format!(
            "{{ {}id{} }}",
            "myOrders { ".repeat(depth - 1),
            " }".repeat(depth - 1)
        )
    };

    // 12 fields deep: past the depth limit, to validation
    let (status, body) = post_query(&app, &nested(12)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        error_message(&body),
        "Unknown field \"myOrders\" on type \"OrderConnection\".",
        "{body}"
    );

    // 13 and 25 fields deep: refused before validation, with no data at all
    for depth in [13, 25] {
        let (status, body) = post_query(&app, &nested(depth)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_message(&body), "Query is nested too deep.", "{body}");
        assert_eq!(body["data"], Value::Null, "{body}");
        assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{body}");
    }
}

/// Introspection nests `ofType` as deep as a type can wrap (graphql-js asks
/// nine levels by default): that is not Tally's depth. What multiplies an
/// answer is bounded instead: the lists that fan out over the schema may
/// nest twice, and an operation reads the schema at most five times.
#[tokio::test]
async fn introspection_is_bounded_by_what_fans_out_not_by_depth() {
    let app = TestApp::spawn().await;

    // 25 fields deep, one list: answered
    let (status, body) = post_query(&app, &introspection_nested(20)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    assert!(body["data"]["__schema"]["types"].is_array(), "{body}");

    let fan_out = |lists: usize| {
        format!(
            "{{ __type(name: \"Query\") {{ {}name{} }} }}",
            "fields { type { ofType { ".repeat(lists),
            " } } }".repeat(lists)
        )
    };
    let (_, body) = post_query(&app, &fan_out(2)).await;
    assert!(body.get("errors").is_none(), "{body}");
    let (_, body) = post_query(&app, &fan_out(3)).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(
        error_message(&body),
        "Introspection is nested too deep: fields, interfaces, possibleTypes and inputFields may nest at most 2 deep.",
        "{body}"
    );
    assert_eq!(body["data"], Value::Null, "{body}");

    let reads = |n: usize| {
        let fields: Vec<_> = (0..n)
            .map(|i| format!("t{i}: __type(name: \"Product\") {{ name }}"))
            .collect();
        format!("{{ {} }}", fields.join(" "))
    };
    let (_, body) = post_query(&app, &reads(5)).await;
    assert_eq!(body["data"]["t4"]["name"], "Product", "{body}");
    let (_, body) = post_query(&app, &reads(6)).await;
    assert_eq!(
        error_message(&body),
        "An operation may read the schema at most 5 times (__schema or __type fields).",
        "{body}"
    );
    assert_eq!(body["data"], Value::Null, "{body}");
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.http()
        .request(reqwest::Method::OPTIONS, app.url("/graphql"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap()
}

/// What a page of `origin` sends when its script runs a query.
async fn query_from(app: &TestApp, origin: &str) -> reqwest::Response {
    app.http()
        .post(app.url("/graphql"))
        .header("origin", origin)
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn pages_of_the_allowed_origins_may_call_the_api_from_a_browser() {
    let app = TestApp::spawn_with(Options {
        configure: |c| {
            c.http.allowed_origins = AllowedOrigins::List(vec!["https://app.example.com".into()]);
        },
        ..Options::default()
    })
    .await;

    let allowed = preflight(&app, "https://app.example.com").await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        header(&allowed, "access-control-allow-methods"),
        Some("GET,POST")
    );
    assert_eq!(
        header(&allowed, "access-control-allow-headers"),
        Some("content-type,authorization")
    );
    assert_eq!(header(&allowed, "access-control-max-age"), Some("600"));

    let other = preflight(&app, "https://evil.example.com").await;
    assert_eq!(header(&other, "access-control-allow-origin"), None);

    let query = query_from(&app, "https://app.example.com").await;
    assert_eq!(
        header(&query, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        query.json::<Value>().await.unwrap(),
        json!({ "data": { "__typename": "Query" } })
    );
}

#[tokio::test]
async fn without_allowed_origins_no_page_of_another_site_may_call_the_api() {
    let app = TestApp::spawn().await;
    let answer = preflight(&app, "https://app.example.com").await;
    assert_eq!(header(&answer, "access-control-allow-origin"), None);
    let query = query_from(&app, "https://app.example.com").await;
    assert_eq!(header(&query, "access-control-allow-origin"), None);
}
