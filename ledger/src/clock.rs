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

/// The clock the committer stamps batches with: the wall clock, the wall clock shifted by an
/// offset a test moves forward (to see points expire without waiting months), or a manual
/// clock that a simulation alone moves. Time only ever moves forward through it: the committer
/// never stamps a batch earlier than the last.
#[derive(Clone, Copy, Default)]
pub struct Clock(Source);

#[derive(Clone, Copy, Default)]
enum Source {
    #[default]
    System,
    Shifted(&'static std::sync::atomic::AtomicI64),
    Manual(&'static std::sync::atomic::AtomicI64),
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Clock {
        Clock(Source::System)
    }

    /// The wall clock plus `offset` milliseconds, read at every tick.
    pub fn shifted(offset: &'static std::sync::atomic::AtomicI64) -> Clock {
        Clock(Source::Shifted(offset))
    }

    /// The instant in `at` (milliseconds since the epoch), read at every tick: time moves
    /// only when its owner moves it, so a run repeats exactly (the simulation's clock).
    pub fn manual(at: &'static std::sync::atomic::AtomicI64) -> Clock {
        Clock(Source::Manual(at))
    }

    /// Now, by this clock.
    pub fn now(&self) -> Timestamp {
        use std::sync::atomic::Ordering::Relaxed;
        match self.0 {
            Source::System => Timestamp::now(),
            Source::Shifted(o) => Timestamp::now().plus_ms(o.load(Relaxed)),
            Source::Manual(at) => Timestamp(at.load(Relaxed)),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::sync::atomic::Ordering::Relaxed;
        match self.0 {
            Source::System => f.write_str("Clock(system)"),
            Source::Shifted(o) => write!(f, "Clock(+{} ms)", o.load(Relaxed)),
            Source::Manual(at) => write!(f, "Clock(manual {} ms)", at.load(Relaxed)),
        }
    }
}
