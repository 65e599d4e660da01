//! Settings from the environment, each read once, with defaults that fit a
//! developer machine. A bad value stops start-up with the variable's name.

use std::net::SocketAddr;
use std::time::Duration;

use jobs::WorkerSettings;

use crate::placer::PlacementSettings;

#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    pub bind_addr: SocketAddr,
    pub jwt_secret: Secret,
    /// False when the secret was generated at start-up.
    pub jwt_secret_configured: bool,
    pub admin: Option<AdminBootstrap>,
    pub log_format: LogFormat,
    /// What reaches the board's Logs page and Events panels (`BOARD_LOG`).
    pub board_log: tracing_subscriber::filter::Targets,
    pub db_pool_size: u32,
    /// How long a request waits for a database connection before it fails.
    pub db_acquire_timeout: Duration,
    /// The longest a statement of a GraphQL request may run.
    pub db_statement_timeout: Duration,
    pub workers: WorkerSettings,
    /// How concurrent `placeOrder` requests are written together.
    pub placement: PlacementSettings,
    pub http: HttpSettings,
    /// The apalis board's own listener; `None` when no credentials are set.
    pub board: Option<BoardConfig>,
    /// How long finished jobs stay in the queue's history.
    pub job_retention: Duration,
    /// How long after placing it a customer may cancel an order (admins may
    /// cancel any order at any time).
    pub order_cancel_window: Duration,
}

#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// GraphQL requests handled at once; more are refused at once with 503.
    pub max_in_flight: usize,
    /// WebSocket connections (subscriptions) open at once; more are refused
    /// with 503.
    pub max_websockets: usize,
    /// WebSocket connections open at once from one client address; more
    /// are refused with 429.
    pub max_websockets_per_address: usize,
    /// How long a new WebSocket has to send `connection_init`.
    pub websocket_init_timeout: Duration,
    /// How often an open WebSocket is pinged; two intervals without a word
    /// from the peer close it.
    pub websocket_ping_interval: Duration,
    /// Web origins whose pages may call the API from a browser (CORS).
    pub allowed_origins: AllowedOrigins,
    /// The longest a request's body may take to arrive.
    pub body_timeout: Duration,
    /// The longest a request may take to be handled once its body is in.
    pub request_timeout: Duration,
    pub connections: ConnectionLimits,
    pub auth: AuthLimits,
    /// How often `/metrics` reads the queue's figures from the database at
    /// most (zero: on every scrape).
    pub metrics_refresh: Duration,
    /// When set, `/metrics` wants `Authorization: Bearer <token>`.
    pub metrics_token: Option<Secret>,
}

/// What the accept loop allows before any request is read.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Connections open at once; past it, new ones are closed at once.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_per_address: usize,
    /// The longest a connection may wait for a request's complete headers:
    /// a slow client's, and a keep-alive connection's idle time alike.
    pub header_timeout: Duration,
}

/// How sign-in attempts are throttled (see `auth_throttle`).
#[derive(Clone, Debug)]
pub struct AuthLimits {
    /// Failed logins per client address, and per account, before each
    /// further attempt waits (1 s, doubling with every failure).
    pub free_failures: u32,
    /// Registrations per client address before each further one waits.
    pub free_registrations: u32,
    /// The longest wait, and how long a quiet address or account takes to
    /// be forgotten.
    pub max_delay: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum AllowedOrigins {
    /// No CORS headers: browsers allow only pages served by Tally itself.
    #[default]
    SameOrigin,
    /// `*`: any page (bearer tokens, not cookies, authenticate, so no
    /// credentials mode is needed).
    Any,
    /// Exactly these origins, such as `https://app.example.com`.
    List(Vec<String>),
}

impl AllowedOrigins {
    fn parse(raw: &str) -> Result<Self, ConfigError> {
        let raw = raw.trim();
        if raw == "*" {
            return Ok(Self::Any);
        }
        let origins: Vec<String> = raw
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect();
        for origin in &origins {
            // an origin is scheme://host[:port]: no path, not even a slash
            let well_formed = origin.parse::<axum::http::Uri>().is_ok_and(|uri| {
                matches!(uri.scheme_str(), Some("http" | "https"))
                    && uri.authority().is_some_and(|a| !a.as_str().contains('@'))
                    // http's Uri gives a bare origin the path "/"
                    && uri.path_and_query().is_none_or(|p| p.as_str() == "/")
                    && !origin.ends_with('/')
            });
            if !well_formed {
                return Err(invalid(
                    "ALLOWED_ORIGINS",
                    &format!(
                        "{origin:?} is not an origin such as https://app.example.com \
                         (comma-separated, or * for any)"
                    ),
                ));
            }
        }
        Ok(Self::List(origins))
    }
}

#[derive(Clone, Debug)]
pub struct BoardConfig {
    pub addr: SocketAddr,
    pub username: String,
    pub password: Secret,
}

#[derive(Clone)]
pub struct AdminBootstrap {
    pub email: String,
    pub password: Secret,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A value that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// 32 random bytes, hex-encoded.
    pub fn random() -> Self {
        use rand::Rng;
        let bytes: [u8; 32] = rand::rng().random();
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/tally";

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Reads settings through `lookup`, so tests can supply their own.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &'static str| lookup(var).filter(|v| !v.trim().is_empty());
        let parse = |var: &'static str, default: &str| -> Result<String, ConfigError> {
            Ok(get(var).unwrap_or_else(|| default.to_owned()))
        };

