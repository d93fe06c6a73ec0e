//! The listeners' header-read timeout (the slowloris protection), kept per connection instead of
//! per request.
//!
//! hyper's own `header_read_timeout` arms a timer for every request head it waits for: a clock
//! read, a boxed sleep, and one more poll of the connection after every request to start it. With
//! any tokio timer alive, the runtime also looks at its timer wheel each time it parks.
//! `ops/bench/callgrind.sh` counts about 1,200 instructions a request for all of that on a
//! keep-alive connection (bare hyper spends ~9,200 on the whole request), even with a coarse
//! timer behind hyper's.
//!
//! [`HeadWatch`] gets the same protection from two stores and a reference count a request. Each
//! connection it watches notes when it began to wait for a request head: when it was accepted,
//! and each time the last response's body is done (hyper drops the body once it is written). A
//! request arriving marks it busy. A ticker thread looks at every connection each [`TICK`] and
//! shuts down the socket of one that has waited longer than the timeout; hyper then reads the
//! end of the stream and closes the connection. The time noted is the ticker's, rounded up by a
//! tick, so a connection is cut off up to two ticks late and never early (unless the ticker
//! thread itself runs late). The price is a second descriptor per connection (the ticker's handle
//! on the socket, duplicated at accept): a listener reaches the open-file limit at half as many
//! connections. `berth up` raises its soft open-file limit to the hard one at start.

use std::future::Future;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// How often the ticker looks at the connections: how late a timeout may fire.
pub const TICK: Duration = Duration::from_millis(250);

/// `waiting_since` of a connection serving a request.
const BUSY: u64 = u64::MAX;

/// The watched connections of one listener and the ticker's clock. Cloning shares it.
#[derive(Clone)]
pub struct HeadWatch {
    shared: Arc<Shared>,
    /// The ticker thread (tests check that it ends).
    #[cfg_attr(not(test), allow(dead_code, reason = "read by the tests only"))]
    ticker: Arc<std::thread::JoinHandle<()>>,
}

struct Shared {
    /// What the ticker's clock counts from.
    epoch: Instant,
    /// Milliseconds since `epoch`, as of the last tick.
    now_ms: AtomicU64,
    /// How long a connection may wait for a request head, in milliseconds.
    timeout_ms: u64,
    conns: Mutex<slab::Slab<Arc<Conn>>>,
}

/// One watched connection.
struct Conn {
    /// Milliseconds since the epoch from which the connection has been waiting for a request
    /// head, or [`BUSY`].
    waiting_since: AtomicU64,
    /// A second handle on the socket, to shut it down from the ticker.
    socket: std::net::TcpStream,
}

impl Shared {
    fn conns(&self) -> std::sync::MutexGuard<'_, slab::Slab<Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The ticker's clock rounded up by a tick: never earlier than now.
    fn now_rounded_up(&self) -> u64 {
        self.now_ms.load(Ordering::Relaxed) + TICK.as_millis() as u64
    }

    /// Shuts down every connection that has waited for a head since before `now_ms - timeout`;
    /// returns how many.
    fn expire(&self, now_ms: u64) -> usize {
        let mut cut = 0;
        for (_, conn) in self.conns().iter() {
            let since = conn.waiting_since.load(Ordering::Relaxed);
            if since == BUSY || now_ms.saturating_sub(since) < self.timeout_ms {
                continue;
            }
            // Counted once: a shut-down connection stops waiting. A request that arrived since
            // the load above made it busy: it is left alone.
            if conn.waiting_since.compare_exchange(since, BUSY, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                // The socket may already be closed by the peer; nothing else to do then.
                let _ = conn.socket.shutdown(Shutdown::Both);
                cut += 1;
            }
        }
        cut
    }
}

impl HeadWatch {
    /// A watch whose connections may wait `timeout` for each request head, and its ticker: a
    /// thread of its own rather than a tokio timer, so that a runtime serving requests has no
    /// timer to look at each time it parks. The thread ends within a tick once the watch and
    /// every connection it watches are dropped. `Err` when the thread cannot be started.
    pub fn start(timeout: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            epoch: Instant::now(),
            now_ms: AtomicU64::new(0),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            conns: Mutex::new(slab::Slab::new()),
        });
        let weak = Arc::downgrade(&shared);
        let ticker = std::thread::Builder::new().name("berth-head-watch".into()).spawn(move || tick(&weak))?;
        Ok(HeadWatch { shared, ticker: Arc::new(ticker) })
    }

    /// Watches the connection on `stream` (waiting for its first head from now). `Err` when the
    /// socket cannot be duplicated (out of file descriptors).
    pub fn watch(&self, stream: &tokio::net::TcpStream) -> std::io::Result<Watched> {
        use std::os::fd::AsFd;
        let socket = std::net::TcpStream::from(stream.as_fd().try_clone_to_owned()?);
        let conn = Arc::new(Conn { waiting_since: AtomicU64::new(self.shared.now_rounded_up()), socket });
        let key = self.shared.conns().insert(conn.clone());
        Ok(Watched { conn, key, shared: self.shared.clone() })
    }

    /// Connections watched now.
    #[cfg(test)]
    fn watched(&self) -> usize {
        self.shared.conns().len()
    }
}

