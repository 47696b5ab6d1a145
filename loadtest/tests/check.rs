//! The post-run check passes on a real run and fails when the ledger's answer is altered: a
//! dropped acknowledged command, a different receipt, a duplicate, a wrong total.

use loadtest::verify::{check, OwnGateway};
use loadtest::{run, Mode, Options};
use std::time::Duration;

#[test]
fn the_post_run_check_passes_on_a_real_run_and_fails_on_each_kind_of_loss() {
    let gw = OwnGateway::start(300, 8192).expect("gateway starts");
    let outcome = run(Options {
        target: Some(gw.base.clone()),
        credentials: Some(gw.credentials.clone()),
        mode: Mode::Closed { connections: 8 },
        duration: Duration::from_secs(2),
        members: 300,
        progress: false,
        verify: false,
        ..Options::default()
    })
    .expect("load runs");
    let rec = outcome.recorder;
    assert!(rec.acks.len() > 50, "{} acknowledged", rec.acks.len());
    let (journal, audit) = gw.stop_and_read().expect("store reads");
    let owed = audit.expect("audit passes").points_outstanding;

    let v = check(&rec, &journal, owed);
    assert!(v.failures.is_empty(), "{:?}", v.failures);
    assert_eq!(v.acknowledged, rec.acks.len());
    assert_eq!(v.outstanding_expected_delta, owed);

    // One acknowledged command missing from what the ledger returns.
    let victim = rec.acks[rec.acks.len() / 2].clone();
    let mut dropped = journal.clone();
    dropped.remove(&(victim.partner, victim.reference.clone()));
    let v = check(&rec, &dropped, owed - victim.member_delta);
    assert!(
        v.failures
            .iter()
            .any(|f| f.contains(&victim.reference) && f.contains("is not in the ledger")),
        "{:?}",
        v.failures
    );
    if victim.member_delta != 0 {
        assert!(
            v.failures.iter().any(|f| f.starts_with("points owed")),
            "{:?}",
            v.failures
        );
    }

    // The ledger names a different transaction than the receipt did.
    let mut changed = journal.clone();
    let f = changed
        .get_mut(&(victim.partner, victim.reference.clone()))
        .unwrap();
    f.transaction_id.push('9');
    let v = check(&rec, &changed, owed);
    assert!(
        v.failures.iter().any(|x| x.contains("ledger has")),
        "{:?}",
        v.failures
    );

    // The command applied twice.
    let mut twice = journal.clone();
    twice
        .get_mut(&(victim.partner, victim.reference.clone()))
        .unwrap()
        .copies = 2;
    let v = check(&rec, &twice, owed);
    assert!(
        v.failures.iter().any(|x| x.contains("applied 2 times")),
        "{:?}",
        v.failures
    );

    // Members are owed one point more than the acknowledged commands add up to.
    let v = check(&rec, &journal, owed + 1);
    assert!(
        v.failures.iter().any(|x| x.starts_with("points owed")),
        "{:?}",
        v.failures
    );
}
