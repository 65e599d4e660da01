//! GraphQL over HTTP (the GraphQL foundation's spec): POST with a JSON body,
//! GET with the request in the query string (queries only), the response's
//! media type negotiated from `Accept`, and status codes that say whether the
//! request ever ran.

use std::sync::Arc;

use async_graphql::http::parse_query_string;
use async_graphql_axum::GraphQLRequest;
use async_graphql_axum::rejection::GraphQLRejection;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::caching::Complete;
use super::caller::{bearer_token, client_addr};
use super::endpoint::Endpoint;
use super::{answer, caching, graphiql, websocket};
use crate::auth::{Caller, ClientAddr};
use crate::error::{ApiError, code_the_uncoded};
use crate::graphql::documents::Refusal;
use crate::graphql::loaders::Loaders;
use crate::graphql::public_answers::{ClockBound, Generation, Joined};
use crate::graphql::{
    IntrospectionAnswers, PublicAnswers, ViaGet, answer_key, checks_its_own_token,
};

/// The two media types a GraphQL response may come as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Media {
    /// `application/graphql-response+json`: the status code says whether the
    /// request ran (400 when it was refused before execution).
    GraphqlResponse,
    /// `application/json`: for clients that predate the spec, always 200
    /// once the body is a GraphQL request.
    Json,
}

impl Media {
    /// The newer type when the client names it, else `application/json`
    /// (also for `*/*` and no `Accept` at all, as the spec asks).
    fn negotiate(headers: &HeaderMap) -> Self {
        let accepts_new = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|item| {
                item.split(';').next().map(str::trim) == Some("application/graphql-response+json")
            });
        if accepts_new {
            Self::GraphqlResponse
        } else {
            Self::Json
        }
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        })
    }
}

/// POST: a JSON body, and nothing else.
pub async fn post(State(endpoint): State<Endpoint>, request: Request) -> Response {
    let media = Media::negotiate(request.headers());
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the request is not a GraphQL request: send it as Content-Type: application/json",
            media,
        );
    }
    let headers = request.headers().clone();
    let client = client_addr(&request);
    match GraphQLRequest::<GraphQLRejection>::from_request(request, &()).await {
        Ok(graphql) => execute(&endpoint, &headers, client, graphql.into_inner(), media).await,
        Err(rejection) => {
            let message = format!("the request is not a GraphQL request: {}", rejection.0);
            let status = rejection.into_response().status();
            refusal(status, &message, media)
        }
    }
}

/// GET: a WebSocket for subscriptions when the client asks to upgrade (see
/// `websocket`); GraphiQL for a browser that asks for a page; otherwise the
/// request in the query string, which may not be a mutation (405).
pub async fn get(State(endpoint): State<Endpoint>, request: Request) -> Response {
    if websocket::is_upgrade(request.headers()) {
        return websocket::upgrade(endpoint, request).await;
    }
    let query = request.uri().query().unwrap_or_default();
    let wants_page = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if wants_page && !query.split('&').any(|pair| pair.starts_with("query=")) {
        return graphiql::page().await.into_response();
    }
    let media = Media::negotiate(request.headers());
    match parse_query_string(query) {
        Ok(graphql) => {
            let graphql = graphql.data(ViaGet);
            let client = client_addr(&request);
            let answer = execute(&endpoint, request.headers(), client, graphql, media).await;
            caching::for_get(request.headers(), answer).await
        }
        Err(e) => refusal(
            StatusCode::BAD_REQUEST,
            &format!("the request is not a GraphQL request: {e}"),
            media,
        ),
    }
}

