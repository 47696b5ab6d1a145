//! What partners, operators and (later) members can do, with no HTTP in it: each operation
//! takes its own input types and answers with [`error::OpError`], so the HTTP API, the web
//! console and the CLI call the same code.
//!
//! Architecture invariant: nothing here imports axum, tower or hyper; `api/` turns requests
//! into these inputs and these results into responses. (Records the API shows unchanged, such
//! as a partner's key record or a rate table, derive their OpenAPI schema where they are
//! defined, so that the schema cannot drift from the record.)

pub mod audience;
pub mod engagement;
pub mod error;
pub mod finance;
pub mod lifecycle;
pub mod notify;
pub mod operator;
pub mod partner;
pub mod profiles;
pub mod programme;
pub mod registry;
pub mod replay;
pub mod statement;
pub mod webhooks;

use error::{Kind, OpError};
use ledger::store::Engine;
use ledger::Ledger;
use registry::{KeyRecord, KeyScope, Registry};

/// What every operation works on: the ledger, the registry and the limits operations enforce.
pub struct Ops {
    /// The ledger.
    pub ledger: Ledger<Engine>,
    /// Partners, keys, rates, operators, member links.
    pub registry: Registry,
    /// Most commands in one batch.
    pub batch_commands_max: usize,
    /// Set while a live audit runs (one at a time: each reads the whole journal).
    pub audit_running: std::sync::atomic::AtomicBool,
    /// Members' segment facts, followed from the journal and the profiles.
    pub audience: audience::Audience,
    /// Where the referral sweep left off ([`engagement::referrals::sweep`]).
    pub referral_sweep: engagement::Cursor,
}

/// `items` grouped by `key`, each group in the order its items came and the groups in the order
/// their first item came: the background rounds that go several members at once, each member's
/// in order (webhook deliveries, notifications), split their work so.
pub(crate) fn grouped<T, K: std::hash::Hash + Eq>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> K,
) -> Vec<Vec<T>> {
    let mut at: std::collections::HashMap<K, usize> = std::collections::HashMap::new();
    let mut groups: Vec<Vec<T>> = Vec::new();
    for item in items {
        let i = *at.entry(key(&item)).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[i].push(item);
    }
    groups
}

/// Operations on an embedded store in `dir` (made there if new), for the unit tests: a
/// gateway's state without its HTTP or its background tasks.
#[cfg(test)]
pub(crate) fn ops_on(dir: &std::path::Path) -> Ops {
    let store = Engine::Embedded(ledger::store::EmbeddedStore::open(dir).expect("store"));
    Ops {
        registry: Registry::open(store.clone(), [7; 32], registry::KeyVault::Store)
            .expect("registry"),
        ledger: Ledger::open(store, ledger::LedgerConfig::default()).expect("ledger"),
        batch_commands_max: 100,
        audit_running: Default::default(),
        audience: Default::default(),
        referral_sweep: Default::default(),
    }
}

/// An authenticated partner: who it is and the key it used (with its scopes).
#[derive(Debug, Clone)]
pub struct PartnerCaller {
    /// The partner.
    pub partner: ledger::PartnerId,
    /// The key used (shared with the registry's list: a request copies no key record).
    pub key: std::sync::Arc<KeyRecord>,
}

impl PartnerCaller {
    /// Fails with 403 unless the key has `scope`.
    pub fn require(&self, scope: KeyScope) -> Result<(), OpError> {
        if self.key.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(OpError::new(
                Kind::ForbiddenScope,
                format!("key {} lacks the {:?} scope", self.key.key_id, scope).to_lowercase(),
            ))
        }
    }
}

/// Checks a reference (idempotency key) is 1 to 128 bytes of printable ASCII.
pub fn check_reference(field: &str, r: &str) -> Result<(), OpError> {
    let ok = !r.is_empty()
        && r.len() <= ledger::IdemKey::REFERENCE_LEN_MAX
        && r.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(OpError::new(
            Kind::InvalidRequest,
            format!(
                "{field} must be 1 to {} printable ASCII characters without spaces",
                ledger::IdemKey::REFERENCE_LEN_MAX
            ),
        ))
    }
}

/// Checks a positive points amount.
pub fn check_points(field: &str, p: i64) -> Result<ledger::Points, OpError> {
    if p > 0 && p <= POINTS_PER_COMMAND_MAX {
        Ok(ledger::Points(p))
    } else {
        Err(OpError::new(
            Kind::InvalidAmount,
            format!(
                "{field} must be a whole number of points from 1 to {POINTS_PER_COMMAND_MAX}, got {p}"
            ),
        ))
    }
}

/// Most points one command moves: the ledger's per-command limit, stated in the OpenAPI
/// document as every points field's maximum.
pub const POINTS_PER_COMMAND_MAX: i64 = 1_000_000_000_000;

const _: () = assert!(POINTS_PER_COMMAND_MAX <= i64::MAX / 2);

/// Longest consent attestation, in characters of any script (the ledger holds 4 bytes each).
pub const CONSENT_CHARS_MAX: usize = 200;

/// A member's consent as a partner or operator attests it: 1 to 200 characters, not all
/// spaces.
pub(crate) fn check_consent(consent: &str) -> Result<(), error::OpError> {
    if consent.trim().is_empty() || consent.chars().count() > CONSENT_CHARS_MAX {
        return Err(error::OpError::new(
            error::Kind::InvalidRequest,
            format!("consent must be 1 to {CONSENT_CHARS_MAX} characters, not all spaces"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn groups_keep_their_items_order_and_come_in_the_order_first_seen() {
        let items = [(7, 'a'), (3, 'b'), (7, 'c'), (5, 'd'), (3, 'e'), (7, 'f')];
        assert_eq!(
            super::grouped(items, |i| i.0),
            vec![
                vec![(7, 'a'), (7, 'c'), (7, 'f')],
                vec![(3, 'b'), (3, 'e')],
                vec![(5, 'd')],
            ]
        );
        assert!(super::grouped(Vec::<u8>::new(), |i| *i).is_empty());
    }
}
