//! One test per command and per rejection. Every rejection is checked to leave balances as
//! they were, and every test ends with a passing audit.

use ledger::store::EmbeddedStore;
use ledger::*;
use rust_decimal::Decimal;

const AIR: PartnerId = PartnerId(1);
const FUEL: PartnerId = PartnerId(2);
const M1: MemberId = MemberId(1);
const M2: MemberId = MemberId(2);

struct Fixture {
    ledger: Ledger<EmbeddedStore>,
    _dir: tempfile::TempDir,
}

fn fixture(policy: Policy) -> Fixture {
    fixture_with(LedgerConfig {
        policy,
        ..LedgerConfig::default()
    })
}

fn fixture_with(config: LedgerConfig) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path()).expect("store");
    let ledger = Ledger::open(store, config).expect("ledger");
    for (p, days) in [(AIR, Some(730)), (FUEL, Some(30))] {
        let contract = Contract {
            partner: p,
            currency: "EUR".parse().expect("EUR"),
            issuance_price_per_point: Decimal::new(1, 2),
            redemption_price_per_point: Decimal::new(75, 4),
            points_validity_days: days,
        };
        ledger
            .execute_blocking(Command::SetContract {
                key: IdemKey::operator(format!("contract-{}", p.0)),
                contract,
            })
            .expect("contract");
    }
    for m in [M1, M2] {
        ledger
            .execute_blocking(Command::Enrol {
                key: IdemKey::operator(format!("enrol-{}", m.0)),
                member: m,
            })
            .expect("enrol");
    }
    Fixture { ledger, _dir: dir }
}

impl Fixture {
    fn ok(&self, cmd: Command) -> Receipt {
        self.ledger.execute_blocking(cmd).expect("command accepted")
    }

    /// Runs `cmd`, expects a rejection, and checks nothing changed.
    fn rejected(&self, cmd: Command) -> Rejection {
        let before = self.snapshot_balances();
        let r = match self.ledger.execute_blocking(cmd) {
            Err(LedgerError::Rejected(r)) => r,
            other => panic!("expected a rejection, got {other:?}"),
        };
        assert_eq!(
            self.snapshot_balances(),
            before,
            "a rejected command changes nothing"
        );
        r
    }

    fn snapshot_balances(&self) -> Vec<(Option<MemberBalance>, Points)> {
        [M1, M2]
            .iter()
            .map(|m| {
                (
                    self.ledger.balance(*m).expect("read"),
                    self.ledger
                        .account_balance(AccountId::PartnerIssuance(AIR))
                        .expect("read")
                        .points,
                )
            })
            .collect()
    }

    fn available(&self, m: MemberId) -> i64 {
        self.ledger
            .balance(m)
            .expect("read")
            .expect("enrolled")
            .available
            .0
    }

    fn earn(&self, reference: &str, m: MemberId, p: PartnerId, points: i64) -> Receipt {
        self.ok(Command::Earn {
            key: IdemKey::partner(p, reference),
            member: m,
            partner: p,
            points: Points(points),
            bonus: Points(0),
            awards: vec![],
            guard: None,
            purchase: None,
        })
    }

    fn audit(&self) -> audit::AuditReport {
        audit::audit(&self.ledger.read_snapshot().expect("snapshot")).expect("audit passes")
    }
}

#[test]
fn earn_credits_member_debits_issuance_and_prices_the_points() {
    let f = fixture(Policy::default());
    let r = f.ok(Command::Earn {
        key: IdemKey::partner(AIR, "flight-1"),
        member: M1,
        partner: AIR,
        points: Points(1000),
        bonus: Points(250),
        awards: vec![],
        guard: None,
        purchase: None,
    });
    assert_eq!(f.available(M1), 1250);
    let issuance = f
        .ledger
        .account_balance(AccountId::PartnerIssuance(AIR))
        .expect("read");
    assert_eq!(issuance.points, Points(-1000));
    assert_eq!(
        issuance.money,
        vec![("EUR".parse().expect("EUR"), Decimal::new(1000, 2))],
        "partner owes 1000 x 0.01 EUR"
    );
    assert_eq!(
        f.ledger
            .account_balance(AccountId::Promotions)
            .expect("read")
            .points,
        Points(-250)
    );
    assert_eq!(r.tx.imbalance(), (0, vec![]));
    let TxKind::Earn {
        price_per_point, ..
    } = r.tx.kind
    else {
        panic!("earn kind")
    };
    assert_eq!(price_per_point.amount, Decimal::new(1, 2));
    assert_eq!(
        (r.tx.lots.len(), r.tx.lots[0].delta),
        (1, Points(1250)),
        "the partner's points and the bonus share one lot"
    );
    f.audit();
}

