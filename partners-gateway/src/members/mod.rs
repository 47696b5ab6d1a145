//! Members as people: profiles with consent, kept apart from the ledger (whose journal holds
//! only pseudonymous ids), and who may see which field.

pub mod analytics;
pub mod profile;

pub use profile::{Channel, Consent, Profile, ProfileError, Viewer};
pub mod segments;
