//! Lines about refusals, at most one per interval, with a count.

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// While something is being refused, one line per interval with how many
/// (and the last client address), rather than a line per refusal when the
/// server can least afford it: a warning a second, or, for what also
/// happens in normal traffic, a line a minute at info.
pub(crate) struct IntervalLog {
    what: &'static str,
    every: Duration,
    warn: bool,
    count: AtomicU64,
    last_line: Mutex<Option<Instant>>,
}

impl IntervalLog {
    pub(crate) fn new(what: &'static str) -> Self {
        Self {
            what,
            every: Duration::from_secs(1),
            warn: true,
            count: AtomicU64::new(0),
            last_line: Mutex::new(None),
        }
    }

    /// For what clients also do in normal use (a keep-alive connection
    /// left idle).
    pub(crate) fn routine(what: &'static str) -> Self {
        Self {
            every: Duration::from_secs(60),
            warn: false,
            ..Self::new(what)
        }
    }

    pub(crate) fn add(&self, from: impl Into<Option<IpAddr>>) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= self.every) {
            *last = Some(Instant::now());
            let count = self.count.swap(0, Ordering::Relaxed);
            let last_address = from.into().map(|ip| ip.to_string()).unwrap_or_default();
            match self.warn {
                true => tracing::warn!(count, last_address, "{}", self.what),
                false => tracing::info!(count, last_address, "{}", self.what),
            }
        }
    }
}
