//! Accounts, sign-in, tokens and roles.

use entity::users::Role;
use serde_json::{Value, json};
use tally::auth::{Tokens, Viewer};
use tally::config::Secret;

use crate::harness::{TestApp, data, error_code, error_message};

const REGISTER: &str = "mutation($input: RegisterInput!) {
    register(input: $input) { token user { id name email role } }
}";

const LOGIN: &str = "mutation($input: LoginInput!) {
    login(input: $input) { token user { id email role } }
}";

const CREATE_PRODUCT: &str = "mutation($input: CreateProductInput!) {
    createProduct(input: $input) { id }
}";

async fn register(app: &TestApp, name: &str, email: &str, password: &str) -> Value {
    app.gql(
        REGISTER,
        json!({ "input": { "name": name, "email": email, "password": password } }),
    )
    .await
}

fn pizza() -> Value {
    json!({ "input": { "name": "Margherita", "category": "pizza", "price": "9.50" } })
}

#[tokio::test]
async fn registering_returns_a_token_and_a_customer_whose_email_is_stored_lowercased() {
    let app = TestApp::spawn().await;

    let body = register(&app, "  Ann Lee ", " Ann.Lee@Example.COM ", "correct horse").await;
    let payload = &data(&body)["register"];
    let token = payload["token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let id = payload["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        payload["user"],
        json!({ "id": id, "name": "Ann Lee", "email": "ann.lee@example.com", "role": "CUSTOMER" })
    );

    let me = app
        .gql_as(token, "{ me { id name email role } }", json!({}))
        .await;
    assert_eq!(
        data(&me)["me"],
        json!({ "id": id, "name": "Ann Lee", "email": "ann.lee@example.com", "role": "CUSTOMER" })
    );
    assert_eq!(
        app.rows("select id::text as id, name, email, role from users")
            .await,
        vec![
            json!({ "id": id, "name": "Ann Lee", "email": "ann.lee@example.com", "role": "customer" })
        ]
    );

    // the token also works through login, whatever the case of the email
    let login = app
        .gql(
            LOGIN,
            json!({ "input": { "email": "ANN.LEE@example.com", "password": "correct horse" } }),
        )
        .await;
    assert_eq!(
        data(&login)["login"]["user"],
        json!({ "id": id, "email": "ann.lee@example.com", "role": "CUSTOMER" })
    );
}

