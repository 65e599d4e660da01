//! Settings from the environment, each read once, with defaults that fit a
//! developer machine. A bad value stops start-up with the variable's name.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use jobs::WorkerSettings;
use jobs::sales_rollup::SalesRetention;

mod rates;
mod vars;

pub use rates::{Rate, SignInRates};
use vars::{Vars, invalid};

#[derive(Clone)]
pub struct Config {
    pub database: Database,
    pub bind_addr: SocketAddr,
    /// `JWT_SECRET`; unset, the secret is made once and kept in the
    /// database, for every process to share (`db::shared_token_secret`).
    pub jwt_secret: Option<Secret>,
    pub admin: Option<AdminBootstrap>,
    pub log_format: LogFormat,
    /// What reaches the board's Logs page and Events panels (`BOARD_LOG`).
    pub board_log: tracing_subscriber::filter::Targets,
    pub db_pool_size: u32,
    /// How long a request waits for a database connection before it fails.
    pub db_acquire_timeout: Duration,
    /// The longest a statement of a GraphQL request may run.
    pub db_statement_timeout: Duration,
    /// The longest a statement of a GraphQL request waits for a row lock
    /// another transaction holds.
    pub db_lock_timeout: Duration,
    pub workers: WorkerSettings,
    /// How concurrent `placeOrder` requests are written together.
    pub placement: PlacementSettings,
    pub http: HttpSettings,
    /// The apalis board's own listener; `None` when no credentials are set.
    pub board: Option<BoardConfig>,
    /// How long finished jobs stay in the queue's history.
    pub job_retention: Duration,
    /// How long sales stay in quarter hours (hourly reports, what sells
    /// now), and `STORE_TIME_ZONE`, whose days reports use and older sales
    /// roll into. The zone is checked against PostgreSQL's at start-up.
    pub sales: SalesRetention,
    /// How long after placing it a customer may cancel an order (admins may
    /// cancel any order at any time).
    pub order_cancel_window: Duration,
}

/// How requests are coalesced (`ORDER_BATCH_SIZE`, `ORDER_WRITERS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacementSettings {
    /// Orders one statement writes at most; 1 writes each order alone.
    pub max_batch: usize,
    /// Batches written at the same time, each on its own connection.
    pub writers: usize,
}

impl Default for PlacementSettings {
    fn default() -> Self {
        // One writer: on the 2-core machine of BENCHMARKS.md, a second one
        // halves the batches, and with them what each statement saves
        // (1.1 × the orders/s with one, side by side)
        Self {
            max_batch: 64,
            writers: 1,
        }
    }
}

/// What reaches the board unless `BOARD_LOG` says otherwise: what the jobs
/// and the board's operators do, every warning, and for each job whose
/// order another run counted, a line saying which run (debug, as the log on
/// stderr has no use for one line per order).
pub const DEFAULT_BOARD_LOG: &str = "warn,jobs=info,jobs::settled=debug,tally::board=info";

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
    /// How many operations one WebSocket may start: a burst, then one per
    /// `period / burst` (`graphql::sockets`).
    pub websocket_operation_rate: Rate,
    /// What the answers to anonymous reads kept in memory may add up to
    /// (`graphql::public_answers`); 0 keeps none.
    pub public_cache_bytes: usize,
    /// Web origins whose pages may call the API from a browser (CORS).
    pub allowed_origins: AllowedOrigins,
    /// The longest a request's body may take to arrive.
    pub body_timeout: Duration,
    /// The longest a request may take to be handled once its body is in.
    pub request_timeout: Duration,
    pub connections: ConnectionLimits,
    pub sign_in: SignInRates,
    /// How often `/metrics` reads the queue's figures from the database at
    /// most (zero: on every scrape).
    pub metrics_refresh: Duration,
    /// When set, `/metrics` wants `Authorization: Bearer <token>`.
    pub metrics_token: Option<Secret>,
}

/// What the accept loop allows before any request is read, and whom it
/// believes about a client's address.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Connections open at once; past it, new ones are closed at once.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_per_address: usize,
    /// The longest a connection may wait for a request's complete headers:
    /// a slow client's, and a keep-alive connection's idle time alike.
    pub header_timeout: Duration,
    /// The proxies in front of Tally (`TRUSTED_PROXIES`).
    pub proxies: TrustedProxies,
}