async fn execute(
    endpoint: &Endpoint,
    headers: &HeaderMap,
    client: Option<ClientAddr>,
    mut request: async_graphql::Request,
    media: Media,
) -> Response {
    // an anonymous read's answer, kept: found before anything is parsed
    let public = headers.get(header::AUTHORIZATION).is_none();
    let public_key = public.then(|| answer_key(&request));
    if let Some(body) = public_key
        .as_deref()
        .and_then(|key| endpoint.public_answers.kept(key))
    {
        return complete(with_body(StatusCode::OK, body, media));
    }
    // read before it runs: a change heard meanwhile makes the answer stale
    let generation = endpoint.public_answers.generation();
    // before anything looks inside the document
    if let Err(refusal) = endpoint.documents.parse(&mut request, client).await {
        return match refusal {
            Refusal::Busy(e) => answer::unavailable(e),
            Refusal::Failed(e) => answer::refused(StatusCode::INTERNAL_SERVER_ERROR, e),
            Refusal::Syntax(e) => reply(async_graphql::Response::from_errors(vec![e]), media),
        };
    }
    let mut request = request.data(Loaders::new(&endpoint.state.db));
    if let Some(client) = client {
        request = request.data(client);
    }
    if let Some(token) = bearer_token(headers) {
        let caller = match endpoint.state.tokens.verify(token) {
            Ok(verified) if checks_its_own_token(&mut request) => Ok(Caller::unconfirmed(verified)),
            Ok(verified) => endpoint
                .state
                .accounts
                .viewer(&verified)
                .await
                .map(|viewer| Caller::confirmed(verified, viewer)),
            Err(e) => Err(e),
        };
        match caller {
            Ok(caller) => request = request.data(caller),
            Err(e) => {
                let response = async_graphql::Response::from_errors(vec![e.into_server_error()]);
                return respond(StatusCode::OK, &response, media);
            }
        }
    }
    // introspection: its answer kept, or computed in its turn (under the
    // same key as a public answer: hashed once)
    let key = IntrospectionAnswers::may_be(&request)
        .then(|| public_key.clone().unwrap_or_else(|| answer_key(&request)));
    if let Some(body) = key
        .as_deref()
        .and_then(|key| endpoint.introspection.kept(key))
    {
        return complete(with_body(StatusCode::OK, body, media));
    }
    if let Some(key) = key.filter(|_| IntrospectionAnswers::is_introspection(&mut request)) {
        return introspect(endpoint, key, request, media).await;
    }
    let keep = public_key
        .filter(|_| PublicAnswers::is_query(&mut request))
        .zip(generation);
    // marked by a resolver whose answer the clock changes
    let clock_bound = keep.as_ref().map(|_| Arc::new(ClockBound::default()));
    if let Some(clock_bound) = &clock_bound {
        request = request.data(clock_bound.clone());
    }
    // computed by one request at a time per key: the others wait for it
    let _flight = match &keep {
        Some((key, _)) => match endpoint.public_answers.join(key).await {
            Joined::Answered(body) => return complete(with_body(StatusCode::OK, body, media)),
            Joined::Computing(flight) => flight,
        },
        None => None,
    };
    let response = endpoint.schema.execute(request).await;
    match keep {
        Some((key, generation)) if response.errors.is_empty() => {
            let clock_bound = clock_bound.is_some_and(|c| c.is_marked());
            keep_public(endpoint, key, generation, clock_bound, &response, media)
        }
        _ => reply(response, media),
    }
}

/// Answers an anonymous query without errors, and keeps the answer for the
/// next to ask (`graphql::public_answers`).
fn keep_public(
    endpoint: &Endpoint,
    key: String,
    generation: Generation,
    clock_bound: bool,
    response: &async_graphql::Response,
    media: Media,
) -> Response {
    match serde_json::to_vec(response) {
        Ok(body) => {
            let body = Bytes::from(body);
            let answers = &endpoint.public_answers;
            answers.keep(key, generation, clock_bound, body.clone());
            complete(with_body(StatusCode::OK, body, media))
        }
        Err(e) => unwritable(e),
    }
}