        let database_url = parse("DATABASE_URL", DEFAULT_DATABASE_URL)?;
        if !database_url.starts_with("postgres://") && !database_url.starts_with("postgresql://") {
            return Err(invalid("DATABASE_URL", "must start with postgres://"));
        }
        let bind_addr = parse("BIND_ADDR", "127.0.0.1:8080")?
            .parse()
            .map_err(|_| invalid("BIND_ADDR", "must be an address such as 127.0.0.1:8080"))?;

        let (jwt_secret, jwt_secret_configured) = match get("JWT_SECRET") {
            Some(s) if s.len() < 32 => {
                return Err(invalid("JWT_SECRET", "must be at least 32 characters"));
            }
            Some(s) => (Secret(s), true),
            None => (Secret::random(), false),
        };

        let admin = match (get("ADMIN_EMAIL"), get("ADMIN_PASSWORD")) {
            (Some(email), Some(password)) => Some(AdminBootstrap {
                email,
                password: Secret(password),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid("ADMIN_PASSWORD", "is required with ADMIN_EMAIL"));
            }
            (None, Some(_)) => {
                return Err(invalid("ADMIN_EMAIL", "is required with ADMIN_PASSWORD"));
            }
        };

        let log_format = match parse("LOG_FORMAT", "pretty")?.as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            _ => return Err(invalid("LOG_FORMAT", "must be pretty or json")),
        };
        let board_log = parse("BOARD_LOG", crate::board::logs::DEFAULT_FILTER)?
            .parse()
            .map_err(|_| {
                invalid(
                    "BOARD_LOG",
                    "must be levels by target, such as warn,jobs=info",
                )
            })?;

        let defaults = WorkerSettings::default();
        let workers = WorkerSettings {
            // 0: `tally serve` runs no workers (an API-only process)
            concurrency: number(&get, "WORKER_CONCURRENCY", defaults.concurrency, 0..=256)?,
            max_attempts: number(&get, "JOB_MAX_ATTEMPTS", defaults.max_attempts, 1..=100)?,
            batch_size: number(
                &get,
                "ANALYTICS_BATCH_SIZE",
                defaults.batch_size,
                1..=10_000,
            )?,
            poll_interval: Duration::from_millis(number(
                &get,
                "WORKER_POLL_INTERVAL_MS",
                defaults.poll_interval.as_millis() as u64,
                10..=60_000,
            )?),
            ..defaults
        };

