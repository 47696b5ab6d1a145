//! Property test: random command sequences run on the ledger and on a simple in-memory model;
//! acceptance, receipts, balances, tiers and the audit must agree. Then the clock moves past
//! every lot's expiry: from that instant nothing is spendable, and every point still posted
//! goes to breakage, once.

use ledger::store::faults::{Faults, FaultyStore};
use ledger::store::EmbeddedStore;

/// The store under test: the embedded engine held to FoundationDB's limits, and on the
/// cluster path injecting its retryable faults (conflicts, unknown commit results).
type TestStore = FaultyStore<EmbeddedStore>;
use ledger::*;
use proptest::prelude::*;
use rust_decimal::Decimal;

const MEMBERS: u64 = 3;

#[derive(Debug, Clone)]
enum Op {
    Earn {
        m: u64,
        p: u32,
        points: i64,
        bonus: i64,
        /// A campaign award: campaign 1 (budget 300, room returned on reversal) or 2 (each
        /// member at most 100), and its points.
        award: Option<(u32, i64)>,
    },
    Burn {
        m: u64,
        p: u32,
        points: i64,
    },
    Hold {
        m: u64,
        p: u32,
        points: i64,
    },
    Capture {
        hold: usize,
        points: Option<i64>,
    },
    Void {
        hold: usize,
    },
    Reverse {
        original: usize,
        points: Option<i64>,
    },
    Transfer {
        from: u64,
        to: u64,
        points: i64,
    },
    /// Reward 1 (100 points at partner 2; a stock of 5, at most 2 a member).
    Redeem {
        m: u64,
    },
    /// Points granted, funded by partner 1 (so they expire with its lots: a grant from the
    /// programme with no expiry policy never expires, and the final expiry check would not
    /// hold; the conformance suite covers those).
    Grant {
        m: u64,
        points: i64,
    },
    Retry {
        op: usize,
    },
}

/// Reward 1's price, stock and per-member limit.
const REWARD_POINTS: i64 = 100;
const REWARD_STOCK: u32 = 5;
const REWARD_PER_MEMBER: u32 = 2;

fn op() -> impl Strategy<Value = Op> {
    let m = 1..=MEMBERS;
    let p = 1u32..=2;
    prop_oneof![
        4 => (m.clone(), p.clone(), 1i64..500, 0i64..60, proptest::option::of((1u32..=2, 0i64..90))).prop_map(|(m, p, points, bonus, award)| Op::Earn { m, p, points, bonus, award }),
        3 => (m.clone(), p.clone(), 1i64..600).prop_map(|(m, p, points)| Op::Burn { m, p, points }),
        2 => (m.clone(), p, 1i64..400).prop_map(|(m, p, points)| Op::Hold { m, p, points }),
        2 => (0usize..8, proptest::option::of(1i64..400)).prop_map(|(hold, points)| Op::Capture { hold, points }),
        1 => (0usize..8).prop_map(|hold| Op::Void { hold }),
        2 => (0usize..12, proptest::option::of(1i64..300)).prop_map(|(original, points)| Op::Reverse { original, points }),
        2 => (m.clone(), m.clone(), 1i64..300).prop_map(|(from, to, points)| Op::Transfer { from, to, points }),
        2 => m.clone().prop_map(|m| Op::Redeem { m }),
        1 => (m, 1i64..300).prop_map(|(m, points)| Op::Grant { m, points }),
        1 => (0usize..40).prop_map(|op| Op::Retry { op }),
    ]
}

#[derive(Clone)]
struct ModelHold {
    id: TxId,
    member: u64,
    partner: u32,
    points: i64,
    open: bool,
}

#[derive(Clone)]
struct ModelOriginal {
    id: TxId,
    earn: bool,
    member: u64,
    partner: u32,
    points: i64,
    bonus: i64,
    reversed: i64,
    reversed_bonus: i64,
    /// The award granted: campaign and points, and points reversed so far.
    award: Option<(u32, i64)>,
    reversed_award: i64,
}

/// Campaign 1's budget, and campaign 2's cap per member.
const BUDGET: i64 = 300;
const MEMBER_CAP: i64 = 100;

