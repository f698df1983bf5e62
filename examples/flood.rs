//! Floods and a soak against the real gateway binary, with its resident memory and CPU.
//!
//! The gateway runs as its own process (so its RSS and CPU are its own) in front of a small
//! origin served by this program, which also publishes the JWKS of a key generated per run.
//! Each flood kind sends only requests that are unique in what the gateway might remember:
//!
//! | kind | requests | what it fills |
//! |---|---|---|
//! | `malformed` | a unique random bearer that is not a JWT | refused-token memory |
//! | `unsigned` | a unique well-formed RS256 token with the right `kid`, bad signature | refused-token memory (one RS256 check each) |
//! | `users` | a unique valid token per user (`--users`), reading its own person with the user's credential | verified tokens, per-user limits, cache |
//! | `ips` | anonymous, a unique `X-Forwarded-For` IPv6 address each | per-IP limits |
//! | `urls` | anonymous, a unique query and address each | cache, coalescing, per-IP limits |
//!
//! Requests are pipelined (`--depth` per write) on `--conns` keep-alive connections. Every
//! 100 ms the gateway's `VmRSS` is sampled; per kind the report gives requests/s, the status
//! mix, the gateway's CPU µs per request (utime + stime), and the peak RSS against the bound
//! `64 MiB + [cache] max_size + 20 KiB × connections`. Kinds run one after the other in one
//! process, so a later kind also carries what the earlier ones left.
//!
//! `--soak-minutes M` instead mixes every kind plus 500 returning users at `--rate` requests/s
//! for M minutes while the config is rewritten (a reload) every 20 s, samples RSS every 10 s and
//! reports its slope after the first fifth of the run, requests lost (sent, never answered),
//! 5xx answers and every warning or error line the gateway logged after it became ready.
//!
//! Run: `bench/flood.sh` (builds the release binary and this example), or
//! `cargo run --release --example flood -- --gateway target/release/outseta-gateway`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ISSUER: &str = "http://flood.test";
const AUDIENCE: &str = "flood.test";
const KID: &str = "flood";
/// Answer bound: a stuck gateway fails the run instead of hanging it.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Malformed,
    Unsigned,
    Users,
    Ips,
    Urls,
    /// Soak only: 500 users reading their own person again and again (cache hits).
    Returning,
}

impl Kind {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "malformed" => Self::Malformed,
            "unsigned" => Self::Unsigned,
            "users" => Self::Users,
            "ips" => Self::Ips,
            "urls" => Self::Urls,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unsigned => "unsigned",
            Self::Users => "users",
            Self::Ips => "ips",
            Self::Urls => "urls",
            Self::Returning => "returning",
        }
    }
}

struct Opts {
    gateway: PathBuf,
    kinds: Vec<Kind>,
    seconds: u64,
    conns: usize,
    depth: usize,
    users: usize,
    cache_mib: u64,
    soak_minutes: Option<u64>,
    rate: u64,
}

fn usage() -> ! {
    eprintln!(
        "usage: flood --gateway BIN [--kinds malformed,unsigned,users,ips,urls] [--seconds 15] \
         [--conns 64] [--depth 16] [--users 20000] [--cache-mib 32] [--soak-minutes M --rate 1000]"
    );
    std::process::exit(2)
}

fn opts() -> Opts {
    let mut o = Opts {
        gateway: PathBuf::from("target/release/outseta-gateway"),
        kinds: vec![
            Kind::Malformed,
            Kind::Unsigned,
            Kind::Users,
            Kind::Ips,
            Kind::Urls,
        ],
        seconds: 15,
        conns: 64,
        depth: 16,
        users: 20_000,
        cache_mib: 32,
        soak_minutes: None,
        rate: 1000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().unwrap_or_else(|| usage());
        let num = |s: String| s.parse::<u64>().unwrap_or_else(|_| usage());
        match a.as_str() {
            "--gateway" => o.gateway = PathBuf::from(v()),
            "--kinds" => {
                o.kinds = v()
                    .split(',')
                    .map(|k| Kind::parse(k).unwrap_or_else(|| usage()))
                    .collect()
            }
            "--seconds" => o.seconds = num(v()),
            "--conns" => o.conns = num(v()) as usize,
            "--depth" => o.depth = num(v()) as usize,
            "--users" => o.users = num(v()) as usize,
            "--cache-mib" => o.cache_mib = num(v()),
            "--soak-minutes" => o.soak_minutes = Some(num(v())),
            "--rate" => o.rate = num(v()),
            _ => usage(),
        }
    }
    o
}

