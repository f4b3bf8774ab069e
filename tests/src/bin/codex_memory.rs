//! Memory of codex app-servers with N sessions: shared (one app-server hosts every session as a
//! thread) versus one app-server per session.
//!
//! `cargo run -p taskgate-tests --bin codex-memory --release [-- --sessions 1,5,20 --modes shared,own]`
//!
//! Needs the real Codex CLI in `TASKGATE_CODEX_BIN` (`eval "$(bash .ci/agent-clis)"`). Every model
//! call goes to the fake model server on 127.0.0.1. For each mode and N it starts N sessions
//! through the gateway's runtime adapters, runs one turn on each, waits a moment, then reads
//! from /proc the resident memory of every process it started (the `codex` launcher and the
//! native app-server under it): RSS summed (pages shared between processes count once per
//! process), its anonymous part (heap and stacks: what each process costs on its own), and PSS
//! (shared pages split between the processes that share them), plus this process's own RSS
//! (the adapters and the fake model). Timing is not the point: "start s" is only how long
//! starting the N sessions took.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use taskgate_adapters::runtime::AgentRuntimes;
use taskgate_core::runtime::{AgentRuntime, AgentSession, RuntimeEvent};
use taskgate_tests::fake_model::FakeModel;
use taskgate_tests::real_cli::CodexSandbox;

const TURN_LIMIT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Shared,
    Own,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Shared => "shared",
            Mode::Own => "own",
        }
    }
}

struct Sample {
    mode: Mode,
    sessions: usize,
    app_servers: usize,
    processes: usize,
    rss_kib: u64,
    anon_kib: u64,
    pss_kib: u64,
    self_kib: u64,
    start_secs: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let sessions: Vec<usize> = value("--sessions")
        .unwrap_or_else(|| "1,5,20".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let modes: Vec<Mode> = value("--modes")
        .unwrap_or_else(|| "shared,own".into())
        .split(',')
        .filter_map(|m| match m.trim() {
            "shared" => Some(Mode::Shared),
            "own" => Some(Mode::Own),
            _ => None,
        })
        .collect();
    let Some(bin) = std::env::var_os("TASKGATE_CODEX_BIN").map(PathBuf::from) else {
        eprintln!("codex-memory: set TASKGATE_CODEX_BIN (eval \"$(bash .ci/agent-clis)\")");
        std::process::exit(2);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let samples = runtime.block_on(async {
        let mut samples = Vec::new();
        for &mode in &modes {
            for &n in &sessions {
                match measure(&bin, mode, n).await {
                    Ok(sample) => {
                        print_row(&sample);
                        samples.push(sample);
                    }
                    Err(e) => {
                        eprintln!("codex-memory: {} with {n} sessions: {e}", mode.name());
                        std::process::exit(1);
                    }
                }
            }
        }
        samples
    });
    println!();
    println!(
        "| sessions | mode | app-servers | processes | RSS MiB | anon RSS MiB | PSS MiB | RSS MiB per session | this process MiB | start s |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in &samples {
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} |",
            s.sessions,
            s.mode.name(),
            s.app_servers,
            s.processes,
            mib(s.rss_kib),
            mib(s.anon_kib),
            mib(s.pss_kib),
            mib(s.rss_kib) / s.sessions as f64,
            mib(s.self_kib),
            s.start_secs,
        );
    }
}

fn print_row(s: &Sample) {
    eprintln!(
        "{} sessions, {}: {} app-server(s), {} processes, RSS {:.0} MiB, PSS {:.0} MiB",
        s.sessions,
        s.mode.name(),
        s.app_servers,
        s.processes,
        mib(s.rss_kib),
        mib(s.pss_kib)
    );
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn measure(bin: &Path, mode: Mode, n: usize) -> Result<Sample, String> {
    let fake = FakeModel::start().await.map_err(|e| format!("fake model: {e}"))?;
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tmp/codex-memory");
    let sandbox = CodexSandbox::new(&base, &fake).map_err(|e| format!("sandbox: {e}"))?;
    let runtime = AgentRuntimes::default();
    let began = Instant::now();
    let mut sessions: Vec<Box<dyn AgentSession>> = Vec::new();
    for i in 0..n {
        let mut spec = sandbox.spec_in(bin, &format!("s{i}")).map_err(|e| format!("workdir: {e}"))?;
        spec.share_process = Some(mode == Mode::Shared);
        let session = runtime.start(spec).await.map_err(|e| format!("starting session {i}: {e}"))?;
        sessions.push(session);
    }
    let start_secs = began.elapsed().as_secs_f64();
    // One turn on every session, all at once, as a burst of messages would.
    for (i, s) in sessions.iter().enumerate() {
        s.send_turn(&format!("hello from session {i}")).await.map_err(|e| format!("turn {i}: {e}"))?;
    }
    for (i, s) in sessions.iter_mut().enumerate() {
        let deadline = tokio::time::Instant::now() + TURN_LIMIT;
        loop {
            match tokio::time::timeout_at(deadline, s.next_event()).await {
                Ok(Some(RuntimeEvent::TurnFinished { .. })) => break,
                Ok(Some(_)) => {}
                Ok(None) => return Err(format!("session {i} ended")),
                Err(_) => return Err(format!("session {i}: no turn end within {TURN_LIMIT:?}")),
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let me = std::process::id();
    let tree = descendants(me);
    let app_servers = tree.iter().filter(|(_, ppid)| *ppid == me).count();
    let rss_kib = tree.iter().map(|(pid, _)| status_kib(*pid, "VmRSS:")).sum();
    let anon_kib = tree.iter().map(|(pid, _)| status_kib(*pid, "RssAnon:")).sum();
    let pss_kib = tree.iter().map(|(pid, _)| pss_kib(*pid)).sum();
    let sample = Sample {
        mode,
        sessions: n,
        app_servers,
        processes: tree.len(),
        rss_kib,
        anon_kib,
        pss_kib,
        self_kib: status_kib(me, "VmRSS:"),
        start_secs,
    };
    for mut s in sessions {
        s.shutdown().await;
    }
    // The shared app-server lingers a moment after its last session; wait until all are gone.
    let gone = Instant::now() + Duration::from_secs(30);
    while !descendants(me).is_empty() && Instant::now() < gone {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(sample)
}

/// Every live process under `root` (not zombies), with its parent.
fn descendants(root: u32) -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let parents: HashMap<u32, u32> = entries
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let mut rest = stat.rsplit(')').next()?.split_whitespace();
            let state = rest.next()?;
            let ppid: u32 = rest.next()?.parse().ok()?;
            (state != "Z").then_some((pid, ppid))
        })
        .collect();
    let under = |mut pid: u32| {
        while let Some(&parent) = parents.get(&pid) {
            if parent == root {
                return true;
            }
            pid = parent;
        }
        false
    };
    parents.iter().filter(|(pid, _)| under(**pid)).map(|(pid, ppid)| (*pid, *ppid)).collect()
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Pss:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}
