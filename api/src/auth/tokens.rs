//! Bearer tokens: JWT, HS256, signed with the server's secret, naming the
//! account's token version so that a changed password or role revokes them.

use entity::users::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::Viewer;
use crate::config::Secret;
use crate::error::{ApiError, ApiResult};

/// How long a token stays valid.
const TOKEN_TTL_SECS: i64 = 7 * 24 * 3600;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    /// The account's `token_version` at issue; tokens from before versions
    /// existed have none, and stand for version 0.
    #[serde(default)]
    ver: i32,
    iat: i64,
    exp: i64,
}

/// What a well-signed, unexpired token says; whether it still stands is the
/// account's to say (`accounts::current_viewer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The caller, with the role the token was issued with.
    pub viewer: Viewer,
    /// The account's token version at issue.
    pub version: i32,
    /// How long the token stays valid.
    pub valid_for: std::time::Duration,
}

#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Tokens {
    pub fn new(secret: &Secret) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
        }
    }

    /// A token for `viewer`, whose account is at token `version`.
    pub fn issue(&self, viewer: Viewer, version: i32) -> ApiResult<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: viewer.user_id.to_string(),
            role: role_name(viewer.role).to_owned(),
            ver: version,
            iat: now,
            exp: now + TOKEN_TTL_SECS,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    /// Accepts only HS256 tokens signed with our secret and not expired.
    pub fn verify(&self, token: &str) -> ApiResult<Verified> {
        let mut validation = Validation::new(Algorithm::HS256);
        // only this server issues tokens: no clock skew to allow for
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| ApiError::InvalidToken)?;
        let user_id = data
            .claims
            .sub
            .parse()
            .map_err(|_| ApiError::InvalidToken)?;
        let role = match data.claims.role.as_str() {
            "customer" => Role::Customer,
            "admin" => Role::Admin,
            _ => return Err(ApiError::InvalidToken),
        };
        let now = chrono::Utc::now().timestamp();
        let valid_for = data.claims.exp.saturating_sub(now).max(0);
        Ok(Verified {
            viewer: Viewer { user_id, role },
            version: data.claims.ver,
            valid_for: std::time::Duration::from_secs(valid_for as u64),
        })
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Customer => "customer",
        Role::Admin => "admin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let tokens = Tokens::new(&Secret::new("x".repeat(32)));
        let viewer = Viewer {
            user_id: 42,
            role: Role::Admin,
        };
        let token = tokens.issue(viewer, 3).unwrap();
        let verified = tokens.verify(&token).unwrap();
        assert_eq!((verified.viewer, verified.version), (viewer, 3));

        let other = Tokens::new(&Secret::new("y".repeat(32)));
        assert!(matches!(other.verify(&token), Err(ApiError::InvalidToken)));
        assert!(matches!(
            tokens.verify("not.a.token"),
            Err(ApiError::InvalidToken)
        ));
    }
}
