//! A receiver for outbox benchmarks: answers every POST with `200` and counts the requests, on
//! one thread, so that what it costs the machine is small beside the gateway under test (a
//! receiver in a scripting language took a third of a core at 1,000 deliveries a second).
//!
//! `loadtest-sink 127.0.0.1:18399`; prints the count on SIGINT.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn main() -> anyhow::Result<()> {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18399".into())
        .parse()?;
    anyhow::ensure!(addr.ip().is_loopback(), "the sink listens on loopback only");
    let count = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let c = count.clone();
        let app = axum::Router::new().fallback(move || {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::OK
            }
        });
        let listener = tokio::net::TcpListener::bind(addr).await?;
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                tokio::signal::ctrl_c().await.ok();
            })
            .await?;
        println!("{} requests", count.load(Ordering::Relaxed));
        anyhow::Ok(())
    })
}
