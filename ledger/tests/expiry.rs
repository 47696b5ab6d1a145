//! Expiry at its boundary instants, on the posting engine itself (`State::decide` and
//! `State::apply` with chosen times): one second before, the points are spendable; at and after
//! the instant, they are not, and the expiry posts them to breakage.

use ledger::core::expiry::{activity, ExpiryPolicy, Inactivity, Rolling, RoundTo};
use ledger::core::model::{Command, Digest, IdemKey, Scope, Transaction};
use ledger::core::rules::DecideError;
use ledger::core::state::{History, State};
use ledger::*;
use rust_decimal::Decimal;

/// Every transaction the engine applied, for reversals to find their originals in.
#[derive(Default)]
struct Log(std::collections::HashMap<TxId, Transaction>);
impl History for Log {
    type Error = ();
    fn transaction(&self, id: TxId) -> Result<Option<Transaction>, ()> {
        Ok(self.0.get(&id).cloned())
    }
}

struct Engine {
    state: State,
    seq: u64,
    log: Log,
}

const M: MemberId = MemberId(1);
const P: PartnerId = PartnerId(1);
const SECOND: i64 = 1_000;

fn ms(s: &str) -> Timestamp {
    Timestamp(
        chrono::DateTime::parse_from_rfc3339(s)
            .expect("time")
            .timestamp_millis(),
    )
}

impl Engine {
    fn new(policy: ExpiryPolicy) -> Engine {
        let mut e = Engine {
            state: State::new(Policy::default()),
            seq: 1,
            log: Log::default(),
        };
        e.state.index_due = true;
        let t0 = Timestamp(0);
        e.ok(
            Command::SetContract {
                key: IdemKey::operator("c"),
                contract: Contract {
                    partner: P,
                    currency: "EUR".parse().expect("EUR"),
                    issuance_price_per_point: Decimal::new(1, 2),
                    redemption_price_per_point: Decimal::new(1, 2),
                    points_validity_days: None,
                },
            },
            t0,
        );
        e.ok(
            Command::Enrol {
                key: IdemKey::operator("e"),
                member: M,
            },
            t0,
        );
        e.ok(
            Command::SetExpiryPolicy {
                key: IdemKey::operator("p"),
                policy: Box::new(policy),
            },
            t0,
        );
        e
    }

    fn run(&mut self, cmd: Command, at: Timestamp) -> Result<Transaction, Rejection> {
        let id = TxId::new(self.seq, 0);
        self.seq += 1;
        match self
            .state
            .decide(&cmd, Digest::default(), id, at, &self.log)
        {
            Ok(tx) => {
                self.state.apply(&tx);
                self.log.0.insert(tx.id, tx.clone());
                Ok(tx)
            }
            Err(DecideError::Rejected(r)) => Err(r),
            Err(DecideError::Failed(())) => panic!("the log does not fail"),
        }
    }

    fn ok(&mut self, cmd: Command, at: Timestamp) -> Transaction {
        self.run(cmd, at).expect("accepted")
    }

    fn earn(&mut self, n: u32, points: i64, at: Timestamp) -> Transaction {
        self.ok(
            Command::Earn {
                key: IdemKey::partner(P, format!("earn-{n}")),
                member: M,
                partner: P,
                points: Points(points),
                bonus: Points(0),
                awards: vec![],
                guard: None,
                purchase: None,
            },
            at,
        )
    }

    fn burn(&mut self, n: u32, points: i64, at: Timestamp) -> Result<Transaction, Rejection> {
        self.run(
            Command::Burn {
                key: IdemKey::partner(P, format!("burn-{n}")),
                member: M,
                partner: P,
                points: Points(points),
            },
            at,
        )
    }

    fn expire(&mut self, n: u32, at: Timestamp) -> Transaction {
        self.ok(
            Command::Expire {
                key: IdemKey {
                    scope: Scope::System,
                    reference: format!("x{n}"),
                },
                member: M,
            },
            at,
        )
    }

    fn spendable(&self, at: Timestamp) -> i64 {
        let m = self.state.member(M).expect("member");
        self.state.spendable(m, at).0
    }
}

