//! Logging (tracing) and metrics setup.
//!
//! Logs go to stderr (command output such as `check`, `explain` and `demo` goes to stdout),
//! as JSON or pretty text. Nothing in this crate logs a token, a cookie, the API key or a
//! query string: the access line carries the path only, because Outseta's embed passes
//! `?access_token=` in URLs.

pub mod handles;
pub mod json;
pub mod metrics;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

impl LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    pub fn detect() -> Self {
        if std::io::stderr().is_terminal() {
            Self::Pretty
        } else {
            Self::Json
        }
    }
}

/// Keeps the log writer thread alive; dropping it flushes what is buffered. Hold it until
/// the process exits.
pub type LogGuard = tracing_appender::non_blocking::WorkerGuard;

/// Installs the global subscriber. `RUST_LOG` overrides `default_filter`.
///
/// The file watcher's own crate (`notify`) logs every filesystem event it sees at trace
/// level; with the log written to a file beside the config, each such line would be a new
/// event, and so on without end. Its logs are capped at `info` unless `RUST_LOG` names it.
///
/// Lines are formatted on the calling thread and written by a dedicated thread through a
/// buffer (one `write` per batch, not per line), so logging never blocks the event loop. If
/// that thread falls more than 128k lines behind, new lines are dropped rather than stalling
/// requests.
pub fn init(format: LogFormat, default_filter: &str) -> LogGuard {
    let mut filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let names_notify = std::env::var(EnvFilter::DEFAULT_ENV).is_ok_and(|v| v.contains("notify"));
    if !names_notify && let Ok(cap) = "notify=info".parse() {
        filter = filter.add_directive(cap);
    }
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .thread_name("outseta-gateway-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_span_events(FmtSpan::NONE);
    let _ = match format {
        LogFormat::Json => builder.event_format(json::JsonLine).try_init(),
        LogFormat::Pretty => builder
            .compact()
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    guard
}
