//! The programme's rules in the registry: campaign versions (`G x`, ids from `G X`), points
//! budget guard versions (`G g`) and programme settings (`G s`). Every version is written once,
//! numbered in a store transaction, with its author and reason; the compiled rule set is rebuilt
//! in memory whenever they change.

use super::*;
use crate::programme::guard::BudgetGuard;
use crate::programme::rules::{Campaign, ProgrammeClock, RuleSet};
use ledger::keys::gateway::{CAMPAIGN, GUARD, NEXT_CAMPAIGN, PROGRAMME};
use std::sync::Arc;

/// What a closed member's points become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnClose {
    /// The member keeps them, frozen: nothing earns or burns, they still expire.
    #[default]
    Keep,
    /// They go to `programme/breakage` in the closing transaction.
    Forfeit,
}

/// Programme-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProgrammeSettings {
    /// Version, from 1.
    pub version: u32,
    /// The IANA time zone days, hours and periods are counted in (`Asia/Tehran`).
    pub time_zone: String,
    /// The programme's currency (ISO 4217), for the programme-wide points budget guard.
    pub currency: Option<String>,
    /// What happens to a member's points when the member is closed (or erased).
    #[serde(default)]
    pub on_close: OnClose,
    /// The language the console and the member portal open in.
    #[serde(default)]
    pub language: Language,
    /// Why: recorded with the author.
    pub reason: String,
    /// Who set them.
    pub author: String,
    /// When (ms since the Unix epoch).
    pub recorded_at_ms: i64,
}

/// A language the pages are in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    /// Persian, right to left.
    #[default]
    Fa,
    /// English.
    En,
}

/// The programme's rules as loaded: every version, and what evaluation needs.
#[derive(Default)]
pub(super) struct Programme {
    pub campaigns: Vec<Campaign>,
    pub guards: BTreeMap<u32, Vec<BudgetGuard>>,
    pub settings: Vec<ProgrammeSettings>,
    pub compiled: Arc<Compiled>,
}

/// What an earn needs, built once per change.
#[derive(Default)]
pub struct Compiled {
    /// Campaigns.
    pub rules: RuleSet,
    /// The latest version of each guard, by scope (0 the programme).
    pub guards: BTreeMap<u32, BudgetGuard>,
    /// The time zone.
    pub clock: ProgrammeClock,
    /// The programme currency.
    pub currency: Option<ledger::Currency>,
}

impl Programme {
    pub(super) fn rebuild(&mut self) {
        let (rules, errors) = RuleSet::build(&self.campaigns);
        for e in errors {
            tracing::error!(error = %e, "a stored campaign version does not compile; it is left out");
        }
        let latest = self.settings.iter().max_by_key(|s| s.version);
        let clock = latest
            .and_then(|s| s.time_zone.parse::<chrono_tz::Tz>().ok())
            .map(|tz| ProgrammeClock { tz })
            .unwrap_or_default();
        let currency = latest
            .and_then(|s| s.currency.as_deref())
            .and_then(|c| c.parse().ok());
        let guards = self
            .guards
            .iter()
            .filter_map(|(scope, v)| Some((*scope, v.iter().max_by_key(|g| g.version)?.clone())))
            .collect();
        self.compiled = Arc::new(Compiled {
            rules,
            guards,
            clock,
            currency,
        });
    }

    pub(super) fn load(&mut self, kind: u8, body: &[u8], v: &[u8]) -> Result<(), RegistryError> {
        match kind {
            CAMPAIGN => self.campaigns.push(unjson(v)?),
            GUARD => {
                let g: BudgetGuard = unjson(v)?;
                let scope = be_u32(body.get(..4).unwrap_or_default())?;
                self.guards.entry(scope).or_default().push(g);
            }
            PROGRAMME => self.settings.push(unjson(v)?),
            _ => {}
        }
        Ok(())
    }
}

/// The record families this file loads.
pub(super) const FAMILIES: [u8; 3] = [CAMPAIGN, GUARD, PROGRAMME];

fn versioned(kind: u8, scope: u32, version: u32) -> Vec<u8> {
    let mut body = scope.to_be_bytes().to_vec();
    body.extend_from_slice(&version.to_be_bytes());
    key1(kind, &body)
}

