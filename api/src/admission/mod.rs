//! What one client may take of the server: a share of what it holds on to
//! (connections, sockets, large documents waiting to be parsed), and one log
//! line per interval about what is refused, rather than one per refusal.

mod gate;
mod interval_log;

pub(crate) use gate::{Full, Gate, Permit};
pub(crate) use interval_log::IntervalLog;