fn limits(campaign: u32) -> AwardLimits {
    if campaign == 1 {
        AwardLimits {
            budget: Some(Points(BUDGET)),
            refund_returns_room: true,
            ..AwardLimits::default()
        }
    } else {
        AwardLimits {
            member_total: Some(Points(MEMBER_CAP)),
            ..AwardLimits::default()
        }
    }
}

/// The cumulative share of `whole` after `done` of `of` points: shares sum to `whole`.
fn share(whole: i64, of: i64, done: i64, n: i64) -> i64 {
    whole * (done + n) / of - whole * done / of
}

/// The model: plain integers, no lots, no storage.
#[derive(Default)]
struct Model {
    posted: [i64; MEMBERS as usize + 1],
    held: [i64; MEMBERS as usize + 1],
    holds: Vec<ModelHold>,
    originals: Vec<ModelOriginal>,
    /// Points campaign 1 has awarded; points campaign 2 gave each member.
    awarded: i64,
    member_use: [i64; MEMBERS as usize + 1],
    /// Qualifying points this year (earns at partner 1, less what reversals took back), and
    /// the tier level each member reached (levels only rise until a year-end review).
    qualifying: [i64; MEMBERS as usize + 1],
    level: [u8; MEMBERS as usize + 1],
    /// Reward 1's vouchers issued, in all and per member.
    redeemed: u32,
    redeemed_by: [u32; MEMBERS as usize + 1],
}

/// The tier thresholds: Silver, Gold.
const TIER_THRESHOLDS: [i64; 2] = [300, 1_000];

fn tier_target(total: i64) -> u8 {
    TIER_THRESHOLDS.iter().take_while(|t| total >= **t).count() as u8
}

impl Model {
    fn available(&self, m: u64) -> i64 {
        self.posted[m as usize] - self.held[m as usize]
    }

    /// What an award of `points` from `campaign` to member `m` gets.
    fn grant(&self, m: u64, campaign: u32, points: i64) -> i64 {
        if campaign == 1 {
            points.min(BUDGET - self.awarded)
        } else {
            points.min(MEMBER_CAP - self.member_use[m as usize])
        }
    }
}

fn key(p: u32, i: usize) -> IdemKey {
    IdemKey::partner(PartnerId(p), format!("op-{i}"))
}