fn rolling(months: u16, round_to: RoundTo) -> ExpiryPolicy {
    ExpiryPolicy {
        rolling: Some(Rolling { months, round_to }),
        inactivity: None,
        exempt_from_tier: None,
        time_zone: "Europe/Berlin".into(),
        retroactive: false,
        note: Default::default(),
    }
}

#[test]
fn a_lot_is_spendable_one_second_before_its_quarter_end_and_never_after() {
    // Earned 2026-11-15 in Berlin; 36 months later is November 2029, whose quarter ends at
    // 2030-01-01 00:00 Berlin time, 2029-12-31 23:00 UTC.
    let mut e = Engine::new(rolling(36, RoundTo::QuarterEnd));
    let earn = e.earn(1, 500, ms("2026-11-15T10:00:00Z"));
    let end = ms("2029-12-31T23:00:00Z");
    assert_eq!(earn.lots[0].expires_at, Some(end));
    let before = Timestamp(end.0 - SECOND);
    let after = Timestamp(end.0 + SECOND);
    assert_eq!(e.spendable(before), 500);
    assert_eq!((e.spendable(end), e.spendable(after)), (0, 0));
    assert!(e.state.due_expiries(before, 10).is_empty());
    assert_eq!(e.state.due_expiries(end, 10), vec![(end, M)]);
    // Burning one second before works; at the instant it is refused though nothing posted yet.
    e.burn(1, 100, before).expect("burn before expiry");
    assert!(matches!(
        e.burn(2, 1, end),
        Err(Rejection::InsufficientPoints { .. })
    ));
    // The expiry one second before moves nothing (and says so); at the instant it moves 400.
    let early = e.expire(1, before);
    assert!(matches!(
        early.kind,
        TxKind::Expire {
            points: Points(0),
            ..
        }
    ));
    let x = e.expire(2, end);
    assert!(matches!(
        x.kind,
        TxKind::Expire {
            points: Points(400),
            ..
        }
    ));
    assert_eq!(x.points_to(AccountId::Breakage), Points(400));
    assert_eq!(e.state.member(M).expect("member").posted, Points(0));
    assert!(
        e.state.due_expiries(after, 10).is_empty(),
        "nothing left to expire"
    );
}

#[test]
fn lots_are_consumed_soonest_expiry_first_after_partial_burns_and_reversals() {
    let mut e = Engine::new(rolling(1, RoundTo::Exact));
    let a = e.earn(1, 100, ms("2026-01-10T00:00:00Z"));
    let b = e.earn(2, 100, ms("2026-01-20T00:00:00Z"));
    let burn = e.burn(1, 150, ms("2026-01-25T00:00:00Z")).expect("burn");
    let drawn: Vec<(TxId, i64)> = burn.lots.iter().map(|c| (c.lot.tx, c.delta.0)).collect();
    assert_eq!(
        drawn,
        vec![(a.id, -100), (b.id, -50)],
        "the soonest lot first"
    );
    // After the first lot's expiry only the second's 50 remain spendable.
    let after_a = Timestamp(a.lots[0].expires_at.expect("expires").0 + SECOND);
    assert_eq!(e.spendable(after_a), 50);
    let m = e.state.member(M).expect("member");
    assert_eq!(
        e.state.expired_points(m, after_a),
        Points(0),
        "nothing of A is left to expire"
    );
}

