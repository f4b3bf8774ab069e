//! taskgate's performance figures on this machine, printed, never asserted (timed assertions
//! stay out of the test suite).
//!
//! `cargo run -p taskgate-tests --bin taskgate-bench --release [-- engine|ack|idle ...]`
//!
//! - `engine`: the in-process engine over SQLite, agents not running, fed messages as the
//!   inbox worker feeds them: new tasks, then follow-ups to them (queued turns). Prints messages
//!   decided and stored per second, with 1,000 tasks in the store and with `--tasks` more.
//! - `ack`: `taskgate serve`'s Telegram webhook on SQLite: acknowledgement latency (p50, p99,
//!   max) at a fixed 1,000 msg/s, then the closed-loop rate with 32 concurrent senders.
//! - `idle`: the gateway's resident memory per idle task after one turn each (fake agent).

use std::sync::Arc;
use std::time::Instant;

use taskgate::engine::{Engine, IncomingMessage};
use taskgate_core::runtime::{AgentRuntime, AgentSession, RuntimeError, SessionSpec};
use taskgate_core::store::Store;
use taskgate_tests::world::{self, World};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let more_tasks: usize = value("--tasks").and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let scenarios: Vec<&str> = args.iter().map(String::as_str).filter(|a| !a.starts_with("--")).collect();
    let all = scenarios.is_empty();
    // The fake agent is built beside this binary.
    let exe = std::env::current_exe()?;
    let fake = exe.with_file_name("fake-agent");
    world::set_fake_agent(Box::leak(fake.to_string_lossy().into_owned().into_boxed_str()));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        if all || scenarios.contains(&"engine") {
            engine(more_tasks).await?;
        }
        anyhow::Ok(())
    })
}

fn text(chat: usize, text: String) -> IncomingMessage {
    world::message(&format!("{}", 1000 + chat), &format!("{}", 1000 + chat), "Bench", &text)
}

/// Feeds `msgs` to the engine one after another, as the inbox worker does; messages/s.
async fn feed(engine: &Engine, msgs: Vec<IncomingMessage>) -> anyhow::Result<f64> {
    let n = msgs.len();
    let started = Instant::now();
    for msg in msgs {
        engine.handle(msg).await?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

const TOPICS: [&str; 10] = [
    "login page",
    "billing export",
    "search index",
    "upload dialog",
    "nightly backup",
    "README badges",
    "dark mode",
    "rate limiter",
    "push notifications",
    "CSV import",
];

fn new_task(i: usize) -> String {
    format!("/new fix the {} bug number {i}", TOPICS[i % TOPICS.len()])
}

/// Agents that never finish starting: every execution stays busy, so follow-ups queue behind
/// their first turn, and the figure is the engine's alone (no agent process runs).
struct Parked;

#[async_trait::async_trait]
impl AgentRuntime for Parked {
    async fn start(&self, _spec: SessionSpec) -> Result<Box<dyn AgentSession>, RuntimeError> {
        std::future::pending().await
    }
}

async fn engine(more_tasks: usize) -> anyhow::Result<()> {
    let world = World::new();
    let store = world.store_on("bench.db").await;
    let engine = Engine::new(Arc::new(store), Arc::new(world.config.clone()), Arc::new(Parked));
    let chats = 100;
    println!("engine: messages decided and stored per second (SQLite, {chats} chats, agents not running)");
    let rate = feed(&engine, (0..1_000).map(|i| text(i % chats, new_task(i))).collect()).await?;
    println!("  new tasks, 0 -> 1,000 tasks in the store:      {rate:8.0} msg/s");
    let follow = |round: usize| {
        (0..1_000).map(move |i| text(i % chats, format!("also make it handle case {round}-{i}"))).collect::<Vec<_>>()
    };
    let rate = feed(&engine, follow(1)).await?;
    println!("  follow-ups (queued turns), 1,000 tasks:         {rate:8.0} msg/s");
    let started = Instant::now();
    let mut i = 1_000;
    while i < 1_000 + more_tasks {
        let batch = (i..(i + 1_000).min(1_000 + more_tasks)).map(|i| text(i % chats, new_task(i))).collect();
        feed(&engine, batch).await?;
        i += 1_000;
    }
    println!(
        "  new tasks, 1,000 -> {}:                   {:8.0} msg/s",
        1_000 + more_tasks,
        more_tasks as f64 / started.elapsed().as_secs_f64()
    );
    let rate = feed(&engine, follow(2)).await?;
    println!("  follow-ups (queued turns), {} tasks:        {rate:8.0} msg/s", 1_000 + more_tasks);
    let stats = engine.store().stats().await?;
    println!("  store: {stats:?}");
    Ok(())
}
