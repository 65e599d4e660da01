//! GraphQL over HTTP: the spec's audits (the graphql-http package's own,
//! run by node), GET for queries only, the response's media type, and
//! automatic persisted queries.

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestApp, data, error_code};

const NEW_MEDIA: &str = "application/graphql-response+json; charset=utf-8";
const JSON_MEDIA: &str = "application/json; charset=utf-8";

/// `/graphql` with `pairs` in its query string.
fn get_url(app: &TestApp, pairs: &[(&str, &str)]) -> reqwest::Url {
    let mut url = reqwest::Url::parse(&app.url("/graphql")).unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url
}

fn content_type(response: &reqwest::Response) -> String {
    response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// Runs one of `tests/graphql-http`'s node scripts; its stdout, and whether
/// it passed.
async fn graphql_js(script: &'static str, args: Vec<String>) -> (String, bool) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("graphql-http");
    assert!(
        dir.join("node_modules/graphql-http").is_dir()
            && dir.join("node_modules/graphql17").is_dir(),
        "these tests need graphql-http and graphql-js: run scripts/install-test-deps"
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .current_dir(dir)
            .arg(script)
            .args(args)
            .output()
    })
    .await
    .unwrap()
    .expect("node");
    let report = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (report, output.status.success())
}

#[tokio::test]
async fn the_graphql_over_http_audits_pass() {
    let app = TestApp::spawn_without_workers().await;
    let (report, passed) = graphql_js("audit.mjs", vec![app.url("/graphql")]).await;
    assert!(passed, "{report}");
    // every MUST and every SHOULD passes; two MAYs are left (400 for an
    // invalid parameter set, which the spec leaves open)
    assert_eq!(
        report.lines().last().unwrap(),
        r#"{"total":61,"ok":59,"notice":2,"warn":0,"error":0}"#,
        "{report}"
    );
}

/// What GraphiQL, code generators and IDEs do: graphql-js's standard
/// introspection query (16 and 17, every option on and off) is answered,
/// and the schema it yields prints exactly as `schema.graphql`.
#[tokio::test]
async fn tools_that_introspect_load_the_schema_that_schema_graphql_holds() {
    let app = TestApp::spawn_without_workers().await;
    let sdl = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");
    let (report, passed) =
        graphql_js("introspect.mjs", vec![app.url("/graphql"), sdl.to_owned()]).await;
    assert!(passed, "{report}");
    let equal = report
        .lines()
        .filter(|line| line.contains("equal to schema.graphql"))
        .count();
    assert_eq!(equal, 2, "{report}");
    // 2^5 option sets of graphql-js 16, 2^6 of 17
    assert_eq!(
        report.lines().last().unwrap(),
        r#"{"queries":96,"failed":0}"#,
        "{report}"
    );
}

#[tokio::test]
async fn get_runs_queries_and_refuses_mutations_with_405() {
    let app = TestApp::spawn_without_workers().await;
    let (token, _) = app.register_customer("Ann").await;

    let query = app
        .http()
        .get(get_url(
            &app,
            &[
                ("query", "query Who { me { name } }"),
                ("operationName", "Who"),
            ],
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), StatusCode::OK);
    assert_eq!(content_type(&query), JSON_MEDIA);
    assert_eq!(
        query.json::<Value>().await.unwrap(),
        json!({ "data": { "me": { "name": "Ann" } } })
    );

    let mutation = app
        .http()
        .get(get_url(
            &app,
            &[(
                "query",
                "mutation { removeCartLine(lineId: \"1\") { total } }",
            )],
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(mutation.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(mutation.headers()["allow"], "GET, POST");
    let body: Value = mutation.json().await.unwrap();
    assert_eq!(error_code(&body), "METHOD_NOT_ALLOWED");
    assert_eq!(
        body["errors"][0]["message"],
        "mutations are not allowed over GET: send them by POST"
    );
}

#[tokio::test]
async fn the_response_comes_as_the_client_accepts_and_says_whether_it_ran() {
    let app = TestApp::spawn_without_workers().await;
    let post = |accept: Option<&'static str>, query: &'static str| {
        let mut request = app
            .http()
            .post(app.url("/graphql"))
            .json(&json!({ "query": query }));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        request.send()
    };

    // the newer media type: a document that cannot run is a 400 without data
    let refused = post(Some("application/graphql-response+json"), "{ nope }")
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(content_type(&refused), NEW_MEDIA);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body.get("data"), None);
    assert_eq!(error_code(&body), "BAD_USER_INPUT");

    let ran = post(Some("application/graphql-response+json"), "{ __typename }")
        .await
        .unwrap();
    assert_eq!(ran.status(), StatusCode::OK);
    assert_eq!(content_type(&ran), NEW_MEDIA);

    // application/json, */* or nothing: 200 and application/json, as ever
    for accept in [Some("application/json"), Some("*/*"), None] {
        let refused = post(accept, "{ nope }").await.unwrap();
        assert_eq!(refused.status(), StatusCode::OK, "{accept:?}");
        assert_eq!(content_type(&refused), JSON_MEDIA, "{accept:?}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["data"], Value::Null);
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
    }

    // a body that is not JSON is refused by its media type
    let text = app
        .http()
        .post(app.url("/graphql"))
        .header("content-type", "text/plain")
        .body(r#"{"query": "{ __typename }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn a_persisted_query_runs_from_its_hash_once_the_server_has_seen_it() {
    let app = TestApp::spawn_without_workers().await;
    let query = "{ __typename }";
    // sha256 of the query text
    let hash = "7f56e67dd21ab3f30d1ff8b7bed08893f0a0db86449836189b361dd1e56ddb4b";
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });

    let unknown = app.gql_body(json!({ "extensions": persisted })).await;
    assert_eq!(error_code(&unknown), "PERSISTED_QUERY_NOT_FOUND");
    assert_eq!(unknown["errors"][0]["message"], "PersistedQueryNotFound");

    let registered = app
        .gql_body(json!({ "query": query, "extensions": persisted }))
        .await;
    assert_eq!(data(&registered), &json!({ "__typename": "Query" }));

    let by_hash = app.gql_body(json!({ "extensions": persisted })).await;
    assert_eq!(data(&by_hash), &json!({ "__typename": "Query" }));

    // a hash that is not the query's is refused, and stores nothing
    let wrong = app
        .gql_body(json!({ "query": "{ me { id } }", "extensions": persisted }))
        .await;
    assert_eq!(error_code(&wrong), "BAD_USER_INPUT");
}

#[tokio::test]
async fn a_persisted_query_the_limits_refuse_is_never_stored() {
    use sha2::{Digest, Sha256};
    let app = TestApp::spawn_without_workers().await;
    let deep = format!("{{ {}__typename{} }}", "me { ".repeat(20), " }".repeat(20));
    let aliased = "mutation { a: login(input: { email: \"a@b.io\", password: \"12345678\" }) { token } b: login(input: { email: \"a@b.io\", password: \"12345678\" }) { token } }";
    let syntax = "{ me { id ";
    for query in [deep.as_str(), aliased, syntax] {
        let hash = format!("{:x}", Sha256::digest(query.as_bytes()));
        let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
        let sent = app
            .gql_body(json!({ "query": query, "extensions": persisted }))
            .await;
        assert_eq!(error_code(&sent), "BAD_USER_INPUT", "{query}: {sent}");
        let by_hash = app.gql_body(json!({ "extensions": persisted })).await;
        assert_eq!(
            error_code(&by_hash),
            "PERSISTED_QUERY_NOT_FOUND",
            "{query}: {by_hash}"
        );
    }
}
