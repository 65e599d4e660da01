//! How long a request may take: its body must arrive within
//! `HTTP_BODY_TIMEOUT` (for the 64 KiB limit, a floor of about 6.5 KB/s at
//! the default 10 s) and is read in full here, before the in-flight limit
//! or anything else sees the request, so a slow client holds no permit and
//! no database connection; the handling then has `HTTP_REQUEST_TIMEOUT`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::LengthLimitError;

use super::answer::{refused, unavailable};
use crate::admission::IntervalLog;
use crate::auth::ClientAddr;
use crate::error::ApiError;

#[derive(Clone)]
pub struct Deadlines {
    body: Duration,
    request: Duration,
    slow_bodies: Arc<IntervalLog>,
    slow_answers: Arc<IntervalLog>,
}

impl Deadlines {
    pub fn new(body: Duration, request: Duration) -> Self {
        Self {
            body,
            request,
            slow_bodies: Arc::new(IntervalLog::new(
                "answered 408 to requests whose body did not arrive within HTTP_BODY_TIMEOUT",
            )),
            slow_answers: Arc::new(IntervalLog::new(
                "answered 503 to requests not handled within HTTP_REQUEST_TIMEOUT",
            )),
        }
    }
}

pub async fn enforce(State(deadlines): State<Deadlines>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ClientAddr>().map(|c| c.ip());
    let (parts, body) = request.into_parts();
    // the body limit is the RequestBodyLimitLayer's, outside this one
    let read = tokio::time::timeout(deadlines.body, axum::body::to_bytes(body, usize::MAX));
    let body = match read.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) if is_too_large(&e) => {
            return refused(StatusCode::PAYLOAD_TOO_LARGE, ApiError::BODY_TOO_LARGE);
        }
        Ok(Err(_)) => {
            return refused(StatusCode::BAD_REQUEST, ApiError::BODY_UNREADABLE);
        }
        Err(_) => {
            deadlines.slow_bodies.add(peer);
            let mut answer = refused(StatusCode::REQUEST_TIMEOUT, ApiError::SLOW_BODY);
            answer
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return answer;
        }
    };
    let request = Request::from_parts(parts, Body::from(body));
    match tokio::time::timeout(deadlines.request, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            deadlines.slow_answers.add(peer);
            unavailable(ApiError::TOO_SLOW)
        }
    }
}

fn is_too_large(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}