// ---------------------------------------------------------------- signing key and tokens

struct Key {
    pair: KeyPair,
}

impl Key {
    fn generate() -> Self {
        Self {
            pair: KeyPair::generate(KeySize::Rsa2048).unwrap_or_else(|_| fail("RSA keygen")),
        }
    }

    fn jwks(&self) -> String {
        let pk = self.pair.public_key();
        let n = B64.encode(pk.modulus().big_endian_without_leading_zero());
        let e = B64.encode(pk.exponent().big_endian_without_leading_zero());
        serde_json::json!({"keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": KID, "x5t": KID, "n": n, "e": e
        }]})
        .to_string()
    }

    fn token(&self, sub: &str, exp: u64) -> String {
        let msg = format!("{}.{}", header_b64(), claims_b64(sub, exp));
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                msg.as_bytes(),
                &mut sig,
            )
            .unwrap_or_else(|_| fail("sign"));
        format!("{msg}.{}", B64.encode(sig))
    }
}

fn header_b64() -> String {
    B64.encode(format!(
        r#"{{"typ":"JWT","alg":"RS256","kid":"{KID}","x5t":"{KID}"}}"#
    ))
}

fn claims_b64(sub: &str, exp: u64) -> String {
    B64.encode(format!(
        r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","sub":"{sub}","exp":{exp},"outseta:accountUid":"A{sub}"}}"#
    ))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `count` valid tokens for users `U0…`, signed on every core.
fn mint(key: &Key, count: usize) -> Vec<(String, String)> {
    let exp = now_secs() + 4 * 3600;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut out: Vec<(String, String)> = Vec::with_capacity(count);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t..count)
                        .step_by(threads)
                        .map(|i| {
                            let sub = format!("U{i:07}");
                            let tok = key.token(&sub, exp);
                            (sub, tok)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            out.extend(h.join().unwrap_or_default());
        }
    });
    out
}

/// 64 bits that differ for every `n` (splitmix64).
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn ipv6(n: u64) -> String {
    let a = mix(n);
    format!(
        "2001:db8:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
        (n >> 16) & 0xffff,
        n & 0xffff,
        a & 0xffff,
        (a >> 16) & 0xffff,
        (a >> 32) & 0xffff,
        (a >> 48) & 0xffff
    )
}

/// Writes request number `n` of `kind`.
struct Requests {
    tokens: Vec<(String, String)>,
    header: String,
    exp: u64,
    /// A per-run prefix, so two runs against one gateway never repeat a token.
    run: u64,
}

impl Requests {
    fn write(&self, kind: Kind, n: u64, buf: &mut Vec<u8>) {
        let u = self.run ^ n;
        let _ = match kind {
            Kind::Malformed => {
                let junk = B64.encode(
                    [mix(u), mix(u ^ 1), mix(u ^ 2)]
                        .map(u64::to_le_bytes)
                        .concat(),
                );
                write!(
                    buf,
                    "GET /api/v1/crm/people/P{u} HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {}.{}.{}\r\n\r\n",
                    &junk[..12],
                    &junk[12..24],
                    &junk[24..]
                )
            }
            Kind::Unsigned => {
                let sig: Vec<u8> = (0..32u64)
                    .flat_map(|i| mix(u ^ (i << 56)).to_le_bytes())
                    .collect();
                let sub = format!("F{u:x}");
                write!(
                    buf,
                    "GET /api/v1/crm/people/{sub} HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {}.{}.{}\r\n\r\n",
                    self.header,
                    claims_b64(&sub, self.exp),
                    B64.encode(sig)
                )
            }
            Kind::Users => {
                let (sub, tok) = &self.tokens[(n as usize) % self.tokens.len().max(1)];
                write!(
                    buf,
                    "GET /api/v1/crm/people/{sub} HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {tok}\r\n\r\n"
                )
            }
            Kind::Returning => {
                let users = self.tokens.len().clamp(1, 500);
                let (sub, tok) = &self.tokens[(mix(n) as usize) % users];
                write!(
                    buf,
                    "GET /api/v1/crm/people/{sub} HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {tok}\r\n\r\n"
                )
            }
            Kind::Ips => write!(
                buf,
                "GET /api/v1/billing/plans HTTP/1.1\r\nhost: gw\r\nx-forwarded-for: {}\r\n\r\n",
                ipv6(u)
            ),
            Kind::Urls => write!(
                buf,
                "GET /api/v1/billing/plans?limit=25&offset={u} HTTP/1.1\r\nhost: gw\r\nx-forwarded-for: {}\r\n\r\n",
                ipv6(u)
            ),
        };
    }
}

