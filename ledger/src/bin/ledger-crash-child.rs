//! The child process of the crash test (`tests/crash.rs`): commits a stream of commands from
//! several threads and prints one line per acknowledged command, until it is killed.
//!
//! `ledger-crash-child DIR CYCLE`: lines are `ACK <reference> <tx id>` for a new command and
//! `RETRY <reference> <tx id> <replayed>` for a re-submission of the previous cycle's commands.

use ledger::store::EmbeddedStore;
use ledger::*;
use rust_decimal::Decimal;
use std::io::Write;
use std::sync::Mutex;

/// The command for `reference` in cycle `cycle`, thread `t`, step `i`: always the same content.
fn command(cycle: u64, t: u64, i: u64) -> Command {
    let reference = format!("c{cycle}-t{t}-{i}");
    let member = MemberId(1 + (cycle * 31 + t * 7 + i * 13) % 50);
    let p = PartnerId(1);
    if i % 3 == 2 {
        Command::Burn {
            key: IdemKey::partner(p, reference),
            member,
            partner: p,
            points: Points(30),
        }
    } else {
        Command::Earn {
            key: IdemKey::partner(p, reference),
            member,
            partner: p,
            points: Points(100),
            bonus: Points(0),
            awards: vec![],
            guard: None,
            purchase: None,
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: ledger-crash-child DIR CYCLE");
    let cycle: u64 = args
        .next()
        .expect("cycle")
        .parse()
        .expect("cycle is a number");
    let ledger = Ledger::open(
        EmbeddedStore::open(dir.as_ref()).expect("store"),
        LedgerConfig {
            // Member records lag their members by a few batches, so kills land between
            // record writes and every restart brings some records forward from the journal.
            member_write_delay: 50,
            ..LedgerConfig::default()
        },
    )
    .expect("ledger");
    let p = PartnerId(1);
    let contract = Contract {
        partner: p,
        currency: "EUR".parse().expect("EUR"),
        issuance_price_per_point: Decimal::new(1, 2),
        redemption_price_per_point: Decimal::new(1, 2),
        points_validity_days: Some(365),
    };
    ledger
        .execute_blocking(Command::SetContract {
            key: IdemKey::operator("contract"),
            contract,
        })
        .expect("contract");
    for m in 1..=50 {
        ledger
            .execute_blocking(Command::Enrol {
                key: IdemKey::operator(format!("enrol-{m}")),
                member: MemberId(m),
            })
            .expect("enrol");
    }
    let out = Mutex::new(std::io::stdout());
    let say = |line: String| {
        let mut o = out.lock().expect("stdout");
        writeln!(o, "{line}").expect("stdout");
        o.flush().expect("flush");
    };
    if cycle > 0 {
        for t in 0..8 {
            for i in 0..5 {
                if let Ok(r) = ledger.execute_blocking(command(cycle - 1, t, i)) {
                    say(format!(
                        "RETRY {} {} {}",
                        r.tx.key.reference, r.tx.id.0, r.replayed
                    ));
                }
            }
        }
    }
    say("READY".into());
    std::thread::scope(|s| {
        for t in 0..8 {
            let (ledger, say) = (&ledger, &say);
            s.spawn(move || {
                for i in 0.. {
                    if let Ok(r) = ledger.execute_blocking(command(cycle, t, i)) {
                        say(format!("ACK {} {}", r.tx.key.reference, r.tx.id.0));
                    }
                }
            });
        }
    });
}
