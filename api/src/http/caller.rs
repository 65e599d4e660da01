//! Who is calling, as the request says: its bearer token and the address it
//! came from.

use axum::http::{HeaderMap, header};

use crate::auth::ClientAddr;

/// The client's address, as the accept loop found it (behind a trusted
/// proxy, the one the proxy names).
pub(crate) fn client_addr<B>(request: &axum::http::Request<B>) -> Option<ClientAddr> {
    request.extensions().get::<ClientAddr>().copied()
}

/// The host a client behind a trusted proxy asked for (its
/// `X-Forwarded-Host`), where the proxy sent one: what a same-origin check
/// compares `Origin` with instead of `Host`, which such a proxy may rewrite.
#[derive(Clone, Debug)]
pub struct ForwardedHost(pub String);

/// `Authorization: Bearer <token>`; any other scheme counts as no token.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    bearer(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// The token of an `Authorization` value; any scheme but Bearer counts as none.
pub(crate) fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