        let board_addr = parse("BOARD_ADDR", "127.0.0.1:8081")?
            .parse()
            .map_err(|_| invalid("BOARD_ADDR", "must be an address such as 127.0.0.1:8081"))?;
        let board = match (get("BOARD_USERNAME"), get("BOARD_PASSWORD")) {
            (Some(_), Some(password)) if password.chars().count() < 12 => {
                return Err(invalid(
                    "BOARD_PASSWORD",
                    "must be at least 12 characters: the board can retry any job",
                ));
            }
            (Some(username), Some(password)) => Some(BoardConfig {
                addr: board_addr,
                username,
                password: Secret(password),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid("BOARD_PASSWORD", "is required with BOARD_USERNAME"));
            }
            (None, Some(_)) => {
                return Err(invalid("BOARD_USERNAME", "is required with BOARD_PASSWORD"));
            }
        };
        let duration = |var: &'static str, default: &str| {
            humantime::parse_duration(&parse(var, default)?)
                .map_err(|_| invalid(var, "must be a duration such as 7days, 12h or 30m"))
        };
        let timeout = |var: &'static str, default: &str| match duration(var, default)? {
            d if d.is_zero() => Err(invalid(var, "must be longer than 0")),
            d => Ok(d),
        };
        let job_retention = duration("JOB_RETENTION", "7days")?;
        let order_cancel_window = duration("ORDER_CANCEL_WINDOW", "15m")?;

        Ok(Self {
            database_url,
            bind_addr,
            jwt_secret,
            jwt_secret_configured,
            admin,
            log_format,
            board_log,
            db_pool_size: number(&get, "DATABASE_POOL_SIZE", 16, 1..=1000)?,
            db_acquire_timeout: Duration::from_millis(number(
                &get,
                "DATABASE_ACQUIRE_TIMEOUT_MS",
                2_000,
                1..=600_000,
            )?),
            db_statement_timeout: Duration::from_millis(number(
                &get,
                "DATABASE_STATEMENT_TIMEOUT_MS",
                5_000,
                1..=3_600_000,
            )?),
            workers,
            placement: PlacementSettings {
                max_batch: number(
                    &get,
                    "ORDER_BATCH_SIZE",
                    PlacementSettings::default().max_batch,
                    1..=1000,
                )?,
                writers: number(
                    &get,
                    "ORDER_WRITERS",
                    PlacementSettings::default().writers,
                    1..=256,
                )?,
            },
            http: HttpSettings {
                body_limit_bytes: 64 * 1024,
                max_in_flight: number(&get, "MAX_REQUESTS_IN_FLIGHT", 256, 1..=100_000)?,
                max_websockets: number(&get, "MAX_WEBSOCKETS", 1024, 1..=100_000)?,
                max_websockets_per_address: number(
                    &get,
                    "MAX_WEBSOCKETS_PER_ADDRESS",
                    16,
                    1..=100_000,
                )?,
                websocket_init_timeout: timeout("WEBSOCKET_INIT_TIMEOUT", "3s")?,
                websocket_ping_interval: timeout("WEBSOCKET_PING_INTERVAL", "15s")?,
                allowed_origins: match get("ALLOWED_ORIGINS") {
                    Some(raw) => AllowedOrigins::parse(&raw)?,
                    None => AllowedOrigins::SameOrigin,
                },
                body_timeout: timeout("HTTP_BODY_TIMEOUT", "10s")?,
                request_timeout: timeout("HTTP_REQUEST_TIMEOUT", "30s")?,
                connections: ConnectionLimits {
                    max_connections: number(&get, "MAX_CONNECTIONS", 4096, 1..=1_000_000)?,
                    max_per_address: number(
                        &get,
                        "MAX_CONNECTIONS_PER_ADDRESS",
                        64,
                        1..=1_000_000,
                    )?,
                    header_timeout: timeout("HTTP_HEADER_TIMEOUT", "10s")?,
                },
                metrics_refresh: duration("METRICS_REFRESH", "5s")?,
                metrics_token: match get("METRICS_TOKEN") {
                    Some(token) if token.len() < 16 => {
                        return Err(invalid("METRICS_TOKEN", "must be at least 16 characters"));
                    }
                    token => token.map(Secret),
                },
                auth: AuthLimits {
                    free_failures: number(&get, "LOGIN_FREE_FAILURES", 5, 1..=1_000_000)?,
                    free_registrations: number(
                        &get,
                        "REGISTRATIONS_PER_ADDRESS",
                        20,
                        1..=1_000_000,
                    )?,
                    max_delay: timeout("LOGIN_MAX_DELAY", "15m")?,
                },
            },
            board,
            job_retention,
            order_cancel_window,
        })
    }
}

fn number<T>(
    get: &impl Fn(&'static str) -> Option<String>,
    var: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = get(var) else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(invalid(
            var,
            &format!("must be a number from {} to {}", range.start(), range.end()),
        )),
    }
}

