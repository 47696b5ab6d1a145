//! The accept loop: what a slow or greedy client can hold is bounded. Connections beyond
//! [`ConnectionLimits::max`] in all or [`ConnectionLimits::per_ip_max`] from one address are
//! closed at accept; a client must send each request head within the header-read timeout,
//! counted from the accept and, on a kept-alive connection, from the end of the answer before
//! (hyper closes the connection otherwise), so a connection that says nothing holds its slot
//! for that long at most; accept errors (out of file descriptors) back off instead of spinning.
//! Shutdown stops accepting and lets open connections finish their requests.
//!
//! The gateway speaks HTTP/1.1 only. Serving HTTP/2 beside it meant reading a connection's
//! first bytes to tell the two apart, with no deadline: a client that connected and sent
//! nothing, or stopped inside the HTTP/2 preface, held its slot for ever, and `max` of them shut
//! every other client out. (HTTP/2 to the partners, where wanted, ends at the proxy in front.)

use crate::config::ConnectionLimits;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long accept waits after an error (such as too many open files) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long shutdown waits for open connections to finish.
const DRAIN_MAX: Duration = Duration::from_secs(10);

/// The address a request came from, set on every request by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Open connections per peer address.
#[derive(Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

impl PerIp {
    /// Counts a connection from `ip` unless it already has `max`.
    fn admit(&self, ip: IpAddr, max: usize) -> bool {
        let mut map = self.0.lock().expect("per-ip lock");
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    fn release(&self, ip: IpAddr) {
        let mut map = self.0.lock().expect("per-ip lock");
        if let Some(n) = map.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max.max(1)));
    let per_ip = Arc::new(PerIp::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms.max(1)));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; backing off");
                    metrics::counter!("connections_refused_total", "why" => "accept_error")
                        .increment(1);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("connections_refused_total", "why" => "max").increment(1);
            continue;
        };
        if !per_ip.admit(peer.ip(), limits.per_ip_max.max(1)) {
            metrics::counter!("connections_refused_total", "why" => "per_ip").increment(1);
            continue;
        }
        let _ = stream.set_nodelay(true);
        // Each request carries its peer's address (for limits on unauthenticated traffic).
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            router.clone(),
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                req
            },
        ));
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        let per_ip = per_ip.clone();
        tokio::spawn(async move {
            let _ = conn.await;
            per_ip.release(peer.ip());
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_MAX, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open {DRAIN_MAX:?} after shutdown began");
    }
}
