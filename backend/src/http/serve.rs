//! The listener: plain HTTP behind a proxy, or TLS terminated here (rustls,
//! certificate and key from PEM files, reloaded on SIGHUP without dropping
//! a connection: the new certificate is used for new connections only).
//! Each connection has a slot (at most `http.max_connections` at once: past
//! it, new connections wait in the kernel's backlog), a deadline for its
//! request headers (slowloris), and, for TLS, for its handshake.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, Clone)]
pub struct Limits {
    /// A client must have sent its request headers (and, over TLS, finished
    /// its handshake) within this time.
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A rustls server configuration from a PEM certificate chain and key.
pub fn tls_config(files: &TlsFiles) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("http.tls_cert_file {}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("http.tls_cert_file {}: no certificate in it", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| anyhow::anyhow!("http.tls_key_file {}: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow::anyhow!("http.tls_cert_file / http.tls_key_file: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The acceptor in use; SIGHUP swaps it for one made from the files as they are now.
type SharedAcceptor = Arc<RwLock<TlsAcceptor>>;

fn watch_sighup(files: TlsFiles, shared: SharedAcceptor) {
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!("SIGHUP cannot be watched: the TLS certificate will not be reloaded");
            return;
        };
        while hup.recv().await.is_some() {
            match tls_config(&files) {
                Ok(cfg) => {
                    *shared.write().unwrap_or_else(|p| p.into_inner()) = TlsAcceptor::from(cfg);
                    tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
                }
                Err(e) => tracing::error!(error = %e, "TLS certificate not reloaded; the previous one stays in use"),
            }
        }
    });
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting
/// and lets the connections finish (at most 10 s).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<TlsFiles>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let acceptor: Option<SharedAcceptor> = match &tls {
        Some(files) => {
            let shared = Arc::new(RwLock::new(TlsAcceptor::from(tls_config(files)?)));
            watch_sighup(files.clone(), shared.clone());
            Some(shared)
        }
        None => None,
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p?,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // out of file descriptors and the like: back off, do not spin
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let app = app.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.as_ref().map(|a| a.read().unwrap_or_else(|p| p.into_inner()).clone());
        let handshake_deadline = limits.header_read_timeout;
        tokio::spawn(async move {
            let _slot = permit;
            match acceptor {
                Some(acceptor) => match tokio::time::timeout(handshake_deadline, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        // the protocol is the one ALPN chose: no sniffing a silent client
                        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                        connection(handshake_deadline, h2, watcher, tls, app, peer).await
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake too slow"),
                },
                // plain http (behind a proxy): HTTP/1.1
                None => connection(handshake_deadline, false, watcher, stream, app, peer).await,
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("connections still open after 10 s; closing"),
    }
    Ok(())
}

/// One connection, HTTP/1.1 (its headers due within `header_deadline`, idle
/// keep-alive included) or HTTP/2 (pinged, dropped when a ping goes unanswered).
async fn connection<I>(header_deadline: Duration, h2: bool, watcher: Watcher, io: I, app: Router, peer: SocketAddr)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        tower::ServiceExt::oneshot(app.clone(), req)
    });
    let io = TokioIo::new(io);
    let ended = if h2 {
        let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        b.timer(TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(30))).keep_alive_timeout(Duration::from_secs(10));
        watcher.watch(b.serve_connection(io, service)).await.map_err(|e| e.to_string())
    } else {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(TokioTimer::new()).header_read_timeout(header_deadline);
        watcher.watch(b.serve_connection(io, service)).await.map_err(|e| e.to_string())
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
