//! What the board's Logs page and each task's Events panel show: the lines
//! workers and jobs log, as the board's own `LogEntry` JSON over server-sent
//! events at `/api/v1/events`.
//!
//! apalis-board ships a layer and a broadcaster for this, but its broadcaster
//! stops sending a line at the first tab whose queue is full (one stalled tab
//! starves the others) and keeps every closed tab's queue, and its layer
//! writes an error to stderr for each line logged in a span that is not a
//! task's. Here lines go through one bounded broadcast channel: a slow tab
//! misses lines without holding anyone back, and memory stays bounded
//! whatever the number of tabs.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock, Mutex};

use apalis_board_types::{Entry, LogEntry, LogLevel, Span};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber, span};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Lines a tab may fall behind before it misses some.
const BACKLOG: usize = 1024;

/// Lines at info level or above kept for the tabs that open later.
pub const RECENT: usize = 500;

/// One channel per process, as there is one tracing subscriber per process.
static LINES: LazyLock<broadcast::Sender<Arc<str>>> =
    LazyLock::new(|| broadcast::channel(BACKLOG).0);

/// The recent past, oldest first. Its lock is held while a kept line is
/// sent, so a tab that opens gets each line once: kept, or sent live.
static KEPT: LazyLock<Mutex<VecDeque<Arc<str>>>> =
    LazyLock::new(|| Mutex::new(VecDeque::with_capacity(RECENT)));

fn kept() -> std::sync::MutexGuard<'static, VecDeque<Arc<str>>> {
    KEPT.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether lines at this level are kept for later tabs (and so formatted
/// even while no tab is open).
fn is_kept(level: &Level) -> bool {
    *level <= Level::INFO
}

/// The layer that feeds the board, for the process's subscriber. Below info
/// level, it formats nothing while no board tab is open.
pub fn layer<S>(targets: Targets) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    BoardLayer.with_filter(WhileWatched(targets))
}

/// The stream behind the board's Logs page and Events panels; it ends at
/// shutdown, so an open tab does not hold the listener's graceful stop.
pub fn events(shutdown: CancellationToken) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let lines = subscribe()
        .map(|line| Ok(Event::default().data(&*line)))
        .take_until(shutdown.cancelled_owned());
    Sse::new(lines).keep_alive(KeepAlive::default())
}

/// The recent past, then the lines from now on. A reader more than
/// [`BACKLOG`] lines behind skips to the oldest line still in the channel.
fn subscribe() -> impl Stream<Item = Arc<str>> {
    let kept = kept();
    let past: Vec<_> = kept.iter().cloned().collect();
    let live = LINES.subscribe();
    drop(kept);
    futures::stream::iter(past)
        .chain(BroadcastStream::new(live).filter_map(|line| std::future::ready(line.ok())))
}

fn publish(line: Arc<str>, keep: bool) {
    if !keep {
        // no receiver only means the last tab closed meanwhile
        let _ = LINES.send(line);
        return;
    }
    let mut kept = kept();
    if kept.len() == RECENT {
        kept.pop_front();
    }
    kept.push_back(line.clone());
    let _ = LINES.send(line);
}

fn watched() -> bool {
    LINES.receiver_count() > 0
}

/// `targets`, for events below info level only while a tab listens; spans
/// always, so a run that began before the tab opened still names its task.
struct WhileWatched(Targets);

impl<S> Filter<S> for WhileWatched {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        (meta.is_span() || is_kept(meta.level()) || watched())
            && self.0.would_enable(meta.target(), meta.level())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        match self.0.would_enable(meta.target(), meta.level()) {
            false => Interest::never(),
            true if meta.is_span() || is_kept(meta.level()) => Interest::always(),
            // whether a tab listens changes at any time
            true => Interest::sometimes(),
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Filter::<S>::max_level_hint(&self.0)
    }
}

/// The task a span runs: apalis's task id and attempt, as the board's
/// `Span` holds them. Kept in the extensions of spans with a `task_id`.
struct TaskSpan {
    task_id: String,
    attempt: i64,
}

struct BoardLayer;

impl<S> Layer<S> for BoardLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(task_id), Some(span)) = (fields.task_id, ctx.span(id)) {
            span.extensions_mut().insert(TaskSpan {
                task_id,
                attempt: fields.attempt.unwrap_or(0),
            });
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let mut span = Span {
            // lines outside a task are labelled by where they come from
            task_id: String::new(),
            attempt: 0,
            name: meta.target().to_owned(),
        };
        if let Some(scope) = ctx.event_scope(event) {
            for (depth, s) in scope.enumerate() {
                if depth == 0 {
                    span.name = s.name().to_owned();
                }
                if let Some(task) = s.extensions().get::<TaskSpan>() {
                    span.task_id.clone_from(&task.task_id);
                    span.attempt = task.attempt;
                    span.name = s.name().to_owned();
                    break;
                }
            }
        }
        // a line about another task (one whose order this run counted)
        if let Some(task_id) = fields.task_id {
            span.task_id = task_id;
            span.attempt = 0;
        }
        if span.task_id.is_empty() {
            span.task_id.clone_from(&span.name);
        }
        let entry = LogEntry {
            span: Some(span),
            level: level(meta.level()),
            // to the nanosecond: the board keys its lists by timestamp and
            // message, and lines that share both (a run's settled jobs, in
            // one millisecond) would collide there and go missing
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            target: meta.target().to_owned(),
            entry: Entry {
                message: Some(fields.line),
                entry_type: None,
            },
        };
        if let Ok(json) = serde_json::to_string(&entry) {
            publish(json.into(), is_kept(meta.level()));
        }
    }
}

