//! taskgate's performance figures on this machine, printed, never asserted (timed assertions
//! stay out of the test suite).
//!
//! `cargo run -p taskgate-tests --bin taskgate-bench --release [-- engine|ack ...] [--tasks N]`
//!
//! - `engine`: the in-process engine over SQLite, agents not running, fed messages as the
//!   inbox worker feeds them: new tasks, then follow-ups to them (queued turns). Prints messages
//!   decided and stored per second, with 1,000 tasks in the store and with `--tasks` more.
//! - `ack`: `taskgate serve`'s Telegram webhook on SQLite: acknowledgement latency (p50, p99,
//!   max) at a fixed 1,000 msg/s, then the closed-loop rate with 32 concurrent senders.
//! - `phone`: `taskgate serve` polling the fake Bot API with its real pacing, the fake Codex
//!   answering at once: message → first bot message and → final reply (medians of 10, each
//!   in a new chat), a burst of 50 messages over 5 chats until every one is answered, then 400
//!   tasks of one turn each and the resident memory they leave behind (RSS of this process,
//!   which holds the gateway and the fake Bot API; fake agent processes counted apart).

use std::sync::Arc;
use std::time::{Duration, Instant};

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
        if all || scenarios.contains(&"ack") {
            ack().await?;
        }
        if all || scenarios.contains(&"phone") {
            phone().await?;
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

const TOKEN: &str = "123456:BENCH-token";
const SECRET: &str = "bench-webhook-secret";

/// A Telegram text update from one of 100 allowed users.
fn update(id: u64) -> serde_json::Value {
    let user = 1000 + id % 100;
    serde_json::json!({"update_id": id, "message": {
        "message_id": id, "date": 1_700_000_000,
        "chat": {"id": user, "type": "private", "first_name": "U"},
        "from": {"id": user, "is_bot": false, "first_name": "U"},
        "text": "/status"
    }})
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `taskgate serve` on SQLite with the Telegram webhook, the engine answering every update
/// (`/status`, so no agent starts) while acknowledgements are measured.
async fn ack() -> anyhow::Result<()> {
    let fake = taskgate_tests::fake_telegram::FakeTelegram::start(TOKEN).await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("taskgate.toml");
    let users: Vec<String> = (1000..1100).map(|u| u.to_string()).collect();
    std::fs::write(
        &file,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n[telegram]\ntoken = \"{TOKEN}\"\napi_url = \"{}\"\nmode = \"webhook\"\nwebhook_secret = \"{SECRET}\"\nallowed_users = [{}]\n",
            dir.path().join("data").display().to_string(),
            fake.url(),
            users.join(", ")
        ),
    )?;
    let config = taskgate::config::Config::load_from(Some(&file), std::iter::empty())?;
    let app = taskgate_tests::app::spawn_app(&config).await?;
    let url = format!("{}/webhook/telegram", app.url);
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let post = move |id: u64| {
        let request = client.post(&url).header("X-Telegram-Bot-Api-Secret-Token", SECRET).json(&update(id));
        async move {
            let started = Instant::now();
            let status = request.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
            (status, started.elapsed())
        }
    };
    println!("ack: Telegram webhook acknowledgements (SQLite, the engine answering meanwhile)");
    for rate in [1_000u64] {
        let (n, mut next) = (rate * 10, Instant::now());
        let mut sent = tokio::task::JoinSet::new();
        for i in 0..n {
            next += Duration::from_micros(1_000_000 / rate);
            tokio::time::sleep_until(next.into()).await;
            sent.spawn(post(1_000_000 + i));
        }
        let mut latencies = Vec::with_capacity(n as usize);
        let mut failed = 0;
        while let Some(done) = sent.join_next().await {
            let (status, took) = done?;
            if status == 200 { latencies.push(took) } else { failed += 1 }
        }
        latencies.sort();
        println!(
            "  {rate} msg/s for 10 s: p50 {:?}  p99 {:?}  max {:?}  ({failed} not 200)",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or_default()
        );
    }
    // Closed loop: 32 senders, each posting its next update when the last was acknowledged.
    let (senders, window) = (32u64, Duration::from_secs(5));
    let started = Instant::now();
    let mut loops = tokio::task::JoinSet::new();
    for s in 0..senders {
        let post = post.clone();
        loops.spawn(async move {
            let mut ok = 0u64;
            let mut id = 2_000_000 + s * 1_000_000;
            while started.elapsed() < window {
                id += 1;
                if post(id).await.0 == 200 {
                    ok += 1;
                }
            }
            ok
        });
    }
    let mut accepted = 0;
    while let Some(ok) = loops.join_next().await {
        accepted += ok?;
    }
    println!(
        "  closed loop, {senders} senders: {:.0} msg/s accepted",
        accepted as f64 / started.elapsed().as_secs_f64()
    );
    app.stop().await?;
    Ok(())
}

/// A private-chat text update from user (and chat) `user`.
fn text_update(id: u64, user: u64, text: &str) -> serde_json::Value {
    serde_json::json!({"update_id": id, "message": {
        "message_id": id, "date": 1_700_000_000,
        "chat": {"id": user, "type": "private", "first_name": "U"},
        "from": {"id": user, "is_bot": false, "first_name": "U"},
        "text": text
    }})
}

/// When the fake Bot API first showed chat `chat` a text `pred` accepts (sent or edited in),
/// waiting at most a minute.
async fn shown(
    fake: &taskgate_tests::fake_telegram::FakeTelegram,
    chat: u64,
    pred: impl Fn(&str) -> bool,
) -> Option<Instant> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let found = fake.calls().into_iter().find(|c| {
            c.status == 200
                && (c.method == "sendmessage" || c.method == "editmessagetext")
                && c.body["chat_id"].as_u64() == Some(chat)
                && c.body["text"].as_str().is_some_and(&pred)
        });
        if let Some(call) = found {
            return Some(call.at);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// Resident memory of process `pid` in KiB (`/proc/<pid>/status`), 0 when unreadable.
fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// This process's RSS and that of its child processes (the agents), in MiB.
fn memory() -> (f64, f64, usize) {
    let me = std::process::id().to_string();
    let mut children = (0u64, 0usize);
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the parenthesised name: state, ppid, ...
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_owned));
        if ppid.as_deref() == Some(me.as_str()) {
            children.0 += rss_kib(&pid);
            children.1 += 1;
        }
    }
    (rss_kib(&me) as f64 / 1024.0, children.0 as f64 / 1024.0, children.1)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

