//! Property test: every command with extreme amounts, ids and timeouts (`i64::MIN`,
//! `i64::MAX`, `u64::MAX`, zero, negatives) either commits a balanced transaction or is
//! rejected with nothing changed; the ledger never panics, overflows or overdraws, and the
//! audit passes after every sequence, on both write paths.

use ledger::store::EmbeddedStore;
use ledger::*;
use proptest::prelude::*;
use rust_decimal::Decimal;

fn extreme_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MIN + 1),
        Just(i64::MAX),
        Just(-1),
        Just(0),
        Just(1),
        Just(1_000_000_000_000),
        Just(1_000_000_000_001),
        any::<i64>(),
        1i64..10_000,
    ]
}

fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(1), Just(2), Just(u64::MAX), any::<u64>()]
}

fn command() -> impl Strategy<Value = Command> {
    let partner = prop_oneof![Just(1u32), Just(0), Just(u32::MAX)];
    let key = |n: u64| IdemKey::operator(format!("x{n}"));
    prop_oneof![
        (
            any::<u64>(),
            extreme_u64(),
            partner.clone(),
            extreme_i64(),
            extreme_i64(),
            (extreme_i64(), extreme_i64(), any::<u32>(), any::<bool>()),
            (extreme_i64(), any::<u32>(), any::<u8>())
        )
            .prop_map(
                move |(
                    n,
                    m,
                    p,
                    points,
                    bonus,
                    (award, cap, campaign, first),
                    (sale, period, pct),
                )| {
                    Command::Earn {
                        key: key(n),
                        member: MemberId(m),
                        partner: PartnerId(p),
                        points: Points(points),
                        bonus: Points(bonus),
                        awards: vec![AwardRequest {
                            campaign: CampaignId(campaign),
                            version: 1,
                            points: Points(award),
                            funder: if first {
                                Funder::Partner(PartnerId(p))
                            } else {
                                Funder::Programme
                            },
                            limits: AwardLimits {
                                member_day: Some(Points(cap)),
                                member_month: None,
                                member_total: Some(Points(cap)),
                                budget: Some(Points(cap)),
                                day: period,
                                month: period,
                                refund_returns_room: first,
                            },
                            requires: MemberCondition {
                                first_earn_at_partner: first,
                                enrolled_days_min: Some(period),
                                enrolled_days_max: None,
                                tiers: pct.into(),
                            },
                        }],
                        guard: Some(Box::new(GuardRequest {
                            sale: Decimal::from(sale),
                            currency: "EUR".parse().expect("EUR"),
                            checks: vec![GuardCheck {
                                scope: GuardScope::Partner(PartnerId(p)),
                                period,
                                currency: None,
                                ceiling: Decimal::new(i64::from(pct), 2),
                                action: if first {
                                    GuardAction::Refuse
                                } else {
                                    GuardAction::BaseOnly
                                },
                                thresholds: vec![pct, 100],
                            }],
                        })),
                        purchase: None,
                    }
                },
            ),
        (any::<u64>(), extreme_u64(), partner.clone(), extreme_i64()).prop_map(
            move |(n, m, p, points)| Command::Burn {
                key: key(n),
                member: MemberId(m),
                partner: PartnerId(p),
                points: Points(points),
            }
        ),
        (
            any::<u64>(),
            extreme_u64(),
            partner,
            extreme_i64(),
            any::<u32>()
        )
            .prop_map(move |(n, m, p, points, timeout_ms)| Command::Hold {
                key: key(n),
                member: MemberId(m),
                partner: PartnerId(p),
                points: Points(points),
                timeout_ms,
            }),
        (
            any::<u64>(),
            extreme_u64(),
            proptest::option::of(extreme_i64())
        )
            .prop_map(move |(n, hold, points)| Command::Capture {
                key: key(n),
                hold: TxId(hold),
                points: points.map(Points),
            }),
        (any::<u64>(), extreme_u64()).prop_map(move |(n, hold)| Command::Void {
            key: key(n),
            hold: TxId(hold),
        }),
        (
            any::<u64>(),
            extreme_u64(),
            proptest::option::of(extreme_i64())
        )
            .prop_map(move |(n, original, points)| Command::Reverse {
                key: key(n),
                original: TxId(original),
                points: points.map(Points),
            }),
        (any::<u64>(), extreme_u64(), extreme_u64(), extreme_i64()).prop_map(
            move |(n, from, to, points)| Command::Transfer {
                key: key(n),
                from: MemberId(from),
                to: MemberId(to),
                points: Points(points),
                consent: None,
            }
        ),
        (any::<u64>(), extreme_u64(), extreme_i64()).prop_map(move |(n, m, points)| {
            Command::Adjust {
                key: key(n),
                member: MemberId(m),
                points: Points(points),
                reason: "extreme".into(),
                operator: "prop".into(),
                qualifies: false,
                corrects: None,
            }
        }),
    ]
}

