//! The machine's phase, in three fixed probes, so that a benchmark set can say how fast the
//! machine was while it ran. The same build on this shared machine has run at half its speed
//! one day and full speed another; a set's figures mean little without the machine's own.
//!
//! - **compute**: a chain of dependent multiply-xorshift steps, ns per 1,000 steps (the core's
//!   clock and its share of it);
//! - **memory**: a walk of a random cycle through 128 MiB, ns per load (each load misses every
//!   cache and waits on the last);
//! - **loopback**: 64 bytes sent over loopback TCP and echoed by a second thread, µs per round
//!   trip (two system calls a side and two wake-ups: what the gateway's HTTP exchange pays),
//!   with the two threads free to run on any core, and again with both held to the first core.
//!   The two differ by what waking a thread on another, idle core costs: on this machine's
//!   virtual cores, which do not poll before they halt, 59-85 µs across against 13.7-17.5 µs on
//!   one core (2026-12-04).
//!
//! Each probe runs `--rounds` times (default 5), about 0.3 s a round; the median is printed,
//! with every round. `loadtest-machine --json` prints the medians as one JSON object.

use clap::Parser;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Dependent steps in one compute round.
const COMPUTE_STEPS: u64 = 100_000_000;
/// Slots of the memory walk's cycle (4 bytes each: 128 MiB).
const MEMORY_SLOTS: usize = 32 << 20;
/// Loads in one memory round.
const MEMORY_LOADS: usize = 3_000_000;
/// Round trips in one loopback round.
const LOOPBACK_TRIPS: usize = 10_000;

#[derive(Parser)]
#[command(
    name = "loadtest-machine",
    about = "The machine's phase: compute, memory latency, loopback round trip",
    version
)]
struct Args {
    /// Print the medians as one JSON object.
    #[arg(long)]
    json: bool,
    /// Rounds of each probe; the median is reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    rounds: u16,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let rounds = usize::from(a.rounds);
    let compute: Vec<f64> = (0..rounds).map(|_| compute_round()).collect();
    let cycle = random_cycle(MEMORY_SLOTS, 0x5EED);
    let memory: Vec<f64> = (0..rounds).map(|_| memory_round(&cycle)).collect();
    drop(cycle);
    let loopback = (0..rounds)
        .map(|_| loopback_round(false))
        .collect::<std::io::Result<Vec<f64>>>()?;
    let one_core = (0..rounds)
        .map(|_| loopback_round(true))
        .collect::<std::io::Result<Vec<f64>>>()?;
    let (c, m) = (median(&compute), median(&memory));
    let (l, l1) = (median(&loopback), median(&one_core));
    if a.json {
        let v = serde_json::json!({
            "compute_ns_per_1000_steps": c,
            "memory_ns_per_load": m,
            "loopback_us_per_round_trip": l,
            "loopback_one_core_us_per_round_trip": l1,
        });
        println!("{v}");
    } else {
        println!(
            "compute:            {c:8.1} ns per 1,000 steps ({})",
            list(&compute, 1)
        );
        println!(
            "memory:             {m:8.1} ns per load        ({})",
            list(&memory, 1)
        );
        println!(
            "loopback:           {l:8.2} µs per round trip  ({})",
            list(&loopback, 2)
        );
        println!(
            "loopback, one core: {l1:8.2} µs per round trip  ({})",
            list(&one_core, 2)
        );
    }
    Ok(())
}

/// ns per 1,000 dependent steps.
fn compute_round() -> f64 {
    let start = Instant::now();
    let mut x = std::hint::black_box(0x9E37_79B9_7F4A_7C15u64);
    for _ in 0..COMPUTE_STEPS {
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 31;
    }
    std::hint::black_box(x);
    per(start.elapsed(), COMPUTE_STEPS as f64 / 1_000.0) * 1e9
}

/// A single cycle through every slot (Sattolo's shuffle), so a walk visits them all before
/// it repeats and no prefetcher can guess the next.
fn random_cycle(n: usize, seed: u64) -> Vec<u32> {
    let mut next: Vec<u32> = (0..n as u32).collect();
    let mut rng = SmallRng::seed_from_u64(seed);
    for i in (1..n).rev() {
        next.swap(i, rng.random_range(0..i));
    }
    next
}

/// ns per dependent load along the cycle.
fn memory_round(cycle: &[u32]) -> f64 {
    let start = Instant::now();
    let mut at = std::hint::black_box(0u32);
    for _ in 0..MEMORY_LOADS {
        at = cycle[at as usize];
    }
    std::hint::black_box(at);
    per(start.elapsed(), MEMORY_LOADS as f64) * 1e9
}

/// µs per 64-byte round trip over loopback TCP to an echoing thread; with `one_core`, both
/// threads held to the first core.
fn loopback_round(one_core: bool) -> std::io::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        if one_core {
            hold_to_first_core()?;
        }
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        for _ in 0..LOOPBACK_TRIPS {
            s.read_exact(&mut buf)?;
            s.write_all(&buf)?;
        }
        Ok(())
    });
    // The probing side runs on a thread of its own too, so that holding it to a core outlives
    // no round.
    let probe = std::thread::spawn(move || -> std::io::Result<Duration> {
        if one_core {
            hold_to_first_core()?;
        }
        let mut s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        let mut buf = [7u8; 64];
        let start = Instant::now();
        for _ in 0..LOOPBACK_TRIPS {
            s.write_all(&buf)?;
            s.read_exact(&mut buf)?;
        }
        Ok(start.elapsed())
    });
    let took = probe
        .join()
        .map_err(|_| std::io::Error::other("the probing thread panicked"))??;
    echo.join()
        .map_err(|_| std::io::Error::other("the echo thread panicked"))??;
    Ok(per(took, LOOPBACK_TRIPS as f64) * 1e6)
}

/// Holds the calling thread to the machine's first core.
fn hold_to_first_core() -> std::io::Result<()> {
    // SAFETY: `set` is a plain bit set on the stack, sized as the call is told; pid 0 is the
    // calling thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn per(took: Duration, n: f64) -> f64 {
    took.as_secs_f64() / n
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn list(xs: &[f64], decimals: usize) -> String {
    xs.iter()
        .map(|x| format!("{x:.decimals$}"))
        .collect::<Vec<_>>()
        .join(", ")
}
