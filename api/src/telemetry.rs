//! One tracing subscriber for the process: the log on stderr (`RUST_LOG`
//! overrides its default filter) and the board's Logs page (`BOARD_LOG`).

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::board;
use crate::config::LogFormat;

pub fn init(format: LogFormat, board_log: Targets) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,sqlx=warn,sea_orm=warn,apalis=warn,apalis_core=warn")
    });
    // logs go to stderr: stdout is for what commands print (the schema, job lists)
    // colours for a terminal only: in a file or a pipe they are escape codes
    let log = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let log = match format {
        LogFormat::Pretty => log.boxed(),
        LogFormat::Json => log.json().flatten_event(true).boxed(),
    };
    install(log.with_filter(filter), board_log);
}

/// Installs `log` with the board's layer beside it (`BOARD_LOG`: `board_log`)
/// as the process's subscriber. A second call (tests start many apps in one
/// process) keeps the first.
pub fn install<L>(log: L, board_log: Targets)
where
    L: Layer<Registry> + Send + Sync,
{
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(board::logs::layer(board_log))
        .try_init();
}
