//! A limit of one log event a second for warnings that can repeat on every request.

use std::sync::atomic::{AtomicU64, Ordering};

/// Allows one event per wall-clock second and counts the events it suppresses.
#[derive(Debug)]
pub(crate) struct EverySecond {
    last_second: AtomicU64,
    suppressed: AtomicU64,
}

impl EverySecond {
    pub(crate) const fn new() -> Self {
        Self {
            last_second: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Returns the number of events suppressed since the last allowed one when this event may
    /// be logged, or `None` (and counts it) when another event was logged this second.
    pub(crate) fn allow(&self) -> Option<u64> {
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let last = self.last_second.load(Ordering::Relaxed);
        let won = last != second
            && self
                .last_second
                .compare_exchange(last, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if won {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_event_in_a_second_is_suppressed() {
        let limit = EverySecond::new();

        let first = limit.allow();
        let second = limit.allow();
        let third = limit.allow();

        // The three calls can straddle a second boundary, in which case one more is allowed.
        assert_eq!(first, Some(0));
        assert!(second.is_none() || third.is_none());
    }
}