/// A refund takes back its own earn's lot first wherever that lot sits among the member's
/// lots (found by its expiry, not by walking them), and, once that lot is spent, the soonest
/// expiring others; its bonus is taken after its points, from what the points left.
#[test]
fn a_reversal_draws_on_its_own_lot_among_hundreds_then_on_the_soonest() {
    let mut e = Engine::new(rolling(24, RoundTo::Exact));
    const DAY: i64 = 86_400_000;
    let start = ms("2026-01-01T00:00:00Z").0;
    let earns: Vec<Transaction> = (0..300)
        .map(|n| {
            e.ok(
                Command::Earn {
                    key: IdemKey::partner(P, format!("earn-{n}")),
                    member: M,
                    partner: P,
                    points: Points(10),
                    bonus: Points(2),
                    awards: vec![],
                    guard: None,
                    purchase: None,
                },
                Timestamp(start + n * DAY),
            )
        })
        .collect();
    let lot = |n: usize| earns[n].lots[0].lot;
    let at = Timestamp(start + 301 * DAY);
    // 12 points a lot: the burn spends lots 0..100 and 6 of lot 100.
    e.burn(1, 1_206, at).expect("burn");
    let drawn = |tx: &Transaction| -> Vec<(ledger::core::model::LotId, i64)> {
        tx.lots.iter().map(|c| (c.lot, c.delta.0)).collect()
    };
    let reverse = |e: &mut Engine, n: &str, original: TxId, points: Option<i64>| {
        e.ok(
            Command::Reverse {
                key: IdemKey::partner(P, format!("reverse-{n}")),
                original,
                points: points.map(Points),
            },
            at,
        )
    };
    // A lot in the middle, untouched: its 10 points and then its 2 of bonus, all from itself.
    let r = reverse(&mut e, "200", earns[200].id, None);
    assert_eq!(drawn(&r), vec![(lot(200), -10), (lot(200), -2)]);
    // Half of one near the end, then the rest: the second sees what the first took.
    let r = reverse(&mut e, "290a", earns[290].id, Some(5));
    assert_eq!(drawn(&r), vec![(lot(290), -5), (lot(290), -1)]);
    let r = reverse(&mut e, "290b", earns[290].id, None);
    assert_eq!(drawn(&r), vec![(lot(290), -5), (lot(290), -1)]);
    // A spent lot: the soonest lots instead, the rest of lot 100 (6 points) and then lot 101.
    let r = reverse(&mut e, "50", earns[50].id, None);
    assert_eq!(
        drawn(&r),
        vec![(lot(100), -6), (lot(101), -4), (lot(101), -2)]
    );
    // The lot that burn and reversal partly spent gives what it has left first.
    let r = reverse(&mut e, "101", earns[101].id, None);
    assert_eq!(
        drawn(&r),
        vec![(lot(101), -6), (lot(102), -4), (lot(102), -2)]
    );
    let m = e.state.member(M).expect("member");
    let held: i64 = m.lots.iter().map(|l| l.remaining.0).sum();
    assert_eq!(held, m.posted.0, "the lots still sum to the balance");
    assert_eq!(m.posted.0, 300 * 12 - 1_206 - 12 - 12 - 12 - 12);
}

#[test]
fn inactivity_expires_everything_at_its_boundary_and_activity_moves_it() {
    let mut e = Engine::new(ExpiryPolicy {
        rolling: None,
        inactivity: Some(Inactivity {
            months: 18,
            activities: activity::EARN | activity::BURN,
        }),
        exempt_from_tier: Some(2),
        time_zone: "UTC".into(),
        retroactive: false,
        note: Default::default(),
    });
    e.earn(1, 300, ms("2026-01-01T00:00:00Z"));
    let deadline = ms("2027-07-01T00:00:00Z");
    assert_eq!(e.spendable(Timestamp(deadline.0 - SECOND)), 300);
    assert_eq!(e.spendable(deadline), 0);
    // A burn a month before the deadline is activity: the clock restarts from it.
    e.burn(1, 10, ms("2027-06-01T00:00:00Z")).expect("burn");
    assert_eq!(e.spendable(deadline), 290);
    let moved = ms("2028-12-01T00:00:00Z");
    assert_eq!(e.spendable(Timestamp(moved.0 - SECOND)), 290);
    assert_eq!(e.spendable(moved), 0);
    // A member at an exempt tier keeps everything.
    e.state
        .members
        .get_mut(&M)
        .expect("member")
        .extras_mut()
        .tier
        .level = 2;
    assert_eq!(e.spendable(Timestamp(moved.0 + 365 * 86_400_000)), 290);
    let x = e.expire(1, Timestamp(moved.0 + SECOND));
    assert!(matches!(
        x.kind,
        TxKind::Expire {
            points: Points(0),
            ..
        }
    ));
}

