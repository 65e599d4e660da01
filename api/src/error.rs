//! The API's one error type. The only place that spells GraphQL error codes.
//!
//! `ApiError` deliberately has no `Display`: async-graphql converts anything
//! displayable into an error without a code, so `?` would silently drop it.
//! Without `Display`, the conversion below is the only one, and every error
//! reaches clients with its `extensions.code`.

use async_graphql::{ErrorExtensions, ServerError};
use sea_orm::{DbErr, RuntimeErr};

use crate::coalesce::Unanswered;

#[derive(Debug)]
pub enum ApiError {
    Unauthenticated,
    /// Wrong password and unknown email alike, so the answer reveals nothing.
    InvalidCredentials,
    InvalidToken,
    Forbidden,
    /// A rule the message states keeps this caller from doing it (now).
    NotPermitted(String),
    BadUserInput(String),
    NotFound(String),
    Conflict(String),
    /// The database is unreachable, saturated or too slow to answer, or this
    /// process is at its limit of requests in flight: nothing was done, and
    /// the same request may succeed shortly.
    Unavailable(&'static str),
    /// The HTTP method cannot carry this operation (a mutation over GET).
    MethodNotAllowed(&'static str),
    /// The request itself is unusable: its body too large, unreadable or
    /// too slow to arrive. Answered with an HTTP status of its own.
    BadRequest(&'static str),
    /// Too many sign-in attempts (failed logins, registrations) from this
    /// address or for this account: refused without looking at the
    /// password, until `retry_after` has passed.
    TooManyRequests {
        retry_after: std::time::Duration,
    },
    /// This client holds as many of something (open WebSockets) as one may.
    TooMany(&'static str),
    /// Anything unexpected: logged in full, shown to clients as a fixed message.
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated | Self::InvalidCredentials | Self::InvalidToken => {
                "UNAUTHENTICATED"
            }
            Self::Forbidden | Self::NotPermitted(_) => "FORBIDDEN",
            Self::BadUserInput(_) => Self::BAD_USER_INPUT,
            Self::NotFound(_) => "NOT_FOUND",
            Self::Conflict(_) => "CONFLICT",
            Self::Unavailable(_) => Self::UNAVAILABLE_CODE,
            Self::MethodNotAllowed(_) => Self::METHOD_NOT_ALLOWED,
            Self::BadRequest(_) => Self::BAD_USER_INPUT,
            Self::TooManyRequests { .. } | Self::TooMany(_) => Self::TOO_MANY_REQUESTS,
            Self::Internal(_) => Self::INTERNAL_SERVER_ERROR,
        }
    }

    /// What clients are told.
    pub fn message(&self) -> String {
        match self {
            Self::Unauthenticated => "authentication required".into(),
            Self::InvalidCredentials => "invalid email or password".into(),
            Self::InvalidToken => "invalid or expired token".into(),
            Self::Forbidden => "you are not allowed to do this".into(),
            Self::BadUserInput(m)
            | Self::NotFound(m)
            | Self::Conflict(m)
            | Self::NotPermitted(m) => m.clone(),
            Self::Unavailable(m)
            | Self::MethodNotAllowed(m)
            | Self::BadRequest(m)
            | Self::TooMany(m) => (*m).into(),
            Self::TooManyRequests { retry_after } => format!(
                "too many attempts; try again in {} s",
                retry_after.as_secs().max(1)
            ),
            Self::Internal(_) => Self::INTERNAL_MESSAGE.into(),
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

    /// An unexpected failure, unless it is the database being unavailable,
    /// which clients may retry.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        let err = err.into();
        match err.chain().find_map(unavailability) {
            Some(reason) => Self::Unavailable(reason),
            None => Self::Internal(err),
        }
    }

    /// Also what a request that never ran (syntax, validation, a body that
    /// is no GraphQL request) is answered with.
    pub const BAD_USER_INPUT: &'static str = "BAD_USER_INPUT";
    pub const UNAVAILABLE_CODE: &'static str = "SERVICE_UNAVAILABLE";
    pub const INTERNAL_SERVER_ERROR: &'static str = "INTERNAL_SERVER_ERROR";
    /// All a client learns of an internal error; the log has the rest.
    pub const INTERNAL_MESSAGE: &'static str = "internal server error";
    pub const METHOD_NOT_ALLOWED: &'static str = "METHOD_NOT_ALLOWED";
    pub const TOO_MANY_REQUESTS: &'static str = "TOO_MANY_REQUESTS";
    /// An automatic persisted query whose hash this server does not know:
    /// the client sends the query text with it, once.
    pub const PERSISTED_QUERY_NOT_FOUND: &'static str = "PERSISTED_QUERY_NOT_FOUND";

    /// The error as a request-level GraphQL error (no position, no path):
    /// what an extension or the HTTP handler answers before any resolver runs.
    pub fn into_server_error(self) -> ServerError {
        request_level(async_graphql::Error::from(self))
    }

    /// `into_server_error` without its log line, for refusals that can come
    /// by the thousand (the caller decides what to log).
    pub fn into_unlogged_server_error(self) -> ServerError {
        request_level(self.coded())
    }

    /// The `extensions.code` an error went out with, if it has one.
    pub fn code_of(error: &ServerError) -> Option<&str> {
        match error.extensions.as_ref()?.get("code")? {
            async_graphql::Value::String(code) => Some(code),
            _ => None,
        }
    }

    pub const OVERLOADED: Self =
        Self::Unavailable("the server is at its limit of requests in flight; try again shortly");
    pub const INTROSPECTION_BUSY: Self = Self::Unavailable(
        "the server is answering as many new introspection queries as it will at once; try again shortly",
    );
    pub const LARGE_DOCUMENTS_BUSY: Self = Self::Unavailable(
        "the server is parsing as many large documents as it will at once; try again shortly",
    );
    pub const WEBSOCKETS_FULL: Self =
        Self::Unavailable("the server is at its limit of open WebSockets; try again later");
    pub const WEBSOCKETS_PER_ADDRESS: Self = Self::TooMany(
        "this address has MAX_WEBSOCKETS_PER_ADDRESS WebSockets open; close one first",
    );
    pub const TOO_SLOW: Self = Self::Unavailable(
        "the request was not handled within HTTP_REQUEST_TIMEOUT; try again shortly",
    );
    pub const HASHING_BUSY: Self =
        Self::Unavailable("the server is busy checking other passwords; try again shortly");
    pub const BODY_TOO_LARGE: Self = Self::BadRequest("the request body is too large");
    pub const BODY_UNREADABLE: Self = Self::BadRequest("the request body could not be read");
    pub const SLOW_BODY: Self =
        Self::BadRequest("the request body did not arrive within HTTP_BODY_TIMEOUT");

    /// How long a client should wait before trying again, when that is known.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::TooManyRequests { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        Self::internal(err)
    }
}

/// A coalesced request its batch never answered: the process is
/// stopping, or the batch ended without a word for it.
impl From<Unanswered> for ApiError {
    fn from(unanswered: Unanswered) -> Self {
        match unanswered {
            Unanswered::Closed => Self::Unavailable("the server is shutting down"),
            Unanswered::Dropped => Self::internal(anyhow::anyhow!(
                "a batch ended without answering its request"
            )),
        }
    }
}

/// A job operation that failed: a conflict if another rebuild runs,
/// unavailable if the database is, internal otherwise.
impl From<jobs::JobError> for ApiError {
    fn from(err: jobs::JobError) -> Self {
        match err {
            jobs::JobError::RebuildRunning => Self::Conflict(err.to_string()),
            err => Self::internal(err),
        }
    }
}

/// Why a failed database call is worth retrying later, if it is: no
/// connection free or reachable in time, a connection lost, the server
/// shutting down or starting up, a statement past `statement_timeout`, or
/// a lock another transaction held (a deadlock, a serialization failure, a
/// wait past `lock_timeout`).
fn unavailability(err: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    const UNREACHABLE: &str = "the database is unavailable or saturated; try again shortly";
    const TOO_SLOW: &str = "the database took too long to answer; try again shortly";
    const CONFLICT: &str =
        "the database was busy with a conflicting change to the same rows; try again shortly";
    if let Some(DbErr::ConnectionAcquire(_)) = err.downcast_ref::<DbErr>() {
        return Some(UNREACHABLE);
    }
    // SeaORM's RuntimeErr holds the sqlx error without naming it its source
    let sqlx_error = match err.downcast_ref::<RuntimeErr>() {
        Some(RuntimeErr::SqlxError(e)) => e.as_ref(),
        _ => err.downcast_ref::<sqlx::Error>()?,
    };
    match sqlx_error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Some(UNREACHABLE)
        }
        sqlx::Error::Database(db) => match db.code()?.as_ref() {
            // query_canceled: statement_timeout, or a cancel request
            "57014" => Some(TOO_SLOW),
            // deadlock_detected, serialization_failure, lock_not_available
            // (lock_timeout): another transaction held what this one
            // needed; the same request may well go through next time
            "40P01" | "40001" | "55P03" => Some(CONFLICT),
            // admin_shutdown, crash_shutdown, cannot_connect_now,
            // too_many_connections, and the connection_exception class
            "57P01" | "57P02" | "57P03" | "53300" => Some(UNREACHABLE),
            code if code.starts_with("08") => Some(UNREACHABLE),
            _ => None,
        },
        _ => None,
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        match &err {
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error")
            }
            ApiError::Unavailable(reason) => tracing::warn!(reason, "request refused: unavailable"),
            _ => {}
        }
        err.coded()
    }
}

