//! The coalition points ledger: a double-entry posting engine for one points currency shared
//! by many partner merchants.
//!
//! - [`core`]: the pure domain: points, money, ids, commands, transactions, the posting rules
//!   (one file per command), the state they change. No I/O.
//! - [`store`]: the ordered key-value interface and its engines (embedded fjall, FoundationDB).
//! - [`keys`], [`codec`]: every stored key, and the record and journal-block encodings.
//! - [`Ledger`]: the running ledger on one of two write paths:
//!   [`single`] (one process: a committer that group-commits batches as journal blocks, one
//!   fsync per batch, and a projector that keeps derived state current) or [`cluster`] (many
//!   processes over FoundationDB: one serialisable transaction per batch, blind adds for hot
//!   accounts). What both share is in `shared`.
//! - [`journal`], [`reads`], `recovery`: reading the journal, balances and statements, and
//!   loading the derived state at open.
//! - [`audit`]: recompute everything from the journal and check the invariants, offline or on
//!   a live ledger's snapshot.
//!
//! See the example on [`Ledger`] for a first earn.

#![warn(missing_docs)]

pub mod allocator;
pub mod audit;
pub mod chain;
pub mod clock;
pub mod cluster;
pub mod codec;
pub mod core;
mod error;
pub mod finance;
mod handle;
pub mod journal;
pub mod keys;
pub mod reads;
mod recovery;
mod shared;
pub mod single;
pub mod store;
mod totals;

pub use crate::core::model::describe;
pub use crate::core::model::{
    Command, IdemKey, Policy, Pricing, Receipt, Scope, Transaction, TxKind,
};
pub use crate::core::programme::{
    AwardLimits, AwardRequest, CampaignId, Counter, CounterKey, Funder, Granted, GuardAction,
    GuardCheck, GuardKey, GuardRecord, GuardRequest, GuardScope, GuardTotals, Limited,
    MemberCondition, MemberUse, AWARDS_PER_EARN_MAX, GUARD_THRESHOLDS_MAX,
};
pub use crate::core::rejection::Rejection;
pub use crate::core::rewards::{Grant, GrantKind, GrantOrigin, Redemption, RewardClaim, RewardId};
pub use crate::core::types::{
    AccountId, ClawbackPolicy, Contract, Currency, MemberId, Money, PartnerId, Points, Timestamp,
    TxId,
};
pub use clock::Clock;
pub use cluster::ClusterConfig;
pub use codec::statement_entry;
pub use error::{LedgerError, WritePath};
pub use handle::{FollowedBatches, Ledger, LedgerConfig};
pub use reads::{MemberBalance, StatementPage, STATEMENT_PAGE_MAX};
pub use shared::queue::{
    CommitterConfig, Pending, BATCH_SIZE_MAX, BATCH_TXS_MAX, HOLD_EXPIRIES_PER_BATCH_MAX,
    QUEUE_CAPACITY_MAX,
};
pub use shared::status::{CommitObserver, LedgerStats, PageWrites};