#[test]
fn a_policy_change_never_expires_points_that_were_valid_under_the_old_one() {
    let mut e = Engine::new(rolling(24, RoundTo::Exact));
    let old = e.earn(1, 100, ms("2026-01-01T00:00:00Z"));
    // The programme shortens rolling expiry to 6 months and adds 6 months of inactivity.
    e.ok(
        Command::SetExpiryPolicy {
            key: IdemKey::operator("p2"),
            policy: Box::new(ExpiryPolicy {
                inactivity: Some(Inactivity {
                    months: 6,
                    activities: activity::EARN,
                }),
                time_zone: "UTC".into(),
                ..rolling(6, RoundTo::Exact)
            }),
        },
        ms("2026-06-01T00:00:00Z"),
    );
    // The old lot keeps its 24 months; new earns get 6.
    assert_eq!(old.lots[0].expires_at, Some(ms("2028-01-01T00:00:00Z")));
    let new = e.earn(2, 10, ms("2026-06-02T00:00:00Z"));
    assert_eq!(new.lots[0].expires_at, Some(ms("2026-12-02T00:00:00Z")));
    // Inactivity counts from the member's last earn, 2026-06-02, not from before the policy.
    assert_eq!(e.spendable(ms("2026-12-01T23:59:59Z")), 110);
}

/// Found by the simulation (seed 277): a merge moves the absorbed member's whole balance, and
/// lots already due whose expiry the ledger had not posted yet are part of it. They move with
/// their date (not left behind, which broke "lots cover the balance") and expire at the
/// survivor.
#[test]
fn a_merge_takes_lots_already_due_with_it_and_they_expire_at_the_survivor() {
    let mut e = Engine::new(rolling(1, RoundTo::Exact));
    let survivor = MemberId(2);
    e.ok(
        Command::Enrol {
            key: IdemKey::operator("e2"),
            member: survivor,
        },
        Timestamp(0),
    );
    let t0 = ms("2026-01-10T00:00:00Z");
    e.earn(1, 100, t0);
    let later = ms("2026-03-10T00:00:00Z");
    assert_eq!(e.spendable(later), 0, "the lot is due");
    let merged = e.ok(
        Command::Merge {
            key: IdemKey::operator("merge"),
            from: M,
            into: survivor,
            note: Box::new(ledger::core::types::ChangeNote {
                author: "ops".into(),
                reason: "duplicate card".into(),
            }),
        },
        later,
    );
    assert!(merged
        .lots
        .iter()
        .any(|l| l.member == survivor && l.delta == Points(100)));
    let s = e.state.member(survivor).expect("survivor");
    assert_eq!(s.posted, Points(100));
    assert_eq!(s.lots.iter().map(|l| l.remaining.0).sum::<i64>(), 100);
    assert!(s
        .lots
        .iter()
        .all(|l| l.expires_at.is_some_and(|x| x <= later)));
    assert_eq!(
        e.state.spendable(s, later),
        Points(0),
        "still not spendable"
    );
    let expired = e.ok(
        Command::Expire {
            key: IdemKey {
                scope: Scope::System,
                reference: "x-survivor".into(),
            },
            member: survivor,
        },
        later,
    );
    assert!(matches!(
        expired.kind,
        TxKind::Expire {
            points: Points(100),
            ..
        }
    ));
    assert_eq!(
        e.state.member(survivor).expect("survivor").posted,
        Points(0)
    );
}

