//! The coalition points ledger: a double-entry posting engine for one points currency shared
//! by many partner merchants.
//!
//! - [`types`]: points, money, ids and the chart of accounts.
//! - [`model`]: commands, transactions (the journal's unit) and receipts.
//! - [`state`]: the posting engine's rules, as a pure state machine.
//! - [`store`]: the ordered key-value interface and the embedded engine.
//! - [`Ledger`]: the running ledger: a single committer thread that group-commits batches of
//!   commands as journal blocks (fsync per batch), and a projector thread that keeps derived
//!   state and indexes current for reads.
//! - [`cluster`]: the command path for many ledger processes over one transactional store
//!   (FoundationDB): serialisable reads per command, blind adds for hot accounts.
//! - [`audit`]: recompute everything from the journal and check the invariants.
//!
//! See the example on [`Ledger`] for a first earn.

#![warn(missing_docs)]

pub mod audit;
pub mod cluster;
pub mod codec;
mod committer;
pub mod conformance;
mod error;
mod heads;
pub mod journal;
mod key_index;
pub mod keys;
mod ledger;
pub mod model;
mod projector;
pub mod state;
pub mod store;
pub mod types;

pub use cluster::ClusterConfig;
pub use committer::CommitterConfig;
pub use error::{LedgerError, Rejection};
pub use ledger::{
    CommitObserver, Ledger, LedgerConfig, LedgerStats, MemberBalance, Pending, StatementPage,
};
pub use model::{Command, IdemKey, Policy, Pricing, Receipt, Scope, Transaction, TxKind};
pub use projector::{describe, statement_entry};
pub use types::{
    AccountId, ClawbackPolicy, Contract, Currency, MemberId, Money, PartnerId, Points, Timestamp,
    TxId,
};
