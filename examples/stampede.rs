//! A low-overhead S4 stampede client: the peer harness's S4 with the client's own cost taken out.
//!
//! Same workload as the peer harness's S4 stampede: open `N` connections,
//! write one identical `GET` (with `Connection: close`) on each back to back, then read every
//! response to EOF; latency is from the first write to a response's last byte. The harness
//! does this from Python's asyncio, which adds tens of milliseconds when 500 answers arrive at
//! once (`bench/RESULTS.md`, fourth pass). This client
//! writes all requests in one loop of non-blocking `send`s on a single-threaded runtime and
//! reads with one small task per connection, so the figure is the server's.
//!
//! Prints one JSON line: statuses, and first/p50/p99/max completion times in milliseconds.
//!
//! Run: `cargo run --release --example stampede -- HOST:PORT PATH AUTHORIZATION [N]`
//! (`bench/tools/stampede.sh` runs it against the harness's origin, directly and through us).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Per-response bound: a stuck server fails the run instead of hanging it.
const TIMEOUT: Duration = Duration::from_secs(30);

fn usage() -> ! {
    eprintln!("usage: stampede HOST:PORT PATH AUTHORIZATION [N=500]");
    std::process::exit(2)
}

fn pct(sorted: &[f64], p: f64) -> Option<f64> {
    // Nearest rank, as the peer harness computes it, so the two report the same statistic.
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as f64;
    let k = ((p / 100.0 * n + 0.5).round() as usize).saturating_sub(1);
    Some(sorted[k.min(sorted.len() - 1)])
}

async fn read_status(mut s: TcpStream, t0: Instant) -> (u16, f64) {
    let mut buf = Vec::with_capacity(2048);
    let read = tokio::time::timeout(TIMEOUT, s.read_to_end(&mut buf)).await;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let status = match read {
        Ok(Ok(_)) => buf
            .get(9..12)
            .filter(|_| buf.starts_with(b"HTTP/1."))
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| d.parse().ok())
            .unwrap_or(0),
        _ => 0,
    };
    (status, ms)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, path, auth) = match args.as_slice() {
        [a, p, h, ..] => (a.clone(), p.clone(), h.clone()),
        _ => usage(),
    };
    let n: usize = match args.get(3) {
        Some(v) => v.parse().unwrap_or_else(|_| usage()),
        None => 500,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            let s = TcpStream::connect(&addr).await?;
            s.set_nodelay(true)?;
            conns.push(s);
        }
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
        );
        let t0 = Instant::now();
        for s in &conns {
            // A fresh socket's send buffer takes a ~300-byte request whole.
            let sent = s.try_write(req.as_bytes())?;
            if sent != req.len() {
                return Err(std::io::Error::other("short write on a fresh connection"));
            }
        }
        let readers: Vec<_> = conns
            .into_iter()
            .map(|s| tokio::spawn(read_status(s, t0)))
            .collect();
        let mut statuses = BTreeMap::<u16, usize>::new();
        let mut ok = Vec::with_capacity(n);
        for r in readers {
            let (status, ms) = r.await.unwrap_or((0, f64::NAN));
            *statuses.entry(status).or_default() += 1;
            if status == 200 {
                ok.push(ms);
            }
        }
        ok.sort_by(f64::total_cmp);
        let ms = |v: Option<f64>| v.map(|v| (v * 10.0).round() / 10.0);
        let line = serde_json::json!({
            "n": n,
            "statuses": statuses,
            "first_ms": ms(ok.first().copied()),
            "p50_ms": ms(pct(&ok, 50.0)),
            "p99_ms": ms(pct(&ok, 99.0)),
            "max_ms": ms(ok.last().copied()),
        });
        println!("{line}");
        Ok(())
    })
}
