//! Fault injection for the crash test: `GATEHOUSE_ABORT_AT=<point>:<n>`
//! aborts the process (no unwinding, no cleanup) the n-th time `<point>` is
//! reached. Unset, a point costs one relaxed atomic load.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

/// Marks a point where a crash may be injected.
pub fn point(name: &str) {
    let target = TARGET.get_or_init(|| {
        let v = std::env::var("GATEHOUSE_ABORT_AT").ok()?;
        let (p, n) = v.split_once(':')?;
        Some((p.to_owned(), n.parse().ok()?))
    });
    if let Some((p, n)) = target
        && p == name
        && HITS.fetch_add(1, Ordering::Relaxed) + 1 == *n
    {
        eprintln!("gatehouse: injected abort at {name} #{n}");
        std::process::abort();
    }
}
