//! `loadtest-machine`, the phase probe `bench-all.sh` prints under its table: its JSON carries
//! every figure the script reads, each a plausible measurement, and bad arguments are refused.

use std::process::Command;

fn probe(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loadtest-machine"))
        .args(args)
        .output()
        .expect("loadtest-machine runs")
}

#[test]
fn the_probe_reports_every_figure_the_benchmark_script_reads() {
    let out = probe(&["--json", "--rounds", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let figure = |name: &str| {
        v[name]
            .as_f64()
            .unwrap_or_else(|| panic!("{name} missing from {v}"))
    };
    // Bounds far outside any machine's, so that only a broken probe fails them: a step of the
    // compute chain is a few cycles, a load that misses every cache tens to hundreds of ns, a
    // loopback round trip microseconds.
    let compute = figure("compute_ns_per_1000_steps");
    assert!((100.0..100_000.0).contains(&compute), "compute {compute}");
    let memory = figure("memory_ns_per_load");
    assert!((1.0..10_000.0).contains(&memory), "memory {memory}");
    for name in [
        "loopback_us_per_round_trip",
        "loopback_one_core_us_per_round_trip",
    ] {
        let l = figure(name);
        assert!((0.5..10_000.0).contains(&l), "{name} {l}");
    }
}

#[test]
fn the_probe_refuses_what_it_does_not_know() {
    for args in [&["--rounds", "0"][..], &["--rounds"], &["--fast"]] {
        let out = probe(args);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(out.stdout.is_empty(), "{args:?} measured anyway");
    }
}
