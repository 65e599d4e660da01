//! Tally: a GraphQL backend for food-ordering apps. `main.rs` is the CLI;
//! this library is what it (and the tests) put together.

pub mod accounts;
pub mod app;
pub mod auth;
pub mod auth_throttle;
pub mod board;
pub mod coalesce;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod hashing;
pub mod http;
pub mod live;
pub mod metrics;
pub mod money;
pub mod placer;
pub mod state;
pub mod telemetry;

pub use app::App;
pub use config::Config;
pub use state::AppState;