/// The command for step `i`, and what the model expects: `Some(effect)` if accepted.
fn to_command(model: &Model, op: &Op, i: usize) -> Option<(Command, bool)> {
    Some(match *op {
        Op::Earn {
            m,
            p,
            points,
            bonus,
            award,
        } => (
            Command::Earn {
                key: key(p, i),
                member: MemberId(m),
                partner: PartnerId(p),
                points: Points(points),
                bonus: Points(bonus),
                awards: award
                    .map(|(c, a)| AwardRequest {
                        campaign: CampaignId(c),
                        version: 1,
                        points: Points(a),
                        funder: if c == 1 {
                            Funder::Programme
                        } else {
                            Funder::Partner(PartnerId(2))
                        },
                        limits: limits(c),
                        requires: MemberCondition::default(),
                    })
                    .into_iter()
                    .collect(),
                guard: None,
                purchase: None,
            },
            true,
        ),
        Op::Burn { m, p, points } => (
            Command::Burn {
                key: key(p, i),
                member: MemberId(m),
                partner: PartnerId(p),
                points: Points(points),
            },
            model.available(m) >= points,
        ),
        Op::Hold { m, p, points } => (
            Command::Hold {
                key: key(p, i),
                member: MemberId(m),
                partner: PartnerId(p),
                points: Points(points),
                timeout_ms: 3_600_000,
            },
            model.available(m) >= points,
        ),
        Op::Capture { hold, points } => {
            let h = model.holds.get(hold)?;
            let amount = points.unwrap_or(h.points);
            let ok = h.open && amount <= h.points && model.posted[h.member as usize] >= amount;
            (
                Command::Capture {
                    key: key(h.partner, i),
                    hold: h.id,
                    points: points.map(Points),
                },
                ok,
            )
        }
        Op::Void { hold } => {
            let h = model.holds.get(hold)?;
            (
                Command::Void {
                    key: key(h.partner, i),
                    hold: h.id,
                },
                h.open,
            )
        }
        Op::Reverse { original, points } => {
            let o = model.originals.get(original)?;
            let remaining = o.points - o.reversed;
            let n = points.unwrap_or(remaining);
            let mut ok = remaining > 0 && n <= remaining;
            if ok && o.earn {
                let (bonus_n, award_n) = reversed_extras(o, n);
                ok = n + bonus_n + award_n <= model.available(o.member).max(0);
            }
            (
                Command::Reverse {
                    key: key(o.partner, i),
                    original: o.id,
                    points: points.map(Points),
                },
                ok,
            )
        }
        Op::Transfer { from, to, points } => (
            Command::Transfer {
                key: IdemKey::operator(format!("op-{i}")),
                from: MemberId(from),
                to: MemberId(to),
                points: Points(points),
                consent: None,
            },
            from != to && model.available(from) >= points,
        ),
        Op::Redeem { m } => (
            Command::Redeem {
                key: IdemKey::operator(format!("op-{i}")),
                member: MemberId(m),
                partner: PartnerId(2),
                points: Points(REWARD_POINTS),
                claim: RewardClaim {
                    reward: RewardId(1),
                    version: 1,
                    stock: Some(REWARD_STOCK),
                    member_max: Some(REWARD_PER_MEMBER),
                    tiers: 0,
                },
            },
            model.available(m) >= REWARD_POINTS
                && model.redeemed < REWARD_STOCK
                && model.redeemed_by[m as usize] < REWARD_PER_MEMBER,
        ),
        Op::Grant { m, points } => (
            Command::Grant {
                key: IdemKey::operator(format!("op-{i}")),
                member: MemberId(m),
                points: Points(points),
                funder: Funder::Partner(PartnerId(1)),
                origin: Box::new(GrantOrigin {
                    kind: GrantKind::Survey,
                    id: i as u64,
                    note: format!("answered survey {i}"),
                }),
            },
            true,
        ),
        Op::Retry { .. } => return None,
    })
}

/// The bonus and award points reversing `n` of an earn takes back with them.
fn reversed_extras(o: &ModelOriginal, n: i64) -> (i64, i64) {
    let remaining = o.points - o.reversed;
    let award = o.award.map_or(0, |(_, a)| a);
    if n == remaining {
        (o.bonus - o.reversed_bonus, award - o.reversed_award)
    } else {
        (
            share(o.bonus, o.points, o.reversed, n),
            share(award, o.points, o.reversed, n),
        )
    }
}

