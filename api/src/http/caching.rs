//! HTTP caching of GraphQL answers to GET, where a CDN or the proxy in front
//! can help: an answer to a request without `Authorization` holds no
//! caller's data (Tally has no cookies), so it is public. It carries an
//! `ETag` (a hash of its bytes) and `Cache-Control: public, no-cache`: a
//! cache may keep it, and asks again with `If-None-Match` each time, which
//! is answered 304 with no body while the answer is the same, so nothing
//! served from a cache is staler than the figures. An answer with errors,
//! and every answer to a request with `Authorization`, is `no-store`.
//! (POST answers are cached by nobody and get none of this.)

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// In a response's extensions: an answer with data and no error, which a
/// cache may keep if nobody's credentials asked for it.
#[derive(Clone, Copy)]
pub(crate) struct Complete;

/// The most an answer may weigh to be hashed for its `ETag`; larger ones
/// are `no-store` (the body limit is far below it).
const MAX_HASHED_BYTES: usize = 16 * 1024 * 1024;

/// `answer` to a GET with `request_headers`, with the caching headers (and
/// 304 when the client holds the same answer).
pub(crate) async fn for_get(request_headers: &HeaderMap, answer: Response) -> Response {
    let (mut parts, body) = answer.into_parts();
    let vary = HeaderValue::from_static("accept, authorization");
    parts.headers.insert(header::VARY, vary);
    let credentials = request_headers.get(header::AUTHORIZATION).is_some();
    let public = !credentials
        && parts.status == StatusCode::OK
        && parts.extensions.get::<Complete>().is_some();
    if !public {
        let no_store = match credentials {
            true => "private, no-store",
            false => "no-store",
        };
        parts
            .headers
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(no_store));
        return Response::from_parts(parts, body);
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_HASHED_BYTES).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the answer could not be read",
        )
            .into_response();
    };
    let tag = etag(&bytes);
    parts.headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, no-cache"),
    );
    parts.headers.insert(header::ETAG, tag.clone());
    if matches(request_headers, &tag) {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_TYPE);
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// A strong validator: the first 16 bytes of the body's SHA-256, in hex.
fn etag(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex in quotes is a header value")
}

/// Whether `If-None-Match` names `tag` (or is `*`), compared weakly as
/// RFC 9110 asks for this header.
fn matches(request_headers: &HeaderMap, tag: &HeaderValue) -> bool {
    let tag = tag.to_str().unwrap_or_default();
    request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(if_none_match: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, if_none_match.parse().unwrap());
        headers
    }

    #[test]
    fn if_none_match_names_the_tag_among_others_weakly_or_as_any() {
        let tag = etag(b"{\"data\":{}}");
        let quoted = tag.to_str().unwrap().to_owned();
        assert!(matches(&asking(&quoted), &tag));
        assert!(matches(&asking(&format!("\"other\", W/{quoted}")), &tag));
        assert!(matches(&asking("*"), &tag));
        assert!(!matches(&asking("\"other\""), &tag));
        assert!(!matches(&HeaderMap::new(), &tag));
        assert_ne!(etag(b"{\"data\":{}}"), etag(b"{\"data\":{ }}"));
    }
}
