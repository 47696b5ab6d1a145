//! The pure domain: points, money, ids and the chart of accounts ([`types`]); commands,
//! transactions and receipts ([`model`]); the working state and the one way it changes
//! ([`state`]), with the index of when each member's due work falls ([`due`]); the posting
//! rules, one file per command ([`rules`]), and the builder they name their legs in; why a
//! command is refused ([`rejection`]).
//!
//! Architecture invariant: nothing here does I/O, starts a thread, or knows a store, a queue,
//! tokio or an error of the layers above. The write paths, recovery, the audit, the simulation
//! and the tests all drive it directly. `tests/layering.rs` holds this.

pub(crate) mod builder;
pub mod due;
pub mod expiry;
pub mod lots;
pub mod model;
pub mod programme;
pub mod rejection;
pub mod rewards;
pub mod rules;
pub mod state;
pub mod tiers;
pub mod transfers;
pub mod types;