/// Takes the next number of counter `name` (`G X ++ name`; from 1), read with a conflict in
/// the transaction so two gateways cannot take the same one.
fn take_next(txn: &dyn Txn, ws: &mut WriteSet, name: &[u8]) -> Result<u32, RegistryError> {
    let k = key1(NEXT_CAMPAIGN, name);
    let n = match txn.get(&k)? {
        Some(v) => be_u32(&v)?,
        None => 1,
    };
    ws.set_owned(k, (n + 1).to_be_bytes().to_vec());
    Ok(n)
}

/// The current value of counter `name` (the next number it gives), read with a conflict.
fn peek_next(txn: &dyn Txn, name: &[u8]) -> Result<u32, RegistryError> {
    match txn.get(&key1(NEXT_CAMPAIGN, name))? {
        Some(v) => be_u32(&v),
        None => Ok(1),
    }
}

fn named(tag: u8, n: u32) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&n.to_be_bytes());
    v
}

impl Registry {
    /// What an earn evaluates: campaigns, guards, the time zone.
    pub fn programme(&self) -> Arc<Compiled> {
        self.read().programme.compiled.clone()
    }

    /// Records a new campaign (`id: None`, numbered here) or a new version of campaign `id`.
    /// `None` when `id` names no campaign.
    pub fn add_campaign(
        &self,
        id: Option<u32>,
        c: Campaign,
    ) -> Result<Option<Campaign>, RegistryError> {
        let _w = self.write.lock().expect("registry write lock");
        let saved = self.transact(&mut |txn| {
            let mut ws = WriteSet::default();
            let id = match id {
                Some(id) if id == 0 || id >= peek_next(txn, &[])? => {
                    return Ok((WriteSet::default(), None))
                }
                Some(id) => id,
                None => take_next(txn, &mut ws, &[])?,
            };
            let version = take_next(txn, &mut ws, &named(b'c', id))?;
            let mut rec = c.clone();
            rec.id = id;
            rec.version = version;
            ws.set_owned(versioned(CAMPAIGN, id, version), json(&rec));
            Ok((ws, Some(rec)))
        })?;
        if let Some(rec) = &saved {
            let mut inner = self.inner.write().expect("registry lock");
            inner.programme.campaigns.push(rec.clone());
            inner.programme.rebuild();
        }
        Ok(saved)
    }

    /// Every version of every campaign, by id then version.
    pub fn campaigns(&self) -> Vec<Campaign> {
        let mut all = self.read().programme.campaigns.clone();
        all.sort_by_key(|c| (c.id, c.version));
        all
    }

    /// Records a new version of the guard of `scope` (0 the programme, else a partner).
    pub fn set_guard(&self, scope: u32, g: BudgetGuard) -> Result<BudgetGuard, RegistryError> {
        let _w = self.write.lock().expect("registry write lock");
        let saved = self.transact(&mut |txn| {
            let mut ws = WriteSet::default();
            let version = take_next(txn, &mut ws, &named(b'g', scope))?;
            let mut rec = g.clone();
            rec.scope = scope;
            rec.version = version;
            ws.set_owned(versioned(GUARD, scope, version), json(&rec));
            Ok((ws, rec))
        })?;
        let mut inner = self.inner.write().expect("registry lock");
        inner
            .programme
            .guards
            .entry(scope)
            .or_default()
            .push(saved.clone());
        inner.programme.rebuild();
        Ok(saved)
    }

    /// Every guard version, by scope then version.
    pub fn guards(&self) -> Vec<BudgetGuard> {
        self.read()
            .programme
            .guards
            .values()
            .flat_map(|v| v.iter().cloned())
            .collect()
    }

    /// Records new programme settings.
    pub fn set_programme(&self, s: ProgrammeSettings) -> Result<ProgrammeSettings, RegistryError> {
        let _w = self.write.lock().expect("registry write lock");
        let saved = self.transact(&mut |txn| {
            let mut ws = WriteSet::default();
            let version = take_next(txn, &mut ws, b"s")?;
            let mut rec = s.clone();
            rec.version = version;
            ws.set_owned(key1(PROGRAMME, &version.to_be_bytes()), json(&rec));
            Ok((ws, rec))
        })?;
        let mut inner = self.inner.write().expect("registry lock");
        inner.programme.settings.push(saved.clone());
        inner.programme.rebuild();
        Ok(saved)
    }

    /// The programme settings in force, if any were set.
    pub fn programme_settings(&self) -> Option<ProgrammeSettings> {
        self.read()
            .programme
            .settings
            .iter()
            .max_by_key(|s| s.version)
            .cloned()
    }
}
