//! The one place an `ApiError` becomes an HTTP answer with a GraphQL-shaped
//! body, for requests refused before GraphQL ran them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::ApiError;

/// The body: the error with its code; `data: null` beside it unless the
/// request never was a GraphQL request (the spec wants no `data` then).
pub(crate) fn body(error: &ApiError, data: bool) -> Value {
    let errors = json!([{ "message": error.message(), "extensions": { "code": error.code() } }]);
    match data {
        true => json!({ "data": null, "errors": errors }),
        false => json!({ "errors": errors }),
    }
}

/// 503 with `Retry-After` and a GraphQL-shaped body saying why, so clients
/// read it like any other error.
pub(crate) fn unavailable(error: ApiError) -> Response {
    let mut answer = refused(StatusCode::SERVICE_UNAVAILABLE, error);
    answer
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    answer
}

/// A request refused before GraphQL ran it: `status`, and a GraphQL-shaped
/// body with the error's code.
pub(crate) fn refused(status: StatusCode, error: ApiError) -> Response {
    (status, axum::Json(body(&error, true))).into_response()
}
