//! Write clustering: on a connection, the first write after each read waits one turn of the
//! scheduler, so the writes of one batch of ready connections leave back to back.
//!
//! # Why
//! Under load the runtime's worker takes a batch of ready connections from one `epoll_wait`.
//! Without this, each connection reads, computes and writes before the next one is looked at,
//! so writes leave one at a time, tens of microseconds apart — and each wakes a peer that had
//! gone back to sleep in the meantime. That wake-up runs inside our `writev` and is the
//! largest single kernel cost of a cached answer (on a VM, waking an idle CPU is an
//! inter-processor interrupt through the hypervisor; `bench/RESULTS.md`, third pass).
//! Deferring the first write lets the other
//! connections of the batch compute theirs first; the peer, woken by the first write, finds
//! the rest already queued. Outbound, the same lets the upstream answer several requests per
//! wake-up instead of one. HAProxy gets the same effect from its event loop (sends are made
//! after the batch's processing); tokio runs each task to its write.
//!
//! # Guarantees
//! - Bytes are never held back for time or size: a deferred write returns `Pending` after
//!   waking its own task, which tokio then queues behind the tasks already runnable (a task
//!   woken while it runs goes to the back of the queue, not to its LIFO slot). With nothing
//!   else runnable the write goes out at once.
//! - At most one deferral per completed read, and never two without a real write attempt in
//!   between, so a peer that keeps sending cannot hold a write back. Writes that follow
//!   without a read in between (the rest of a streamed body) are not deferred.
//! - At most [`MAX_DEFERRED`] writes wait at once in the whole process; beyond that a write
//!   goes out at once, so a large burst of ready connections does not have every answer wait
//!   for all the others to be computed.
//! - Reads, flushes and shutdowns pass through unchanged.
//!
//! # Position
//! Wraps the accepted `TcpStream` under hyper's server connection (`server::serve`) and,
//! through [`CorkedConnector`], each outbound TCP connection under TLS (`upstream::client`).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Writes deferred at once, across all connections, at most: a larger burst of ready
/// connections (500 followers of one cache fill, say) has its other writes go out at once, so
/// the clustering adds at most this many writes' worth of delay to any answer.
pub const MAX_DEFERRED: usize = 64;

/// The process's count of writes deferred right now (tasks move between workers, so it is
/// one atomic rather than one per thread).
static DEFERRED: AtomicUsize = AtomicUsize::new(0);

