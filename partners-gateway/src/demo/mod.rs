//! The demo coalition: an airline earning by miles flown, a fuel retailer earning by litres at
//! several stations, a telecom earning on bills and letting members pay bills with points.

mod history;

use crate::ops::operator::{add_rate_table, define_partner, PartnerDefinition, RateDraft};
use crate::ops::registry::{KeyScope, Role};
use crate::ops::Ops;
use crate::programme::rates::RateOverride;
use anyhow::Context;
use ledger::{Command, IdemKey, MemberId, PartnerId};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Partner id, env-file prefix, name, currency, member reference prefix.
pub const PARTNERS: [(u32, &str, &str, &str, &str); 3] = [
    (1, "SKYWAYS", "SkyWays airline", "EUR", "FF"),
    (2, "FUELCO", "FuelCo stations", "EUR", "FC"),
    (3, "TELENET", "TeleNet telecom", "GBP", "TN"),
];

/// The reference partner `prefix` uses for demo member `n` (`FF000042`).
pub fn member_reference(prefix: &str, n: u64) -> String {
    format!("{prefix}{n:06}")
}

/// Demo partner `id`'s prefix in the credentials file (`SKYWAYS`).
pub fn env_prefix(id: u32) -> Option<&'static str> {
    PARTNERS.iter().find(|p| p.0 == id).map(|p| p.1)
}

/// The reference demo partner `id` uses for demo member `n`.
pub fn member_reference_at(id: u32, n: u64) -> Option<String> {
    PARTNERS
        .iter()
        .find(|p| p.0 == id)
        .map(|p| member_reference(p.4, n))
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("demo constants are decimals")
}

fn table(unit: &str, earn: &str, burn: Option<&str>) -> RateDraft {
    RateDraft {
        effective_from_ms: None,
        unit: unit.into(),
        earn_points_per_unit: dec(earn),
        burn_points_per_unit: burn.map(dec),
        branches: BTreeMap::new(),
        categories: BTreeMap::new(),
    }
}

