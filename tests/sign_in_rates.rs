//! Sign-in rates kept in PostgreSQL (`auth_throttle`), so every replica
//! counts alike: rates that recover, guesses from elsewhere that never lock
//! an account's owner out, refused attempts that count against nothing,
//! and a legitimate sign-in that costs one statement. Clients stand for
//! machines of their own by their loopback address (127.0.0.`host`).

use std::time::Duration;

use serde_json::{Value, json};
use tally::config::Rate;

use crate::harness::{Options, TestApp};

const LOGIN: &str = "mutation($email: String!, $password: String!) {
    login(input: { email: $email, password: $password }) { token }
}";

const REGISTER: &str = "mutation($email: String!) {
    register(input: { name: \"Someone\", email: $email, password: \"the right password\" }) { token }
}";

async fn login(app: &TestApp, host: u8, email: &str, password: &str) -> (u16, Value) {
    app.post_from(host, LOGIN, json!({ "email": email, "password": password }))
        .await
}

async fn register(app: &TestApp, host: u8, email: &str) -> (u16, Value) {
    app.post_from(host, REGISTER, json!({ "email": email }))
        .await
}

/// The answer's error code, or "token" for a signed-in answer.
fn outcome((status, body): &(u16, Value)) -> String {
    if body["data"]["login"]["token"].is_string() || body["data"]["register"]["token"].is_string() {
        return format!("{status} token");
    }
    let code = body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("?");
    format!("{status} {code}")
}

fn retry_after((_, body): &(u16, Value)) -> u64 {
    body["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap_or_else(|| panic!("no retryAfter: {body}"))
}

#[tokio::test]
async fn guesses_at_an_account_from_elsewhere_never_stop_its_owner() {
    let app = TestApp::spawn_without_workers().await;
    assert_eq!(
        outcome(&register(&app, 2, "ann@example.com").await),
        "200 token"
    );

    // five machines guess: the account's rate (5 per 15 minutes) is spent
    for host in 10..15 {
        let answer = login(&app, host, "ann@example.com", "a guess").await;
        assert_eq!(outcome(&answer), "200 UNAUTHENTICATED", "{answer:?}");
    }
    // the sixth is refused without its password being looked at, and told
    // to wait one step (15 minutes / 5)
    let refused = login(&app, 15, "ann@example.com", "a guess").await;
    assert_eq!(outcome(&refused), "429 TOO_MANY_REQUESTS", "{refused:?}");
    assert!((179..=180).contains(&retry_after(&refused)), "{refused:?}");
    // even with the right password, from a machine the account never used
    let elsewhere = login(&app, 16, "ann@example.com", "the right password").await;
    assert_eq!(outcome(&elsewhere), "429 TOO_MANY_REQUESTS");

    // its owner, at the address it registered from, signs in at once
    let owner = login(&app, 2, "ann@example.com", "the right password").await;
    assert_eq!(outcome(&owner), "200 token", "{owner:?}");
    // the refusals counted against nothing: 127.0.0.15 failed once
    assert_eq!(
        outcome(&register(&app, 3, "bob@example.com").await),
        "200 token"
    );
    let guess = login(&app, 15, "bob@example.com", "a guess").await;
    assert_eq!(outcome(&guess), "200 UNAUTHENTICATED");
    assert_eq!(
        app.rows(
            // in minutes ahead, rounded up: the test's own seconds pass
            "select key, ceil(extract(epoch from tat - now()) / 60)::int as minutes_ahead
             from sign_in_throttles where key like 'login %' order by key"
        )
        .await,
        vec![
            json!({ "key": "login account ann@example.com", "minutes_ahead": 15 }),
            json!({ "key": "login account bob@example.com", "minutes_ahead": 3 }),
            json!({ "key": "login address 127.0.0.10", "minutes_ahead": 1 }),
            json!({ "key": "login address 127.0.0.11", "minutes_ahead": 1 }),
            json!({ "key": "login address 127.0.0.12", "minutes_ahead": 1 }),
            json!({ "key": "login address 127.0.0.13", "minutes_ahead": 1 }),
            json!({ "key": "login address 127.0.0.14", "minutes_ahead": 1 }),
            json!({ "key": "login address 127.0.0.15", "minutes_ahead": 1 }),
        ]
    );
}

#[tokio::test]
async fn an_address_failing_again_and_again_waits_then_recovers() {
    let app = TestApp::spawn_with(Options {
        worker_pools: 0,
        configure: |config| {
            // 3 at once, then one every 2 s
            config.http.sign_in.login_failures_per_address = Rate {
                burst: 3,
                period: Duration::from_secs(6),
            };
        },
        ..Options::default()
    })
    .await;
    for n in 0..3 {
        let answer = login(&app, 20, &format!("nobody{n}@example.com"), "a guess").await;
        assert_eq!(outcome(&answer), "200 UNAUTHENTICATED");
    }
    let refused = login(&app, 20, "nobody3@example.com", "a guess").await;
    assert_eq!(outcome(&refused), "429 TOO_MANY_REQUESTS");
    assert!((1..=2).contains(&retry_after(&refused)), "{refused:?}");
    // another machine is not held back
    let other = login(&app, 21, "nobody4@example.com", "a guess").await;
    assert_eq!(outcome(&other), "200 UNAUTHENTICATED");
    // a step later, one more attempt
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = login(&app, 20, "nobody5@example.com", "a guess").await;
    assert_eq!(outcome(&later), "200 UNAUTHENTICATED");
    let again = login(&app, 20, "nobody6@example.com", "a guess").await;
    assert_eq!(outcome(&again), "429 TOO_MANY_REQUESTS");
}

#[tokio::test]
async fn registrations_are_a_rate_that_recovers_and_a_taken_email_locks_nothing() {
    let app = TestApp::spawn_with(Options {
        worker_pools: 0,
        configure: |config| {
            // 2 at once, then one every 2 s
            config.http.sign_in.registrations_per_address = Rate {
                burst: 2,
                period: Duration::from_secs(4),
            };
        },
        ..Options::default()
    })
    .await;
    assert_eq!(
        outcome(&register(&app, 30, "a@example.com").await),
        "200 token"
    );
    assert_eq!(
        outcome(&register(&app, 30, "b@example.com").await),
        "200 token"
    );
    let refused = register(&app, 30, "c@example.com").await;
    assert_eq!(outcome(&refused), "429 TOO_MANY_REQUESTS");
    assert!((1..=2).contains(&retry_after(&refused)), "{refused:?}");
    // a registration for a taken email, from elsewhere, twice
    for _ in 0..2 {
        assert_eq!(
            outcome(&register(&app, 31, "a@example.com").await),
            "200 CONFLICT"
        );
    }
    // holds the account back from nobody, at a new address either
    let owner = login(&app, 40, "a@example.com", "the right password").await;
    assert_eq!(outcome(&owner), "200 token");
    // a step later the first address registers again
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        outcome(&register(&app, 30, "c@example.com").await),
        "200 token"
    );
    assert_eq!(
        app.rows("select count(*) as accounts from users").await,
        vec![json!({ "accounts": 3 })]
    );
}

/// The cost of a legitimate sign-in: one statement for a client with no
/// recent failures at an address its account knows; one more the first
/// time from a new address (it becomes known), or after a failure.
#[tokio::test]
async fn a_sign_in_at_a_known_address_is_one_statement() {
    let app = TestApp::spawn_without_workers().await;
    assert_eq!(
        outcome(&register(&app, 2, "ann@example.com").await),
        "200 token"
    );

    let statements = |app: &TestApp| app.statements.take().len();
    statements(&app);
    assert_eq!(
        outcome(&login(&app, 2, "ann@example.com", "the right password").await),
        "200 token"
    );
    assert_eq!(
        statements(&app),
        1,
        "the gate reads the account and the rates"
    );
    assert_eq!(
        outcome(&login(&app, 3, "ann@example.com", "the right password").await),
        "200 token"
    );
    assert_eq!(statements(&app), 2, "and the new address is remembered");
    assert_eq!(
        outcome(&login(&app, 3, "ann@example.com", "the right password").await),
        "200 token"
    );
    assert_eq!(statements(&app), 1);
    assert_eq!(
        outcome(&login(&app, 3, "ann@example.com", "a typo").await),
        "200 UNAUTHENTICATED"
    );
    assert_eq!(statements(&app), 2, "the failure counts");
    assert_eq!(
        outcome(&login(&app, 3, "ann@example.com", "the right password").await),
        "200 token"
    );
    assert_eq!(statements(&app), 2, "counted at the gate, then given back");
    assert_eq!(
        app.rows("select user_id, host(client) as client from sign_in_addresses order by client")
            .await
            .len(),
        2
    );
}
