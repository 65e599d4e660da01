//! The accept loop: what `axum::serve` does, plus what a public server
//! needs before any request is read. A client that sends its headers too
//! slowly, or keeps a connection idle too long, is dropped (hyper's header
//! read timeout covers both: it runs from the moment the connection waits for
//! a request); open connections are capped in total and per client address,
//! so one machine cannot take every socket. Each request carries its peer's
//! address (`ConnectInfo`), for the limits kept per address further in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

use super::IntervalLog;
use crate::config::ConnectionLimits;

/// Serves `router` on `listener` until `shutdown`; then stops accepting,
/// lets requests in progress finish, closes idle connections and returns
/// once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let gate = Arc::new(Gate::new(&limits));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let refused = Arc::new(IntervalLog::new(
        "refusing connections: MAX_CONNECTIONS or MAX_CONNECTIONS_PER_ADDRESS are open",
    ));
    let slow = Arc::new(IntervalLog::new(
        "dropped connections that sent no complete request headers within HTTP_HEADER_TIMEOUT \
         (slow or idle clients)",
    ));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // out of file descriptors, say: the next accept may work
                    warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(permit) = gate.admit(peer.ip()) else {
            refused.add(peer.ip());
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service =
            TowerToHyperService::new(tower::service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(request.map(axum::body::Body::new))
            }));
        let connection = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let (stop, slow) = (shutdown.clone(), slow.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            match result {
                Err(e) if e.is_timeout() => slow.add(peer.ip()),
                Err(e) => debug!(%peer, error = %e, "connection ended with an error"),
                Ok(()) => {}
            }
        });
    }
    // every connection holds one of these until it closes
    let _all = gate.open.acquire_many(limits.max_connections as u32).await;
    Ok(())
}

/// Who may open one more connection.
struct Gate {
    open: Arc<Semaphore>,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_address: usize,
}

impl Gate {
    fn new(limits: &ConnectionLimits) -> Self {
        Self {
            open: Arc::new(Semaphore::new(limits.max_connections)),
            per_address: Arc::default(),
            max_per_address: limits.max_per_address,
        }
    }

    fn admit(&self, ip: IpAddr) -> Option<ConnectionPermit> {
        let total = self.open.clone().try_acquire_owned().ok()?;
        let mut per_address = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        let open = per_address.entry(ip).or_default();
        if *open >= self.max_per_address {
            return None;
        }
        *open += 1;
        Some(ConnectionPermit {
            _total: total,
            ip,
            per_address: self.per_address.clone(),
        })
    }
}

/// One open connection, counted until it is dropped.
struct ConnectionPermit {
    _total: OwnedSemaphorePermit,
    ip: IpAddr,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut per_address = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = per_address.get_mut(&self.ip) {
            *open -= 1;
            // an address with nothing open costs no memory
            if *open == 0 {
                per_address.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_at_its_cap_is_refused_while_others_are_admitted() {
        let gate = Gate::new(&ConnectionLimits {
            max_connections: 3,
            max_per_address: 2,
            header_timeout: Duration::from_secs(1),
        });
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        let first = gate.admit(a).unwrap();
        let _second = gate.admit(a).unwrap();
        assert!(gate.admit(a).is_none());
        let third = gate.admit(b).unwrap();
        // the total is reached too
        assert!(gate.admit(b).is_none());
        drop(first);
        assert!(gate.admit(a).is_some());
        drop(third);
        let map = gate.per_address.lock().unwrap();
        assert_eq!(map.get(&b), None, "a closed address is forgotten");
    }
}