async fn phone() -> anyhow::Result<()> {
    let fake = taskgate_tests::fake_telegram::FakeTelegram::start(TOKEN).await?;
    let world = World::new();
    let mut config = world.config.clone();
    config.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.server.data_dir = world.dir.path().join("data");
    // Idle agents go after 5 s instead of 300 (`runtime.idle_secs`), so the idle figure is read
    // within the run.
    config.runtime.idle_secs = 5;
    let users: Vec<String> = (3000..4000).map(|u| u.to_string()).collect();
    config.telegram = Some(toml::from_str(&format!(
        "token = \"{TOKEN}\"\napi_url = \"{}\"\nallowed_users = [{}]\n",
        fake.url(),
        users.join(", ")
    ))?);
    let app = taskgate_tests::app::spawn_app(&config).await?;
    let (idle_rss, _, _) = memory();
    println!("phone: `taskgate serve` polling the fake Bot API, the fake Codex answering at once");
    let mut update = 0u64;
    let (mut firsts, mut finals) = (Vec::new(), Vec::new());
    for user in 3000..3010u64 {
        update += 1;
        let sent = Instant::now();
        fake.push_update(text_update(update, user, &format!("/new say hello {user}")));
        let first = shown(&fake, user, |_| true).await.ok_or_else(|| anyhow::anyhow!("no message in chat {user}"))?;
        let last = shown(&fake, user, |t| t.contains("FAKE-REPLY"))
            .await
            .ok_or_else(|| anyhow::anyhow!("no final reply in chat {user}"))?;
        firsts.push(first.saturating_duration_since(sent));
        finals.push(last.saturating_duration_since(sent));
    }
    println!("  message -> first bot message, median of 10:   {:?}", median(firsts));
    println!(
        "  message -> final reply, median of 10:         {:?}  (the fake agent's process start included)",
        median(finals)
    );

    let burst: Vec<u64> = (3100..3105).collect();
    // The agents are sampled while the burst runs: an idle one goes after `idle_secs`, often
    // before the paced replies have all reached the chats.
    let peak = Arc::new(std::sync::Mutex::new((0.0f64, 0.0f64, 0usize)));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                let now = memory();
                if let Ok(mut p) = peak.lock()
                    && now.0 + now.1 > p.0 + p.1
                {
                    *p = now;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let started = Instant::now();
    for round in 0..10 {
        for &user in &burst {
            update += 1;
            fake.push_update(text_update(update, user, &format!("note {user}-{round}")));
        }
    }
    let mut answered = 0;
    for &user in &burst {
        for round in 0..10 {
            let needle = format!("note {user}-{round}");
            if shown(&fake, user, |t| t.contains("FAKE-REPLY") && t.contains(&needle)).await.is_some() {
                answered += 1;
            }
        }
    }
    let took = started.elapsed();
    sampler.abort();
    let (rss, agents, processes) = *peak.lock().map_err(|_| anyhow::anyhow!("sampler panicked"))?;
    println!("  burst of 50 over 5 chats: {answered}/50 answered in {took:?}");
    println!(
        "  RSS: {idle_rss:.1} MiB at start; at the burst's peak {rss:.1} MiB + {processes} agent processes {agents:.1} MiB = {:.1} MiB",
        rss + agents
    );

    // 400 tasks of one turn each, then idle: what each costs while nothing happens.
    let before = memory().0;
    let tasks: Vec<u64> = (3200..3600).collect();
    for &user in &tasks {
        update += 1;
        fake.push_update(text_update(update, user, &format!("/new write note {user}")));
    }
    for &user in &tasks {
        shown(&fake, user, |t| t.contains("FAKE-REPLY")).await;
    }
    // Idle: every execution's actor has had time to go (and its agent with it).
    let idle = Duration::from_secs(config.runtime.idle().as_secs() + 5);
    tokio::time::sleep(idle).await;
    let (after, agents, processes) = memory();
    println!(
        "  400 one-turn tasks, idle {idle:?} later: RSS {before:.1} -> {after:.1} MiB, {:.1} KiB per idle task; {processes} agent processes {agents:.1} MiB",
        (after - before) * 1024.0 / tasks.len() as f64
    );
    app.stop().await?;
    Ok(())
}
