//! Tally's integration tests: one binary, one module per feature, each test
//! with its own database and server (see `harness`).

mod harness;

mod admin_orders;
mod amplification;
mod analytics;
mod auth;
mod authorization;
mod board;
mod browser;
mod cancellation;
mod cart;
mod catalog;
mod coalescing;
mod graphql_over_http;
mod held_back;
mod hostile;
mod http;
mod http_caching;
mod lock_trouble;
mod metrics;
mod money_bounds;
mod operations;
mod orders;
mod overload;
mod public_answers;
mod sales_over_time;
mod sales_report;
mod schema;
mod sign_in_rates;
