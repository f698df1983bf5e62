//! The accept loop: hyper-util's auto builder (HTTP/1.1 and h2c), one task per connection,
//! graceful drain on shutdown.
//!
//! # Guarantees
//! - Header read timeout (slowloris) and header size bounds are set on both protocols.
//! - At most `max_connections` client connections are open; past it the accept loop stops
//!   taking new ones, which wait in the listen backlog.
//! - A connection with no request in flight and no byte read or written for `idle_timeout`
//!   is closed, whatever its protocol or state: HTTP/1 keep-alive, HTTP/2, or one that never
//!   sent a byte (hyper-util's protocol sniffing has no timeout of its own). It is checked
//!   every quarter of `idle_timeout`, so it closes between 1× and 1.25× after going quiet.
//!   HTTP/2 connections get a GOAWAY first (so a client never loses a request it sent just
//!   then) and are dropped if they have not finished a quarter of `idle_timeout` (≤ 1 s) later.
//! - Accept errors (`EMFILE`, `ENFILE`, …) back off, doubling from 10 ms to 1 s, and are
//!   logged at most once a second with the count of the ones not logged.
//! - On shutdown the listener is closed first, every connection is told to close (HTTP/1
//!   after its current response, HTTP/2 with a GOAWAY), and in-flight requests get `grace` to
//!   finish.
//! - Listeners made by [`listen`] queue up to [`LISTEN_BACKLOG`] finished handshakes, so a
//!   burst of new connections (an SPA fleet reconnecting, a stampede) waits for the accept
//!   loop instead of having its handshakes dropped and retried a second later.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tower::{Service, ServiceExt};

use crate::body::{self, Body};
use crate::cork::Corked;
use crate::proxy::context::{ClientAddr, context_mut};

/// How many connections the kernel may hold, handshake done, before the accept loop takes
/// them (the kernel caps it at `net.core.somaxconn`). `TcpListener::bind` asks for 128: a
/// burst of 500 new connections then overflows the queue, the kernel drops the handshakes
/// that do not fit, and those clients retry a second later (`bench/RESULTS.md`). nginx asks
/// for 511, HAProxy for its `maxconn`.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` for serving: address reuse as `TcpListener::bind` sets it, and a
/// [`LISTEN_BACKLOG`]-deep accept queue.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Limits applied by the HTTP codecs themselves.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub idle_timeout: Duration,
}

/// What a connection's watchdog reads: bytes moving, and requests in flight.
#[derive(Debug, Default)]
struct Activity {
    /// Bumped on every read or write that moved bytes.
    ticks: AtomicU64,
    inflight: AtomicUsize,
}

/// Counts a request in flight until dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(a: &Arc<Activity>) -> Self {
        a.inflight.fetch_add(1, Ordering::Relaxed);
        Self(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// An IO that bumps its connection's activity on every read or write that moved bytes.
    struct Watched<T> {
        #[pin]
        inner: T,
        activity: Arc<Activity>,
    }
}

