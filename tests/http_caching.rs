//! What a CDN or the proxy in front may keep: an anonymous GET's answer
//! carries an `ETag` and `Cache-Control: public, no-cache`, `If-None-Match`
//! with the same tag is answered 304 until the figures change, and nothing
//! asked with credentials, or answered with errors, is stored.

use reqwest::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH, VARY};
use serde_json::{Value, json};

use crate::harness::TestApp;

const MENU: &str = "{ products(first: 5) { edges { node { name salesCount } } } }";

async fn get(
    app: &TestApp,
    query: &str,
    token: Option<&str>,
    tag: Option<&str>,
) -> reqwest::Response {
    let url = reqwest::Url::parse_with_params(&app.url("/graphql"), &[("query", query)]).unwrap();
    let mut request = app.http().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(tag) = tag {
        request = request.header(IF_NONE_MATCH, tag);
    }
    request.send().await.unwrap()
}

fn header(answer: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<&str> {
    answer.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn an_anonymous_read_over_get_is_revalidated_with_its_etag_until_the_figures_change() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let ids = app
        .create_products(&admin, &[("Cola", "drinks", 250)])
        .await;

    let first = get(&app, MENU, None, None).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, CACHE_CONTROL), Some("public, no-cache"));
    assert_eq!(header(&first, VARY), Some("accept, authorization"));
    let tag = header(&first, ETAG).expect("an ETag").to_owned();
    assert!(
        tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34,
        "{tag}"
    );
    let body: Value = first.json().await.unwrap();
    assert_eq!(
        body["data"]["products"]["edges"][0]["node"]["salesCount"],
        0
    );

    // the same answer: 304, no body, the same tag
    let again = get(&app, MENU, None, Some(&tag)).await;
    assert_eq!(again.status(), 304);
    assert_eq!(header(&again, ETAG), Some(tag.as_str()));
    assert_eq!(header(&again, CACHE_CONTROL), Some("public, no-cache"));
    assert_eq!(again.bytes().await.unwrap().len(), 0);

    // an order counted: the cached answer is stale, and the server says so
    let (ann, _) = app.register_customer("Ann").await;
    app.place_order(&ann, &[(&ids[0], None, 2)]).await;
    app.wait_for_jobs().await;
    let changed = get(&app, MENU, None, Some(&tag)).await;
    assert_eq!(changed.status(), 200);
    let new_tag = header(&changed, ETAG).unwrap().to_owned();
    assert_ne!(new_tag, tag);
    let body: Value = changed.json().await.unwrap();
    assert_eq!(
        body["data"]["products"]["edges"][0]["node"]["salesCount"],
        2
    );
    assert_eq!(get(&app, MENU, None, Some(&new_tag)).await.status(), 304);
}

#[tokio::test]
async fn nothing_asked_with_credentials_or_answered_with_errors_is_stored() {
    let app = TestApp::spawn_without_workers().await;
    let (token, _) = app.register_customer("Ann").await;

    let anonymous = get(&app, MENU, None, None).await;
    let tag = header(&anonymous, ETAG).unwrap().to_owned();
    // the same document with a token: private, never 304, no tag
    let mine = get(&app, MENU, Some(&token), Some(&tag)).await;
    assert_eq!(mine.status(), 200);
    assert_eq!(header(&mine, CACHE_CONTROL), Some("private, no-store"));
    assert_eq!(header(&mine, ETAG), None);
    let me = get(&app, "{ me { name } }", Some(&token), None).await;
    assert_eq!(header(&me, CACHE_CONTROL), Some("private, no-store"));
    assert_eq!(
        me.json::<Value>().await.unwrap(),
        json!({ "data": { "me": { "name": "Ann" } } })
    );

    // errors: stored by nobody
    let wrong = get(&app, "{ product(id: \"nope\") { name } }", None, None).await;
    assert_eq!(header(&wrong, CACHE_CONTROL), Some("no-store"));
    assert_eq!(header(&wrong, ETAG), None);
    let invalid = get(&app, "{ nope }", None, None).await;
    assert_eq!(header(&invalid, CACHE_CONTROL), Some("no-store"));
    assert_eq!(header(&invalid, ETAG), None);

    // POST is cached by nobody: no caching headers at all
    let posted = app
        .http()
        .post(app.url("/graphql"))
        .json(&json!({ "query": MENU }))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&posted, ETAG), None);
    assert_eq!(header(&posted, CACHE_CONTROL), None);
}
