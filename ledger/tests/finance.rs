//! The finance reports against values worked out by hand, on both write paths: a small
//! coalition over three months (an airline and a fuel partner, two members), with an earn
//! reversal, a burn, an expiry, an adjustment naming what it corrects, and two closed periods.
//!
//! Partner 1 bills EUR 0.01 a point and reimburses 0.008, points valid 60 days; partner 2 bills
//! 0.02, reimburses 0.005, points never expire.
//!
//! | date (UTC) | what | members | p1 issuance | p2 issuance | p2 redemption | float |
//! |---|---|---|---|---|---|---|
//! | 10 Jan | m1 earns 1,000 at p1; m2 earns 500 at p2 | 1,500 | -1,000 / +10.00 | -500 / +10.00 | | -20.00 |
//! | 5 Feb | m1 burns 300 at p2 | 1,200 | | | +300 / -1.50 | -18.50 |
//! | 5 Feb | m2 earns 200 at p1; 50 of it reversed | 1,350 | -1,150 / +11.50 | | | -20.00 |
//! | 12 Mar | m1's January lot (700 left) expires | 650 | | | | |
//! | 20 Mar | m2 credited 25, correcting the reversal | 675 | | | | |

use chrono_tz::Tz;
use ledger::finance::{self, book::Book, reports};
use ledger::store::{EmbeddedStore, Snapshot, Store};
use ledger::*;
use rust_decimal::Decimal;
use std::sync::atomic::{AtomicI64, Ordering};

mod support;

const DAY: i64 = 86_400_000;

/// 2026-01-01T00:00:00Z.
const JAN_1: i64 = 1_767_225_600_000;

fn eur(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

struct Run {
    dir: tempfile::TempDir,
    feb_earn: TxId,
    burn_at: Timestamp,
    jan_close: Timestamp,
    late: Transaction,
}

fn scenario(cluster: bool, offset: &'static AtomicI64) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let at = |t: i64| offset.store(t - Timestamp::now().0, Ordering::SeqCst);
    at(JAN_1 + 9 * DAY);
    let config = LedgerConfig {
        committer: CommitterConfig {
            clock: Clock::shifted(offset),
            ..CommitterConfig::default()
        },
        ..LedgerConfig::default()
    };
    let store = EmbeddedStore::open(dir.path()).expect("store");
    let l = if cluster {
        Ledger::open_cluster(store, config, ClusterConfig::on_shard(2))
    } else {
        Ledger::open(store, config)
    }
    .expect("ledger");
    let run = |cmd: Command| l.execute_blocking(cmd).expect("command").tx;
    for (p, issue, redeem, days) in [(1, 1, 8, Some(60)), (2, 2, 5, None)] {
        run(support::contract(
            p,
            Decimal::new(issue, 2),
            Decimal::new(redeem, 3),
            days,
        ));
    }
    // Member m earns at partner p.
    let earn = |m: u64, p: u32, points: i64, r: &str| support::earn(p, m, points, r);
    at(JAN_1 + 9 * DAY + 3_600_000);
    for m in 1..=2 {
        run(Command::Enrol {
            key: IdemKey::operator(format!("m{m}")),
            member: MemberId(m),
        });
    }
    run(earn(1, 1, 1_000, "j1"));
    run(earn(2, 2, 500, "j2"));
    at(JAN_1 + 35 * DAY);
    let burn = run(Command::Burn {
        key: IdemKey::partner(PartnerId(2), "f1"),
        member: MemberId(1),
        partner: PartnerId(2),
        points: Points(300),
    });
    at(JAN_1 + 35 * DAY + 3_600_000);
    let feb = run(earn(2, 1, 200, "f2"));
    run(Command::Reverse {
        key: IdemKey::partner(PartnerId(1), "f2-back"),
        original: feb.id,
        points: Some(Points(50)),
    });
    // Close January in February.
    at(JAN_1 + 36 * DAY);
    let jan_close = Timestamp(JAN_1 + 31 * DAY);
    run(Command::ClosePeriod {
        key: IdemKey::operator("close-2026-01"),
        period: "2026-01".into(),
        through: jan_close,
    });
    // March: m1's January lot expires (10 Jan + 60 days); the ledger posts it itself.
    at(JAN_1 + 70 * DAY);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while l.balance(MemberId(1)).expect("balance").map(|b| b.posted) != Some(Points(0)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the lot never expired"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    at(JAN_1 + 78 * DAY);
    run(Command::Adjust {
        key: IdemKey::operator("goodwill"),
        member: MemberId(2),
        points: Points(25),
        reason: "reversal was wrong".into(),
        operator: "finance@example".into(),
        qualifies: false,
        corrects: Some(feb.id),
    });
    // Close February; a period not over, or closed already, is refused.
    let feb_close = Timestamp(JAN_1 + 59 * DAY);
    let refused = |cmd: Command| l.execute_blocking(cmd).expect_err("refused");
    assert!(matches!(
        refused(Command::ClosePeriod {
            key: IdemKey::operator("close-2026-03"),
            period: "2026-03".into(),
            through: Timestamp(JAN_1 + 90 * DAY),
        }),
        LedgerError::Rejected(Rejection::PeriodNotOver { .. })
    ));
    run(Command::ClosePeriod {
        key: IdemKey::operator("close-2026-02"),
        period: "2026-02".into(),
        through: feb_close,
    });
    assert!(matches!(
        refused(Command::ClosePeriod {
            key: IdemKey::operator("close-2026-01-again"),
            period: "2026-01".into(),
            through: jan_close,
        }),
        LedgerError::Rejected(Rejection::PeriodClosed { .. })
    ));
    // A correction cannot name a later transaction.
    assert!(matches!(
        refused(Command::Adjust {
            key: IdemKey::operator("odd"),
            member: MemberId(2),
            points: Points(1),
            reason: "x".into(),
            operator: "y".into(),
            qualifies: false,
            corrects: Some(TxId::new(u64::MAX >> 17, 0)),
        }),
        LedgerError::Rejected(Rejection::CorrectsLater { .. })
    ));
    // A writer whose clock is back in February still dates nothing inside a closed period.
    at(JAN_1 + 40 * DAY);
    let late = run(Command::Enrol {
        key: IdemKey::operator("m3"),
        member: MemberId(3),
    });
    assert!(
        late.at >= feb_close,
        "dated {} inside a closed period",
        late.at.0
    );
    // A system account as of an instant inside a day, on either path (the cluster path from
    // the finance book, not a replay of the whole journal).
    let b = l
        .balance_as_of(AccountId::PartnerIssuance(PartnerId(1)), burn.at)
        .expect("as of");
    assert_eq!(b.points, Points(-1_000));
    assert_eq!(b.money, vec![("EUR".parse().expect("EUR"), eur(1_000))]);
    l.shutdown();
    Run {
        dir,
        feb_earn: feb.id,
        burn_at: burn.at,
        jan_close,
        late: (*late).clone(),
    }
}

fn line<'a>(tb: &'a reports::TrialBalance, account: &str) -> &'a reports::TrialLine {
    tb.lines
        .iter()
        .find(|l| l.account == account)
        .unwrap_or_else(|| panic!("no line {account} in {tb:?}"))
}