#[test]
fn earn_rejects_zero_negative_unknown_member_unknown_partner_and_foreign_scope() {
    let f = fixture(Policy::default());
    let earn = |p: i64, m: MemberId, partner: PartnerId, scope: PartnerId| Command::Earn {
        key: IdemKey::partner(scope, format!("x{p}{}", m.0)),
        member: m,
        partner,
        points: Points(p),
        bonus: Points(0),
        awards: vec![],
        guard: None,
        purchase: None,
    };
    assert_eq!(
        f.rejected(earn(0, M1, AIR, AIR)),
        Rejection::PointsNotPositive { points: Points(0) }
    );
    assert_eq!(
        f.rejected(earn(-5, M1, AIR, AIR)),
        Rejection::PointsNotPositive { points: Points(-5) }
    );
    assert_eq!(
        f.rejected(earn(5, MemberId(99), AIR, AIR)),
        Rejection::UnknownMember(MemberId(99))
    );
    assert_eq!(
        f.rejected(earn(5, M1, PartnerId(9), PartnerId(9))),
        Rejection::UnknownPartner(PartnerId(9))
    );
    assert!(
        f.rejected(earn(5, M1, AIR, FUEL)) == Rejection::ScopeMismatch { partner: AIR },
        "fuel's key cannot earn as the airline"
    );
}

#[test]
fn burn_takes_points_and_records_the_reimbursement_owed_to_the_partner() {
    let f = fixture(Policy::default());
    f.earn("e", M1, AIR, 1000);
    f.ok(Command::Burn {
        key: IdemKey::partner(FUEL, "pump-1"),
        member: M1,
        partner: FUEL,
        points: Points(400),
    });
    assert_eq!(f.available(M1), 600);
    let redemption = f
        .ledger
        .account_balance(AccountId::PartnerRedemption(FUEL))
        .expect("read");
    assert_eq!(redemption.points, Points(400));
    assert_eq!(
        redemption.money,
        vec![("EUR".parse().expect("EUR"), Decimal::new(-3, 0))],
        "programme owes 400 x 0.0075 EUR"
    );
    let r = f.rejected(Command::Burn {
        key: IdemKey::partner(FUEL, "pump-2"),
        member: M1,
        partner: FUEL,
        points: Points(601),
    });
    assert_eq!(
        r,
        Rejection::InsufficientPoints {
            available: Points(600),
            requested: Points(601)
        }
    );
    f.audit();
}

#[test]
fn burn_consumes_lots_soonest_expiry_first() {
    let f = fixture(Policy::default());
    let air = f.earn("air", M1, AIR, 100); // expires in 730 days
    let fuel = f.earn("fuel", M1, FUEL, 100); // expires in 30 days
    let burn = f.ok(Command::Burn {
        key: IdemKey::partner(AIR, "b"),
        member: M1,
        partner: AIR,
        points: Points(150),
    });
    let consumed: Vec<(TxId, i64)> = burn.tx.lots.iter().map(|c| (c.lot.tx, c.delta.0)).collect();
    assert_eq!(consumed, vec![(fuel.tx.id, -100), (air.tx.id, -50)]);
    f.audit();
}

