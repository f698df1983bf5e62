//! The accept loop: hyper-util's auto builder (HTTP/1.1 and h2c), one task per connection,
//! graceful drain on shutdown.
//!
//! # Guarantees
//! - Header read timeout (slowloris) and header size bounds are set on both protocols.
//! - On shutdown the listener is closed first, then in-flight requests get `grace` to finish.
//! - Listeners made by [`listen`] queue up to [`LISTEN_BACKLOG`] finished handshakes, so a
//!   burst of new connections (an SPA fleet reconnecting, a stampede) waits for the accept
//!   loop instead of having its handshakes dropped and retried a second later.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tower::{Service, ServiceExt};

use crate::body::{self, Body};
use crate::cork::Corked;
use crate::proxy::context::{ClientAddr, context_mut};

/// How many connections the kernel may hold, handshake done, before the accept loop takes
/// them (the kernel caps it at `net.core.somaxconn`). `TcpListener::bind` asks for 128: a
/// burst of 500 new connections then overflows the queue, the kernel drops the handshakes
/// that do not fit, and those clients retry a second later (634 SYNs on the wire for 500
/// connections, `bench/RESULTS.md`). nginx asks for 511, HAProxy for its `maxconn`.
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
}

pub fn builder(limits: Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // hyper refuses oversized heads itself (431) above this buffer; our route layer gives
    // the exact limit with a problem+json body below it.
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // One buffer, one `write`: the head and a small body (a cached answer) are copied
        // together, cheaper than queueing them for `writev` (callgrind, S1: −0.7k
        // instructions per hit). TLS connections flatten anyway.
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
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(c) => c,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let svc = svc.clone();
                let hyper_svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let mut req = req.map(body::boxed);
                    context_mut(&mut req).client = Some(ClientAddr(peer));
                    svc.clone().oneshot(req)
                });
                let io = TokioIo::new(Corked::new(stream));
                let conn = http.serve_connection_with_upgrades(io, hyper_svc);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    if let Err(error) = conn.await {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?grace, "shutdown grace elapsed with requests still in flight");
    }
}