fn invalid(var: &'static str, message: &str) -> ConfigError {
    ConfigError {
        var,
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|var| vars.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_fit_a_developer_machine() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.bind_addr.to_string(), "127.0.0.1:8080");
        assert!(!c.jwt_secret_configured);
        assert_eq!(c.jwt_secret.expose().len(), 64);
        assert_eq!(c.workers.max_attempts, 5);
        assert_eq!(
            c.placement,
            PlacementSettings {
                max_batch: 64,
                writers: 1
            }
        );
        assert!(c.admin.is_none());
        assert!(c.board.is_none(), "the board is off without credentials");
        assert_eq!(c.job_retention, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(c.order_cancel_window, Duration::from_secs(15 * 60));
    }

    #[test]
    fn the_board_needs_both_credentials() {
        let c = config(&[
            ("BOARD_USERNAME", "ops"),
            ("BOARD_PASSWORD", "twelve chars"),
        ])
        .unwrap();
        let board = c.board.unwrap();
        assert_eq!(
            (board.addr.to_string(), board.username),
            ("127.0.0.1:8081".into(), "ops".into())
        );
        assert_eq!(
            config(&[("BOARD_USERNAME", "ops")]).err().unwrap().var,
            "BOARD_PASSWORD"
        );
        let short = config(&[("BOARD_USERNAME", "ops"), ("BOARD_PASSWORD", "eleven char")]);
        assert_eq!(short.err().unwrap().var, "BOARD_PASSWORD");
        for (var, bad) in [
            ("HTTP_BODY_TIMEOUT", "0s"),
            ("HTTP_HEADER_TIMEOUT", "soon"),
            ("MAX_CONNECTIONS_PER_ADDRESS", "0"),
            ("METRICS_TOKEN", "short"),
        ] {
            assert_eq!(config(&[(var, bad)]).err().unwrap().var, var, "{var}={bad}");
        }
        assert_eq!(
            config(&[("JOB_RETENTION", "a while")]).err().unwrap().var,
            "JOB_RETENTION"
        );
        assert_eq!(
            config(&[("JOB_RETENTION", "12h")]).unwrap().job_retention,
            Duration::from_secs(12 * 3600)
        );
        assert_eq!(
            config(&[("ORDER_CANCEL_WINDOW", "soon")])
                .err()
                .unwrap()
                .var,
            "ORDER_CANCEL_WINDOW"
        );
        assert_eq!(
            config(&[("ORDER_CANCEL_WINDOW", "2h")])
                .unwrap()
                .order_cancel_window,
            Duration::from_secs(2 * 3600)
        );
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let e = config(&[("WORKER_CONCURRENCY", "zero")]).err().unwrap();
        assert_eq!(
            e.to_string(),
            "WORKER_CONCURRENCY: must be a number from 0 to 256"
        );
        let e = config(&[("WORKER_CONCURRENCY", "-1")]).err().unwrap();
        assert_eq!(
            e.to_string(),
            "WORKER_CONCURRENCY: must be a number from 0 to 256"
        );
        let e = config(&[("BIND_ADDR", "nowhere")]).err().unwrap();
        assert_eq!(e.var, "BIND_ADDR");
        let e = config(&[("JWT_SECRET", "short")]).err().unwrap();
        assert_eq!(e.var, "JWT_SECRET");
        let e = config(&[("ADMIN_EMAIL", "a@b.c")]).err().unwrap();
        assert_eq!(e.var, "ADMIN_PASSWORD");
    }

    #[test]
    fn allowed_origins_are_exact_origins_or_any() {
        assert_eq!(
            config(&[]).unwrap().http.allowed_origins,
            AllowedOrigins::SameOrigin
        );
        assert_eq!(
            config(&[("ALLOWED_ORIGINS", "*")])
                .unwrap()
                .http
                .allowed_origins,
            AllowedOrigins::Any
        );
        assert_eq!(
            config(&[(
                "ALLOWED_ORIGINS",
                "https://app.example.com, http://localhost:5173"
            )])
            .unwrap()
            .http
            .allowed_origins,
            AllowedOrigins::List(vec![
                "https://app.example.com".into(),
                "http://localhost:5173".into()
            ])
        );
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/app",
            "https://app.example.com?x=1",
            "ftp://files.example.com",
            "https://a.example.com,*",
        ] {
            let e = config(&[("ALLOWED_ORIGINS", bad)]).err().unwrap();
            assert_eq!(e.var, "ALLOWED_ORIGINS", "{bad}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let c = config(&[("ADMIN_EMAIL", "a@b.c"), ("ADMIN_PASSWORD", "hunter22")]).unwrap();
        assert_eq!(format!("{:?}", c.admin.unwrap().password), "Secret(..)");
    }
}