/// Seeds the demo coalition unless partners exist; returns the credentials file's path.
pub fn seed(app: &Ops, data: &Path, members: u64, history_days: u32) -> anyhow::Result<PathBuf> {
    let path = data.join("demo-credentials.env");
    if !app.registry.partners().is_empty() {
        return Ok(path);
    }
    // A history is dated in the past: the committer's clock starts `history_days` back and
    // moves forward a day at a time as the days are posted (`history`).
    set_clock_offset_days(-(history_days as i64));
    let mut callers = Vec::new();
    let mut env = String::from(
        "# Demo coalition credentials. Secrets are shown once; keep this file private.\n",
    );
    for (id, prefix, name, currency, _) in PARTNERS {
        let (issue, redeem, days) = match id {
            1 => ("0.012", "0.008", Some(1095)),
            2 => ("0.010", "0.007", Some(730)),
            _ => ("0.009", "0.006", Some(730)),
        };
        define_partner(
            app,
            id,
            &PartnerDefinition {
                name: name.into(),
                currency: currency.into(),
                issuance_price_per_point: dec(issue),
                redemption_price_per_point: dec(redeem),
                points_validity_days: days,
                requests_per_second: Some(100_000),
                burst: Some(200_000),
            },
        )
        .map_err(|e| anyhow::anyhow!("demo partner {id}: {}", e.detail))?;
        let draft = match id {
            // One point per mile flown; awards are booked in points.
            1 => table("mile", "1", None),
            // Two points per litre, three at the motorway station, four for premium fuel.
            2 => {
                let mut t = table("litre", "2", None);
                for s in 1..=5 {
                    t.branches.insert(
                        format!("station-{s:03}"),
                        RateOverride {
                            earn_points_per_unit: Some(dec(if s == 3 { "3" } else { "2" })),
                            burn_points_per_unit: None,
                        },
                    );
                }
                t.categories.insert(
                    "premium-fuel".into(),
                    RateOverride {
                        earn_points_per_unit: Some(dec("4")),
                        burn_points_per_unit: None,
                    },
                );
                t
            }
            // Five points per pound billed; 100 points pay a pound of airtime.
            _ => table("GBP", "5", Some("100")),
        };
        add_rate_table(app, id, draft)
            .map_err(|e| anyhow::anyhow!("demo rates {id}: {}", e.detail))?;
        let (key, secret) = app.registry.create_key(
            PartnerId(id),
            vec![KeyScope::Earn, KeyScope::Burn, KeyScope::Read],
        )?;
        env.push_str(&format!(
            "{prefix}_KEY_ID={}\n{prefix}_SECRET={secret}\n",
            key.key_id
        ));
        callers.push(crate::ops::PartnerCaller {
            partner: PartnerId(id),
            key: key.into(),
        });
    }
    catalogue(app)?;
    let range = app.registry.allocate_members(members)?;
    enrol_all(app, range.clone())?;
    link_all(app, range.clone(), LINKS_A_TRANSACTION)?;
    let operator = app
        .registry
        .create_operator("demo-operator", Role::Operator, None)?
        .0;
    let finance = app
        .registry
        .create_operator("demo-finance", Role::Finance, None)?
        .0;
    env.push_str(&format!(
        "OPERATOR_TOKEN={operator}\nFINANCE_TOKEN={finance}\n"
    ));
    if history_days > 0 {
        history::history(app, &callers, range, history_days)?;
    }
    set_clock_offset_days(0);
    // The seed fills most of a memtable: written to tables now, its flush and the compaction
    // after it run before the first requests instead of during their first seconds.
    app.ledger
        .store()
        .settle()
        .context("writing the demo's seed to tables")?;
    crate::ops::registry::write_private(&path, &env, false)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The demo's committer clock offset from the wall clock, in ms (0 but while a history is
/// posted).
pub static CLOCK_OFFSET: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Sets [`CLOCK_OFFSET`] to `days` days (plus the hour of the day a history posts at).
pub fn set_clock_offset_days(days: i64) {
    CLOCK_OFFSET.store(days * 86_400_000, std::sync::atomic::Ordering::Relaxed);
}

/// The demo's rewards catalogue: one reward at each partner, named in English and Persian.
fn catalogue(app: &Ops) -> anyhow::Result<()> {
    let rewards = [
        (
            1,
            5_000,
            "Upgrade to business class",
            "ارتقا به کلاس تجاری",
            None,
        ),
        (2, 1_500, "20 litres of fuel", "۲۰ لیتر سوخت", Some(1_000)),
        (3, 1_000, "£10 of airtime", "۱۰ پوند شارژ", None),
    ];
    for (partner, points, en, fa, stock) in rewards {
        let spec = serde_json::json!({
            "names": [{"language": "en", "text": en}, {"language": "fa", "text": fa}],
            "partner_id": partner, "points": points, "stock": stock,
            "per_member_max": 4, "voucher_days": 90,
        });
        let spec = serde_json::from_value(spec).context("a demo reward")?;
        crate::ops::engagement::rewards::put_reward(app, 0, spec, "demo", "demo catalogue", None)
            .map_err(|e| anyhow::anyhow!("demo reward: {}", e.detail))?;
    }
    Ok(())
}

/// Links every demo member at every partner, `per_transaction` at a time.
fn link_all(app: &Ops, range: std::ops::Range<u64>, per_transaction: u64) -> anyhow::Result<()> {
    for (id, _, _, _, ref_prefix) in PARTNERS {
        let mut start = range.start;
        while start < range.end {
            let end = range.end.min(start.saturating_add(per_transaction.max(1)));
            let links: Vec<_> = (start..end)
                .map(|m| (member_reference(ref_prefix, m), MemberId(m)))
                .collect();
            app.registry.link_many(PartnerId(id), &links)?;
            start = end;
        }
    }
    Ok(())
}

/// The links one transaction of the seed writes. A demo link is two records of about 25 bytes
/// each, so such a transaction writes about 2.5 MB, a quarter of what FoundationDB takes in one,
/// and a large demo's seed holds one such batch in memory at a time rather than every member's
/// references at once (at 10,000,000 members the seed's peak fell from 13.4 to 5.3 GB).
const LINKS_A_TRANSACTION: u64 = 50_000;

/// Enrols members `range`, many in flight at once; a full queue is waited out, not an error.
fn enrol_all(app: &Ops, range: std::ops::Range<u64>) -> anyhow::Result<()> {
    let mut in_flight = Vec::new();
    let mut next = range.start;
    while next < range.end {
        let cmd = Command::Enrol {
            key: IdemKey::operator(format!("enrol/{next}")),
            member: MemberId(next),
        };
        match app.ledger.submit(cmd) {
            Ok(p) => {
                in_flight.push(p);
                next += 1;
            }
            Err(ledger::LedgerError::Overloaded) if !in_flight.is_empty() => {
                for p in in_flight.drain(..) {
                    p.blocking_recv().context("ledger stopped")??;
                }
            }
            Err(ledger::LedgerError::Overloaded) => {
                std::thread::sleep(std::time::Duration::from_millis(1))
            }
            Err(e) => return Err(e.into()),
        }
    }
    for p in in_flight {
        p.blocking_recv().context("ledger stopped")??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_is_linked_at_every_partner_across_transactions() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ops = crate::ops::ops_on(dir.path());
        // 23 members in transactions of 5: four full and one of 3, at each partner.
        let range = ops.registry.allocate_members(23).expect("ids");
        link_all(&ops, range.clone(), 5).expect("links");
        // Read back from the store: a registry opened again holds no link in memory.
        drop(ops);
        let ops = crate::ops::ops_on(dir.path());
        let first = member_reference("FF", range.start);
        assert_eq!(ops.registry.member_cached(PartnerId(1), &first), None);
        for (id, _, _, _, prefix) in PARTNERS {
            for m in range.clone() {
                let reference = member_reference(prefix, m);
                assert_eq!(
                    ops.registry
                        .member_of(PartnerId(id), &reference)
                        .expect("read"),
                    Some(MemberId(m)),
                    "{reference} at partner {id}"
                );
            }
            let past = member_reference(prefix, range.end);
            assert_eq!(
                ops.registry.member_of(PartnerId(id), &past).expect("read"),
                None
            );
        }
        // A second pass over the same members is refused: every reference is taken.
        assert!(link_all(&ops, range.start..range.start + 1, 5).is_err());
    }
}