fn money(l: &reports::TrialLine) -> Decimal {
    l.money.get("EUR").copied().unwrap_or_default()
}

fn check(run: &Run) {
    let store = EmbeddedStore::open(run.dir.path()).expect("store");
    let snap = store.snapshot().expect("snapshot");
    let f = finance::Finance::new(Tz::UTC);
    let book = f.book_at(&snap).expect("book");
    let overrides = finance::overrides(&snap).expect("overrides");

    // Trial balance at the end of January, at the burn (inside a day) and now.
    let jan = reports::trial_balance(&book, &snap, Timestamp(JAN_1 + 31 * DAY - 1)).expect("tb");
    assert_eq!(line(&jan, "members").points, Decimal::from(1_500));
    assert_eq!(
        line(&jan, "partner/1/issuance").points,
        Decimal::from(-1_000)
    );
    assert_eq!(money(line(&jan, "partner/1/issuance")), eur(1_000));
    assert_eq!(money(line(&jan, "partner/2/issuance")), eur(1_000));
    assert_eq!(money(line(&jan, "programme/float")), eur(-2_000));
    let at_burn = reports::trial_balance(&book, &snap, run.burn_at).expect("tb");
    assert_eq!(line(&at_burn, "members").points, Decimal::from(1_200));
    assert_eq!(money(line(&at_burn, "programme/float")), eur(-1_850));
    assert!(
        at_burn
            .lines
            .iter()
            .all(|l| l.account != "partner/1/issuance" || l.points == Decimal::from(-1_000)),
        "the February earn, an hour after the burn, is not in it"
    );
    let now = reports::trial_balance(&book, &snap, Timestamp(JAN_1 + 100 * DAY)).expect("tb");
    assert_eq!(line(&now, "members").points, Decimal::from(675));
    assert_eq!(line(&now, "programme/breakage").points, Decimal::from(700));
    assert_eq!(
        line(&now, "programme/adjustments").points,
        Decimal::from(-25)
    );
    assert_eq!(
        line(&now, "partner/1/issuance").points,
        Decimal::from(-1_150)
    );
    assert_eq!(money(line(&now, "partner/1/issuance")), eur(1_150));
    assert_eq!(
        line(&now, "partner/2/redemption").points,
        Decimal::from(300)
    );
    assert_eq!(money(line(&now, "partner/2/redemption")), eur(-150));
    for tb in [&jan, &at_burn, &now] {
        assert_eq!(tb.total_points, Decimal::ZERO);
        assert!(tb.total_money.values().all(|v| v.is_zero()), "{tb:?}");
    }

    // Liability: m2's 500 (p2, January, no expiry), 150 (p1, February, expires 6 April) and
    // 25 (adjustment, March).
    let rate = reports::breakage_at(&book, 202603, 12, &overrides).rate;
    let l = reports::liability(&book, Timestamp(JAN_1 + 100 * DAY), book.buckets(), rate);
    assert_eq!(l.points, 675);
    let groups = |v: &[reports::LiabilityLine]| {
        v.iter()
            .map(|g| (g.group.clone(), g.points))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        groups(&l.by_issuer),
        vec![
            ("adjustments".into(), 25),
            ("partner/1".into(), 150),
            ("partner/2".into(), 500)
        ]
    );
    assert_eq!(
        groups(&l.by_cohort),
        vec![
            ("2026-01".into(), 500),
            ("2026-02".into(), 150),
            ("2026-03".into(), 25)
        ]
    );
    assert_eq!(
        groups(&l.by_expiry),
        vec![("2026-04".into(), 150), ("never".into(), 525)]
    );
    // Issuance value: 150 x 0.01 + 500 x 0.02; redemption value at p2's price (the only
    // partner redeemed at): 675 x 0.005.
    assert_eq!(l.total.issuance_value["EUR"], eur(1_150));
    assert_eq!(l.redemption_price["EUR"], Decimal::new(5, 3));
    assert_eq!(l.total.redemption_value["EUR"], Decimal::new(3_375, 3));

    // Breakage history: January's cohort issued 1,500, redeemed 300 at age 1, expired 700 at
    // age 2; February's issued 200, 50 reversed.
    let jan_cohort = &book.cohorts[&202601];
    assert_eq!(jan_cohort.issued, 1_500);
    assert_eq!(jan_cohort.redeemed.get(&1), Some(&300));
    assert_eq!(jan_cohort.expired.get(&2), Some(&700));
    assert_eq!(
        (book.cohorts[&202602].issued, book.cohorts[&202602].reversed),
        (200, 50)
    );

    // Settlement: January both partners owe 10.00; February p1 owes 2.00 - 0.50, the programme
    // owes p2 1.50. Each ties to the partner's accounts in the trial balance.
    let jan_s = reports::settlements(&book, 202601);
    let feb_s = reports::settlements(&book, 202602);
    assert_eq!(
        (jan_s[0].issued_points, jan_s[0].billed, jan_s[0].net),
        (1_000, eur(1_000), eur(1_000))
    );
    assert_eq!(jan_s[0].direction, "partner-pays");
    let p1 = &feb_s[0];
    assert_eq!(
        (
            p1.issued_points,
            p1.billed,
            p1.issued_reversed_points,
            p1.billed_reversed,
            p1.net
        ),
        (200, eur(200), 50, eur(50), eur(150))
    );
    let p2 = &feb_s[1];
    assert_eq!(
        (p2.redeemed_points, p2.reimbursed, p2.net),
        (300, eur(150), eur(-150))
    );
    assert_eq!(p2.direction, "programme-pays");
    for s in jan_s.iter().chain(&feb_s) {
        assert_eq!(s.net, s.account_movement, "{s:?}");
    }

    // Revenue: January bills 20.00 for 1,500 points, nothing redeemed; February bills 1.50 net
    // for 150 more and 300 are redeemed: 21.50 x 300 / 1,650 = 3.91 (no breakage expected yet).
    let rev = reports::revenue(&book, 202602, 12, &overrides);
    assert_eq!(rev.len(), 1);
    let rows = &rev[0].rows;
    assert_eq!(
        (rows[0].billed, rows[0].recognised, rows[0].closing),
        (eur(2_000), eur(0), eur(2_000))
    );
    assert_eq!(
        (rows[1].billed, rows[1].recognised, rows[1].closing),
        (eur(150), eur(391), eur(1_759))
    );

    // The closes, with their checkpoints; the close report's digest covers it.
    assert_eq!(
        book.closes
            .iter()
            .map(|c| c.period.as_str())
            .collect::<Vec<_>>(),
        vec!["2026-01", "2026-02"]
    );
    assert_eq!(book.closes[0].through, run.jan_close);
    let report =
        reports::closed_period(&book, &snap, &book.closes[0], 12, &overrides).expect("close");
    let checkpoint = report.checkpoint.clone().expect("chained by now");
    assert_eq!(report.settlements.len(), 2);
    assert_eq!(
        line(&report.trial_balance, "members").points,
        Decimal::from(1_500)
    );
    let mut blank = report.clone();
    blank.digest = String::new();
    let json = serde_json::to_vec(&blank).expect("json");
    assert_eq!(
        report.digest,
        chain::hex(&<sha2::Sha256 as sha2::Digest>::digest(&json))
    );
    // The checkpoint verifies against the store.
    let checks = chain::verify(&snap, &[checkpoint.parse().expect("checkpoint")]).expect("verify");
    assert!(checks.findings.is_empty(), "{:?}", checks.findings);
    assert_eq!(checks.checkpoints, 1);

    // The correction names what it corrects, in the journal export.
    let mut out = Vec::new();
    let mut sink = |chunk: Vec<u8>| {
        out.extend(chunk);
        true
    };
    let mut w = finance::export::RowWriter::new(finance::export::Format::Csv, &mut sink);
    let rows = finance::export::export(
        &book,
        &snap,
        finance::export::Dataset::Journal,
        None,
        None,
        &mut w,
    )
    .expect("export");
    w.finish();
    let text = String::from_utf8(out).expect("utf-8");
    assert_eq!(
        rows as usize + 1,
        text.lines().count(),
        "a header and one line per row"
    );
    assert!(
        text.starts_with(
            "tx,at,kind,scope,reference,partner,member,member_points,quantity,unit,detail\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "reversal was wrong (by finance@example; corrects {})",
            run.feb_earn.0
        )),
        "{text}"
    );
    assert!(text.contains(&run.late.id.0.to_string()));
    assert_eq!(Book::months_between(202511, 202602), 3);
}

