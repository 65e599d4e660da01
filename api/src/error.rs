//! The API's one error type. The only place that spells GraphQL error codes.
//!
//! `ApiError` deliberately has no `Display`: async-graphql converts anything
//! displayable into an error without a code, so `?` would silently drop it.
//! Without `Display`, the conversion below is the only one, and every error
//! reaches clients with its `extensions.code`.

use async_graphql::ErrorExtensions;
use sea_orm::{DbErr, RuntimeErr};

#[derive(Debug)]
pub enum ApiError {
    Unauthenticated,
    /// Wrong password and unknown email alike, so the answer reveals nothing.
    InvalidCredentials,
    InvalidToken,
    Forbidden,
    BadUserInput(String),
    NotFound(String),
    Conflict(String),
    /// Anything unexpected: logged in full, shown to clients as a fixed message.
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated | Self::InvalidCredentials | Self::InvalidToken => {
                "UNAUTHENTICATED"
            }
            Self::Forbidden => "FORBIDDEN",
            Self::BadUserInput(_) => "BAD_USER_INPUT",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Conflict(_) => "CONFLICT",
            Self::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// What clients are told.
    pub fn message(&self) -> String {
        match self {
            Self::Unauthenticated => "authentication required".into(),
            Self::InvalidCredentials => "invalid email or password".into(),
            Self::InvalidToken => "invalid or expired token".into(),
            Self::Forbidden => "you are not allowed to do this".into(),
            Self::BadUserInput(m) | Self::NotFound(m) | Self::Conflict(m) => m.clone(),
            Self::Internal(_) => "internal server error".into(),
        }
    }

    /// For the CLI, where there is no GraphQL client to answer.
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            Self::Internal(cause) => cause,
            other => anyhow::anyhow!(other.message()),
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::BadUserInput(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }
}

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        Self::Internal(err.into())
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        if let ApiError::Internal(cause) = &err {
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        let code = err.code();
        async_graphql::Error::new(err.message()).extend_with(|_, e| e.set("code", code))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Turns a violation of the named unique constraint into a client error, the
/// way a reviewer can see which constraint stands for which rule.
pub trait OnConstraint<T> {
    fn on_constraint(self, name: &str, to_error: impl FnOnce() -> ApiError) -> ApiResult<T>;
}

impl<T> OnConstraint<T> for Result<T, DbErr> {
    fn on_constraint(self, name: &str, to_error: impl FnOnce() -> ApiError) -> ApiResult<T> {
        self.map_err(|err| {
            if violated_constraint(&err) == Some(name) {
                to_error()
            } else {
                err.into()
            }
        })
    }
}

/// The name of the constraint a statement violated, if that is what failed.
pub fn violated_constraint(err: &DbErr) -> Option<&str> {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
    else {
        return None;
    };
    match e.as_ref() {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}
