//! Serving the HTTP router with the limits a public listener needs (the unsubscribe endpoint is
//! reachable by anyone): a header-read timeout against slow-header clients, a cap on open
//! connections, graceful shutdown, and HTTPS when `[http] tls` is on.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

/// Limits of the HTTP listener.
#[derive(Clone)]
pub(crate) struct HttpLimits {
    /// Time allowed for a client to send a request's headers (and, with TLS, to finish the
    /// handshake).
    pub header_timeout: Duration,
    /// Connections open at once; more are closed at accept.
    pub max_connections: usize,
    /// Serve HTTPS with this acceptor (`[http] tls`); plain HTTP without.
    pub tls: Option<TlsAcceptor>,
}

/// Accepts and serves until `stop` turns true; open connections finish their current request.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "HTTP connection refused: too many open");
            continue;
        };
        let (app, stop, limits) = (app.clone(), stop.clone(), limits.clone());
        tokio::spawn(async move {
            match &limits.tls {
                None => connection(stream, app, limits.header_timeout, stop).await,
                Some(acceptor) => {
                    // A client that never finishes the handshake holds a slot no longer than
                    // one that never sends its headers.
                    let hs = tokio::time::timeout(limits.header_timeout, acceptor.accept(stream));
                    match hs.await {
                        Ok(Ok(tls)) => connection(tls, app, limits.header_timeout, stop).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTPS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Serves one connection's requests until it closes or `stop` turns true.
async fn connection<I>(
    io: I,
    app: Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