#[test]
fn hold_reserves_points_and_partial_capture_releases_the_rest() {
    let f = fixture(Policy::default());
    f.earn("e", M1, AIR, 1000);
    let hold = f.ok(Command::Hold {
        key: IdemKey::partner(AIR, "booking"),
        member: M1,
        partner: AIR,
        points: Points(700),
        timeout_ms: 3_600_000,
    });
    let b = f.ledger.balance(M1).expect("read").expect("member");
    assert_eq!((b.posted.0, b.pending.0, b.available.0), (1000, 700, 300));
    let over = Command::Burn {
        key: IdemKey::partner(FUEL, "pump"),
        member: M1,
        partner: FUEL,
        points: Points(301),
    };
    assert!(
        matches!(f.rejected(over), Rejection::InsufficientPoints { .. }),
        "held points are not available"
    );
    let capture = f.ok(Command::Capture {
        key: IdemKey::partner(AIR, "cap"),
        hold: hold.tx.id,
        points: Some(Points(500)),
    });
    let TxKind::Burn {
        released,
        hold: Some(h),
        ..
    } = capture.tx.kind
    else {
        panic!("a capture is a burn")
    };
    assert_eq!((released, h), (Points(200), hold.tx.id));
    let b = f.ledger.balance(M1).expect("read").expect("member");
    assert_eq!((b.posted.0, b.pending.0, b.available.0), (500, 0, 500));
    f.audit();
}

#[test]
fn capture_above_hold_double_capture_and_void_after_capture_are_rejected() {
    let f = fixture(Policy::default());
    f.earn("e", M1, AIR, 1000);
    let hold = f
        .ok(Command::Hold {
            key: IdemKey::partner(AIR, "h"),
            member: M1,
            partner: AIR,
            points: Points(100),
            timeout_ms: 60_000,
        })
        .tx
        .id;
    let cap = |r: &str, p: Option<i64>| Command::Capture {
        key: IdemKey::partner(AIR, r),
        hold,
        points: p.map(Points),
    };
    assert_eq!(
        f.rejected(cap("c0", Some(101))),
        Rejection::CaptureExceedsHold {
            held: Points(100),
            requested: Points(101)
        }
    );
    f.ok(cap("c1", None));
    assert_eq!(f.rejected(cap("c2", None)), Rejection::HoldNotOpen { hold });
    assert_eq!(
        f.rejected(Command::Void {
            key: IdemKey::partner(AIR, "v"),
            hold
        }),
        Rejection::HoldNotOpen { hold }
    );
    assert_eq!(f.available(M1), 900);
    f.audit();
}

#[test]
fn another_partners_hold_answers_as_unknown() {
    let f = fixture(Policy::default());
    f.earn("e", M1, AIR, 1000);
    let hold = f
        .ok(Command::Hold {
            key: IdemKey::partner(AIR, "h"),
            member: M1,
            partner: AIR,
            points: Points(100),
            timeout_ms: 60_000,
        })
        .tx
        .id;
    assert_eq!(
        f.rejected(Command::Capture {
            key: IdemKey::partner(FUEL, "steal"),
            hold,
            points: None
        }),
        Rejection::UnknownTransaction(hold)
    );
    assert_eq!(
        f.rejected(Command::Void {
            key: IdemKey::partner(FUEL, "steal-v"),
            hold
        }),
        Rejection::UnknownTransaction(hold)
    );
}