#[test]
fn the_reports_match_hand_computed_values_on_the_single_path() {
    static OFFSET: AtomicI64 = AtomicI64::new(0);
    check(&scenario(false, &OFFSET));
}

#[test]
fn the_reports_match_hand_computed_values_on_the_cluster_path() {
    static OFFSET: AtomicI64 = AtomicI64::new(0);
    check(&scenario(true, &OFFSET));
}

#[test]
fn months_follow_the_programmes_time_zone() {
    let tehran: Tz = "Asia/Tehran".parse().expect("zone");
    let b = Book::new(tehran);
    // 1 January 2026 in Tehran (UTC+3:30) starts at 20:30 UTC on 31 December.
    assert_eq!(
        b.month_start(202601),
        Timestamp(JAN_1 - 3 * 3_600_000 - 1_800_000)
    );
    assert_eq!(b.month(Timestamp(JAN_1 - 3_600_000)), 202601);
    assert_eq!(
        Book::new(Tz::UTC).month(Timestamp(JAN_1 - 3_600_000)),
        202512
    );
}

fn cli(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(args)
        .output()
        .expect("run ledger");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The CLI gives the same reports, and a closed period's checkpoint verifies the store.
#[test]
fn the_cli_reports_and_verifies_a_closed_periods_checkpoint() {
    static OFFSET: AtomicI64 = AtomicI64::new(0);
    let run = scenario(false, &OFFSET);
    let dir = run.dir.path().to_str().expect("utf-8 path");
    let at = (JAN_1 + 31 * DAY - 1).to_string();
    let (ok, text) = cli(&["finance", "trial-balance", "--data", dir, "--at-ms", &at]);
    assert!(ok, "{text}");
    let tb: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(tb["total_points"], "0");
    let members = tb["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["account"] == "members")
        .expect("members line");
    assert_eq!(members["points"], "1500");
    let (ok, text) = cli(&[
        "finance",
        "settlements",
        "--data",
        dir,
        "--period",
        "2026-02",
        "--partner",
        "2",
    ]);
    assert!(ok, "{text}");
    let s: serde_json::Value = serde_json::from_str(&text).expect("json");
    let net: Decimal = s[0]["net"].as_str().expect("net").parse().expect("decimal");
    assert_eq!(
        (net, s[0]["direction"].as_str()),
        (eur(-150), Some("programme-pays"))
    );
    let (ok, text) = cli(&["finance", "periods", "--data", dir]);
    assert!(ok, "{text}");
    let first = text.lines().next().expect("a closed period");
    assert!(first.starts_with("2026-01\t"), "{text}");
    let checkpoint = first.rsplit('\t').next().expect("checkpoint");
    let (ok, text) = cli(&["verify", "--data", dir, "--checkpoint", checkpoint]);
    assert!(ok, "{text}");
    assert!(text.contains("1 checkpoint(s) matched"), "{text}");
    let file = run.dir.path().join("p1.csv");
    std::fs::write(&file, "reference,points\nf2,200\nf9,5\n").expect("file");
    let (ok, text) = cli(&[
        "finance",
        "reconcile",
        "--data",
        dir,
        "--period",
        "2026-02",
        "--partner",
        "1",
        "--csv",
        file.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{text}");
    let r: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(r["matched"], serde_json::json!(["f2"]));
    assert_eq!(r["missing_from_ledger"][0]["reference"], "f9");
    assert_eq!(r["missing_from_file"][0]["reference"], "f2-back");
    let (ok, text) = cli(&[
        "finance",
        "export-postings",
        "--data",
        dir,
        "--format",
        "ndjson",
    ]);
    assert!(ok, "{text}");
    assert!(
        text.lines().filter(|l| l.starts_with('{')).count() > 10,
        "{text}"
    );
}

/// A saved book reads back as it was, and a new process goes on from it with what came after.
#[test]
fn a_saved_book_reads_back_and_goes_on_from_where_it_was() {
    static OFFSET: AtomicI64 = AtomicI64::new(0);
    let run = scenario(false, &OFFSET);
    let reports_of = |book: &Book, snap: &<EmbeddedStore as Store>::Snapshot| {
        let times = [
            JAN_1 + 31 * DAY - 1,
            JAN_1 + 35 * DAY + 1_800_000,
            JAN_1 + 100 * DAY,
        ];
        let tbs: Vec<_> = times
            .iter()
            .map(|t| reports::trial_balance(book, snap, Timestamp(*t)).expect("tb"))
            .collect();
        let l = reports::liability(
            book,
            Timestamp(JAN_1 + 100 * DAY),
            book.buckets(),
            Decimal::ZERO,
        );
        let s = reports::settlements(book, 202602);
        let r = reports::revenue(book, 202603, 12, &[]);
        (tbs, l, s, r, book.transactions, book.closes.clone())
    };
    {
        let store = EmbeddedStore::open(run.dir.path()).expect("store");
        let snap = store.snapshot().expect("snapshot");
        let f = finance::Finance::new(Tz::UTC);
        let book = f.book_at(&snap).expect("book");
        let saved = finance::save(&store, &book).expect("save");
        assert!(saved.chunks >= 1 && saved.transactions == book.transactions);
        let before = reports_of(&book, &snap);
        drop(book);
        let snap = store.snapshot().expect("snapshot");
        let loaded = finance::load(&snap, Tz::UTC)
            .expect("load")
            .expect("a saved book");
        assert_eq!(
            reports_of(&loaded, &snap),
            before,
            "the book reads back as it was"
        );
        let tehran: Tz = "Asia/Tehran".parse().expect("zone");
        assert!(
            finance::load(&snap, tehran).expect("load").is_none(),
            "another zone's book is not it"
        );
        // Saving again replaces the chunks of the first save.
        let again = finance::save(&store, &loaded).expect("save");
        let snap = store.snapshot().expect("snapshot");
        let prefix = keys::book_chunks(saved.generation);
        let mut end = prefix.clone();
        end.push(0xff);
        assert!(snap
            .range(&prefix, &end, 1, false)
            .expect("read")
            .is_empty());
        assert_eq!(
            finance::load(&snap, Tz::UTC)
                .expect("load")
                .expect("book")
                .transactions,
            again.transactions
        );
    }
    // More transactions; a new process starts from the saved book and folds only those.
    let store = EmbeddedStore::open(run.dir.path()).expect("store");
    let l = Ledger::open(store.clone(), LedgerConfig::default()).expect("ledger");
    l.execute_blocking(Command::Earn {
        key: IdemKey::partner(PartnerId(2), "after-save"),
        member: MemberId(2),
        partner: PartnerId(2),
        points: Points(40),
        bonus: Points(0),
        awards: vec![],
        guard: None,
        purchase: None,
    })
    .expect("earn");
    let snap = l.read_snapshot().expect("snapshot");
    let f = finance::Finance::new(Tz::UTC);
    let resumed = f.book_at(&snap).expect("book");
    let mut scratch = Book::new(Tz::UTC);
    finance::catch_up(&mut scratch, &snap).expect("fold");
    assert_eq!(reports_of(&resumed, &snap), reports_of(&scratch, &snap));
    assert_eq!(resumed.batches, scratch.batches);
    drop(resumed);
    l.shutdown();
}
