//! A member's lifecycle on both write paths: suspension stops earning and burning until
//! reinstated; closing keeps or forfeits the balance; a merge moves points with their expiry,
//! open holds and tier qualification to the survivor, and the audit passes after each.

use super::expiry::{burn, posted, tier_of};
use super::{rejected, seed};
use ledger::core::model::{Command, IdemKey};
use ledger::core::state::Standing;
use ledger::core::tiers::{Basis, TierLevel, TierPolicy, Window};
use ledger::core::types::{AccountId, ChangeNote, MemberId, PartnerId, Points};
use ledger::store::{Store, TxnStore};
use ledger::{ClusterConfig, Ledger, LedgerConfig, Rejection, TxKind};

/// The lifecycle on the single writer.
pub fn ledger_members_are_suspended_closed_and_merged<S: Store + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let store = open();
    lifecycle(&mut || Ledger::open(store.clone(), LedgerConfig::default()).expect("open ledger"));
}

/// The same on the cluster path.
pub fn cluster_members_are_suspended_closed_and_merged<S: TxnStore + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let store = open();
    lifecycle(&mut || {
        Ledger::open_cluster(
            store.clone(),
            LedgerConfig::default(),
            ClusterConfig::on_shard(6),
        )
        .expect("open ledger in cluster mode")
    });
}

fn note() -> Box<ChangeNote> {
    Box::new(ChangeNote {
        author: "ops@club".into(),
        reason: "duplicate card reported at the desk".into(),
    })
}

fn standing(reference: &str, member: u64, to: Standing, forfeit: bool) -> Command {
    Command::SetStanding {
        key: IdemKey::operator(reference),
        member: MemberId(member),
        standing: to,
        forfeit,
        note: note(),
    }
}

fn earn(reference: &str, member: u64, points: i64) -> Command {
    Command::Earn {
        key: IdemKey::partner(PartnerId(1), reference),
        member: MemberId(member),
        partner: PartnerId(1),
        points: Points(points),
        bonus: Points(0),
        awards: vec![],
        guard: None,
        purchase: None,
    }
}

fn hold(reference: &str, member: u64, points: i64) -> Command {
    Command::Hold {
        key: IdemKey::partner(PartnerId(2), reference),
        member: MemberId(member),
        partner: PartnerId(2),
        points: Points(points),
        timeout_ms: 3_600_000,
    }
}

fn merge(reference: &str, from: u64, into: u64) -> Command {
    Command::Merge {
        key: IdemKey::operator(reference),
        from: MemberId(from),
        into: MemberId(into),
        note: note(),
    }
}

fn standing_of<S: Store + Clone>(l: &Ledger<S>, m: u64) -> Standing {
    l.member_state(MemberId(m))
        .expect("read")
        .expect("member")
        .standing()
}

fn held<S: Store + Clone>(l: &Ledger<S>, m: u64) -> i64 {
    l.balance(MemberId(m))
        .expect("read")
        .expect("member")
        .pending
        .0
}

fn audit<S: Store + Clone>(l: &Ledger<S>) {
    ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
}

