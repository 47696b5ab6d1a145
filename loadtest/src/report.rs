//! The end-of-run report: an HDR latency table per request kind, throughput, errors by type, the
//! same as JSON, and an SVG chart of throughput and latency over time.

use crate::recorder::Recorder;
use crate::Outcome;
use plotters::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Latency summary of one kind, milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRow {
    /// Requests.
    pub count: u64,
    /// Percentiles and max, ms.
    pub p50_ms: f64,
    /// 90th.
    pub p90_ms: f64,
    /// 99th.
    pub p99_ms: f64,
    /// 99.9th.
    pub p999_ms: f64,
    /// Max.
    pub max_ms: f64,
}

/// The run's summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Load phase, seconds.
    pub seconds: f64,
    /// Requests answered 2xx per second.
    pub requests_ok_per_second: f64,
    /// Commands acknowledged per second (batch items count one each).
    pub commands_ok_per_second: f64,
    /// Posting legs per second, when known.
    pub postings_per_second: Option<f64>,
    /// Requests by outcome.
    pub requests_ok: u64,
    /// Failed requests.
    pub requests_failed: u64,
    /// Commands acknowledged.
    pub commands_ok: u64,
    /// Commands refused.
    pub commands_failed: u64,
    /// Latency by kind, plus `all`.
    pub latency: BTreeMap<String, LatencyRow>,
    /// Errors by `status type`.
    pub errors: BTreeMap<String, u64>,
    /// Per second: requests, errors, p50 and p99 ms.
    pub timeline: Vec<(u64, u64, f64, f64)>,
    /// The post-run check.
    pub verification: Option<crate::verify::Verification>,
}

fn row(h: &hdrhistogram::Histogram<u64>) -> LatencyRow {
    let ms = |us: u64| us as f64 / 1000.0;
    LatencyRow {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.5)),
        p90_ms: ms(h.value_at_quantile(0.9)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    }
}

/// Summarises an outcome.
pub fn summary(o: &Outcome) -> Summary {
    let rec: &Recorder = &o.recorder;
    let secs = o.elapsed.as_secs_f64().max(1e-9);
    let mut latency: BTreeMap<String, LatencyRow> = rec
        .latency
        .iter()
        .map(|(k, h)| (k.name().to_string(), row(h)))
        .collect();
    latency.insert("all".into(), row(&rec.overall()));
    Summary {
        seconds: secs,
        requests_ok_per_second: rec.requests_ok as f64 / secs,
        commands_ok_per_second: rec.commands_ok as f64 / secs,
        postings_per_second: o.postings.map(|p| p as f64 / secs),
        requests_ok: rec.requests_ok,
        requests_failed: rec.requests_failed,
        commands_ok: rec.commands_ok,
        commands_failed: rec.commands_failed,
        latency,
        errors: rec.errors.clone(),
        timeline: rec
            .timeline
            .iter()
            .map(|s| {
                (
                    s.requests,
                    s.errors,
                    s.latency.value_at_quantile(0.5) as f64 / 1000.0,
                    s.latency.value_at_quantile(0.99) as f64 / 1000.0,
                )
            })
            .collect(),
        verification: o.verification.clone(),
    }
}

/// The human-readable report.
pub fn text(s: &Summary) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "\n{:<10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "kind", "requests", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
    ));
    for (k, r) in &s.latency {
        out.push_str(&format!(
            "{k:<10} {:>10} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}\n",
            r.count, r.p50_ms, r.p90_ms, r.p99_ms, r.p999_ms, r.max_ms
        ));
    }
    out.push_str(&format!(
        "\n{:.1} s: {:.0} requests/s ok, {:.0} commands/s ok",
        s.seconds, s.requests_ok_per_second, s.commands_ok_per_second
    ));
    if let Some(p) = s.postings_per_second {
        out.push_str(&format!(", {p:.0} postings/s"));
    }
    out.push_str(&format!(
        "\nrequests: {} ok, {} failed; commands: {} ok, {} refused\n",
        s.requests_ok, s.requests_failed, s.commands_ok, s.commands_failed
    ));
    for (e, n) in &s.errors {
        out.push_str(&format!("  {n:>8}  {e}\n"));
    }
    match &s.verification {
        Some(v) if v.failures.is_empty() => out.push_str(&format!(
            "check: OK: {} acknowledged commands found as acknowledged; {} unanswered commands applied once; points owed moved by {} as expected; audit passed\n",
            v.acknowledged, v.applied_without_answer, v.outstanding_actual_delta
        )),
        Some(v) => {
            out.push_str(&format!("check: FAILED ({} problems)\n", v.failures.len()));
            for f in v.failures.iter().take(20) {
                out.push_str(&format!("  {f}\n"));
            }
        }
        None => out.push_str("check: skipped\n"),
    }
    out
}

/// Writes throughput and latency over time as an SVG chart.
pub fn svg(s: &Summary, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(300);
    let n = s.timeline.len().max(1) as u64;
    let rate_max = s.timeline.iter().map(|t| t.0).max().unwrap_or(1).max(1) as f64 * 1.1;
    let mut c = ChartBuilder::on(&top)
        .caption("throughput (requests per second)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0u64..n, 0f64..rate_max)?;
    c.configure_mesh().x_desc("second").draw()?;
    c.draw_series(LineSeries::new(
        s.timeline
            .iter()
            .enumerate()
            .map(|(i, t)| (i as u64, t.0 as f64)),
        &BLUE,
    ))?;
    let lat_max = s.timeline.iter().map(|t| t.3).fold(1.0, f64::max) * 1.1;
    let mut c = ChartBuilder::on(&bottom)
        .caption("latency (ms): p50 green, p99 red", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0u64..n, 0f64..lat_max)?;
    c.configure_mesh().x_desc("second").draw()?;
    c.draw_series(LineSeries::new(
        s.timeline.iter().enumerate().map(|(i, t)| (i as u64, t.2)),
        &GREEN,
    ))?;
    c.draw_series(LineSeries::new(
        s.timeline.iter().enumerate().map(|(i, t)| (i as u64, t.3)),
        &RED,
    ))?;
    root.present()?;
    Ok(())
}
