//! Who is calling: passwords (argon2), bearer tokens (JWT, HS256), roles.

use std::sync::OnceLock;

use entity::users::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::auth_throttle::ClientAddr;
use crate::config::Secret;
use crate::error::{ApiError, ApiResult};
use crate::hashing;

/// How long a token stays valid.
const TOKEN_TTL_SECS: i64 = 7 * 24 * 3600;

/// The authenticated caller of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    pub user_id: i64,
    pub role: Role,
}

impl Viewer {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

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
/// account's to say (`domain::users::current_viewer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The caller, with the role the token was issued with.
    pub viewer: Viewer,
    /// The account's token version at issue.
    pub version: i32,
    /// How long the token stays valid.
    pub valid_for: std::time::Duration,
}

/// The caller of a request: what its token says, and the viewer it stands
/// for once the account has confirmed it (`domain::users::viewer_of`).
/// Requests confirm it before they run, except those that only place orders
/// or only read `me` (`graphql::checks_its_own_token`), whose one statement
/// checks the token itself: the placement, in the transaction that writes;
/// the profile, with the account it reads.
#[derive(Debug)]
pub struct Caller {
    token: Verified,
    viewer: OnceLock<Viewer>,
}

impl Caller {
    /// A caller whose account confirmed `token` as `viewer`.
    pub fn confirmed(token: Verified, viewer: Viewer) -> Self {
        Self {
            token,
            viewer: OnceLock::from(viewer),
        }
    }

    /// A caller whose token no account has confirmed yet.
    pub fn unconfirmed(token: Verified) -> Self {
        Self {
            token,
            viewer: OnceLock::new(),
        }
    }

    /// The caller, once confirmed.
    pub fn viewer(&self) -> Option<Viewer> {
        self.viewer.get().copied()
    }

    /// What the token says: who the caller is if the account still agrees.
    pub fn token(&self) -> Verified {
        self.token
    }

    /// A statement confirmed the token against the account: the account is
    /// still at the token's version, so its role is still the token's (a
    /// change of role moves the version on).
    pub fn confirm(&self) {
        let _ = self.viewer.set(self.token.viewer);
    }
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

/// A syntactically valid email, lowercased: holding one proves it was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> ApiResult<Self> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= 254
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            })
            && !email.chars().any(char::is_whitespace);
        if valid {
            Ok(Self(email))
        } else {
            Err(ApiError::bad_input("email is not a valid address"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that meets the length rules.
pub struct Password(Secret);

impl Password {
    pub fn parse(raw: &str) -> ApiResult<Self> {
        match raw.chars().count() {
            8..=128 => Ok(Self(Secret::new(raw))),
            _ => Err(ApiError::bad_input(
                "password must have 8 to 128 characters",
            )),
        }
    }
}

/// On the hashing threads (see `hashing`), like every password check, in
/// the share of the client's address `from`.
pub async fn hash_password(from: Option<ClientAddr>, password: Password) -> ApiResult<String> {
    hashing::run(from, move || hashing::hash(password.0.expose().as_bytes()))
        .await?
        .map_err(|e| ApiError::internal(anyhow::anyhow!("hashing a password: {e}")))
}

pub async fn verify_password(
    from: Option<ClientAddr>,
    candidate: String,
    hash: String,
) -> ApiResult<bool> {
    hashing::run(from, move || hashing::verify(candidate.as_bytes(), &hash))
        .await?
        .map_err(|e| ApiError::internal(anyhow::anyhow!("stored password hash: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@example",
            "ann@.com",
            "a nn@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

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