fn lifecycle<S: Store + Clone>(open: &mut dyn FnMut() -> Ledger<S>) {
    let l = open();
    seed(&l);
    l.execute_blocking(Command::SetTierPolicy {
        key: IdemKey::operator("tiers"),
        policy: Box::new(TierPolicy {
            levels: vec![TierLevel {
                name: "Silver".into(),
                threshold: 1_000,
            }],
            basis: Basis::Points,
            window: Window::CalendarYear,
            grace_periods: 0,
            partners: vec![],
            categories: vec![],
            time_zone: "UTC".into(),
            note: Default::default(),
        }),
    })
    .expect("tier policy");
    l.execute_blocking(earn("m1-a", 1, 700)).expect("earn");
    l.execute_blocking(earn("m1-b", 1, 500)).expect("earn");
    l.execute_blocking(earn("m2-a", 2, 300)).expect("earn");
    l.execute_blocking(earn("m3-a", 3, 400)).expect("earn");
    assert_eq!((tier_of(&l, 1), tier_of(&l, 2)), (1, 0));

    // Suspension: no earn, burn or hold until reinstated; the balance stays.
    l.execute_blocking(standing("s3", 3, Standing::Suspended, false))
        .expect("suspend");
    for cmd in [
        earn("m3-b", 3, 10),
        burn("m3-burn", 3, 10),
        hold("m3-h", 3, 10),
    ] {
        assert_eq!(
            rejected(l.execute_blocking(cmd)),
            Rejection::MemberNotActive {
                member: MemberId(3),
                standing: "suspended"
            }
        );
    }
    assert_eq!(
        rejected(l.execute_blocking(standing("s3-again", 3, Standing::Suspended, false))),
        Rejection::StandingChange {
            from: "suspended",
            to: "suspended"
        }
    );
    assert_eq!(
        rejected(l.execute_blocking(Command::SetStanding {
            key: IdemKey::operator("no-reason"),
            member: MemberId(3),
            standing: Standing::Active,
            forfeit: false,
            note: Box::new(ChangeNote {
                author: "ops".into(),
                reason: " ".into()
            }),
        })),
        Rejection::NoteMissing
    );
    l.execute_blocking(standing("r3", 3, Standing::Active, false))
        .expect("reinstate");
    l.execute_blocking(earn("m3-c", 3, 100))
        .expect("a reinstated member earns");

    // Closing: not with open holds; forfeiting sends the balance to breakage.
    let h3 = l.execute_blocking(hold("m3-h2", 3, 50)).expect("hold");
    assert_eq!(
        rejected(l.execute_blocking(standing("c3-early", 3, Standing::Closed, true))),
        Rejection::OpenHolds {
            member: MemberId(3),
            held: Points(50)
        }
    );
    l.execute_blocking(Command::Void {
        key: IdemKey::partner(PartnerId(2), "m3-void"),
        hold: h3.tx.id,
    })
    .expect("void");
    let breakage_before = l.account_balance(AccountId::Breakage).expect("read").points;
    let closed = l
        .execute_blocking(standing("c3", 3, Standing::Closed, true))
        .expect("close");
    assert!(
        matches!(closed.tx.kind, TxKind::StandingSet { forfeited, .. } if forfeited == Points(500)),
        "{:?}",
        closed.tx.kind
    );
    assert_eq!(posted(&l, 3), 0);
    assert_eq!(
        l.account_balance(AccountId::Breakage)
            .expect("read")
            .points
            .0
            - breakage_before.0,
        500
    );
    assert_eq!(
        rejected(l.execute_blocking(standing("r3-closed", 3, Standing::Active, false))),
        Rejection::StandingChange {
            from: "closed",
            to: "active"
        }
    );
    audit(&l);

    // A merge: member 1 (1,200 points in two lots, 200 of them held, Silver) into member 2.
    let h1 = l.execute_blocking(hold("m1-h", 1, 200)).expect("hold");
    assert_eq!(
        rejected(l.execute_blocking(merge("self", 2, 2))),
        Rejection::MergeRefused("a member cannot be merged into itself")
    );
    assert_eq!(
        rejected(l.execute_blocking(merge("into-closed", 1, 3))),
        Rejection::MemberNotActive {
            member: MemberId(3),
            standing: "closed"
        }
    );
    let merged = l.execute_blocking(merge("m1-into-2", 1, 2)).expect("merge");
    match &merged.tx.kind {
        TxKind::Merged(m) => {
            assert_eq!((m.points, m.held), (Points(1_200), Points(200)));
            assert_eq!(m.holds, vec![h1.tx.id]);
        }
        other => panic!("expected a merge, got {other:?}"),
    }
    assert_eq!((posted(&l, 1), held(&l, 1)), (0, 0));
    assert_eq!((posted(&l, 2), held(&l, 2)), (1_500, 200));
    assert_eq!(tier_of(&l, 2), 1, "the survivor has the higher tier");
    assert_eq!(standing_of(&l, 1), Standing::Merged(MemberId(2)));
    let lots = l
        .member_state(MemberId(2))
        .expect("read")
        .expect("member")
        .lots;
    assert_eq!(
        lots.iter().map(|x| x.remaining.0).sum::<i64>(),
        1_500,
        "the points came with their lots"
    );
    assert_eq!(lots.len(), 3);
    assert_eq!(
        rejected(l.execute_blocking(earn("m1-after", 1, 10))),
        Rejection::MemberMerged {
            member: MemberId(1),
            into: MemberId(2)
        }
    );
    assert_eq!(
        rejected(l.execute_blocking(merge("again", 1, 2))),
        Rejection::MemberMerged {
            member: MemberId(1),
            into: MemberId(2)
        }
    );
    // The moved hold is the survivor's: its capture burns the survivor's points.
    l.execute_blocking(Command::Capture {
        key: IdemKey::partner(PartnerId(2), "m1-h-capture"),
        hold: h1.tx.id,
        points: None,
    })
    .expect("capture the moved hold");
    assert_eq!((posted(&l, 2), held(&l, 2)), (1_300, 0));
    // A notice posts nothing, is no line of the statement, and happens once per key.
    let notice = |reference: &str, m: u64| Command::Notice {
        key: IdemKey::operator(reference),
        member: MemberId(m),
        notice: ledger::core::model::Notice::Birthday { day: 20_787 },
    };
    let lines = l
        .statement(MemberId(2), None, 50)
        .expect("statement")
        .entries
        .len();
    let n = l
        .execute_blocking(notice("birthday/2/20787", 2))
        .expect("notice");
    assert!(n.tx.postings.is_empty() && n.tx.member_balances.is_empty());
    assert!(
        l.execute_blocking(notice("birthday/2/20787", 2))
            .expect("again")
            .replayed
    );
    assert_eq!(
        l.statement(MemberId(2), None, 50)
            .expect("statement")
            .entries
            .len(),
        lines
    );
    assert_eq!(
        rejected(l.execute_blocking(notice("birthday/1/20787", 1))),
        Rejection::MemberMerged {
            member: MemberId(1),
            into: MemberId(2)
        }
    );
    audit(&l);
    l.shutdown();

    // Everything survives a restart.
    let l = open();
    assert_eq!(standing_of(&l, 1), Standing::Merged(MemberId(2)));
    assert_eq!(standing_of(&l, 3), Standing::Closed);
    assert_eq!((posted(&l, 2), tier_of(&l, 2)), (1_300, 1));
    l.execute_blocking(earn("m2-after", 2, 5))
        .expect("the survivor earns");
    audit(&l);
    l.shutdown();
}
