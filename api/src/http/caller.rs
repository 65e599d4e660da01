//! Who is calling, as the request says: its bearer token and the address it
//! came from.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, header};

use crate::auth_throttle::ClientAddr;

/// The address the request came from, as the accept loop recorded it.
pub(crate) fn client_addr<B>(request: &axum::http::Request<B>) -> Option<ClientAddr> {
    let ConnectInfo(addr) = request.extensions().get::<ConnectInfo<SocketAddr>>()?;
    Some(addr.ip().into())
}

/// `Authorization: Bearer <token>`; any other scheme counts as no token.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    bearer(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// The token of an `Authorization` value; any scheme but Bearer counts as none.
pub(crate) fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