impl<T: AsyncRead> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.ticks.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled
            && *n > 0
        {
            this.activity.ticks.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &polled
            && *n > 0
        {
            this.activity.ticks.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// Resolves once the connection has had nothing in flight and no bytes moving for `idle`.
async fn idle(activity: &Activity, idle: Duration) {
    let step = (idle / 4).max(Duration::from_millis(10));
    let mut last = activity.ticks.load(Ordering::Relaxed);
    let mut quiet = Duration::ZERO;
    loop {
        tokio::time::sleep(step).await;
        let now = activity.ticks.load(Ordering::Relaxed);
        if now == last && activity.inflight.load(Ordering::Relaxed) == 0 {
            quiet += step;
            if quiet >= idle {
                return;
            }
        } else {
            quiet = Duration::ZERO;
            last = now;
        }
    }
}

/// Accept errors: back off, doubling, and log at most once a second.
#[derive(Debug)]
struct AcceptErrors {
    backoff: Duration,
    logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    fn new() -> Self {
        Self {
            backoff: Self::FIRST,
            logged: None,
            unlogged: 0,
        }
    }

    /// Records one error; returns how long to wait before accepting again.
    fn failed(&mut self, error: &io::Error) -> Duration {
        let now = Instant::now();
        if self
            .logged
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            tracing::warn!(%error, suppressed = self.unlogged, "accept failed; backing off");
            self.logged = Some(now);
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(Self::MAX);
        wait
    }

    fn succeeded(&mut self) {
        self.backoff = Self::FIRST;
    }
}

pub fn builder(limits: Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // hyper refuses oversized heads itself (431) above this buffer; our route layer gives
    // the exact limit with a problem+json body below it.
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // One buffer, one `write`: the head and a small body (a cached answer) are copied
        // together, cheaper than queueing them for `writev` (`bench/RESULTS.md`). TLS
        // connections flatten anyway.
        .writev(false)
        .max_buf_size((limits.max_header_bytes + 4096).max(8192));
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes + 4096).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    b
}

/// Serves `svc` on `listener` until `shutdown` resolves, then drains for up to `grace`.
pub async fn serve<S>(
    listener: TcpListener,
    svc: S,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let http = builder(limits);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut errors = AcceptErrors::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A free connection slot first: past `max_connections` new ones wait in the backlog.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(c) => {
                errors.succeeded();
                c
            }
            Err(error) => {
                let wait = errors.failed(&error);
                drop(permit);
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let svc = svc.clone();
        let counted = activity.clone();
        let hyper_svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let mut req = req.map(body::boxed);
            context_mut(&mut req).client = Some(ClientAddr(peer));
            let inflight = InFlight::new(&counted);
            let call = svc.clone().oneshot(req);
            async move {
                let rsp = call.await;
                drop(inflight);
                rsp
            }
        });
        let io = TokioIo::new(Watched {
            inner: Corked::new(stream),
            activity: activity.clone(),
        });
        let conn = http
            .serve_connection_with_upgrades(io, hyper_svc)
            .into_owned();
        let idle_timeout = limits.idle_timeout;
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut conn = std::pin::pin!(conn);
            let idle_close = tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(error) = ended {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                    return;
                }
                () = idle(&activity, idle_timeout) => true,
                _ = stop.wait_for(|stopping| *stopping) => false,
            };
            // HTTP/1: close once the response in progress (if any) is written. HTTP/2: GOAWAY,
            // so the client knows no new stream will be served here, then close when the open
            // streams are done.
            conn.as_mut().graceful_shutdown();
            if idle_close {
                tracing::debug!(%peer, "idle connection closed");
                let _ = tokio::time::timeout(goaway_grace(idle_timeout), conn).await;
            } else if let Err(error) = conn.await {
                tracing::debug!(%peer, %error, "connection ended with an error while draining");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection task holds a permit until it ends: all of them back = all drained.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(grace = ?grace, "shutdown grace elapsed with requests still in flight");
    }
}

/// How long an idle connection told to close (HTTP/2: sent GOAWAY and a PING) may take to
/// finish before it is dropped: a quarter of `idle_timeout`, between 10 ms and 1 s.
fn goaway_grace(idle_timeout: Duration) -> Duration {
    (idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_back_off_doubling_to_a_second_and_reset_on_success() {
        let mut e = AcceptErrors::new();
        let err = io::Error::other("too many open files");
        let waits: Vec<Duration> = (0..9).map(|_| e.failed(&err)).collect();
        assert_eq!(waits[0], Duration::from_millis(10));
        assert_eq!(waits[1], Duration::from_millis(20));
        assert_eq!(waits[7], Duration::from_secs(1));
        assert_eq!(waits[8], Duration::from_secs(1));
        // logged once; the other eight within the same second were counted, not logged
        assert_eq!(e.unlogged, 8);
        e.succeeded();
        assert_eq!(e.failed(&err), Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_resolves_only_after_a_quiet_idle_timeout_with_nothing_in_flight() {
        let a = Arc::new(Activity::default());
        let limit = Duration::from_secs(4);
        // in flight: never idle
        let guard = InFlight::new(&a);
        assert!(
            tokio::time::timeout(limit * 3, idle(&a, limit))
                .await
                .is_err()
        );
        drop(guard);
        let start = tokio::time::Instant::now();
        idle(&a, limit).await;
        let waited = start.elapsed();
        assert!(waited >= limit && waited <= limit * 5 / 4, "{waited:?}");
    }
}
