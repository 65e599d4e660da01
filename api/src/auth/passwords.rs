//! Emails and passwords as accounts take them, and the password checks,
//! on the hashing threads (`auth::hashing`).

use super::{ClientAddr, hashing};
use crate::config::Secret;
use crate::error::{ApiError, ApiResult};

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
}
