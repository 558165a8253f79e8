//! `gatehouse serve`'s log: `tracing` events on standard error, as text
//! lines or JSON lines (`--log-format`), filtered by `RUST_LOG` (default
//! `info`). Standard output keeps the human lines `serve` prints as it
//! starts.
//!
//! What it holds at `info`: one line per answered request (target
//! `tower_http::trace::on_response`, with status and latency, in the
//! request's span: method, route template, path), one line per decision
//! (target `gatehouse::decision`: action, outcome, module_outcome,
//! policies, duration_us, policy_hash), hot swaps (`gatehouse::swap`),
//! and `serve`'s warnings and errors (target `gatehouse`; internal errors
//! with their incident token). `RUST_LOG=gatehouse::module=debug`
//! adds every call of the module (op, size, duration).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human line per event (colored on a terminal).
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, the
    /// event's fields (`message` among them) and `span` (the request's).
    Json,
}

/// Installs the process's log subscriber; call it once, first thing.
pub fn init(format: LogFormat) -> Result<(), String> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    }
    .map_err(|e| format!("cannot set up the log: {e}"))
}

/// Logs an error: as a `tracing` event when `serve` set up its log (so a
/// JSON log stays JSON, and a request's error sits in its span), else (the
/// admin commands) on standard error as before.
pub fn error(message: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::error!(target: "gatehouse", "{message}");
    } else {
        eprintln!("gatehouse: {message}");
    }
}

/// Logs a warning, as [`error`] does.
pub fn warn(message: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::warn!(target: "gatehouse", "{message}");
    } else {
        eprintln!("gatehouse: {message}");
    }
}