// ---------------------------------------------------------------- origin

/// Answers the JWKS and, for anything else, a small JSON object like an Outseta record.
async fn origin(jwks: String, served: Arc<AtomicU64>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|_| fail("bind origin"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| fail("origin addr"));
    let jwks = Bytes::from(jwks);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let jwks = jwks.clone();
            let served = served.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let body = if req.uri().path() == "/.well-known/jwks" {
                        jwks.clone()
                    } else {
                        served.fetch_add(1, Ordering::Relaxed);
                        Bytes::from(format!(
                            r#"{{"Uid":"{}","Email":"someone@example.com","FirstName":"Some","LastName":"One","Created":"2026-01-01T00:00:00","Updated":"2026-01-01T00:00:00"}}"#,
                            req.uri().path().rsplit('/').next().unwrap_or("")
                        ))
                    };
                    async move {
                        hyper::Response::builder()
                            .header("content-type", "application/json; charset=utf-8")
                            .body(Full::new(body))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

// ---------------------------------------------------------------- the gateway process

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|_| fail("free port"))
}

fn config(origin: SocketAddr, listen: u16, admin: u16, cache_mib: u64, ttl_s: u64) -> String {
    format!(
        r#"[outseta]
upstream = "http://{origin}"
jwks_url = "http://{origin}/.well-known/jwks"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"

[server]
listen = "127.0.0.1:{listen}"
admin_listen = "127.0.0.1:{admin}"
trusted_proxies = ["127.0.0.1/32"]

[cache]
max_size = "{cache_mib}MiB"
ttl = "{ttl_s}s"

[upstream_limit]
rate = "100000/s"
burst = 1000

[[rule]]
name = "read own person"
methods = ["GET"]
path = "/api/v1/crm/people/{{uid}}"
when = "path.uid == claims.sub"
credential = "user"
cache = "default"

[[rule]]
name = "list plans"
methods = ["GET"]
path = "/api/v1/billing/plans"
auth = "optional"
credential = "none"
query_allow = ["limit", "offset"]
cache = "5m"
"#
    )
}

struct Gateway {
    child: Child,
    pid: u32,
    listen: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_gateway(bin: &Path, dir: &Path, cfg: &str) -> Gateway {
    let path = dir.join("gateway.toml");
    std::fs::write(&path, cfg).unwrap_or_else(|_| fail("write config"));
    let log = dir.join("gateway.log");
    let out = std::fs::File::create(&log).unwrap_or_else(|_| fail("create log"));
    let err = out.try_clone().unwrap_or_else(|_| fail("log handle"));
    let child = Command::new(bin)
        .arg("serve")
        .arg("-c")
        .arg(&path)
        .env("OUTSETA_API_KEY", "flood-key")
        .env("OUTSETA_API_SECRET", "flood-secret")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| fail(&format!("start {}: {e}", bin.display())));
    let pid = child.id();
    let listen = addr_of(cfg, "listen");
    let admin = addr_of(cfg, "admin_listen");
    let gw = Gateway {
        child,
        pid,
        listen,
        admin,
        log,
    };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if get_status(gw.admin, "/readyz").await == Some(200) {
            return gw;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fail("the gateway did not become ready in 20 s")
}

fn addr_of(cfg: &str, key: &str) -> SocketAddr {
    cfg.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
        .and_then(|v| v.trim_end_matches('"').parse().ok())
        .unwrap_or_else(|| fail("config address"))
}

async fn get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let (status, _) = get(addr, path).await?;
    Some(status)
}

/// One `GET` on a fresh connection (`Connection: close`): status and body.
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

#[derive(Clone, Copy, Default)]
struct Proc {
    rss_kib: u64,
    cpu_ticks: u64,
}

fn sample(pid: u32) -> Proc {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
    let cpu_ticks = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            get(11) + get(12)
        })
        .unwrap_or(0);
    Proc { rss_kib, cpu_ticks }
}

fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).unwrap_or(100).max(1)
}

// ---------------------------------------------------------------- load

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    answered: AtomicU64,
    lost: AtomicU64,
    by_status: [AtomicU64; 6],
}

impl Tally {
    fn count(&self, status: u16) {
        let i = match status {
            200..=299 => 0,
            401 => 1,
            403 => 2,
            429 => 3,
            500..=599 => 4,
            _ => 5,
        };
        self.by_status[i].fetch_add(1, Ordering::Relaxed);
        self.answered.fetch_add(1, Ordering::Relaxed);
    }

    fn statuses(&self) -> String {
        let names = ["2xx", "401", "403", "429", "5xx", "other"];
        names
            .iter()
            .zip(&self.by_status)
            .filter_map(|(n, c)| {
                let c = c.load(Ordering::Relaxed);
                (c > 0).then(|| format!("{n}: {c}"))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Reads one response from `rbuf`/`s`; returns its status and whether the server closes.
async fn read_response(s: &mut TcpStream, rbuf: &mut Vec<u8>) -> Option<(u16, bool)> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = resp.parse(rbuf) {
            let status = resp.code.unwrap_or(0);
            let mut len = 0usize;
            let mut close = false;
            for h in resp.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    len = std::str::from_utf8(h.value).ok()?.trim().parse().ok()?;
                } else if h.name.eq_ignore_ascii_case("connection")
                    && h.value.eq_ignore_ascii_case(b"close")
                {
                    close = true;
                }
            }
            while rbuf.len() < head + len {
                read_more(s, rbuf).await?;
            }
            rbuf.drain(..head + len);
            return Some((status, close));
        }
        read_more(s, rbuf).await?;
    }
}

async fn read_more(s: &mut TcpStream, rbuf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    let n = tokio::time::timeout(READ_TIMEOUT, s.read(&mut chunk))
        .await
        .ok()?
        .ok()?;
    if n == 0 {
        return None;
    }
    rbuf.extend_from_slice(&chunk[..n]);
    Some(())
}

struct Load {
    addr: SocketAddr,
    requests: Arc<Requests>,
    next: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    depth: usize,
    /// Soak: the kinds to mix; a flood sends `kinds[0]` only.
    kinds: Vec<Kind>,
    /// Soak: batches per second per connection (0: as fast as answers come).
    pace: f64,
}

async fn connection(load: Arc<Load>) {
    let mut wbuf = Vec::with_capacity(load.depth * 1024);
    let mut rbuf = Vec::with_capacity(64 * 1024);
    let mut tick =
        (load.pace > 0.0).then(|| tokio::time::interval(Duration::from_secs_f64(1.0 / load.pace)));
    'connect: while !load.stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(load.addr).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = s.set_nodelay(true);
        rbuf.clear();
        while !load.stop.load(Ordering::Relaxed) {
            if let Some(t) = tick.as_mut() {
                t.tick().await;
            }
            wbuf.clear();
            for _ in 0..load.depth {
                let n = load.next.fetch_add(1, Ordering::Relaxed);
                let kind = load.kinds[(mix(n) as usize) % load.kinds.len()];
                load.requests.write(kind, n, &mut wbuf);
            }
            load.tally
                .sent
                .fetch_add(load.depth as u64, Ordering::Relaxed);
            if s.write_all(&wbuf).await.is_err() {
                load.tally
                    .lost
                    .fetch_add(load.depth as u64, Ordering::Relaxed);
                continue 'connect;
            }
            for i in 0..load.depth {
                match read_response(&mut s, &mut rbuf).await {
                    Some((status, close)) => {
                        load.tally.count(status);
                        if close {
                            let left = (load.depth - i - 1) as u64;
                            load.tally.lost.fetch_add(left, Ordering::Relaxed);
                            continue 'connect;
                        }
                    }
                    None => {
                        let left = (load.depth - i) as u64;
                        load.tally.lost.fetch_add(left, Ordering::Relaxed);
                        continue 'connect;
                    }
                }
            }
        }
    }
}