fn tick(shared: &Weak<Shared>) {
    loop {
        std::thread::sleep(TICK);
        let Some(shared) = shared.upgrade() else { return };
        let now_ms = u64::try_from(shared.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        shared.now_ms.store(now_ms, Ordering::Relaxed);
        let cut = shared.expire(now_ms);
        if cut > 0 {
            tracing::debug!(connections = cut, "closed connections that did not send a request head in time");
        }
    }
}

/// A connection being watched; it leaves the watch when dropped (keep it for as long as the
/// connection is served: it holds a second handle on the socket).
pub struct Watched {
    conn: Arc<Conn>,
    key: usize,
    shared: Arc<Shared>,
}

impl Watched {
    /// The answer to a request that has just arrived on `watched` (a connection, if it is
    /// watched): the connection is busy until the answer's body is done, then waits for the next
    /// head.
    pub fn respond<F>(watched: Option<&Arc<Self>>, answer: F) -> Respond<F> {
        if let Some(w) = watched {
            w.conn.waiting_since.store(BUSY, Ordering::Relaxed);
        }
        Respond { answer, watched: watched.cloned() }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Watched::respond`]: polls the answer in place (an `async` block around it
    /// would copy the whole answer future once more per request).
    pub struct Respond<F> {
        #[pin]
        answer: F,
        watched: Option<Arc<Watched>>,
    }
}

impl<F, B, E> Future for Respond<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<WatchedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = std::task::ready!(this.answer.poll(cx))?;
        Poll::Ready(Ok(res.map(|inner| WatchedBody { inner, watched: this.watched.take() })))
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.shared.conns().remove(self.key);
    }
}

/// A response body that marks its connection as waiting for the next head once it is done
/// (hyper drops it when the body has been written, or when the connection ends).
pub struct WatchedBody<B> {
    inner: B,
    watched: Option<Arc<Watched>>,
}

impl<B> Drop for WatchedBody<B> {
    fn drop(&mut self) {
        if let Some(w) = &self.watched {
            w.conn.waiting_since.store(w.shared.now_rounded_up(), Ordering::Relaxed);
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for WatchedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A connected pair: (client side, server side).
    async fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    /// Waits (at most 5 s) for the server to end the connection; fails if it sends anything.
    async fn closed_by_server(client: &mut TcpStream) {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await;
        let n = read.expect("the connection was not cut off").expect("read");
        assert_eq!(n, 0, "the server sent {:?} instead of closing", &buf[..n]);
    }

    #[tokio::test]
    async fn a_connection_is_cut_off_after_waiting_too_long_for_a_head_but_never_while_busy() {
        let timeout = Duration::from_millis(400);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let watch = HeadWatch::start(timeout).unwrap();
        let (mut idle_client, idle_server) = pair(&listener).await;
        let (mut busy_client, busy_server) = pair(&listener).await;
        let idle = Arc::new(watch.watch(&idle_server).unwrap());
        let busy = Arc::new(watch.watch(&busy_server).unwrap());
        let answer = std::future::ready(Ok::<_, ()>(http::Response::new(http_body_util::Full::new(Bytes::new()))));
        let respond = Watched::respond(Some(&busy), answer);
        assert_eq!(watch.watched(), 2);

        let started = Instant::now();
        closed_by_server(&mut idle_client).await;
        let took = started.elapsed();
        assert!(took >= timeout, "cut off after {took:?}, before the {timeout:?} timeout");
        assert!(took < timeout + TICK * 4, "cut off only after {took:?}");

        // Serving a request: not cut off, however long it takes.
        tokio::time::sleep(timeout + TICK * 2).await;
        let mut buf = [0u8; 1];
        let still_open = tokio::time::timeout(Duration::from_millis(50), busy_client.read(&mut buf)).await;
        assert!(still_open.is_err(), "a connection serving a request was cut off: {still_open:?}");

        // Its response done, it waits for the next head from then on.
        drop(respond.await);
        let done = Instant::now();
        closed_by_server(&mut busy_client).await;
        assert!(done.elapsed() >= timeout, "cut off {:?} after its response, before the timeout", done.elapsed());

        drop((idle, busy));
        assert_eq!(watch.watched(), 0, "a dropped connection leaves the watch");
    }

    #[tokio::test]
    async fn the_ticker_stops_with_its_watch_and_its_last_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let watch = HeadWatch::start(Duration::from_secs(60)).unwrap();
        let ticker = watch.ticker.clone();
        let (_client, server) = pair(&listener).await;
        let watched = watch.watch(&server).unwrap();
        drop(watch);
        tokio::time::sleep(TICK * 2).await;
        assert!(!ticker.is_finished(), "a connection still watched keeps the ticker");
        drop(watched);
        tokio::time::sleep(TICK * 3).await;
        assert!(ticker.is_finished(), "the ticker ended with its last connection");
    }
}