#[test]
fn void_releases_a_hold_and_a_hold_voids_itself_at_its_timeout() {
    let f = fixture(Policy::default());
    f.earn("e", M1, AIR, 1000);
    let h1 = f
        .ok(Command::Hold {
            key: IdemKey::partner(AIR, "h1"),
            member: M1,
            partner: AIR,
            points: Points(100),
            timeout_ms: 60_000,
        })
        .tx
        .id;
    f.ok(Command::Void {
        key: IdemKey::partner(AIR, "v1"),
        hold: h1,
    });
    assert_eq!(f.available(M1), 1000);
    let h2 = f
        .ok(Command::Hold {
            key: IdemKey::partner(AIR, "h2"),
            member: M1,
            partner: AIR,
            points: Points(300),
            timeout_ms: 50,
        })
        .tx
        .id;
    assert_eq!(f.available(M1), 700);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while f.available(M1) != 1000 {
        assert!(
            std::time::Instant::now() < deadline,
            "hold {h2} did not expire"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let expiry = f
        .ledger
        .transaction_by_key(&IdemKey {
            scope: Scope::System,
            reference: format!("hold-timeout/{h2}"),
        })
        .expect("read")
        .expect("expiry journaled");
    assert!(
        matches!(expiry.kind, TxKind::Void { end: ledger::core::model::HoldEnd::Expired, hold, .. } if hold == h2)
    );
    f.audit();
}

#[test]
fn reversal_of_an_earn_partial_then_full_and_never_above_the_original() {
    let f = fixture(Policy::default());
    let earn = f
        .ok(Command::Earn {
            key: IdemKey::partner(AIR, "e"),
            member: M1,
            partner: AIR,
            points: Points(1000),
            bonus: Points(100),
            awards: vec![],
            guard: None,
            purchase: None,
        })
        .tx
        .id;
    let r1 = f.ok(Command::Reverse {
        key: IdemKey::partner(AIR, "r1"),
        original: earn,
        points: Some(Points(400)),
    });
    assert!(matches!(
        r1.tx.kind,
        TxKind::Reversal {
            points: Points(400),
            bonus: Points(40),
            clawback: Points(0),
            ..
        }
    ));
    assert_eq!(f.available(M1), 660);
    let over = Command::Reverse {
        key: IdemKey::partner(AIR, "r2"),
        original: earn,
        points: Some(Points(601)),
    };
    assert_eq!(
        f.rejected(over),
        Rejection::ReversalExceedsOriginal {
            remaining: Points(600),
            requested: Points(601)
        }
    );
    f.ok(Command::Reverse {
        key: IdemKey::partner(AIR, "r3"),
        original: earn,
        points: None,
    });
    assert_eq!(f.available(M1), 0);
    assert_eq!(
        f.ledger
            .account_balance(AccountId::PartnerIssuance(AIR))
            .expect("read")
            .money,
        vec![("EUR".parse().expect("EUR"), Decimal::ZERO)]
    );
    assert!(matches!(
        f.rejected(Command::Reverse {
            key: IdemKey::partner(AIR, "r4"),
            original: earn,
            points: None
        }),
        Rejection::ReversalExceedsOriginal { .. }
    ));
    f.audit();
}

#[test]
fn reversal_of_spent_points_is_rejected_under_the_reject_policy() {
    let f = fixture(Policy::default());
    let earn = f.earn("e", M1, AIR, 500).tx.id;
    f.ok(Command::Burn {
        key: IdemKey::partner(FUEL, "b"),
        member: M1,
        partner: FUEL,
        points: Points(400),
    });
    let r = f.rejected(Command::Reverse {
        key: IdemKey::partner(AIR, "r"),
        original: earn,
        points: None,
    });
    assert_eq!(
        r,
        Rejection::ClawbackRejected {
            shortfall: Points(400)
        }
    );
}

#[test]
fn reversal_of_spent_points_claws_back_below_zero_when_policy_allows_and_says_so() {
    let f = fixture(Policy {
        clawback: ClawbackPolicy::AllowNegative,
        ..Policy::default()
    });
    let earn = f.earn("e", M1, AIR, 500).tx.id;
    f.ok(Command::Burn {
        key: IdemKey::partner(FUEL, "b"),
        member: M1,
        partner: FUEL,
        points: Points(400),
    });
    let r = f.ok(Command::Reverse {
        key: IdemKey::partner(AIR, "r"),
        original: earn,
        points: None,
    });
    assert!(
        matches!(
            r.tx.kind,
            TxKind::Reversal {
                clawback: Points(400),
                ..
            }
        ),
        "the receipt states the clawback: {:?}",
        r.tx.kind
    );
    assert_eq!(
        f.ledger.balance(M1).expect("read").expect("member").posted,
        Points(-400)
    );
    f.earn("e2", M1, AIR, 1000);
    let b = f.ledger.balance(M1).expect("read").expect("member");
    assert_eq!(b.posted, Points(600), "new earnings repay the debt first");
    f.audit();
}

#[test]
fn reversal_of_a_burn_gives_points_back_into_their_original_lots() {
    let f = fixture(Policy::default());
    let earn = f.earn("e", M1, FUEL, 300).tx.id;
    let burn = f
        .ok(Command::Burn {
            key: IdemKey::partner(AIR, "b"),
            member: M1,
            partner: AIR,
            points: Points(200),
        })
        .tx
        .id;
    let r = f.ok(Command::Reverse {
        key: IdemKey::partner(AIR, "refund"),
        original: burn,
        points: Some(Points(50)),
    });
    assert_eq!(
        r.tx.lots
            .iter()
            .map(|c| (c.lot.tx, c.delta.0))
            .collect::<Vec<_>>(),
        vec![(earn, 50)]
    );
    assert_eq!(f.available(M1), 150);
    assert_eq!(
        f.rejected(Command::Reverse {
            key: IdemKey::partner(FUEL, "r"),
            original: burn,
            points: None
        }),
        Rejection::UnknownTransaction(burn),
        "fuel cannot see the airline's burn"
    );
    f.audit();
}

#[test]
fn transfer_moves_points_with_their_expiry_and_never_overdraws() {
    let f = fixture(Policy::default());
    f.earn("e", M1, FUEL, 300);
    let t = f.ok(Command::Transfer {
        key: IdemKey::operator("t"),
        from: M1,
        to: M2,
        points: Points(120),
        consent: None,
    });
    assert_eq!((f.available(M1), f.available(M2)), (180, 120));
    let given: Vec<_> =
        t.tx.lots
            .iter()
            .filter(|c| c.member == M2)
            .map(|c| c.expires_at)
            .collect();
    let taken: Vec<_> =
        t.tx.lots
            .iter()
            .filter(|c| c.member == M1)
            .map(|c| c.expires_at)
            .collect();
    assert_eq!(given, taken, "expiry dates travel with the points");
    assert!(matches!(
        f.rejected(Command::Transfer {
            key: IdemKey::operator("t2"),
            from: M1,
            to: M2,
            points: Points(181),
            consent: None
        }),
        Rejection::InsufficientPoints { .. }
    ));
    assert!(matches!(
        f.rejected(Command::Transfer {
            key: IdemKey::operator("t3"),
            from: M1,
            to: M1,
            points: Points(1),
            consent: None
        }),
        Rejection::TransferToSelf
    ));
    assert_eq!(
        f.rejected(Command::Transfer {
            key: IdemKey::operator("t4"),
            from: M1,
            to: MemberId(77),
            points: Points(1),
            consent: None
        }),
        Rejection::UnknownMember(MemberId(77))
    );
    f.audit();
}

#[test]
fn adjustment_needs_an_operator_and_a_reason() {
    let f = fixture(Policy::default());
    let adj = |key: IdemKey, p: i64, reason: &str| Command::Adjust {
        key,
        member: M1,
        points: Points(p),
        reason: reason.into(),
        operator: "ops-anna".into(),
        qualifies: false,
        corrects: None,
    };
    f.ok(adj(IdemKey::operator("a1"), 75, "goodwill: lost card"));
    assert_eq!(
        f.ledger
            .account_balance(AccountId::Adjustments)
            .expect("read")
            .points,
        Points(-75)
    );
    assert_eq!(
        f.rejected(adj(IdemKey::operator("a2"), 5, "  ")),
        Rejection::AdjustmentReason { len_max: 2_000 }
    );
    assert_eq!(
        f.rejected(adj(IdemKey::partner(AIR, "a3"), 5, "why")),
        Rejection::NeedsOperator
    );
    // `i64::MIN` has no positive counterpart: its absolute value once wrapped and let it past
    // the limit, leaving the member at -9,223,372,036,854,775,807.
    for extreme in [i64::MIN, i64::MIN + 1, i64::MAX] {
        assert!(matches!(
            f.rejected(adj(
                IdemKey::operator(format!("x{extreme}")),
                extreme,
                "extreme"
            )),
            Rejection::AdjustmentOutOfRange { .. }
        ));
    }
    assert!(matches!(
        f.rejected(adj(IdemKey::operator("a4"), -76, "too much")),
        Rejection::InsufficientPoints { .. }
    ));
    f.ok(adj(IdemKey::operator("a5"), -75, "reverse goodwill"));
    assert_eq!(f.available(M1), 0);
    f.audit();
}

#[test]
fn a_retry_returns_the_original_receipt_and_a_changed_retry_is_a_conflict() {
    let f = fixture(Policy::default());
    let first = f.earn("same-ref", M1, AIR, 10);
    let again = f.earn("same-ref", M1, AIR, 10);
    assert!(again.replayed && !first.replayed);
    assert_eq!(again.tx, first.tx);
    assert_eq!(f.available(M1), 10, "applied once");
    let changed = Command::Earn {
        key: IdemKey::partner(AIR, "same-ref"),
        member: M1,
        partner: AIR,
        points: Points(11),
        bonus: Points(0),
        awards: vec![],
        guard: None,
        purchase: None,
    };
    assert_eq!(
        f.rejected(changed),
        Rejection::IdempotencyConflict {
            original: first.tx.id
        }
    );
    let other_partner = f.earn("same-ref", M1, FUEL, 10);
    assert!(!other_partner.replayed, "references are scoped per partner");
}

#[test]
fn a_priced_retry_counts_as_the_same_command_only_under_the_same_pricing() {
    // The digest a retry is judged by (computed by the submitting thread) covers the pricing.
    let f = fixture(Policy::default());
    let earn = || Command::Earn {
        key: IdemKey::partner(AIR, "priced"),
        member: M1,
        partner: AIR,
        points: Points(120),
        bonus: Points(0),
        awards: vec![],
        guard: None,
        purchase: None,
    };
    let pricing = |rate_version: u32| Pricing {
        rate_version,
        quantity: Decimal::new(1200, 1),
        unit: "EUR".into(),
        branch: None,
        category: None,
        points_per_unit: Decimal::ONE,
    };
    let submit = |p: Pricing| {
        f.ledger
            .submit_priced(earn(), Some(p))
            .expect("queued")
            .blocking_recv()
            .expect("answered")
    };
    let first = submit(pricing(3)).expect("accepted");
    assert!(!first.replayed);
    assert_eq!(first.tx.pricing, Some(pricing(3)));
    let again = submit(pricing(3)).expect("a retry under the same pricing");
    assert!(again.replayed);
    assert_eq!(again.tx, first.tx);
    match submit(pricing(4)) {
        Err(LedgerError::Rejected(Rejection::IdempotencyConflict { original })) => {
            assert_eq!(original, first.tx.id)
        }
        other => panic!("a retry under other pricing must conflict, got {other:?}"),
    }
    assert_eq!(
        f.rejected(earn()),
        Rejection::IdempotencyConflict {
            original: first.tx.id
        },
        "nor is the command without its pricing the same"
    );
    assert_eq!(f.available(M1), 120, "applied once");
}

#[test]
fn a_repeat_and_a_changed_repeat_in_the_same_batch_are_a_replay_and_a_conflict() {
    // A long linger gathers all three commands into one batch.
    let f = fixture_with(LedgerConfig {
        committer: CommitterConfig {
            linger: std::time::Duration::from_millis(200),
            ..CommitterConfig::default()
        },
        ..LedgerConfig::default()
    });
    let earn = |points: i64| Command::Earn {
        key: IdemKey::partner(AIR, "twice-in-a-batch"),
        member: M1,
        partner: AIR,
        points: Points(points),
        bonus: Points(0),
        awards: vec![],
        guard: None,
        purchase: None,
    };
    // A fourth, distinct command after them: if it shares the first one's batch, so do the two
    // between (the queue is taken in order).
    let marker = Command::Earn {
        key: IdemKey::partner(AIR, "after-them"),
        member: M2,
        partner: AIR,
        points: Points(1),
        bonus: Points(0),
        awards: vec![],
        guard: None,
        purchase: None,
    };
    let pending: Vec<_> = [earn(10), earn(10), earn(11), marker]
        .into_iter()
        .map(|c| f.ledger.submit(c).expect("queued"))
        .collect();
    let answers: Vec<_> = pending
        .into_iter()
        .map(|p| p.blocking_recv().expect("answered"))
        .collect();
    let first = answers[0].as_ref().expect("first accepted");
    let again = answers[1].as_ref().expect("repeat accepted");
    assert!(!first.replayed && again.replayed);
    assert_eq!(again.tx, first.tx);
    let marker = answers[3].as_ref().expect("marker accepted");
    assert_eq!(
        marker.tx.id.seq(),
        first.tx.id.seq(),
        "the test needs all four in one batch"
    );
    match &answers[2] {
        Err(LedgerError::Rejected(Rejection::IdempotencyConflict { original })) => {
            assert_eq!(*original, first.tx.id)
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(f.available(M1), 10, "applied once");
    assert_eq!(
        f.ledger
            .transaction_by_key(&IdemKey::partner(AIR, "twice-in-a-batch"))
            .expect("read")
            .expect("found by key"),
        *first.tx
    );
    f.audit();
}

#[test]
fn concurrent_burns_on_one_member_never_take_it_below_zero() {
    let f = fixture(Policy::default());
    f.earn("e", M1, AIR, 1000);
    let ledger = &f.ledger;
    let accepted: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                s.spawn(move || {
                    let pending: Vec<_> = (0..20)
                        .map(|i| {
                            ledger
                                .submit(Command::Burn {
                                    key: IdemKey::partner(FUEL, format!("b{t}-{i}")),
                                    member: M1,
                                    partner: FUEL,
                                    points: Points(10),
                                })
                                .expect("queued")
                        })
                        .collect();
                    pending
                        .into_iter()
                        .map(|p| p.blocking_recv().expect("answer"))
                        .filter(|r| r.is_ok())
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    assert_eq!(accepted, 100, "exactly 1000 / 10 burns fit");
    assert_eq!(f.available(M1), 0);
    f.audit();
}

#[test]
fn statements_page_newest_first_and_balances_are_known_as_of_a_past_time() {
    let f = fixture(Policy::default());
    for i in 0..7 {
        f.earn(&format!("e{i}"), M1, AIR, 10);
    }
    let mid = f
        .ledger
        .transaction_by_key(&IdemKey::partner(AIR, "e3"))
        .expect("read")
        .expect("e3")
        .at;
    std::thread::sleep(std::time::Duration::from_millis(5));
    f.earn("late", M1, AIR, 1000);
    let p1 = f.ledger.statement(M1, None, 4).expect("page 1");
    let p2 = f.ledger.statement(M1, p1.next, 4).expect("page 2");
    let p3 = f.ledger.statement(M1, p2.next, 4).expect("page 3");
    let all: Vec<_> = p1
        .entries
        .iter()
        .chain(&p2.entries)
        .chain(&p3.entries)
        .collect();
    assert_eq!(all.len(), 9, "enrolment plus eight earns");
    assert_eq!(
        (p1.entries.len(), p2.entries.len(), p3.entries.len()),
        (4, 4, 1)
    );
    assert!(p3.next.is_none());
    assert!(all.windows(2).all(|w| w[0].tx > w[1].tx), "newest first");
    assert_eq!(all[0].balance_after, Points(1070));
    assert_eq!(all[0].points, Points(1000));
    let balances: Vec<i64> = all.iter().map(|e| e.balance_after.0).collect();
    assert_eq!(balances, vec![1070, 70, 60, 50, 40, 30, 20, 10, 0]);
    assert_eq!(all[8].kind, "enrol");
    assert_eq!(
        f.ledger
            .balance_as_of(AccountId::Member(M1), Timestamp(0))
            .expect("before enrolment")
            .points,
        Points(0)
    );
    let then = f
        .ledger
        .balance_as_of(AccountId::Member(M1), mid)
        .expect("as of");
    assert!(
        then.points.0 >= 40 && then.points.0 <= 70,
        "as of the 4th earn: {}",
        then.points.0
    );
    let issuance_then = f
        .ledger
        .balance_as_of(AccountId::PartnerIssuance(AIR), mid)
        .expect("as of");
    assert_eq!(
        issuance_then.points.0, -then.points.0,
        "only airline earns so far"
    );
    assert_eq!(
        f.ledger
            .balance_as_of(AccountId::PartnerIssuance(AIR), Timestamp::now())
            .expect("now")
            .points,
        Points(-1070)
    );
}

#[test]
fn commands_queued_back_to_back_in_one_command_batches_see_each_other() {
    // One command per batch, queued back to back: each batch must see the ones before it
    // (replays, conflicts, points already burned, the original of a reversal), however the
    // committer overlaps their commits.
    let f = fixture_with(LedgerConfig {
        committer: CommitterConfig {
            batch_size_max: 1,
            ..CommitterConfig::default()
        },
        ..LedgerConfig::default()
    });
    for round in 0..20 {
        let earn = |points| Command::Earn {
            key: IdemKey::partner(AIR, format!("earn-{round}")),
            member: M1,
            partner: AIR,
            points: Points(points),
            bonus: Points(0),
            awards: vec![],
            guard: None,
            purchase: None,
        };
        let burn = |r: &str, points| Command::Burn {
            key: IdemKey::partner(FUEL, format!("{r}-{round}")),
            member: M1,
            partner: FUEL,
            points: Points(points),
        };
        let e = f.ledger.submit(earn(100)).expect("queued");
        let retry = f.ledger.submit(earn(100)).expect("queued");
        let changed = f.ledger.submit(earn(101)).expect("queued");
        let b1 = f.ledger.submit(burn("b1", 60)).expect("queued");
        let b2 = f.ledger.submit(burn("b2", 41)).expect("queued");
        let first = e.blocking_recv().expect("answer").expect("earn");
        // Queued right behind the earn's batch.
        let rev = f
            .ledger
            .submit(Command::Reverse {
                key: IdemKey::partner(AIR, format!("rev-{round}")),
                original: first.tx.id,
                points: Some(Points(40)),
            })
            .expect("queued");
        let b3 = f.ledger.submit(burn("b3", 1)).expect("queued");

        let retry = retry.blocking_recv().expect("answer").expect("replay");
        assert!(!first.replayed && retry.replayed, "round {round}");
        assert_eq!(retry.tx, first.tx, "the retry replays the original");
        assert!(matches!(
            changed.blocking_recv().expect("answer"),
            Err(LedgerError::Rejected(Rejection::IdempotencyConflict { original })) if original == first.tx.id
        ));
        let b1 = b1.blocking_recv().expect("answer").expect("burn of 60");
        assert_eq!(b1.tx.points_to(AccountId::Member(M1)), Points(-60));
        assert!(
            matches!(
                b2.blocking_recv().expect("answer"),
                Err(LedgerError::Rejected(Rejection::InsufficientPoints { .. }))
            ),
            "round {round}: 41 more than the 40 left"
        );
        let rev = rev
            .blocking_recv()
            .expect("answer")
            .expect("reversal of 40");
        assert_eq!(rev.tx.points_to(AccountId::Member(M1)), Points(-40));
        assert!(matches!(
            b3.blocking_recv().expect("answer"),
            Err(LedgerError::Rejected(Rejection::InsufficientPoints { .. }))
        ));
        assert_eq!(f.available(M1), 0);
    }
    f.audit();
}

#[test]
fn after_a_restart_retries_and_reversals_find_their_originals_in_the_journal() {
    // The writer keeps recent batches in memory; after a reopen they are gone and the
    // originals must come from the journal's blocks.
    let f = fixture(Policy::default());
    let first = f.earn("before-restart", M1, AIR, 300);
    let Fixture { ledger, _dir: dir } = f;
    ledger.shutdown();
    let store = EmbeddedStore::open(dir.path()).expect("reopen store");
    let f = Fixture {
        ledger: Ledger::open(store, LedgerConfig::default()).expect("reopen ledger"),
        _dir: dir,
    };
    let again = f.earn("before-restart", M1, AIR, 300);
    assert!(again.replayed);
    assert_eq!(again.tx, first.tx);
    let rev = f.ok(Command::Reverse {
        key: IdemKey::partner(AIR, "rev-after-restart"),
        original: first.tx.id,
        points: Some(Points(100)),
    });
    assert_eq!(rev.tx.points_to(AccountId::Member(M1)), Points(-100));
    assert_eq!(f.available(M1), 200);
    f.audit();
}

#[test]
fn a_transaction_committed_moments_ago_is_found_by_key_in_memory_as_in_the_store() {
    let f = fixture(Policy::default());
    let receipt = f.earn("fresh", M1, AIR, 10);
    let key = IdemKey::partner(AIR, "fresh");
    let stored = f
        .ledger
        .transaction_by_key(&key)
        .expect("read")
        .expect("found");
    let in_memory = f.ledger.recent_transaction_by_key(&key).expect("in memory");
    assert_eq!(in_memory, stored);
    assert_eq!(in_memory, *receipt.tx);
    // Only that key: another partner's same reference, and a reference never used, are not.
    assert_eq!(
        f.ledger
            .recent_transaction_by_key(&IdemKey::partner(FUEL, "fresh")),
        None
    );
    assert_eq!(
        f.ledger
            .recent_transaction_by_key(&IdemKey::partner(AIR, "never")),
        None
    );
    // A refused command leaves no key behind.
    let refused = IdemKey::partner(FUEL, "too-much");
    f.rejected(Command::Burn {
        key: refused.clone(),
        member: M1,
        partner: FUEL,
        points: Points(1_000_000),
    });
    assert_eq!(f.ledger.recent_transaction_by_key(&refused), None);
}
