//! The one clock. The module has none: the host reads this clock once per
//! change and passes it in as `now`, and tests set it instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Unix seconds, from the system or set by a test.
#[derive(Debug, Clone)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that stands at `now` until moved.
    pub fn manual(now: i64) -> Clock {
        Clock(Some(Arc::new(AtomicI64::new(now))))
    }

    /// The time, unix seconds.
    pub fn now(&self) -> i64 {
        match &self.0 {
            Some(t) => t.load(Ordering::SeqCst),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        }
    }

    /// Moves a manual clock forward; the system clock ignores it.
    pub fn advance(&self, seconds: i64) {
        if let Some(t) = &self.0 {
            t.fetch_add(seconds, Ordering::SeqCst);
        }
    }
}