/// Applies an accepted command's effect to the model.
fn model_apply(model: &mut Model, op: &Op, tx: &Transaction) {
    match *op {
        Op::Earn {
            m,
            p,
            points,
            bonus,
            award,
        } => {
            let award = award.map(|(c, a)| (c, model.grant(m, c, a)));
            if let Some((c, a)) = award {
                if c == 1 {
                    model.awarded += a;
                } else {
                    model.member_use[m as usize] += a;
                }
            }
            model.posted[m as usize] += points + bonus + award.map_or(0, |(_, a)| a);
            if p == 1 {
                model.qualifying[m as usize] += points;
                let reached = tier_target(model.qualifying[m as usize]);
                model.level[m as usize] = model.level[m as usize].max(reached);
            }
            model.originals.push(ModelOriginal {
                id: tx.id,
                earn: true,
                member: m,
                partner: p,
                points,
                bonus,
                reversed: 0,
                reversed_bonus: 0,
                award,
                reversed_award: 0,
            });
        }
        Op::Burn { m, p, points } => {
            model.posted[m as usize] -= points;
            model.originals.push(ModelOriginal {
                id: tx.id,
                earn: false,
                member: m,
                partner: p,
                points,
                bonus: 0,
                reversed: 0,
                reversed_bonus: 0,
                award: None,
                reversed_award: 0,
            });
        }
        Op::Hold { m, p, points } => {
            model.held[m as usize] += points;
            model.holds.push(ModelHold {
                id: tx.id,
                member: m,
                partner: p,
                points,
                open: true,
            });
        }
        Op::Capture { hold, points } => {
            let h = &mut model.holds[hold];
            let amount = points.unwrap_or(h.points);
            h.open = false;
            model.held[h.member as usize] -= h.points;
            model.posted[h.member as usize] -= amount;
            let (member, partner) = (h.member, h.partner);
            model.originals.push(ModelOriginal {
                id: tx.id,
                earn: false,
                member,
                partner,
                points: amount,
                bonus: 0,
                reversed: 0,
                reversed_bonus: 0,
                award: None,
                reversed_award: 0,
            });
        }
        Op::Void { hold } => {
            let h = &mut model.holds[hold];
            h.open = false;
            model.held[h.member as usize] -= h.points;
        }
        Op::Reverse { original, points } => {
            let o = &mut model.originals[original];
            let remaining = o.points - o.reversed;
            let n = points.unwrap_or(remaining);
            if o.earn {
                let (bonus_n, award_n) = reversed_extras(o, n);
                o.reversed_bonus += bonus_n;
                o.reversed_award += award_n;
                if let Some((1, _)) = o.award {
                    model.awarded -= award_n;
                }
                model.posted[o.member as usize] -= n + bonus_n + award_n;
                if o.partner == 1 {
                    model.qualifying[o.member as usize] -= n;
                }
            } else {
                model.posted[o.member as usize] += n;
            }
            o.reversed += n;
        }
        Op::Transfer { from, to, points } => {
            model.posted[from as usize] -= points;
            model.posted[to as usize] += points;
        }
        Op::Redeem { m } => {
            model.posted[m as usize] -= REWARD_POINTS;
            model.redeemed += 1;
            model.redeemed_by[m as usize] += 1;
            // A redemption reverses as a burn does (a returned voucher); its unit stays issued.
            model.originals.push(ModelOriginal {
                id: tx.id,
                earn: false,
                member: m,
                partner: 2,
                points: REWARD_POINTS,
                bonus: 0,
                reversed: 0,
                reversed_bonus: 0,
                award: None,
                reversed_award: 0,
            });
        }
        Op::Grant { m, points } => model.posted[m as usize] += points,
        Op::Retry { .. } => {}
    }
}

/// The ledger on the single committer, or on the cluster path (every batch a store
/// transaction reading what it decides on); both must agree with the model.
fn open_ledger(
    dir: &std::path::Path,
    cluster: bool,
    offset: &'static std::sync::atomic::AtomicI64,
) -> Ledger<TestStore> {
    let faults = if cluster {
        Faults {
            conflict: 60,
            unknown_committed: 30,
            unknown_lost: 30,
            ..Faults::default()
        }
    } else {
        Faults::default()
    };
    let store = FaultyStore::new(
        EmbeddedStore::open(dir).expect("store"),
        faults,
        dir.as_os_str().len() as u64 + 1,
    );
    // Member records written two transactions after a change: the audit compares each as of
    // the batch it covers. Two reversal totals in memory: a reversal of an older original
    // may read its total from the store.
    let config = LedgerConfig {
        member_write_delay: 2,
        reversal_totals_in_memory: 2,
        committer: CommitterConfig {
            clock: Clock::shifted(offset),
            ..CommitterConfig::default()
        },
        ..LedgerConfig::default()
    };
    let ledger = if cluster {
        Ledger::open_cluster(store, config, ClusterConfig::on_shard(5))
    } else {
        Ledger::open(store, config)
    }
    .expect("ledger");
    for p in 1..=2 {
        let contract = Contract {
            partner: PartnerId(p),
            currency: "EUR".parse().expect("EUR"),
            issuance_price_per_point: Decimal::new(p as i64, 2),
            redemption_price_per_point: Decimal::new(5, 3),
            points_validity_days: Some(30 * p),
        };
        ledger
            .execute_blocking(Command::SetContract {
                key: IdemKey::operator(format!("c{p}")),
                contract,
            })
            .expect("contract");
    }
    ledger
        .execute_blocking(Command::SetTierPolicy {
            key: IdemKey::operator("tiers"),
            policy: Box::new(core::tiers::TierPolicy {
                levels: TIER_THRESHOLDS
                    .iter()
                    .zip(["Silver", "Gold"])
                    .map(|(t, n)| core::tiers::TierLevel {
                        name: n.into(),
                        threshold: *t,
                    })
                    .collect(),
                basis: core::tiers::Basis::Points,
                window: core::tiers::Window::CalendarYear,
                grace_periods: 0,
                partners: vec![PartnerId(1)],
                categories: vec![],
                time_zone: "UTC".into(),
                note: Default::default(),
            }),
        })
        .expect("tier policy");
    for m in 1..=MEMBERS {
        ledger
            .execute_blocking(Command::Enrol {
                key: IdemKey::operator(format!("m{m}")),
                member: MemberId(m),
            })
            .expect("enrol");
    }
    ledger
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn ledger_agrees_with_the_model_on_random_command_sequences(ops in proptest::collection::vec(op(), 1..40)) {
        agrees_with_the_model(&ops, false)?;
    }

    #[test]
    fn cluster_path_agrees_with_the_model_on_random_command_sequences(ops in proptest::collection::vec(op(), 1..40)) {
        agrees_with_the_model(&ops, true)?;
    }
}