fn fail(what: &str) -> ! {
    eprintln!("flood: {what}");
    std::process::exit(1)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let o = opts();
    let key = Key::generate();
    let users = if o.soak_minutes.is_some() {
        o.users.min(2000)
    } else if o.kinds.contains(&Kind::Users) {
        o.users
    } else {
        0
    };
    eprintln!("flood: minting {users} tokens");
    let tokens = mint(&key, users.max(1));
    let served = Arc::new(AtomicU64::new(0));
    let origin = origin(key.jwks(), served.clone()).await;
    let dir = std::env::temp_dir().join(format!("flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|_| fail("temp dir"));
    let (listen, admin) = (free_port(), free_port());
    let cfg = config(origin, listen, admin, o.cache_mib, 30);
    let gw = start_gateway(&o.gateway, &dir, &cfg).await;
    let ready_log_len = std::fs::metadata(&gw.log).map_or(0, |m| m.len());
    let requests = Arc::new(Requests {
        tokens,
        header: header_b64(),
        exp: now_secs() + 3600,
        run: mix(now_secs()) << 32,
    });
    let base = sample(gw.pid);
    let bound_kib = (64 + o.cache_mib) * 1024 + 20 * o.conns as u64;
    println!(
        "gateway {} (pid {}), {} connections × depth {}, cache max_size {} MiB, RSS at start {:.1} MiB, bound {:.1} MiB",
        o.gateway.display(),
        gw.pid,
        o.conns,
        o.depth,
        o.cache_mib,
        mib(base.rss_kib),
        mib(bound_kib)
    );
    match o.soak_minutes {
        Some(minutes) => soak(&o, &gw, &dir, origin, requests, minutes, ready_log_len).await,
        None => floods(&o, &gw, requests, bound_kib).await,
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn floods(o: &Opts, gw: &Gateway, requests: Arc<Requests>, bound_kib: u64) {
    println!();
    println!(
        "| kind | requests | req/s | statuses | lost | gateway CPU µs/req | peak RSS MiB | RSS after MiB | within bound |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|---|");
    let hz = ticks_per_sec();
    let mut worst = 0u64;
    for &kind in &o.kinds {
        let load = Arc::new(Load {
            addr: gw.listen,
            requests: requests.clone(),
            next: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            tally: Arc::new(Tally::default()),
            depth: o.depth,
            kinds: vec![kind],
            pace: 0.0,
        });
        let before = sample(gw.pid);
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..o.conns)
            .map(|_| tokio::spawn(connection(load.clone())))
            .collect();
        let mut peak = before.rss_kib;
        while t0.elapsed() < Duration::from_secs(o.seconds) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            peak = peak.max(sample(gw.pid).rss_kib);
        }
        load.stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        let secs = t0.elapsed().as_secs_f64();
        let after = sample(gw.pid);
        peak = peak.max(after.rss_kib);
        worst = worst.max(peak);
        let answered = load.tally.answered.load(Ordering::Relaxed);
        let cpu_us = (after.cpu_ticks - before.cpu_ticks) as f64 * 1e6 / hz as f64;
        println!(
            "| {} | {} | {:.0} | {} | {} | {:.1} | {:.1} | {:.1} | {} |",
            kind.name(),
            answered,
            answered as f64 / secs,
            load.tally.statuses(),
            load.tally.lost.load(Ordering::Relaxed),
            cpu_us / answered.max(1) as f64,
            mib(peak),
            mib(after.rss_kib),
            if peak <= bound_kib { "yes" } else { "**NO**" }
        );
    }
    println!();
    println!(
        "peak RSS over all kinds: {:.1} MiB; bound {:.1} MiB: {}",
        mib(worst),
        mib(bound_kib),
        if worst <= bound_kib {
            "held"
        } else {
            "EXCEEDED"
        }
    );
    if let Some((_, metrics)) = get(gw.admin, "/metrics").await {
        let interesting: Vec<&str> = metrics
            .lines()
            .filter(|l| {
                !l.starts_with('#')
                    && [
                        "cache_bytes",
                        "cache_entries",
                        "user_limit_keys",
                        "user_limited",
                    ]
                    .iter()
                    .any(|m| l.contains(m))
            })
            .collect();
        if !interesting.is_empty() {
            println!("\n{}", interesting.join("\n"));
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn soak(
    o: &Opts,
    gw: &Gateway,
    dir: &Path,
    origin: SocketAddr,
    requests: Arc<Requests>,
    minutes: u64,
    ready_log_len: u64,
) {
    let kinds = vec![
        Kind::Returning,
        Kind::Returning,
        Kind::Returning,
        Kind::Malformed,
        Kind::Unsigned,
        Kind::Ips,
        Kind::Urls,
        Kind::Users,
    ];
    let batches_per_s = o.rate as f64 / (o.conns * o.depth) as f64;
    let load = Arc::new(Load {
        addr: gw.listen,
        requests,
        next: Arc::new(AtomicU64::new(0)),
        stop: Arc::new(AtomicBool::new(false)),
        tally: Arc::new(Tally::default()),
        depth: o.depth,
        kinds,
        pace: batches_per_s,
    });
    let (listen, admin) = (gw.listen.port(), gw.admin.port());
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..o.conns)
        .map(|_| tokio::spawn(connection(load.clone())))
        .collect();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut reloads = 0u64;
    let total = Duration::from_secs(minutes * 60);
    let mut next_sample = Duration::ZERO;
    let mut next_reload = Duration::from_secs(20);
    let start_cpu = sample(gw.pid).cpu_ticks;
    while t0.elapsed() < total {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let e = t0.elapsed();
        if e >= next_sample {
            samples.push((e.as_secs_f64() / 60.0, sample(gw.pid).rss_kib));
            next_sample += Duration::from_secs(10);
        }
        if e >= next_reload {
            reloads += 1;
            let cfg = config(origin, listen, admin, o.cache_mib, 30 + reloads % 2);
            let tmp = dir.join("gateway.toml.new");
            if std::fs::write(&tmp, cfg).is_ok() {
                let _ = std::fs::rename(&tmp, dir.join("gateway.toml"));
            }
            next_reload += Duration::from_secs(20);
        }
    }
    load.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let end = sample(gw.pid);
    let answered = load.tally.answered.load(Ordering::Relaxed);
    let sent = load.tally.sent.load(Ordering::Relaxed);
    let settled: Vec<(f64, u64)> = samples
        .iter()
        .copied()
        .filter(|(m, _)| *m >= minutes as f64 / 5.0)
        .collect();
    let slope = slope_kib_per_min(&settled);
    let (lo, hi) = settled
        .iter()
        .fold((u64::MAX, 0), |(lo, hi), (_, r)| (lo.min(*r), hi.max(*r)));
    let metrics = get(gw.admin, "/metrics")
        .await
        .map(|(_, b)| b)
        .unwrap_or_default();
    let reload_lines: BTreeMap<&str, &str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("reload"))
        .filter_map(|l| l.rsplit_once(' '))
        .collect();
    let log = std::fs::read(&gw.log).unwrap_or_default();
    let after_ready = String::from_utf8_lossy(log.get(ready_log_len as usize..).unwrap_or(&[]));
    let log_lines: Vec<&str> = after_ready
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let cpu_s = (end.cpu_ticks - start_cpu) as f64 / ticks_per_sec() as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nsoak: {minutes} min at {} req/s target, {} connections",
        o.rate, o.conns
    );
    let _ = writeln!(
        out,
        "- requests sent {sent}, answered {answered}, lost {}",
        load.tally.lost.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "- statuses: {}", load.tally.statuses());
    let _ = writeln!(
        out,
        "- config rewrites: {reloads}; gateway reload metrics: {reload_lines:?}"
    );
    let _ = writeln!(
        out,
        "- RSS after the first {:.0} min: min {:.1} MiB, max {:.1} MiB, end {:.1} MiB; slope {:+.1} KiB/min",
        minutes as f64 / 5.0,
        mib(lo),
        mib(hi),
        mib(end.rss_kib),
        slope
    );
    let _ = writeln!(
        out,
        "- gateway CPU: {cpu_s:.1} s ({:.1} µs/request)",
        cpu_s * 1e6 / answered.max(1) as f64
    );
    let _ = writeln!(
        out,
        "- warning/error lines logged after ready: {}",
        log_lines.len()
    );
    for l in log_lines.iter().take(5) {
        let _ = writeln!(out, "    {l}");
    }
    let _ = writeln!(out, "- RSS samples (minute, MiB):");
    for (m, r) in samples.iter().step_by(6) {
        let _ = writeln!(out, "    {m:5.1}  {:.1}", mib(*r));
    }
    print!("{out}");
    let _ = std::io::stdout().flush();
}

/// Least-squares slope of RSS (KiB) over minutes.
fn slope_kib_per_min(points: &[(f64, u64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (*y as f64 - my), b + (x - mx) * (x - mx))
    });
    if den == 0.0 { 0.0 } else { num / den }
}
