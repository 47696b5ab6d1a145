//! What operators upload: a partner's reconciliation file (CSV), the what-if simulation's
//! history (CSV), and a draw's published entry list (CSV). Errors are fine; a panic is not. An
//! entry list that reads is written again and must read the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partners_gateway::engagement::draw;
use partners_gateway::simulate::{ProgrammeFile, Simulation};
use std::sync::OnceLock;

/// The example programme, parsed once.
static PROGRAMME: OnceLock<ProgrammeFile> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let _ = ledger::finance::reconcile::parse(data);
    if let Ok(entries) = draw::read_entries(data) {
        let again = draw::write_entries(&entries);
        let mut sorted = entries.clone();
        sorted.sort();
        assert_eq!(
            draw::read_entries(again.as_bytes()).expect("written list reads"),
            sorted
        );
        let _ = draw::winners(&entries, b"seed", 3);
    }
    // A history names its columns in its header: without `time`, it is refused at once.
    if data.starts_with(b"time") || data.windows(4).take(64).any(|w| w == b"time") {
        let file = PROGRAMME.get_or_init(|| {
            toml::from_str(include_str!("../../../docs/examples/programme.toml"))
                .expect("the example programme")
        });
        let mut sim = Simulation::new(file.clone()).expect("a simulation");
        let _ = partners_gateway::simulate::replay(&mut sim, data);
    }
});