/// The due index follows every deadline change, earlier and later:
/// whatever the order of earns at partners of short and long validity, burns, expiries and an
/// inactivity policy set halfway, it names the members an exact index would, in its order,
/// and holds at most one entry a member.
#[test]
fn the_due_index_answers_as_an_exact_one_would() {
    use rand::{Rng, SeedableRng};
    const MEMBERS: u64 = 12;
    const DAY: i64 = 86_400_000;
    let mut e = Engine {
        state: State::new(Policy::default()),
        seq: 1,
        log: Log::default(),
    };
    e.state.index_due = true;
    let mut now = ms("2026-01-05T00:00:00Z");
    for (p, days) in [(1, 400), (2, 9)] {
        e.ok(
            Command::SetContract {
                key: IdemKey::operator(format!("c{p}")),
                contract: Contract {
                    partner: PartnerId(p),
                    currency: "EUR".parse().expect("EUR"),
                    issuance_price_per_point: Decimal::new(1, 2),
                    redemption_price_per_point: Decimal::new(1, 2),
                    points_validity_days: Some(days),
                },
            },
            now,
        );
    }
    for m in 1..=MEMBERS {
        e.ok(
            Command::Enrol {
                key: IdemKey::operator(format!("e{m}")),
                member: MemberId(m),
            },
            now,
        );
    }
    let exact = |s: &State, now: Timestamp, limit: usize| {
        let mut all: Vec<(Timestamp, MemberId)> = s
            .members
            .iter()
            .filter_map(|(m, st)| s.deadline(st).map(|d| (d, *m)))
            .filter(|(d, _)| *d <= now)
            .collect();
        all.sort();
        all.truncate(limit);
        all
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let (mut asked, mut found, mut moved_earlier, mut accepted) = (0, 0, 0, 0);
    for n in 0..6_000u32 {
        now = Timestamp(now.0 + rng.random_range(0..2 * DAY));
        if n == 3_000 {
            e.ok(
                Command::SetExpiryPolicy {
                    key: IdemKey::operator("inactivity"),
                    policy: Box::new(ExpiryPolicy {
                        rolling: Some(Rolling {
                            months: 2,
                            round_to: RoundTo::Exact,
                        }),
                        inactivity: Some(Inactivity {
                            months: 1,
                            activities: activity::EARN | activity::BURN,
                        }),
                        exempt_from_tier: None,
                        time_zone: "UTC".into(),
                        retroactive: false,
                        note: Default::default(),
                    }),
                },
                now,
            );
        }
        let member = MemberId(rng.random_range(1..=MEMBERS));
        let before = e
            .state
            .members
            .get(&member)
            .and_then(|s| e.state.deadline(s));
        let cmd = match rng.random_range(0..10) {
            0..=5 => {
                let partner = PartnerId(1 + rng.random_range(0..2));
                Command::Earn {
                    key: IdemKey::partner(partner, format!("earn-{n}")),
                    member,
                    partner,
                    points: Points(rng.random_range(1..500)),
                    bonus: Points(0),
                    awards: vec![],
                    guard: None,
                    purchase: None,
                }
            }
            _ => Command::Burn {
                key: IdemKey::partner(PartnerId(1), format!("burn-{n}")),
                member,
                partner: PartnerId(1),
                points: Points(rng.random_range(1..300)),
            },
        };
        let outcome = e.run(cmd, now);
        accepted += u32::from(outcome.is_ok());
        let after = e
            .state
            .members
            .get(&member)
            .and_then(|s| e.state.deadline(s));
        moved_earlier += u32::from(matches!((before, after), (Some(b), Some(a)) if a < b));
        // The writer's use: what is due, then an expiry for the first of them.
        if rng.random_range(0..3) == 0 {
            let limit = rng.random_range(1..5);
            let due = e.state.due_expiries(now, limit);
            assert_eq!(due, exact(&e.state, now, limit), "step {n}");
            asked += 1;
            if let Some((t, m)) = due.first() {
                found += 1;
                e.ok(
                    Command::Expire {
                        key: IdemKey {
                            scope: Scope::System,
                            reference: format!("expire/{}/{}", m.0, t.0),
                        },
                        member: *m,
                    },
                    now,
                );
            }
        }
        assert!(
            e.state.expiry_due.len() <= MEMBERS as usize,
            "step {n}: {} entries",
            e.state.expiry_due.len()
        );
    }
    // The walk went where it had to: deadlines moved earlier, and members fell due.
    assert!(accepted > 4_000, "{accepted} of 6,000 commands accepted");
    assert!(
        moved_earlier > 100,
        "{moved_earlier} deadlines moved earlier"
    );
    assert!(found > 300, "{found} of {asked} asks found a member due");
    // Rebuilt as at open, with a hint shown each member ahead: the same answers, every
    // member shown once.
    let shown = std::cell::RefCell::new(Vec::new());
    e.state
        .rebuild_expiry_due_ahead(|s| shown.borrow_mut().push(std::ptr::from_ref(s) as usize));
    let mut shown = shown.into_inner();
    let mut all: Vec<usize> = e
        .state
        .members
        .values()
        .map(|s| std::ptr::from_ref(s) as usize)
        .collect();
    shown.sort();
    all.sort();
    assert_eq!((shown.len(), &shown), (MEMBERS as usize, &all));
    let later = Timestamp(now.0 + 800 * DAY);
    assert_eq!(
        e.state.due_expiries(later, 100),
        exact(&e.state, later, 100)
    );
    assert!(!exact(&e.state, later, 100).is_empty());
}