fn agrees_with_the_model(ops: &[Op], cluster: bool) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let offset: &'static std::sync::atomic::AtomicI64 =
        Box::leak(Box::new(std::sync::atomic::AtomicI64::new(0)));
    let ledger = open_ledger(dir.path(), cluster, offset);
    let mut model = Model::default();
    let mut issued: Vec<Option<(Command, Transaction)>> = Vec::new();
    // Points owed to members after each accepted command, by its commit time.
    let mut owed_at: std::collections::BTreeMap<i64, i64> = std::collections::BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let Op::Retry { op: j } = op {
            if let Some(Some((cmd, tx))) = issued.get(*j) {
                let r = ledger
                    .execute_blocking(cmd.clone())
                    .expect("a retry of an accepted command succeeds");
                prop_assert!(r.replayed);
                prop_assert_eq!(&*r.tx, tx);
            }
            issued.push(None);
            continue;
        }
        let Some((cmd, expect_ok)) = to_command(&model, op, i) else {
            issued.push(None);
            continue;
        };
        match ledger.execute_blocking(cmd.clone()) {
            Ok(r) => {
                prop_assert!(
                    expect_ok,
                    "step {}: ledger accepted {:?}, model rejects",
                    i,
                    op
                );
                prop_assert!(!r.replayed);
                if let (
                    Op::Earn {
                        m,
                        award: Some((c, a)),
                        ..
                    },
                    TxKind::Earn { awards, .. },
                ) = (op, &r.tx.kind)
                {
                    prop_assert_eq!(
                        awards[0].points.0,
                        model.grant(*m, *c, *a),
                        "step {}: award granted",
                        i
                    );
                }
                if let (Op::Earn { p, points, .. }, TxKind::Earn { tier, .. }) = (op, &r.tx.kind) {
                    let counted = tier.as_ref().map(|t| t.0.qualifying);
                    prop_assert_eq!(
                        counted,
                        (*p == 1).then_some(*points),
                        "step {}: qualification",
                        i
                    );
                }
                model_apply(&mut model, op, &r.tx);
                for a in &r.tx.member_balances {
                    let (m, posted) = (&a.member, a.posted);
                    prop_assert_eq!(
                        posted.0,
                        model.posted[m.0 as usize],
                        "step {}: receipt balance of member {}",
                        i,
                        m.0
                    );
                }
                owed_at.insert(r.tx.at.0, model.posted.iter().sum::<i64>());
                issued.push(Some((cmd, (*r.tx).clone())));
            }
            Err(LedgerError::Rejected(why)) => {
                prop_assert!(
                    !expect_ok,
                    "step {}: ledger rejected {:?} ({}), model accepts",
                    i,
                    op,
                    why
                );
                issued.push(None);
            }
            Err(e) => panic!("ledger failed: {e}"),
        }
    }
    for m in 1..=MEMBERS {
        let b = ledger.balance(MemberId(m)).expect("read").expect("member");
        prop_assert_eq!(
            (b.posted.0, b.pending.0),
            (model.posted[m as usize], model.held[m as usize]),
            "member {}",
            m
        );
    }
    let report = audit::audit(&ledger.read_snapshot().expect("snapshot")).expect("audit passes");
    prop_assert_eq!(report.points_outstanding, model.posted.iter().sum::<i64>());
    // The trial balance sums to zero at every instant the commands were posted at, and a
    // millisecond before each; its members line is what the model owed then.
    let snap = ledger.read_snapshot().expect("snapshot");
    let finance = ledger.finance(None);
    let book = finance.book_at(&snap).expect("finance book");
    let mut before = 0;
    for (&at, &owed) in &owed_at {
        for (t, expect) in [(at - 1, before), (at, owed)] {
            let tb = ledger::finance::reports::trial_balance(&book, &snap, Timestamp(t))
                .expect("trial balance");
            prop_assert_eq!(
                tb.total_points,
                rust_decimal::Decimal::ZERO,
                "points at {}",
                t
            );
            prop_assert!(
                tb.total_money.values().all(|v| v.is_zero()),
                "money at {}: {:?}",
                t,
                tb.total_money
            );
            let members = tb
                .lines
                .iter()
                .find(|l| l.account == "members")
                .map_or(rust_decimal::Decimal::ZERO, |l| l.points);
            prop_assert_eq!(
                members,
                rust_decimal::Decimal::from(expect),
                "members at {}",
                t
            );
        }
        before = owed;
    }
    drop(book);
    let awarded = match ledger
        .counter(&CounterKey::Campaign(CampaignId(1)))
        .expect("read")
    {
        Some(Counter::Awarded(p)) => p.0,
        _ => 0,
    };
    prop_assert_eq!(awarded, model.awarded, "campaign 1's budget counter");
    prop_assert!(awarded <= BUDGET);
    for m in 1..=MEMBERS {
        let s = ledger
            .member_state(MemberId(m))
            .expect("read")
            .expect("member");
        prop_assert_eq!(s.tier(), model.level[m as usize], "member {}'s tier", m);
    }
    expire_everything(&ledger, &model, offset)?;
    ledger.shutdown();
    Ok(())
}