impl ApiError {
    /// The error with its code (and wait), as clients get it; the
    /// conversion above logs first.
    fn coded(&self) -> async_graphql::Error {
        let code = self.code();
        let retry_after = self.retry_after().map(|d| d.as_secs().max(1));
        async_graphql::Error::new(self.message()).extend_with(|_, e| {
            e.set("code", code);
            if let Some(seconds) = retry_after {
                e.set("retryAfter", seconds);
            }
        })
    }
}

/// Gives every error a code; true when the request never ran. An error
/// without a code that came through `?` from an error type (it has a
/// `source`: a driver's, say) is the server's fault, or the database's: its
/// code and message are the ones `ApiError` gives it, its text is for the
/// log. Any other is about the request: syntax, validation, variable types,
/// depth or complexity (no path: it never ran), or an argument's value that
/// async-graphql refused as a field began.
pub fn code_the_uncoded(errors: &mut [ServerError]) -> bool {
    let mut refused = !errors.is_empty();
    for error in errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_some() {
            refused = false;
            continue;
        }
        let code = if error.message == "PersistedQueryNotFound" {
            // the message Apollo clients look for to send the full query again
            ApiError::PERSISTED_QUERY_NOT_FOUND
        } else if let Some(source) = &error.source {
            refused = false;
            let api = match source.downcast_ref::<DbErr>() {
                Some(db) => ApiError::from(db.clone()),
                None => ApiError::Internal(anyhow::anyhow!("{}", error.message)),
            };
            tracing::error!(
                error = %error.message,
                path = ?error.path,
                "a resolver let an error through without a code"
            );
            error.message = api.message();
            api.code()
        } else {
            ApiError::BAD_USER_INPUT
        };
        extensions.set("code", code);
    }
    refused
}

