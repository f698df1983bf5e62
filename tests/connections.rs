//! Connections under abuse: idle, half-sent and HTTP/2-preface-only connections are closed
//! after `idle_timeout` (on the public and the admin listener; HTTP/2 with a GOAWAY first), and a flood of idle sockets past `max_connections` does not keep a
//! real client out for longer than that.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::client::{bearer, get};
use support::gateway::{AUDIENCE, Gateway, ISSUER, RULES};
use support::keys::{self, SigningKey};
use support::mock::MockOutseta;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IDLE: Duration = Duration::from_secs(1);

async fn start(max_connections: usize) -> (MockOutseta, Gateway, SigningKey) {
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    let extra = format!(
        "idle_timeout = \"1s\"\nheader_read_timeout = \"1s\"\nmax_connections = {max_connections}\n{RULES}"
    );
    let gw = Gateway::start(&mock, &extra).await;
    (mock, gw, key)
}

/// Opens a connection, sends `first`, and returns how long until the gateway closed it (or
/// `None` if it was still open after `limit`).
async fn closed_after(addr: SocketAddr, first: &[u8], limit: Duration) -> Option<Duration> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    if !first.is_empty() {
        s.write_all(first).await.expect("write");
    }
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((start + limit).into(), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            // h2: the server's SETTINGS (and later GOAWAY) may arrive before the close
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn silent_partial_and_h2_preface_connections_are_closed_after_idle_timeout() {
    let (_mock, gw, _key) = start(100).await;
    let limit = IDLE * 4;
    let cases: [(&str, &[u8]); 4] = [
        ("never sends a byte", b""),
        ("one byte", b"G"),
        (
            "half a request head",
            b"GET /api/v1/crm/people/u1 HTTP/1.1\r\nHost: gw\r\n",
        ),
        (
            "the HTTP/2 preface, then silence",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ),
    ];
    // The same on the public listener and on the admin listener.
    let waits = futures_util::future::join_all([gw.addr, gw.admin].iter().flat_map(|addr| {
        cases
            .iter()
            .map(|(_, first)| closed_after(*addr, first, limit))
    }))
    .await;
    for ((what, _), waited) in cases.iter().chain(cases.iter()).zip(waits) {
        let waited = waited.unwrap_or_else(|| panic!("{what}: still open after {limit:?}"));
        assert!(
            waited <= IDLE * 2,
            "{what}: closed after {waited:?}, idle_timeout is {IDLE:?}"
        );
    }
    gw.shutdown().await;
}

/// An idle HTTP/2 connection is told with a GOAWAY frame that it will be closed, before the
/// close: a client never sends a request into a connection that is already going away.
#[tokio::test]
async fn an_idle_h2_connection_gets_goaway_before_it_is_closed() {
    let (_mock, gw, _key) = start(100).await;
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    // The client preface and an empty SETTINGS frame.
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("write");
    let start = Instant::now();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + IDLE * 4).into(), s.read(&mut buf)).await {
            Err(_) => panic!("still open after {:?}", IDLE * 4),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    let closed = start.elapsed();
    // Frame types, in order: 9-byte headers (24-bit length, type, flags, stream id).
    let mut types = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = usize::from(bytes[at]) << 16
            | usize::from(bytes[at + 1]) << 8
            | usize::from(bytes[at + 2]);
        types.push(bytes[at + 3]);
        at += 9 + len;
    }
    const GOAWAY: u8 = 0x7;
    assert!(
        types.contains(&GOAWAY),
        "frames before the close: {types:?}"
    );
    assert!(
        closed >= IDLE && closed <= IDLE * 2,
        "closed after {closed:?}, idle_timeout is {IDLE:?}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn idle_sockets_past_max_connections_do_not_keep_a_real_client_out() {
    let (_mock, gw, key) = start(20).await;
    // 3× max_connections sockets that never send a byte.
    let mut idle = Vec::new();
    for _ in 0..60 {
        idle.push(TcpStream::connect(gw.addr).await.expect("connect"));
    }
    let auth = bearer(&key.token(&keys::claims(ISSUER, AUDIENCE, "u1", "acct-1")));
    let start = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        get(
            &gw.url("/api/v1/crm/people/u1"),
            &[("authorization", &auth)],
        ),
    )
    .await
    .expect("the real client is served once idle sockets are closed");
    assert_eq!(r.status, 200, "{}", r.text());
    // It waited in the backlog behind the idle sockets, which held every slot until their
    // idle_timeout: the cap held, and idle connections did not hold it for good.
    let waited = start.elapsed();
    assert!(waited >= IDLE * 3 / 4, "served after {waited:?}: no cap?");
    drop(idle);
    gw.shutdown().await;
}
