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