#[tokio::test]
async fn a_duplicate_email_in_another_case_is_a_conflict() {
    let app = TestApp::spawn().await;

    let first = register(&app, "Ann", "ann@example.com", "correct horse").await;
    data(&first);
    let second = register(&app, "Other Ann", "Ann@Example.com", "another password").await;

    assert_eq!(error_code(&second), "CONFLICT");
    assert_eq!(
        error_message(&second),
        "an account with this email already exists"
    );
    assert_eq!(second["data"], Value::Null);
    assert_eq!(app.count("select count(*) from users").await, 1);
    assert_eq!(
        app.rows("select name, email from users").await,
        vec![json!({ "name": "Ann", "email": "ann@example.com" })]
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = TestApp::spawn().await;
    data(&register(&app, "Ann", "ann@example.com", "correct horse").await);

    let wrong_password = app
        .gql(
            LOGIN,
            json!({ "input": { "email": "ann@example.com", "password": "wrong horse" } }),
        )
        .await;
    let unknown_email = app
        .gql(
            LOGIN,
            json!({ "input": { "email": "bob@example.com", "password": "correct horse" } }),
        )
        .await;
    let not_an_email = app
        .gql(
            LOGIN,
            json!({ "input": { "email": "not an email", "password": "correct horse" } }),
        )
        .await;

    for body in [&wrong_password, &unknown_email, &not_an_email] {
        assert_eq!(error_code(body), "UNAUTHENTICATED", "{body}");
        assert_eq!(error_message(body), "invalid email or password", "{body}");
        assert_eq!(body["data"], Value::Null, "{body}");
    }
    // nothing but the code and the message tells them apart
    assert_eq!(
        wrong_password["errors"][0]["message"],
        unknown_email["errors"][0]["message"]
    );
    assert_eq!(
        wrong_password["errors"][0]["extensions"],
        unknown_email["errors"][0]["extensions"]
    );

    let right = app
        .gql(
            LOGIN,
            json!({ "input": { "email": "ann@example.com", "password": "correct horse" } }),
        )
        .await;
    assert_eq!(data(&right)["login"]["user"]["email"], "ann@example.com");
}

#[tokio::test]
async fn invalid_registration_input_is_rejected_without_writing_a_user() {
    let app = TestApp::spawn().await;

    let cases = [
        (
            "Ann",
            "ann.example.com",
            "correct horse",
            "email is not a valid address",
        ),
        (
            "Ann",
            "ann@example",
            "correct horse",
            "email is not a valid address",
        ),
        (
            "Ann",
            "ann@example.com",
            "1234567",
            "password must have 8 to 128 characters",
        ),
        (
            "",
            "ann@example.com",
            "correct horse",
            "name must have 1 to 100 characters",
        ),
        (
            "   ",
            "ann@example.com",
            "correct horse",
            "name must have 1 to 100 characters",
        ),
    ];
    for (name, email, password, message) in cases {
        let body = register(&app, name, email, password).await;
        assert_eq!(
            error_code(&body),
            "BAD_USER_INPUT",
            "{name:?} {email:?}: {body}"
        );
        assert_eq!(error_message(&body), message, "{name:?} {email:?}: {body}");
        assert_eq!(body["data"], Value::Null);
    }
    assert_eq!(app.count("select count(*) from users").await, 0);

    // the boundary: 8 characters is enough
    data(&register(&app, "Ann", "ann@example.com", "12345678").await);
    assert_eq!(app.count("select count(*) from users").await, 1);
}

#[tokio::test]
async fn me_is_null_without_a_token_and_the_cart_requires_one() {
    let app = TestApp::spawn().await;

    let me = app.gql("{ me { id } }", json!({})).await;
    assert_eq!(me, json!({ "data": { "me": null } }));

    let cart = app.gql("{ cart { total } }", json!({})).await;
    assert_eq!(error_code(&cart), "UNAUTHENTICATED");
    assert_eq!(error_message(&cart), "authentication required");
    assert_eq!(cart["data"], Value::Null);
}

#[tokio::test]
async fn a_malformed_tampered_or_forged_token_is_rejected_for_any_query() {
    let app = TestApp::spawn().await;
    let (token, user_id) = app.register_customer("Ann").await;

    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let flip = |part: &str, at: usize| -> String {
        let mut chars: Vec<char> = part.chars().collect();
        chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect()
    };
    let bad_signature = format!("{}.{}.{}", parts[0], parts[1], flip(parts[2], 5));
    let bad_payload = format!("{}.{}.{}", parts[0], flip(parts[1], 10), parts[2]);
    // a well-formed admin token for the same user, signed with another secret
    let forged = Tokens::new(&Secret::new("another-secret-another-secret-another!"))
        .issue(
            Viewer {
                user_id,
                role: Role::Admin,
            },
            0,
        )
        .unwrap();

    let queries = [
        "{ me { id } }",
        "{ __typename }",
        "{ products(first: 1) { edges { cursor } } }",
        "{ cart { total } }",
    ];
    for bad in [
        "garbage",
        "not.a.token",
        bad_signature.as_str(),
        bad_payload.as_str(),
        forged.as_str(),
    ] {
        for query in queries {
            let body = app.gql_as(bad, query, json!({})).await;
            assert_eq!(
                error_code(&body),
                "UNAUTHENTICATED",
                "{bad} {query}: {body}"
            );
            assert_eq!(
                error_message(&body),
                "invalid or expired token",
                "{bad} {query}: {body}"
            );
            assert_eq!(body["data"], Value::Null, "{bad} {query}: {body}");
        }
    }

    // the forged admin token creates nothing
    let body = app.gql_as(&forged, CREATE_PRODUCT, pizza()).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    assert_eq!(app.count("select count(*) from products").await, 0);

    // the untouched token still works
    let me = app.gql_as(&token, "{ me { id } }", json!({})).await;
    assert_eq!(data(&me)["me"]["id"], user_id.to_string());
}

#[tokio::test]
async fn a_customer_may_not_create_a_product_and_an_anonymous_caller_must_sign_in() {
    let app = TestApp::spawn().await;
    let (customer, _) = app.register_customer("Ann").await;

    let as_customer = app.gql_as(&customer, CREATE_PRODUCT, pizza()).await;
    assert_eq!(error_code(&as_customer), "FORBIDDEN");
    assert_eq!(
        error_message(&as_customer),
        "you are not allowed to do this"
    );
    assert_eq!(as_customer["data"], Value::Null);

    let anonymous = app.gql(CREATE_PRODUCT, pizza()).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
    assert_eq!(error_message(&anonymous), "authentication required");
    assert_eq!(anonymous["data"], Value::Null);

    assert_eq!(app.count("select count(*) from products").await, 0);

    // while an admin can
    let admin = app.admin_token().await;
    let created = app.gql_as(&admin, CREATE_PRODUCT, pizza()).await;
    data(&created);
    assert_eq!(app.count("select count(*) from products").await, 1);
}