fn open(dir: &std::path::Path, cluster: bool) -> Ledger<EmbeddedStore> {
    let store = EmbeddedStore::open(dir).expect("store");
    let ledger = if cluster {
        Ledger::open_cluster(store, LedgerConfig::default(), ClusterConfig::on_shard(1))
    } else {
        Ledger::open(store, LedgerConfig::default())
    }
    .expect("ledger");
    ledger
        .execute_blocking(Command::SetContract {
            key: IdemKey::operator("c1"),
            contract: Contract {
                partner: PartnerId(1),
                currency: "EUR".parse().expect("EUR"),
                issuance_price_per_point: Decimal::new(1, 2),
                redemption_price_per_point: Decimal::new(5, 3),
                points_validity_days: None,
            },
        })
        .expect("contract");
    for m in [1, 2, u64::MAX] {
        ledger
            .execute_blocking(Command::Enrol {
                key: IdemKey::operator(format!("m{m}")),
                member: MemberId(m),
            })
            .expect("enrol");
    }
    ledger
}

/// Balances that any change would move.
fn fingerprint(l: &Ledger<EmbeddedStore>) -> Vec<i64> {
    let mut f: Vec<i64> = [1, 2, u64::MAX]
        .iter()
        .map(|m| {
            l.balance(MemberId(*m))
                .expect("read")
                .map_or(0, |b| b.posted.0)
        })
        .collect();
    for a in [
        AccountId::PartnerIssuance(PartnerId(1)),
        AccountId::PartnerRedemption(PartnerId(1)),
        AccountId::Promotions,
        AccountId::Adjustments,
    ] {
        f.push(l.account_balance(a).expect("read").points.0);
    }
    f
}

fn run(commands: &[Command], cluster: bool) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let l = open(dir.path(), cluster);
    for cmd in commands {
        let before = fingerprint(&l);
        match l.execute_blocking(cmd.clone()) {
            Ok(r) => {
                let (points, money) = r.tx.imbalance();
                prop_assert_eq!(points, 0, "{:?}", cmd);
                prop_assert!(money.iter().all(|(_, v)| v.is_zero()), "{:?}", cmd);
            }
            Err(LedgerError::Rejected(_)) => {
                prop_assert_eq!(
                    fingerprint(&l),
                    before,
                    "a rejection changed the ledger: {:?}",
                    cmd
                );
            }
            Err(other) => prop_assert!(false, "{cmd:?} failed the ledger: {other}"),
        }
        for m in [1, 2, u64::MAX] {
            let b = l.balance(MemberId(m)).expect("read").expect("enrolled");
            prop_assert!(b.available.0 >= 0, "member {} overdrawn by {:?}", m, cmd);
        }
    }
    ledger::audit::audit(&l.read_snapshot().expect("snapshot"))
        .map_err(|e| TestCaseError::fail(format!("audit: {e}")))?;
    l.shutdown();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn extreme_values_never_panic_overflow_or_change_a_rejected_ledger(
        commands in proptest::collection::vec(command(), 1..30)
    ) {
        run(&commands, false)?;
    }

    #[test]
    fn extreme_values_on_the_cluster_path_too(
        commands in proptest::collection::vec(command(), 1..30)
    ) {
        run(&commands, true)?;
    }
}