/// The proxies and load balancers in front of Tally (`TRUSTED_PROXIES`,
/// `TRUSTED_PROXY_HEADER`). From one of them, the client is the rightmost
/// address of the forwarding header that is not itself a trusted proxy
/// (each proxy appends the address it was reached from, so what a client
/// wrote itself is further left, and never read); from any other peer the
/// header is ignored and the client is the peer. No proxy is trusted by
/// default. A trusted proxy's connections carry many clients, so they are
/// not held to one client's share of connections.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    /// None: nothing is trusted.
    trusted: Option<trusted_proxies::Config>,
}

/// The header a trusted proxy writes the client's address into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For`: nginx, HAProxy's `option forwardfor`, cloud load
    /// balancers.
    XForwardedFor,
    /// RFC 7239 `Forwarded`.
    Forwarded,
}

impl TrustedProxies {
    /// `list`: addresses and CIDR ranges, comma-separated.
    pub fn parse(list: &str, header: ForwardedHeader) -> Result<Self, String> {
        let mut config = trusted_proxies::Config::new();
        let mut any = false;
        for proxy in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            config
                .add_trusted_ip(proxy)
                .map_err(|_| format!("{proxy:?} is no address or CIDR range"))?;
            any = true;
        }
        // only the header the proxy writes: one it passes on unread (nginx
        // leaves `Forwarded` as the client sent it) would let a client name
        // its own address
        match header {
            ForwardedHeader::XForwardedFor => config.trust_x_forwarded_for(),
            ForwardedHeader::Forwarded => config.trust_forwarded(),
        }
        // for the board's same-origin check behind a proxy that rewrites Host
        config.trust_x_forwarded_host();
        Ok(Self {
            trusted: any.then_some(config),
        })
    }

    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.trusted
            .as_ref()
            .is_some_and(|config| config.is_ip_trusted(&peer.to_canonical()))
    }

    /// Who is behind `peer`: the request's forwarding headers read once,
    /// when `peer` is trusted; the peer itself otherwise.
    pub fn forwarded<B>(&self, peer: IpAddr, request: &axum::http::Request<B>) -> Forwarded {
        let peer = peer.to_canonical();
        match &self.trusted {
            Some(config) if config.is_ip_trusted(&peer) => {
                let trusted = trusted_proxies::Trusted::from(peer, request, config);
                Forwarded {
                    client: trusted.ip().to_canonical(),
                    // the crate falls back to `Host`: only the proxy's word counts
                    host: request
                        .headers()
                        .contains_key("x-forwarded-host")
                        .then(|| trusted.host_with_port().map(str::to_owned))
                        .flatten(),
                }
            }
            _ => Forwarded {
                client: peer,
                host: None,
            },
        }
    }
}

/// What a request's trusted proxy says of its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The client's address (the peer, when no trusted proxy speaks).
    pub client: IpAddr,
    /// The host the client asked for, when a trusted proxy sent
    /// `X-Forwarded-Host`.
    pub host: Option<String>,
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

/// Where the data is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// `DATABASE_URL`: a PostgreSQL someone runs.
    Url(String),
    /// `DATABASE_URL` unset: a PostgreSQL of Tally's own, kept in
    /// `TALLY_DATA_DIR` (`db::private`).
    Private { data_dir: PathBuf },
}