/// Computes an introspection answer in its turn, and keeps it.
async fn introspect(
    endpoint: &Endpoint,
    key: String,
    request: async_graphql::Request,
    media: Media,
) -> Response {
    let answers = &endpoint.introspection;
    let _turn = match answers.turn().await {
        Ok(turn) => turn,
        // as the in-flight limit refuses: 503, retry in a second
        Err(e) => return answer::unavailable(e),
    };
    // computed meanwhile by a request this one waited behind
    if let Some(body) = answers.kept(&key) {
        return complete(with_body(StatusCode::OK, body, media));
    }
    // tens of milliseconds of CPU that never yield: on a thread of its own,
    // so the requests queued on this runtime thread are not held
    let (schema, request) = (
        endpoint.schema.clone(),
        IntrospectionAnswers::with_turn(request),
    );
    let runtime = tokio::runtime::Handle::current();
    let computed = move || runtime.block_on(schema.execute(request));
    let response = match tokio::task::spawn_blocking(computed).await {
        Ok(response) => response,
        Err(e) => {
            let failed = ApiError::internal(anyhow::anyhow!("introspection panicked: {e}"));
            async_graphql::Response::from_errors(vec![failed.into_server_error()])
        }
    };
    if response.is_err() {
        return reply(response, media);
    }
    match serde_json::to_vec(&response) {
        Ok(body) => {
            let body = Bytes::from(body);
            answers.keep(key, body.clone());
            complete(with_body(StatusCode::OK, body, media))
        }
        Err(e) => unwritable(e),
    }
}

/// The answer to an executed request: its errors coded, and the status the
/// media type calls for.
fn reply(mut response: async_graphql::Response, media: Media) -> Response {
    let refused = code_the_uncoded(&mut response.errors);
    let method_not_allowed = response
        .errors
        .iter()
        .any(|e| ApiError::code_of(e) == Some(ApiError::METHOD_NOT_ALLOWED));
    if method_not_allowed {
        let mut answer = respond(StatusCode::METHOD_NOT_ALLOWED, &response, media);
        answer
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        return answer;
    }
    if let Some(retry_after) = throttled(&response) {
        let mut answer = respond(StatusCode::TOO_MANY_REQUESTS, &response, media);
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after.into());
        return answer;
    }
    let status = match (refused, media) {
        (true, Media::GraphqlResponse) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    respond(status, &response, media)
}

/// When throttling refused the whole request (no data came of it): the
/// seconds to wait, for `Retry-After`.
fn throttled(response: &async_graphql::Response) -> Option<u64> {
    if response.data != async_graphql::Value::Null {
        return None;
    }
    response
        .errors
        .iter()
        .filter(|e| ApiError::code_of(e) == Some(ApiError::TOO_MANY_REQUESTS))
        .filter_map(|e| match e.extensions.as_ref()?.get("retryAfter")? {
            async_graphql::Value::Number(n) => n.as_u64(),
            _ => None,
        })
        .max()
}

/// The response body as the spec wants it: with the newer media type, a
/// request refused before execution has no `data` entry at all.
fn respond(status: StatusCode, response: &async_graphql::Response, media: Media) -> Response {
    let body = if status == StatusCode::BAD_REQUEST && media == Media::GraphqlResponse {
        // only here is the body rebuilt: every other answer is written once
        serde_json::to_value(response).and_then(|mut body| {
            if let Some(body) = body.as_object_mut() {
                body.remove("data");
            }
            serde_json::to_vec(&body)
        })
    } else {
        serde_json::to_vec(response)
    };
    match body {
        Ok(body) if status == StatusCode::OK && response.errors.is_empty() => {
            complete(with_body(status, body, media))
        }
        Ok(body) => with_body(status, body, media),
        Err(e) => unwritable(e),
    }
}

/// Marks an answer with data and no error (`caching`).
fn complete(mut answer: Response) -> Response {
    answer.extensions_mut().insert(Complete);
    answer
}

fn with_body(status: StatusCode, body: impl Into<Body>, media: Media) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, media.content_type())],
        body.into(),
    )
        .into_response()
}

/// Never an empty 200.
fn unwritable(e: serde_json::Error) -> Response {
    answer::refused(
        StatusCode::INTERNAL_SERVER_ERROR,
        ApiError::internal(anyhow::anyhow!("writing a GraphQL response: {e}")),
    )
}

/// A body that is no GraphQL request gets its status with a GraphQL-shaped
/// error, so clients read it like any other.
fn refusal(status: StatusCode, message: &str, media: Media) -> Response {
    let body = answer::body(&ApiError::bad_input(message), false);
    (
        status,
        [(header::CONTENT_TYPE, media.content_type())],
        body.to_string(),
    )
        .into_response()
}
