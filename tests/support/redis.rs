//! A private `redis-server` for a test, on a free loopback port, no persistence.
//!
//! Tests that need one call [`Redis::start_or_skip`]: without `redis-server` installed they
//! print `SKIP: redis-server not found` and return early — unless `REQUIRE_ALL=1` (CI), where
//! a missing tool fails the test instead.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    bin: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

/// `redis-server` on `PATH` (or in the usual Debian places).
pub fn find_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            "/usr/bin".into(),
            "/usr/sbin".into(),
            "/usr/local/bin".into(),
        ])
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().unwrap().port()
}

/// `PING` over a raw connection: true on `+PONG`.
pub fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

impl Redis {
    /// Starts one, or returns `None` after printing the SKIP line (panics under
    /// `REQUIRE_ALL=1`).
    pub fn start_or_skip() -> Option<Self> {
        let Some(bin) = find_server() else {
            if std::env::var("REQUIRE_ALL").as_deref() == Ok("1") {
                panic!("redis-server not found and REQUIRE_ALL=1: install redis-server");
            }
            eprintln!("SKIP: redis-server not found");
            println!("SKIP: redis-server not found");
            return None;
        };
        for _ in 0..5 {
            let mut r = Self {
                bin: bin.clone(),
                port: free_port(),
                child: None,
            };
            if r.spawn() {
                return Some(r);
            }
        }
        panic!("could not start redis-server");
    }

    /// Starts the server on `self.port`; true once it answers PING.
    fn spawn(&mut self) -> bool {
        let child = Command::new(&self.bin)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if ping(self.port) {
                return true;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(_)) = c.try_wait()
            {
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL: as abrupt as an outage gets).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        self.kill();
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not restart redis-server on port {}", self.port);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
