//! Overload at the HTTP edge: far more requests at once than the gateway admits. Each answer is
//! a 200 or a 503 `overloaded` with `Retry-After`; what was shed was not applied; memory stays
//! bounded burst after burst; and the gateway answers normally at once afterwards.

mod common;

use common::Gw;
use futures::future::join_all;

/// This process's resident memory, in kB (the gateway runs in it).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("procfs")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS")
}

async fn posted_sum(gw: &Gw) -> i64 {
    let mut sum = 0;
    for m in 1..=50u64 {
        sum += gw
            .op("GET", &format!("/admin/v1/members/{m}"), None)
            .await
            .body["posted"]
            .as_i64()
            .expect("posted");
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_sheds_with_retry_after_applies_nothing_shed_and_recovers() {
    // Sixteen requests handled at once: a burst of 600 is many times what is admitted.
    let gw = Gw::start_with(|c| {
        c.connections.in_flight_max = 16;
        c.connections.per_ip_max = 2_000;
    })
    .await;
    assert_eq!(gw.earn_miles(1, "warm-up", "10").await.status, 200);
    let mut rss_after = Vec::new();
    let rss_before = rss_kb();
    let mut applied = 0i64;
    let start_sum = posted_sum(&gw).await;
    for burst in 0..3 {
        let answers = join_all((0..600u64).map(|i| {
            let gw = &gw;
            async move {
                gw.earn_miles(1 + i % 50, &format!("B{burst}-{i}"), "10")
                    .await
            }
        }))
        .await;
        let ok = answers.iter().filter(|a| a.status == 200).count();
        let shed: Vec<&common::Answer> = answers.iter().filter(|a| a.status == 503).collect();
        assert_eq!(ok + shed.len(), answers.len(), "only 200s and 503s");
        assert!(!shed.is_empty(), "burst {burst}: the gateway shed some");
        assert!(ok > 0, "burst {burst}: and served some");
        for a in &shed {
            assert_eq!(a.problem(), "overloaded", "{:?}", a.body);
            assert!(
                a.headers.contains_key("retry-after"),
                "503 without Retry-After"
            );
            // A shed answer passed the same edge as any other: it names its request and
            // carries the security headers.
            let id = a.headers["x-request-id"].to_str().expect("ascii");
            assert_eq!(id.len(), 36, "a fresh UUID: {id}");
            assert_eq!(a.headers["cache-control"], "no-store");
            assert_eq!(a.headers["x-content-type-options"], "nosniff");
        }
        applied += ok as i64 * 10;
        rss_after.push(rss_kb());
        // At once afterwards, the gateway answers normally.
        let after = gw.earn_miles(2, &format!("after-{burst}"), "10").await;
        assert_eq!(after.status, 200, "{:?}", after.body);
        applied += 10;
        eprintln!(
            "burst {burst}: {ok} served, {} shed, RSS {} MB",
            shed.len(),
            rss_after[burst] / 1024
        );
    }
    assert_eq!(
        posted_sum(&gw).await - start_sum,
        applied,
        "exactly the served requests applied; nothing shed was"
    );
    // Memory bounded: the bursts do not accumulate (the third ends within 64 MB of the first).
    let growth_kb = rss_after[2].saturating_sub(rss_after[0]);
    assert!(
        growth_kb < 64 * 1024,
        "RSS grew {growth_kb} kB from burst 1 to burst 3 (before the bursts: {rss_before} kB)"
    );
}