/// Moves the clock past every lot's expiry (lots last 30 or 60 days, holds an hour): at once
/// nothing is spendable; then holds void, every posted point goes to breakage, and the books
/// still audit.
fn expire_everything(
    ledger: &Ledger<TestStore>,
    model: &Model,
    offset: &'static std::sync::atomic::AtomicI64,
) -> Result<(), TestCaseError> {
    let outstanding: i64 = model.posted.iter().sum();
    offset.store(100 * 86_400_000, std::sync::atomic::Ordering::Relaxed);
    for m in (1..=MEMBERS).filter(|m| model.posted[*m as usize] > 0) {
        let spend = ledger.execute_blocking(Command::Burn {
            key: IdemKey::partner(PartnerId(1), format!("after-expiry-{m}")),
            member: MemberId(m),
            partner: PartnerId(1),
            points: Points(1),
        });
        prop_assert!(
            matches!(
                spend,
                Err(LedgerError::Rejected(Rejection::InsufficientPoints { .. }))
            ),
            "member {}: expired points spent: {:?}",
            m,
            spend.map(|r| r.tx.id)
        );
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let settled = |l: &Ledger<TestStore>| {
        (1..=MEMBERS).all(|m| {
            l.balance(MemberId(m))
                .expect("read")
                .is_some_and(|b| b.posted.0 == 0 && b.pending.0 == 0)
        })
    };
    while !settled(ledger) {
        prop_assert!(
            std::time::Instant::now() < until,
            "expiry postings did not settle"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let breakage = ledger
        .account_balance(AccountId::Breakage)
        .expect("read")
        .points
        .0;
    prop_assert_eq!(
        breakage,
        outstanding,
        "every outstanding point went to breakage"
    );
    let report = audit::audit(&ledger.read_snapshot().expect("snapshot")).expect("audit passes");
    prop_assert_eq!(report.points_outstanding, 0);
    Ok(())
}
