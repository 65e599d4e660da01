//! The accept loop: what `axum::serve` does, plus what a public server
//! needs before any request is read. A client that sends its headers too
//! slowly, or keeps a connection idle too long, is dropped (hyper's header
//! read timeout covers both: it runs from the moment the connection waits for
//! a request); open connections are capped in total and per client address,
//! so one machine cannot take every socket (a trusted proxy's connections,
//! which carry many clients, only in total). Each request carries its peer's
//! address (`ConnectInfo`) and its client's (`ClientAddr`: the peer, or
//! whom a trusted proxy names), for the limits kept per client further in.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

use super::caller::ForwardedHost;
use crate::admission::{Gate, IntervalLog};
use crate::auth::ClientAddr;
use crate::config::ConnectionLimits;

/// Connections the kernel holds for the accept loop. Tokio's (and std's)
/// `bind` asks for 128: a burst of a few hundred connects while the loop is
/// busy overflows that, and Linux then drops the handshakes' last packets, so
/// clients (legitimate ones too) wait for retransmissions, seconds later. The
/// kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with [`LISTEN_BACKLOG`], for [`serve`] and the board.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // as tokio's bind does: a restarted server may rebind at once
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `router` on `listener` until `shutdown`; then stops accepting,
/// lets requests in progress finish, closes idle connections and returns
/// once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let gate = Gate::new(limits.max_connections, limits.max_per_address);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let refused = Arc::new(IntervalLog::new(
        "refusing connections: MAX_CONNECTIONS or MAX_CONNECTIONS_PER_ADDRESS are open",
    ));
    // idle keep-alive connections end the same way: routine, not a warning
    let slow = Arc::new(IntervalLog::routine(
        "closed connections that sent no complete request headers within HTTP_HEADER_TIMEOUT \
         (idle keep-alive connections, or slow clients)",
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
        let admitted = match limits.proxies.trusts(peer.ip()) {
            true => gate.admit_unshared(),
            false => gate.admit(ClientAddr::from(peer.ip()).ip()),
        };
        let Ok(permit) = admitted else {
            refused.add(peer.ip());
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (router, proxies) = (router.clone(), limits.proxies.clone());
        let service =
            TowerToHyperService::new(tower::service_fn(move |mut request: Request<Incoming>| {
                let forwarded = proxies.forwarded(peer.ip(), &request);
                let extensions = request.extensions_mut();
                extensions.insert(ConnectInfo(peer));
                extensions.insert(ClientAddr::from(forwarded.client));
                if let Some(host) = forwarded.host {
                    extensions.insert(ForwardedHost(host));
                }
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
    // every connection holds a permit until it closes
    gate.all_closed().await;
    Ok(())
}
