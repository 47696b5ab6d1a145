//! Events and their delivery: what happened to members, derived from the journal in commit
//! order (`model`), and signed webhook deliveries to receivers (`delivery`). Subscriptions, the
//! cursors and the delivery log are operations (`ops::webhooks`); this room knows no registry.

pub mod delivery;
pub mod model;

pub use model::{events_of, Event, KINDS, MESSAGE_KINDS};
