//! Running the real `outseta-gateway` binary: output captured, addresses read from its
//! "serving" log line, signals sent with `kill`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_outseta-gateway");

pub struct Proc {
    pub child: Child,
    pub output: Arc<Mutex<String>>,
}

impl Proc {
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn_command(Command::new(BIN), args, env)
    }

    /// The binary pinned to CPU 0 with `taskset` (check it is present first).
    pub fn spawn_on_one_cpu(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", "0", BIN]);
        Self::spawn_command(cmd, args, env)
    }

    fn spawn_command(mut cmd: Command, args: &[&str], env: &[(&str, &str)]) -> Self {
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        cmd.env_remove("OUTSETA_API_KEY")
            .env_remove("OUTSETA_API_SECRET")
            .env_remove("OUTSETA_GATEWAY_CONFIG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn outseta-gateway");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let out = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut o = out.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        Self { child, output }
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits for the JSON "serving" line; returns (listen, admin).
    pub async fn wait_serving(&self) -> (SocketAddr, SocketAddr) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            for line in self.output().lines() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                    && v["message"] == "outseta-gateway serving"
                {
                    let l = v["listen"].as_str().unwrap().parse().unwrap();
                    let a = v["admin"].as_str().unwrap().parse().unwrap();
                    return (l, a);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("gateway did not start:\n{}", self.output());
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for exit (up to `limit`); returns the exit code.
    pub async fn wait_exit(&mut self, limit: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads drain.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return status.code().unwrap_or(-1);
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("process did not exit in {limit:?}:\n{}", self.output());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Runs the binary to completion; returns (exit code, stdout+stderr).
pub fn run(args: &[&str], env: &[(&str, &str)], cwd: Option<&Path>) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("OUTSETA_API_KEY")
        .env_remove("OUTSETA_API_SECRET")
        .env_remove("OUTSETA_GATEWAY_CONFIG");
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run outseta-gateway");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// Writes `text` to a fresh temp file and returns its path.
pub fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ogw-test-{}-{}", std::process::id(), name));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