/// The private server's home when `TALLY_DATA_DIR` is unset: the user's
/// data directory (`~/.local/share/tally`, or `$XDG_DATA_HOME/tally`); as
/// root, `/var/lib/tally`, which the unprivileged account running
/// PostgreSQL can reach (root's home it cannot).
fn default_data_dir() -> Option<PathBuf> {
    use etcetera::BaseStrategy;
    if nix::unistd::Uid::effective().is_root() {
        return Some(PathBuf::from("/var/lib/tally"));
    }
    Some(
        etcetera::choose_base_strategy()
            .ok()?
            .data_dir()
            .join("tally"),
    )
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Reads settings through `lookup`, so tests can supply their own.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars::new(lookup);
        Ok(Self {
            database: database(&vars)?,
            bind_addr: vars.address("BIND_ADDR", "127.0.0.1:8080")?,
            jwt_secret: vars.secret("JWT_SECRET", 32)?,
            admin: vars
                .pair("ADMIN_EMAIL", "ADMIN_PASSWORD")?
                .map(|(email, password)| AdminBootstrap {
                    email,
                    password: Secret(password),
                }),
            log_format: match vars.text("LOG_FORMAT", "pretty").as_str() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                _ => return Err(invalid("LOG_FORMAT", "must be pretty or json")),
            },
            board_log: vars
                .text("BOARD_LOG", DEFAULT_BOARD_LOG)
                .parse()
                .map_err(|_| {
                    invalid(
                        "BOARD_LOG",
                        "must be levels by target, such as warn,jobs=info",
                    )
                })?,
            db_pool_size: vars.number("DATABASE_POOL_SIZE", 16, 1..=1000)?,
            db_acquire_timeout: vars.millis("DATABASE_ACQUIRE_TIMEOUT_MS", 2_000, 1..=600_000)?,
            db_statement_timeout: vars.millis(
                "DATABASE_STATEMENT_TIMEOUT_MS",
                5_000,
                1..=3_600_000,
            )?,
            db_lock_timeout: vars.millis("DATABASE_LOCK_TIMEOUT_MS", 1_000, 1..=3_600_000)?,
            workers: workers(&vars)?,
            placement: PlacementSettings {
                max_batch: vars.number(
                    "ORDER_BATCH_SIZE",
                    PlacementSettings::default().max_batch,
                    1..=1000,
                )?,
                writers: vars.number(
                    "ORDER_WRITERS",
                    PlacementSettings::default().writers,
                    1..=256,
                )?,
            },
            http: http(&vars)?,
            board: board(&vars)?,
            job_retention: vars.duration("JOB_RETENTION", "7days")?,
            order_cancel_window: vars.duration("ORDER_CANCEL_WINDOW", "15m")?,
            sales: sales(&vars)?,
        })
    }
}

/// `DATABASE_URL`, or unset, the private PostgreSQL in `TALLY_DATA_DIR`.
fn database(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Database, ConfigError> {
    match vars.get("DATABASE_URL") {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Database::Url(url))
        }
        Some(_) => Err(invalid("DATABASE_URL", "must start with postgres://")),
        None => {
            let data_dir = vars
                .get("TALLY_DATA_DIR")
                .map(PathBuf::from)
                .or_else(default_data_dir)
                .ok_or_else(|| {
                    invalid(
                        "TALLY_DATA_DIR",
                        "unset, and there is no home directory to keep the data in: set it",
                    )
                })?;
            // the socket's directory is a URL's host, which must be absolute
            let data_dir = std::path::absolute(&data_dir)
                .map_err(|e| invalid("TALLY_DATA_DIR", &e.to_string()))?;
            Ok(Database::Private { data_dir })
        }
    }
}

