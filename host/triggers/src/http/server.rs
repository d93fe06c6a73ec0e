//! The accept loop every host listener runs (the HTTP trigger's and the admin API's): HTTP/1.1
//! with a header-read timeout, `TCP_NODELAY`, back-off when `accept` fails, and a graceful drain
//! bounded by a grace period once told to stop.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_core::error::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::head_watch::{HeadWatch, Watched};

/// How long a client may take to send a request head, unless told otherwise.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait before accepting again after `accept` failed (out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How long a listener waits: for a client's request head, and for open connections once told
/// to stop.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// How long open connections may take to finish after `shutdown`.
    pub grace: Duration,
    /// How long a client may take to send a request head (the slowloris protection).
    pub header_read: Duration,
}

impl Timeouts {
    /// `grace` to drain, and the default [`HEADER_READ_TIMEOUT`].
    pub fn with_grace(grace: Duration) -> Self {
        Timeouts { grace, header_read: HEADER_READ_TIMEOUT }
    }
}

/// Accepts connections on `listener` and answers each request with `handler(request, peer)`
/// until `shutdown` resolves; then stops accepting and lets open connections finish for at most
/// `timeouts.grace`. `name` labels the log lines (`http`, `admin`).
pub async fn serve<H, F>(
    name: &'static str,
    listener: TcpListener,
    handler: H,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let Timeouts { grace, header_read } = timeouts;
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut builder = http1::Builder::new();
    // The header-read timeout, per connection rather than hyper's timer per request (see
    // `head_watch`); hyper's own if the watch's thread cannot be started.
    let watch = match HeadWatch::start(header_read) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(listener = name, error = %e, "cannot start the header-read watch; using hyper's timer");
            builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_read);
            None
        }
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(listener = name, error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let watched = match watch.as_ref().map(|w| w.watch(&stream)).transpose() {
                    Ok(w) => w.map(Arc::new),
                    Err(e) => {
                        // Without the watch a slow client could hold the connection forever.
                        tracing::warn!(listener = name, error = %e, "cannot watch a new connection for its header-read timeout; closing it");
                        continue;
                    }
                };
                let handler = handler.clone();
                let svc = service_fn(move |req| Watched::respond(watched.as_ref(), handler(req, peer)));
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(listener = name, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(
        listener = name,
        grace_secs = grace.as_secs_f64(),
        "shutting down: no new connections; draining in-flight requests"
    );
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!(listener = name, "all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!(listener = name, "grace period over with requests still in flight; closing them"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn ok(_: Request<Incoming>, _: SocketAddr) -> Result<Response<Body>, Infallible> {
        Ok(berth_core::error::with_content_type(http::StatusCode::OK, "text/plain", bytes::Bytes::from_static(b"ok")))
    }

    /// Reads until the server closes the connection; what it sent.
    async fn until_closed(stream: &mut tokio::net::TcpStream) -> String {
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.expect("read");
        String::from_utf8_lossy(&got).into_owned()
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_head_is_cut_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let timeout = Duration::from_millis(500);
        let timeouts = Timeouts { grace: Duration::from_secs(1), header_read: timeout };
        tokio::spawn(serve("test", listener, ok, timeouts, std::future::pending()));

        // A whole request first: served, and the connection stays open for the next.
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{:?}", &buf[..n]);

        // Then half a head, never finished (slowloris): the server closes it after the timeout.
        let started = std::time::Instant::now();
        stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: ").await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), until_closed(&mut stream))
            .await
            .expect("the connection was never closed: the header-read timeout did not fire");
        let took = started.elapsed();
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(took >= timeout, "closed after {took:?}, before the {timeout:?} timeout");
        assert!(took < timeout + crate::http::head_watch::TICK * 4, "closed only after {took:?}");
    }
}
