//! The simulator's accept loop: hyper-util's auto builder (HTTP/1.1 and h2c), one task per
//! connection, graceful drain when the shutdown future resolves.
//!
//! The gateway has its own, hardened loop; this one is deliberately separate (the simulator
//! crate does not depend on the gateway) and smaller, but keeps the same bounds.
//!
//! # Guarantees
//! - Listeners queue up to [`LISTEN_BACKLOG`] finished handshakes.
//! - Request heads must arrive within [`Limits::header_read_timeout`] and fit
//!   [`Limits::max_header_bytes`] (HTTP/1 and HTTP/2).
//! - At most [`Limits::max_connections`] connections are open; past it new ones wait in the
//!   listen backlog (no queue in this process).
//! - A connection with no request in flight and no byte moving for
//!   [`Limits::idle_timeout`] is closed (checked every quarter of it): HTTP/1 keep-alive,
//!   HTTP/2, or one that never sent a byte.
//! - Accept errors (`EMFILE`, …) back off, doubling from 10 ms to 1 s.
//! - On shutdown the listener closes first, every connection is told to close (HTTP/1 after
//!   its current response, HTTP/2 with a GOAWAY), and in-flight requests get `grace`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;

use crate::body::Body;

/// The accept queue the kernel may hold (capped by `net.core.somaxconn`): a burst of new
/// connections (a load test's ramp) waits for the accept loop instead of being dropped.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` with address reuse and a [`LISTEN_BACKLOG`]-deep accept queue.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Bounds of the accept loop and the HTTP codecs.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub idle_timeout: Duration,
}

/// What a connection's idle watchdog reads.
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

/// A stream that bumps its connection's activity whenever bytes move.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl Watched {
    fn moved(&self, n: usize) {
        if n > 0 {
            self.activity.ticks.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.moved(buf.filled().len() - before);
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            self.moved(*n);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &polled {
            self.moved(*n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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

fn builder(limits: Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size((limits.max_header_bytes + 4096).max(8192));
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes + 4096).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    b
}

/// Serves `handle` on `listener` until `shutdown` resolves, then drains for up to `grace`.
pub async fn serve<H, F>(
    listener: TcpListener,
    handle: H,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    const FIRST_BACKOFF: Duration = Duration::from_millis(10);
    let http = builder(limits);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let max = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    let mut backoff = FIRST_BACKOFF;
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
                backoff = FIRST_BACKOFF;
                c
            }
            Err(error) => {
                tracing::warn!(%error, ?backoff, "simulator: accept failed; backing off");
                drop(permit);
                let wait = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let counted = activity.clone();
        let handle = handle.clone();
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let inflight = InFlight::new(&counted);
            let call = handle(req);
            async move {
                let rsp = call.await;
                drop(inflight);
                Ok::<_, Infallible>(rsp)
            }
        });
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
        });
        let conn = http.serve_connection(io, svc).into_owned();
        let idle_timeout = limits.idle_timeout;
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut conn = std::pin::pin!(conn);
            let idle_close = tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(error) = ended {
                        tracing::debug!(%peer, %error, "simulator: connection ended with an error");
                    }
                    return;
                }
                () = idle(&activity, idle_timeout) => true,
                _ = stop.wait_for(|stopping| *stopping) => false,
            };
            conn.as_mut().graceful_shutdown();
            if idle_close {
                // Nothing in flight: a GOAWAY (HTTP/2) gets a short while, then the socket goes.
                let quick =
                    (idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
                let _ = tokio::time::timeout(quick, conn).await;
            } else if let Err(error) = conn.await {
                tracing::debug!(%peer, %error, "simulator: connection ended with an error while draining");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection task holds a permit until it ends: all of them back = all drained.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "simulator: shutdown grace elapsed with requests still in flight"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_resolves_only_after_a_quiet_idle_timeout_with_nothing_in_flight() {
        let a = Arc::new(Activity::default());
        let limit = Duration::from_secs(4);
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
