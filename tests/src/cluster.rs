//! Real `taskgate serve` processes on one database, for the replica tests: started from a
//! config file, killed with SIGKILL or stopped with SIGTERM like an operator (or systemd) would,
//! their output kept in files for when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One `taskgate serve` process.
pub struct Replica {
    pub name: String,
    pub url: String,
    child: Child,
    log: PathBuf,
}

/// A free port on 127.0.0.1 (bound and released: another process may take it in between,
/// which a test would see as a start-up failure, not a wrong result).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Replica {
    /// Starts `taskgate --config <config> serve` and waits until it answers `/healthz`.
    pub async fn start(binary: &str, name: &str, config: &Path, port: u16, dir: &Path) -> anyhow::Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(binary)
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env("TASKGATE_LOG", "info,taskgate=debug")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        let replica = Replica { name: name.to_owned(), url: format!("http://127.0.0.1:{port}"), child, log };
        let started = Instant::now();
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(format!("{}/healthz", replica.url)).send().await
                && r.status().is_success()
            {
                return Ok(replica);
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "{name} did not start:\n{}", replica.output());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the process dies where it stands.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as an operator or systemd stops it.
    pub fn terminate(&self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
    }

    /// Waits (at most `limit`) for the process to exit; its exit code, `None` on timeout.
    pub async fn exited_within(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Everything the process wrote (for failure messages).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One prompt an agent process received (the fake agent's `--prompts` file).
#[derive(Debug, Clone)]
pub struct Prompt {
    pub pid: u32,
    /// The gateway process that started the agent.
    pub ppid: u32,
    pub at_ms: u128,
    pub text: String,
    /// The protocol's raw input (see the fake agent's `log_input`); `null` when not recorded.
    pub input: Value,
}

/// The prompts in `file`, in the order they were written.
pub fn prompts(file: &Path) -> Vec<Prompt> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| Prompt {
            pid: v["pid"].as_u64().unwrap_or_default() as u32,
            ppid: v["ppid"].as_u64().unwrap_or_default() as u32,
            at_ms: v["at_ms"].as_u64().unwrap_or_default() as u128,
            text: v["text"].as_str().unwrap_or_default().to_owned(),
            input: v["input"].clone(),
        })
        .collect()
}
