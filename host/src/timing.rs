//! Where a change's time goes: the `Server-Timing` response header.
//!
//! How long a change holds the lock bounds how many changes one agency tree
//! (or, on SQLite, the whole store) can take per second, so that is the
//! figure the host bench reports. The write path records its phases into a
//! recorder that lives as long as the request ([`record`], [`Hold`]), and
//! [`header`] writes them as a W3C `Server-Timing` header:
//!
//! ```text
//! server-timing: wait;dur=0.012, facts;dur=0.210, decide;dur=0.180, apply;dur=0.090, commit;dur=0.050, hold;dur=0.560
//! ```
//!
//! `wait` is the time spent waiting for the write lock (SQLite's one writer,
//! PostgreSQL's tree locks), `hold` the time from taking it to the commit's
//! return; the others are parts of the hold. A phase that runs twice (a
//! retried transaction) adds up. Only durations leave the host, and only
//! when it was started with `--server-timing`: contention on a lock is a
//! fact about other tenants' traffic.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::Host;

tokio::task_local! {
    static PHASES: RefCell<Vec<(&'static str, Duration)>>;
}

/// Adds `spent` to the current request's phase `name` (nothing outside a
/// request, or when the header is off).
pub fn record(name: &'static str, spent: Duration) {
    let _ = PHASES.try_with(|p| {
        let mut p = p.borrow_mut();
        match p.iter_mut().find(|(n, _)| *n == name) {
            Some((_, d)) => *d += spent,
            None => p.push((name, spent)),
        }
    });
}

/// Runs `f` and records how long it took as phase `name`.
pub async fn timed<T>(name: &'static str, f: impl std::future::Future<Output = T>) -> T {
    let t = Instant::now();
    let out = f.await;
    record(name, t.elapsed());
    out
}

/// The lock being held since a moment; [`Hold::end`] records the `hold`.
#[derive(Debug, Clone, Copy)]
pub struct Hold(Instant);

impl Hold {
    /// The lock was taken now.
    pub fn now() -> Hold {
        Hold(Instant::now())
    }

    /// The lock was released (the commit returned, or the transaction was
    /// dropped).
    pub fn end(self) {
        record("hold", self.0.elapsed());
    }
}

/// Middleware: collects the phases of the request and, when the host runs
/// with `--server-timing`, writes them into the response's header.
pub async fn header(State(host): State<Host>, req: Request, next: Next) -> Response {
    if !host.settings.server_timing {
        return next.run(req).await;
    }
    let (mut res, phases) = PHASES
        .scope(RefCell::new(Vec::new()), async {
            let res = next.run(req).await;
            (res, PHASES.with(|p| p.take()))
        })
        .await;
    if !phases.is_empty() {
        let value = phases
            .iter()
            .map(|(n, d)| format!("{n};dur={:.3}", d.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(v) = HeaderValue::from_str(&value) {
            res.headers_mut().insert("server-timing", v);
        }
    }
    res
}
