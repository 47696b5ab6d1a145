//! The wall clock, kept out of the core: the rules take the time a command commits at as an
//! input, so tests and the simulation drive time themselves.

use crate::core::types::Timestamp;

impl Timestamp {
    /// The wall clock now.
    pub fn now() -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Timestamp(ms)
    }
}

/// The clock the committer stamps batches with: the wall clock, or the wall clock shifted by
/// an offset a test moves forward (to see points expire without waiting months). Time only
/// ever moves forward through it: the committer never stamps a batch earlier than the last.
#[derive(Clone, Copy, Default)]
pub struct Clock(Option<&'static std::sync::atomic::AtomicI64>);

impl Clock {
    /// The wall clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// The wall clock plus `offset` milliseconds, read at every tick.
    pub fn shifted(offset: &'static std::sync::atomic::AtomicI64) -> Clock {
        Clock(Some(offset))
    }

    /// Now, by this clock.
    pub fn now(&self) -> Timestamp {
        let t = Timestamp::now();
        match self.0 {
            Some(o) => t.plus_ms(o.load(std::sync::atomic::Ordering::Relaxed)),
            None => t,
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(o) => write!(
                f,
                "Clock(+{} ms)",
                o.load(std::sync::atomic::Ordering::Relaxed)
            ),
            None => f.write_str("Clock(system)"),
        }
    }
}
