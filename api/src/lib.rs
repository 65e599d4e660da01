//! Tally: a GraphQL backend for food-ordering apps. `main.rs` is the CLI;
//! this library is what it (and the tests) put together.

pub mod admission;
pub mod auth;
pub mod board;
pub mod coalesce;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod http;
#[cfg(test)]
mod import_cycles;
pub mod live;
pub mod metrics;
pub mod money;
pub mod startup;
pub mod state;
pub mod telemetry;

pub use config::Config;
pub use startup::App;
pub use state::AppState;