pin_project_lite::pin_project! {
    /// An I/O object whose first write after each read yields once to the scheduler.
    #[derive(Debug)]
    pub struct Corked<T> {
        #[pin]
        inner: T,
        // A read completed since the last write attempt: the next write is deferred once.
        armed: bool,
        // The last write attempt was deferred and holds one slot of `count`. Reads do not arm
        // again until a write has really been attempted, so a peer that keeps sending cannot
        // hold a write back.
        deferred: bool,
        count: &'static AtomicUsize,
    }

    impl<T> PinnedDrop for Corked<T> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.deferred {
                this.count.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl<T> Corked<T> {
    pub fn new(inner: T) -> Self {
        Self::counted_by(inner, &DEFERRED)
    }

    /// With its own count of deferred writes (tests).
    fn counted_by(inner: T, count: &'static AtomicUsize) -> Self {
        Self {
            inner,
            armed: false,
            deferred: false,
            count,
        }
    }

    /// True when this write attempt is deferred; the task has then been woken.
    fn take_armed(self: Pin<&mut Self>, cx: &Context<'_>) -> bool {
        let this = self.project();
        if std::mem::replace(this.deferred, false) {
            // The retry of a deferred write: its slot is free again.
            this.count.fetch_sub(1, Ordering::Relaxed);
        }
        if !std::mem::replace(this.armed, false) {
            return false;
        }
        if this.count.fetch_add(1, Ordering::Relaxed) >= MAX_DEFERRED {
            this.count.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        *this.deferred = true;
        // Polled again after the tasks already in the run queue (tokio requeues a task that
        // woke itself while running at the back, not in its LIFO slot).
        cx.waker().wake_by_ref();
        true
    }
}

impl<T: AsyncRead> AsyncRead for Corked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before && !*this.deferred {
            *this.armed = true;
        }
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for Corked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.as_mut().take_armed(cx) {
            return Poll::Pending;
        }
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.as_mut().take_armed(cx) {
            return Poll::Pending;
        }
        self.project().inner.poll_write_vectored(cx, bufs)
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

impl<T: hyper_util::client::legacy::connect::Connection>
    hyper_util::client::legacy::connect::Connection for Corked<T>
{
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        self.inner.connected()
    }
}

/// An outbound connection: hyper's I/O traits over a [`Corked`] over tokio's, adapted both
/// ways by [`TokioIo`] (no second implementation of the deferral for hyper's traits).
pub type CorkedIo<R> = TokioIo<Corked<TokioIo<R>>>;

fn corked_io<R>(io: R) -> CorkedIo<R> {
    TokioIo::new(Corked::new(TokioIo::new(io)))
}

/// A connector whose connections are [`Corked`].
#[derive(Debug, Clone)]
pub struct CorkedConnector<C>(pub C);

impl<C, R> tower::Service<http::Uri> for CorkedConnector<C>
where
    C: tower::Service<http::Uri, Response = R>,
{
    type Response = CorkedIo<R>;
    type Error = C::Error;
    type Future = futures_util::future::MapOk<C::Future, fn(R) -> CorkedIo<R>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        use futures_util::TryFutureExt;
        self.0.call(uri).map_ok(corked_io as fn(R) -> CorkedIo<R>)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    use super::*;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Waker, Arc<Count>) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (Waker::from(c.clone()), c)
    }

    fn write(io: &mut Corked<DuplexStream>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        Pin::new(io).poll_write(cx, b"answer")
    }

    async fn read(io: &mut Corked<DuplexStream>) -> usize {
        let mut buf = [0u8; 64];
        io.read(&mut buf).await.unwrap()
    }

    #[tokio::test]
    async fn a_write_without_a_read_before_goes_out_at_once() {
        let (a, _b) = duplex(1024);
        let mut io = Corked::new(a);
        let (w, woken) = waker();
        let mut cx = Context::from_waker(&w);
        assert!(matches!(write(&mut io, &mut cx), Poll::Ready(Ok(6))));
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn the_first_write_after_a_read_yields_once_and_wakes_its_task() {
        let (a, mut b) = duplex(1024);
        let mut io = Corked::new(a);
        b.write_all(b"request").await.unwrap();
        assert_eq!(read(&mut io).await, 7);
        let (w, woken) = waker();
        let mut cx = Context::from_waker(&w);
        assert!(write(&mut io, &mut cx).is_pending());
        assert_eq!(
            woken.0.load(Ordering::SeqCst),
            1,
            "the task is woken, not left parked"
        );
        assert!(matches!(write(&mut io, &mut cx), Poll::Ready(Ok(6))));
        assert!(matches!(write(&mut io, &mut cx), Poll::Ready(Ok(6))));
        let mut got = [0u8; 12];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"answeranswer");
    }

    #[tokio::test]
    async fn a_peer_that_keeps_sending_cannot_hold_a_write_back() {
        let (a, mut b) = duplex(1024);
        let mut io = Corked::new(a);
        let (w, _) = waker();
        let mut cx = Context::from_waker(&w);
        b.write_all(b"one").await.unwrap();
        read(&mut io).await;
        assert!(write(&mut io, &mut cx).is_pending());
        b.write_all(b"two").await.unwrap();
        read(&mut io).await;
        assert!(matches!(write(&mut io, &mut cx), Poll::Ready(Ok(6))));
    }

    #[tokio::test]
    async fn hypers_io_traits_defer_the_same_way() {
        let (a, mut b) = duplex(1024);
        // As `CorkedConnector` wraps a connection (hyper's traits, like `TokioIo<TcpStream>`).
        let mut io = corked_io(TokioIo::new(a));
        let (w, woken) = waker();
        let mut cx = Context::from_waker(&w);
        b.write_all(b"response").await.unwrap();
        let mut storage = [0u8; 64];
        let mut buf = hyper::rt::ReadBuf::new(&mut storage);
        let polled = hyper::rt::Read::poll_read(Pin::new(&mut io), &mut cx, buf.unfilled());
        assert!(matches!(polled, Poll::Ready(Ok(()))));
        assert_eq!(buf.filled(), b"response");
        let write = |io: &mut CorkedIo<TokioIo<DuplexStream>>, cx: &mut Context<'_>| {
            hyper::rt::Write::poll_write(Pin::new(io), cx, b"next request")
        };
        assert!(write(&mut io, &mut cx).is_pending());
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert!(matches!(write(&mut io, &mut cx), Poll::Ready(Ok(12))));
    }

    #[tokio::test]
    async fn at_most_max_deferred_writes_wait_at_once_and_their_slots_come_back() {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let (w, _) = waker();
        let mut cx = Context::from_waker(&w);
        let mut ios = Vec::new();
        let mut peers = Vec::new();
        for _ in 0..=MAX_DEFERRED {
            let (a, mut b) = duplex(64);
            b.write_all(b"x").await.unwrap();
            let mut io = Corked::counted_by(a, &COUNT);
            read(&mut io).await;
            ios.push(io);
            peers.push(b);
        }
        for io in &mut ios[..MAX_DEFERRED] {
            assert!(write(io, &mut cx).is_pending());
        }
        assert_eq!(COUNT.load(Ordering::SeqCst), MAX_DEFERRED);
        assert!(
            matches!(write(&mut ios[MAX_DEFERRED], &mut cx), Poll::Ready(Ok(6))),
            "over the cap a write goes out at once"
        );
        assert!(matches!(write(&mut ios[0], &mut cx), Poll::Ready(Ok(6))));
        assert_eq!(
            COUNT.load(Ordering::SeqCst),
            MAX_DEFERRED - 1,
            "a retry frees its slot"
        );
        drop(ios);
        assert_eq!(
            COUNT.load(Ordering::SeqCst),
            0,
            "a dropped connection frees its slot"
        );
    }

    #[tokio::test]
    async fn end_of_stream_does_not_arm() {
        let (a, b) = duplex(1024);
        let mut io = Corked::new(a);
        drop(b);
        assert_eq!(read(&mut io).await, 0);
        let (w, _) = waker();
        let mut cx = Context::from_waker(&w);
        // The peer is gone: the write fails at once rather than being deferred.
        assert!(matches!(write(&mut io, &mut cx), Poll::Ready(Err(_))));
    }
}