fn level(level: &Level) -> LogLevel {
    match *level {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warn,
        Level::INFO => LogLevel::Info,
        Level::DEBUG => LogLevel::Debug,
        Level::TRACE => LogLevel::Trace,
    }
}

/// A line as the board shows it: the message, then `key=value` for the
/// other fields (the board has no place for them), as the pretty log reads.
#[derive(Default)]
struct Fields {
    line: String,
    task_id: Option<String>,
    attempt: Option<i64>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "task_id" => self.task_id = Some(value.to_owned()),
            "message" => self.line.insert_str(0, value),
            name => {
                let _ = write!(self.line, " {name}={value}");
            }
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "attempt" {
            self.attempt = Some(value);
        }
        self.record_debug(field, &value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "attempt" {
            self.attempt = i64::try_from(value).ok();
        }
        self.record_debug(field, &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "task_id" => self.task_id = Some(format!("{value:?}")),
            "message" => self.line.insert_str(0, &format!("{value:?}")),
            name => {
                let _ = write!(self.line, " {name}={value:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The tests that send lines take turns: the channel is the process's,
    /// and one's flood would push the other's lines out of it.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    /// A tab that never reads (a stalled or hostile browser) holds back no
    /// other tab, and what waits for it stays within the backlog.
    #[tokio::test]
    async fn a_stalled_reader_holds_no_one_back_and_keeps_a_bounded_backlog() {
        let _turn = ONE_AT_A_TIME.lock().await;
        let stalled = subscribe();
        let mut reading = Box::pin(subscribe());
        let sent = BACKLOG * 5;
        for n in 0..sent {
            publish(format!("backlog line {n}").into(), false);
        }
        assert_eq!(LINES.len(), BACKLOG);
        let last = format!("backlog line {}", sent - 1);
        let mut read = 0;
        loop {
            let line = tokio::time::timeout(Duration::from_secs(5), reading.next())
                .await
                .expect("the reading tab gets lines")
                .expect("the stream stays open");
            // (the other tests' lines, kept or live, are read past)
            if line.starts_with("backlog line ") {
                read += 1;
            }
            if *line == *last {
                break;
            }
        }
        // it skipped what fell out of the backlog, and read the rest
        assert_eq!(read, BACKLOG);
        drop(stalled);
    }

    /// A tab opened later gets the last kept lines first, oldest first, then
    /// the live ones, each once; lines not kept never reach it.
    #[tokio::test]
    async fn a_tab_that_opens_later_gets_the_recent_past_then_what_follows() {
        let _turn = ONE_AT_A_TIME.lock().await;
        for n in 0..RECENT + 10 {
            publish(format!("kept line {n}").into(), true);
        }
        publish("a line not kept".into(), false);
        let mut tab = Box::pin(subscribe());
        let mut past = Vec::new();
        for _ in 0..RECENT {
            past.push(tab.next().await.unwrap().to_string());
        }
        let expected: Vec<_> = (10..RECENT + 10)
            .map(|n| format!("kept line {n}"))
            .collect();
        assert_eq!(past, expected);
        publish("kept line after".into(), true);
        loop {
            let line = tokio::time::timeout(Duration::from_secs(5), tab.next())
                .await
                .expect("the live line arrives")
                .unwrap();
            assert!(!line.starts_with("kept line 1"), "{line} came twice");
            if *line == *"kept line after" {
                break;
            }
        }
        assert_eq!(kept().len(), RECENT);
    }

    #[test]
    fn the_default_filter_sends_the_jobs_lines_and_warnings_only() {
        let targets: Targets = crate::config::DEFAULT_BOARD_LOG.parse().unwrap();
        let sent = |target: &str, level: Level| targets.would_enable(target, &level);
        assert!(sent("jobs::post_order", Level::INFO));
        assert!(sent(jobs::post_order::SETTLED_TARGET, Level::DEBUG));
        assert!(sent("tally::board", Level::INFO));
        assert!(sent("tally::http::graphql", Level::WARN));
        // a line per request, or the sign-ups, stay off the board
        assert!(!sent("tally::http::graphql", Level::INFO));
        assert!(!sent("tally::domain::users", Level::INFO));
        assert!(!sent("jobs::post_order", Level::DEBUG));
    }

    #[test]
    fn fields_read_as_the_board_shows_them() {
        let mut fields = Fields::default();
        fields.record_str(&field("order_number"), "ORD-00000042");
        fields.record_debug(
            &field("message"),
            &format_args!("post-order figures applied"),
        );
        fields.record_u64(&field("attempt"), 2);
        fields.record_debug(&field("task_id"), &format_args!("01J"));
        assert_eq!(
            fields.line,
            "post-order figures applied order_number=ORD-00000042 attempt=2"
        );
        assert_eq!(
            (fields.task_id.as_deref(), fields.attempt),
            (Some("01J"), Some(2))
        );
    }

    /// A field of a callsite with every name these tests use.
    fn field(name: &str) -> Field {
        struct Callsite;
        impl tracing::Callsite for Callsite {
            fn set_interest(&self, _: Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                &META
            }
        }
        static CALLSITE: Callsite = Callsite;
        static META: Metadata<'static> = tracing::metadata!(
            name: "test",
            target: "test",
            level: Level::INFO,
            fields: &["message", "order_number", "attempt", "task_id"],
            callsite: &CALLSITE,
            kind: tracing::metadata::Kind::EVENT,
        );
        META.fields().field(name).unwrap()
    }
}