fn workers(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<WorkerSettings, ConfigError> {
    let defaults = WorkerSettings::default();
    Ok(WorkerSettings {
        // 0: `tally serve` runs no workers (an API-only process)
        concurrency: vars.number("WORKER_CONCURRENCY", defaults.concurrency, 0..=256)?,
        max_attempts: vars.number("JOB_MAX_ATTEMPTS", defaults.max_attempts, 1..=100)?,
        batch_size: vars.number("ANALYTICS_BATCH_SIZE", defaults.batch_size, 1..=10_000)?,
        poll_interval: vars.millis(
            "WORKER_POLL_INTERVAL_MS",
            defaults.poll_interval.as_millis() as u64,
            10..=60_000,
        )?,
        ..defaults
    })
}

fn http(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<HttpSettings, ConfigError> {
    Ok(HttpSettings {
        body_limit_bytes: 64 * 1024,
        max_in_flight: vars.number("MAX_REQUESTS_IN_FLIGHT", 256, 1..=100_000)?,
        max_websockets: vars.number("MAX_WEBSOCKETS", 1024, 1..=100_000)?,
        max_websockets_per_address: vars.number("MAX_WEBSOCKETS_PER_ADDRESS", 16, 1..=100_000)?,
        websocket_init_timeout: vars.timeout("WEBSOCKET_INIT_TIMEOUT", "3s")?,
        websocket_ping_interval: vars.timeout("WEBSOCKET_PING_INTERVAL", "15s")?,
        websocket_operation_rate: vars.rate("WEBSOCKET_OPERATION_RATE", "200/10s")?,
        public_cache_bytes: vars.number(
            "PUBLIC_CACHE_BYTES",
            16 * 1024 * 1024,
            0..=16 * 1024 * 1024 * 1024,
        )?,
        allowed_origins: match vars.get("ALLOWED_ORIGINS") {
            Some(raw) => AllowedOrigins::parse(&raw)?,
            None => AllowedOrigins::SameOrigin,
        },
        body_timeout: vars.timeout("HTTP_BODY_TIMEOUT", "10s")?,
        request_timeout: vars.timeout("HTTP_REQUEST_TIMEOUT", "30s")?,
        connections: connections(vars)?,
        metrics_refresh: vars.duration("METRICS_REFRESH", "5s")?,
        metrics_token: vars.secret("METRICS_TOKEN", 16)?,
        sign_in: SignInRates {
            login_failures_per_address: vars.rate("LOGIN_FAILURES_PER_ADDRESS", "10/10m")?,
            login_failures_per_account: vars.rate("LOGIN_FAILURES_PER_ACCOUNT", "5/15m")?,
            registrations_per_address: vars.rate("REGISTRATIONS_PER_ADDRESS", "20/1h")?,
        },
    })
}

fn connections(
    vars: &Vars<impl Fn(&str) -> Option<String>>,
) -> Result<ConnectionLimits, ConfigError> {
    let header = match vars
        .text("TRUSTED_PROXY_HEADER", "x-forwarded-for")
        .to_ascii_lowercase()
        .as_str()
    {
        "x-forwarded-for" => ForwardedHeader::XForwardedFor,
        "forwarded" => ForwardedHeader::Forwarded,
        _ => {
            return Err(invalid(
                "TRUSTED_PROXY_HEADER",
                "must be x-forwarded-for or forwarded",
            ));
        }
    };
    Ok(ConnectionLimits {
        max_connections: vars.number("MAX_CONNECTIONS", 4096, 1..=1_000_000)?,
        max_per_address: vars.number("MAX_CONNECTIONS_PER_ADDRESS", 64, 1..=1_000_000)?,
        header_timeout: vars.timeout("HTTP_HEADER_TIMEOUT", "10s")?,
        proxies: TrustedProxies::parse(&vars.text("TRUSTED_PROXIES", ""), header)
            .map_err(|e| invalid("TRUSTED_PROXIES", &e))?,
    })
}

/// The board's listener, when its credentials are set.
fn board(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Option<BoardConfig>, ConfigError> {
    let addr = vars.address("BOARD_ADDR", "127.0.0.1:8081")?;
    match vars.pair("BOARD_USERNAME", "BOARD_PASSWORD")? {
        Some((_, password)) if password.chars().count() < 12 => Err(invalid(
            "BOARD_PASSWORD",
            "must be at least 12 characters: the board can retry any job",
        )),
        Some((username, password)) => Ok(Some(BoardConfig {
            addr,
            username,
            password: Secret(password),
        })),
        None => Ok(None),
    }
}

fn sales(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<SalesRetention, ConfigError> {
    Ok(SalesRetention {
        quarter_hours: match vars.duration("SALES_HOURS_RETENTION", "35days")? {
            d if d < MIN_SALES_HOURS_RETENTION => {
                return Err(invalid(
                    "SALES_HOURS_RETENTION",
                    "must be at least 9days: what sells now reads the last week by quarter hours",
                ));
            }
            d if d > MAX_SALES_HOURS_RETENTION => {
                return Err(invalid("SALES_HOURS_RETENTION", "must be at most 3660days"));
            }
            d => d,
        },
        time_zone: time_zone(&vars.text("STORE_TIME_ZONE", "UTC"))?,
    })
}

/// What sells now reads a week of quarter hours, and its later pages a day
/// more (`domain::sales::resume`).
const MIN_SALES_HOURS_RETENTION: Duration = Duration::from_secs(9 * 24 * 3600);
const MAX_SALES_HOURS_RETENTION: Duration = Duration::from_secs(3660 * 24 * 3600);

/// `STORE_TIME_ZONE` as an IANA name's characters (`Europe/Paris`,
/// `America/Argentina/Buenos_Aires`, `Etc/GMT+5`): whether PostgreSQL knows
/// it is checked when the app starts (`db::check_time_zone`).
fn time_zone(name: &str) -> Result<String, ConfigError> {
    let name = name.trim();
    let fits = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'));
    if fits {
        Ok(name.to_owned())
    } else {
        Err(invalid(
            "STORE_TIME_ZONE",
            "must be an IANA time zone name such as Europe/Paris or UTC",
        ))
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
    fn a_database_url_names_a_server_and_without_one_tally_keeps_its_own() {
        let url = "postgres://tally:secret@db.example.com/tally";
        assert_eq!(
            config(&[("DATABASE_URL", url), ("TALLY_DATA_DIR", "/srv/x")])
                .unwrap()
                .database,
            Database::Url(url.to_owned())
        );
        assert_eq!(
            config(&[("TALLY_DATA_DIR", "/srv/tally")])
                .unwrap()
                .database,
            Database::Private {
                data_dir: PathBuf::from("/srv/tally")
            }
        );
        assert_eq!(
            config(&[("TALLY_DATA_DIR", "data")]).unwrap().database,
            Database::Private {
                data_dir: std::env::current_dir().unwrap().join("data")
            }
        );
        let e = config(&[("DATABASE_URL", "mysql://x/y")]).err().unwrap();
        assert_eq!(e.var, "DATABASE_URL");
    }

    #[test]
    fn defaults_fit_a_developer_machine() {
        let c = config(&[]).unwrap();
        assert_eq!(
            c.database,
            Database::Private {
                data_dir: default_data_dir().unwrap()
            }
        );
        assert_eq!(c.bind_addr.to_string(), "127.0.0.1:8080");
        assert!(c.jwt_secret.is_none());
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
        assert_eq!(c.sales.quarter_hours, Duration::from_secs(35 * 24 * 3600));
        assert_eq!(c.sales.time_zone, "UTC");
        assert_eq!(c.order_cancel_window, Duration::from_secs(15 * 60));
    }

    #[test]
    fn sales_keep_quarter_hours_for_at_least_nine_days_in_a_named_zone() {
        let set = config(&[
            ("SALES_HOURS_RETENTION", "9days"),
            ("STORE_TIME_ZONE", "America/Argentina/Buenos_Aires"),
        ])
        .unwrap();
        assert_eq!(set.sales.quarter_hours, Duration::from_secs(9 * 24 * 3600));
        assert_eq!(set.sales.time_zone, "America/Argentina/Buenos_Aires");
        for (var, value) in [
            ("SALES_HOURS_RETENTION", "8days"),
            ("SALES_HOURS_RETENTION", "3661days"),
            ("STORE_TIME_ZONE", "../../etc/passwd"),
            ("STORE_TIME_ZONE", "Europe/Paris; drop table orders"),
        ] {
            assert_eq!(config(&[(var, value)]).err().unwrap().var, var, "{value}");
        }
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
        for (vars, message) in [
            (
                &[("BIND_ADDR", "nowhere")][..],
                "BIND_ADDR: must be an address such as 127.0.0.1:8080",
            ),
            (
                &[("JWT_SECRET", "short")],
                "JWT_SECRET: must be at least 32 characters",
            ),
            (
                &[("ADMIN_EMAIL", "a@b.c")],
                "ADMIN_PASSWORD: is required with ADMIN_EMAIL",
            ),
            (
                &[("BOARD_PASSWORD", "twelve chars")],
                "BOARD_USERNAME: is required with BOARD_PASSWORD",
            ),
            (
                &[("WEBSOCKET_PING_INTERVAL", "0s")],
                "WEBSOCKET_PING_INTERVAL: must be longer than 0",
            ),
            (
                &[("DATABASE_LOCK_TIMEOUT_MS", "0")],
                "DATABASE_LOCK_TIMEOUT_MS: must be a number from 1 to 3600000",
            ),
            (
                &[("BIND_ADDR", "127.0.0.1:1"), ("LOG_FORMAT", "xml")],
                "LOG_FORMAT: must be pretty or json",
            ),
        ] {
            assert_eq!(config(vars).err().unwrap().to_string(), message);
        }
        // blanks count as unset: the default stands
        assert_eq!(
            config(&[("BIND_ADDR", "  ")]).unwrap().bind_addr.port(),
            8080
        );
    }

    #[test]
    fn sign_in_rates_default_to_bursts_that_recover() {
        let rates = config(&[]).unwrap().http.sign_in;
        let rate = |raw: &str| Rate::parse(raw).unwrap();
        assert_eq!(rates.login_failures_per_address, rate("10/10m"));
        assert_eq!(rates.login_failures_per_account, rate("5/15m"));
        assert_eq!(rates.registrations_per_address, rate("20/1h"));
        let set = config(&[("REGISTRATIONS_PER_ADDRESS", "100/1d")]).unwrap();
        assert_eq!(set.http.sign_in.registrations_per_address, rate("100/24h"));
        let e = config(&[("LOGIN_FAILURES_PER_ACCOUNT", "5")])
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "LOGIN_FAILURES_PER_ACCOUNT: \"5\" is no rate such as 10/10m (attempts per period)"
        );
    }

    /// What a request from `peer` with these forwarding headers is taken to
    /// come from.
    fn client(proxies: &TrustedProxies, peer: &str, headers: &[(&str, &str)]) -> String {
        let mut request = axum::http::Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(()).unwrap();
        proxies
            .forwarded(peer.parse().unwrap(), &request)
            .client
            .to_string()
    }

    #[test]
    fn the_client_is_the_rightmost_address_no_trusted_proxy_owns() {
        let none = config(&[]).unwrap().http.connections.proxies;
        // trusting nobody: the peer, whatever the headers say
        assert_eq!(
            client(&none, "10.0.0.2", &[("x-forwarded-for", "1.2.3.4")]),
            "10.0.0.2"
        );
        assert!(!none.trusts("127.0.0.1".parse().unwrap()));

        let proxies = config(&[("TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.5")])
            .unwrap()
            .http
            .connections
            .proxies;
        assert!(proxies.trusts("10.9.8.7".parse().unwrap()));
        assert!(proxies.trusts("::ffff:192.168.1.5".parse().unwrap()));
        assert!(!proxies.trusts("192.168.1.6".parse().unwrap()));
        let xff = |value| [("x-forwarded-for", value)];
        // what the client wrote itself is further left, and never read
        assert_eq!(
            client(&proxies, "10.0.0.2", &xff("6.6.6.6, 1.2.3.4")),
            "1.2.3.4"
        );
        // through two proxies
        assert_eq!(
            client(&proxies, "10.0.0.2", &xff("1.2.3.4, 192.168.1.5")),
            "1.2.3.4"
        );
        // from a peer that is no proxy of ours: the peer
        assert_eq!(client(&proxies, "8.8.8.8", &xff("1.2.3.4")), "8.8.8.8");
        // a trusted proxy that names no one: itself
        assert_eq!(client(&proxies, "10.0.0.2", &[]), "10.0.0.2");
        // Forwarded is not read unless it is the header chosen: nginx passes
        // it on as the client wrote it
        let forwarded = [("forwarded", "for=6.6.6.6"), ("x-forwarded-for", "1.2.3.4")];
        assert_eq!(client(&proxies, "10.0.0.2", &forwarded), "1.2.3.4");
        let rfc = config(&[
            ("TRUSTED_PROXIES", "10.0.0.0/8"),
            ("TRUSTED_PROXY_HEADER", "Forwarded"),
        ])
        .unwrap()
        .http
        .connections
        .proxies;
        let forwarded = [("forwarded", "for=6.6.6.6, for=\"[2001:db8::1]:443\"")];
        assert_eq!(client(&rfc, "10.0.0.2", &forwarded), "2001:db8::1");

        let e = config(&[("TRUSTED_PROXIES", "10.0.0.0/8, nginx")])
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "TRUSTED_PROXIES: \"nginx\" is no address or CIDR range"
        );
        let e = config(&[("TRUSTED_PROXY_HEADER", "x-real-ip")])
            .err()
            .unwrap();
        assert_eq!(e.var, "TRUSTED_PROXY_HEADER");
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