fn request_level(error: async_graphql::Error) -> ServerError {
    let mut server_error = ServerError::new(error.message, None);
    server_error.extensions = error.extensions;
    server_error
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_graphql::{PathSegment, Value};
    use sea_orm::ConnAcquireErr;

    use super::*;

    fn sqlx_exec(err: sqlx::Error) -> DbErr {
        DbErr::Exec(RuntimeErr::SqlxError(Arc::new(err)))
    }

    #[test]
    fn an_unreachable_or_saturated_database_is_worth_a_retry() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for err in [
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
            sqlx_exec(sqlx::Error::PoolTimedOut),
            sqlx_exec(sqlx::Error::Io(refused)),
            DbErr::Conn(RuntimeErr::SqlxError(Arc::new(sqlx::Error::PoolClosed))),
        ] {
            let api = ApiError::from(err);
            assert_eq!(api.code(), "SERVICE_UNAVAILABLE");
            assert_eq!(
                api.message(),
                "the database is unavailable or saturated; try again shortly"
            );
        }
    }

    #[test]
    fn other_database_failures_stay_internal() {
        for err in [
            sqlx_exec(sqlx::Error::RowNotFound),
            DbErr::Custom("a bug".into()),
            DbErr::RecordNotFound("order 7".into()),
        ] {
            let api = ApiError::from(err);
            assert_eq!(api.code(), "INTERNAL_SERVER_ERROR");
            assert_eq!(api.message(), "internal server error");
        }
    }

    #[test]
    fn a_wrapped_cause_is_found_down_the_chain() {
        let err = anyhow::Error::new(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))
            .context("listing jobs");
        assert_eq!(ApiError::internal(err).code(), "SERVICE_UNAVAILABLE");
    }

    fn code(error: &ServerError) -> Option<&str> {
        ApiError::code_of(error)
    }

    #[test]
    fn a_resolvers_uncoded_error_is_internal_and_its_text_never_sent() {
        let through = |source: Arc<dyn std::any::Any + Send + Sync>, message: &str| {
            let mut error = ServerError::new(message, None);
            error.path = vec![PathSegment::Field("createProduct".into())];
            error.source = Some(source);
            let mut errors = vec![error];
            assert!(!code_the_uncoded(&mut errors));
            errors.remove(0)
        };
        let pool = through(
            Arc::new(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)),
            "Failed to acquire connection from pool: Connection pool timed out",
        );
        assert_eq!(code(&pool), Some("SERVICE_UNAVAILABLE"));
        assert_eq!(
            pool.message,
            "the database is unavailable or saturated; try again shortly"
        );
        let other = through(Arc::new(std::fmt::Error), "an error occurred");
        assert_eq!(code(&other), Some("INTERNAL_SERVER_ERROR"));
        assert_eq!(other.message, "internal server error");
    }

    #[test]
    fn a_request_that_never_ran_and_a_bad_argument_are_bad_input() {
        let mut argument = ServerError::new(
            r#"Failed to parse "Int": Only integers from -2147483648 to 2147483647 are accepted."#,
            None,
        );
        argument.path = vec![PathSegment::Field("products".into())];
        let invalid = ServerError::new("Query is too complex.", None);
        let mut errors = vec![invalid.clone()];
        assert!(code_the_uncoded(&mut errors));
        assert_eq!(code(&errors[0]), Some("BAD_USER_INPUT"));
        assert_eq!(errors[0].message, "Query is too complex.");
        let mut errors = vec![argument];
        code_the_uncoded(&mut errors);
        assert_eq!(code(&errors[0]), Some("BAD_USER_INPUT"));
        // a coded error keeps its code and means the request ran
        let mut coded = ServerError::new("no such product", None);
        coded.extensions = Some(Default::default());
        coded
            .extensions
            .as_mut()
            .unwrap()
            .set("code", Value::from("NOT_FOUND"));
        let mut errors = vec![invalid, coded];
        assert!(!code_the_uncoded(&mut errors));
        assert_eq!(code(&errors[1]), Some("NOT_FOUND"));
    }
}
