//! Replicas as an operator runs them: real `taskgate serve` processes on one PostgreSQL
//! database, the fake Bot API in front, ACP fake agents that log every prompt they get (with
//! the gateway process that started them). Replicas are killed with SIGKILL or stopped with
//! SIGTERM at points the tests choose. Every case needs PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use taskgate_adapters::store::SeaStore;
use taskgate_core::model::{Channel, Id, TurnStatus};
use taskgate_core::reply::ReplyKind;
use taskgate_core::store::Store;
use taskgate_tests::cluster::{Prompt, Replica, free_port, prompts};
use taskgate_tests::db::{self, Backend, TestDb};
use taskgate_tests::fake_telegram::FakeTelegram;
use taskgate_tests::harness::{Flavor, Trial};

const CASES: &[(&str, db::Case)] = taskgate_tests::db_cases![
    a_killed_owners_turns_are_taken_over_and_each_message_answered_once,
    sigterm_hands_a_running_turn_over_and_ends_open_streams,
    messages_for_one_task_on_two_replicas_run_in_one_agent,
    a_nul_in_a_web_message_is_stored_and_the_next_is_answered,
];

/// `cluster::postgres::…`, each on two worker threads and bounded.
pub fn trials() -> Vec<Trial> {
    db::trials(module_path!(), Backend::Postgres, CASES, Flavor::MultiThread(2), Some(Duration::from_secs(300)))
}

const BIN: &str = env!("CARGO_BIN_EXE_taskgate-cli");
const TOKEN: &str = "123456:TEST-token";
/// How long a replica's hold on an execution lasts without renewal, in these tests.
const LEASE_SECS: u64 = 3;
/// The first of the chat users (one chat each).
const FIRST_USER: u64 = 1001;

/// Where a cluster lives: a temp dir with the project, the agents' prompt log and each
/// replica's config, data dir and output.
struct Cluster {
    dir: tempfile::TempDir,
    db_url: String,
    fake: FakeTelegram,
}

/// What a replica serves besides its API.
#[derive(Clone, Copy)]
struct Channels {
    telegram: bool,
    web: bool,
}

const BOTH: Channels = Channels { telegram: true, web: true };

impl Cluster {
    async fn new(db: &TestDb) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("work"))?;
        Ok(Cluster { dir, db_url: db.url.clone(), fake: FakeTelegram::start(TOKEN).await? })
    }

    fn prompts_file(&self) -> PathBuf {
        self.dir.path().join("prompts.jsonl")
    }

    fn prompts(&self) -> Vec<Prompt> {
        prompts(&self.prompts_file())
    }

    /// Starts replica `name` with a config of its own (same database, same agents).
    async fn start(&self, name: &str, channels: Channels) -> anyhow::Result<Replica> {
        let port = free_port();
        let dir = self.dir.path();
        let users: Vec<String> = (FIRST_USER..FIRST_USER + 10).map(|u| u.to_string()).collect();
        let telegram = if channels.telegram {
            format!(
                "[telegram]\ntoken = \"{TOKEN}\"\napi_url = \"{}{name}/\"\nmode = \"polling\"\nallowed_users = [{}]\n",
                self.fake.url(),
                users.join(", ")
            )
        } else {
            String::new()
        };
        let agent = json!([taskgate_tests::world::fake_agent(), "acp", "--prompts", self.prompts_file()]);
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = {data:?}\n\n\
             [database]\nurl = {db:?}\n\n{telegram}\n\
             [web]\nenabled = {web}\n\n\
             [notes]\nmcp = false\nexport = false\n\n\
             [runtime]\nlease_secs = {LEASE_SECS}\nshutdown_grace_secs = 2\nmax_processes = 24\nturn_timeout_secs = 120\n\n\
             [[projects]]\nname = \"demo\"\npath = {work:?}\ndefault_agent = \"acp\"\n\n\
             [agents.acp]\nkind = \"acp\"\ncommand = {agent}\n",
            data = dir.join(format!("data-{name}")).display().to_string(),
            db = self.db_url,
            web = channels.web,
            work = dir.join("work").display().to_string(),
        );
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config)?;
        Replica::start(BIN, name, &path, port, dir).await
    }

    fn push(&self, update_id: i64, user: u64, text: &str) {
        self.fake.push_update(json!({"update_id": update_id, "message": {
            "message_id": update_id, "date": 1_700_000_000,
            "chat": {"id": user, "type": "private", "first_name": "U"},
            "from": {"id": user, "is_bot": false, "first_name": "U", "username": format!("u{user}")},
            "text": text
        }}));
    }
}

/// Polls `probe` every 100 ms for at most `limit`; `what` names it in the failure.
async fn within<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The final message of each task (the one message per turn that notifies), per task.
async fn finals(store: &SeaStore, chats: &[u64]) -> anyhow::Result<BTreeMap<Id, usize>> {
    let mut out = BTreeMap::new();
    for chat in chats {
        for row in store.outbox_recent(Channel::Telegram, &chat.to_string(), 10_000).await? {
            if row.payload.kind == ReplyKind::Final
                && let Some(task) = row.task_id
            {
                *out.entry(task).or_insert(0) += 1;
            }
        }
    }
    Ok(out)
}

/// The job a prompt is about (`job c3-7`), whatever the gateway put before it.
fn job(text: &str) -> Option<String> {
    text.split_once("job ").map(|(_, rest)| rest.split_whitespace().next().unwrap_or_default().to_owned())
}

/// Who owns what right now: owner → executions with work.
async fn owners(store: &SeaStore) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut out = BTreeMap::new();
    for w in store.work(10_000).await? {
        *out.entry(w.owner.unwrap_or_default()).or_insert(0) += 1;
    }
    Ok(out)
}

/// Whether `owner` (a replica's name in the store, `host:pid:random`) belongs to process `pid`.
/// The lines of a replica's log that explain a turn run twice: warnings and errors, and every
/// line about sessions resumed, died, released or fenced.
fn notable(replica: &Replica) -> String {
    const SIGNS: [&str; 8] = ["WARN", "ERROR", "resum", "died", "releas", "fenced", "owns this execution", "handed"];
    replica
        .output()
        .lines()
        .filter(|l| SIGNS.iter().any(|s| l.contains(s)))
        .map(|l| format!("{}: {l}\n", replica.name))
        .collect()
}

fn owned_by(owner: &str, pid: u32) -> bool {
    owner.split(':').nth(1) == Some(pid.to_string().as_str())
}

/// Two replicas and 200 messages over 10 chats; the replica that owns the running turns is
/// killed with SIGKILL mid-run, and a third replica is started while both are alive. In the
/// end every message is answered exactly once; the dead replica's executions are taken over
/// within the lease plus 5 s; no prompt reaches a second agent while the first one's gateway
/// lives (re-delivery happens only after the kill), so the third replica runs nothing a live
/// replica runs.
async fn a_killed_owners_turns_are_taken_over_and_each_message_answered_once(db: &TestDb) -> anyhow::Result<()> {
    let cluster = Cluster::new(db).await?;
    let store = db.store().await?;
    let mut a = cluster.start("a", BOTH).await?;
    // The first replica leads the channel (poller and inbox drain) and so owns what it decides:
    // it polls before the second one starts. (Each replica calls the Bot API under its name.)
    within(Duration::from_secs(30), "the first replica polls", || async {
        cluster.fake.calls_to("getUpdates").iter().any(|c| c.via == "a").then_some(())
    })
    .await?;
    let b = cluster.start("b", BOTH).await?;
    let chats: Vec<u64> = (FIRST_USER..FIRST_USER + 10).collect();
    let mut id = 0;
    for round in 1..=20 {
        for (c, user) in chats.iter().enumerate() {
            id += 1;
            cluster.push(id, *user, &format!("/new SLOW_MS: 400 job c{c}-{round}"));
        }
    }
    // Mid-run: some answered, some turns running on the owner.
    within(Duration::from_secs(90), "a few answers and turns running", || async {
        let done = finals(&store, &chats).await.ok()?.len();
        let running = store.open_turns(None).await.ok()?.iter().filter(|t| t.status == TurnStatus::Running).count();
        (done >= 10 && running > 0).then_some(())
    })
    .await?;
    let c = cluster.start("c", BOTH).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = owners(&store).await?;
    // The channel's leader decides, so it claims most of the work: it is the one killed.
    let victim_pid = a.pid();
    anyhow::ensure!(
        before.keys().any(|o| owned_by(o, victim_pid)),
        "the leader owns work: {before:?} (a is {victim_pid})"
    );
    // The third replica may own work by now: work nobody held yet (a new execution between its
    // commit and its decider's claim) goes to whichever replica claims first. What it must
    // never do, run something a live replica runs, shows in the prompts below.
    let killed_at = Instant::now();
    let killed_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis();
    a.kill();

    let taken = within(Duration::from_secs(LEASE_SECS + 5), "the dead replica's executions taken over", || async {
        let owners = owners(&store).await.ok()?;
        (!owners.keys().any(|o| owned_by(o, victim_pid))).then_some(killed_at.elapsed())
    })
    .await?;

    let answered = within(Duration::from_secs(180), "every message answered", || async {
        let finals = finals(&store, &chats).await.ok()?;
        (finals.len() == 200).then_some(finals)
    })
    .await?;
    let twice: Vec<_> = answered.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "answered more than once: {twice:?}");
    assert_eq!(store.tasks(1000).await?.len(), 200);
    assert!(store.open_turns(None).await?.is_empty(), "nothing left open");

    // Prompts: every job reached an agent; a job reached a second agent only after the first
    // one's gateway was killed.
    let mut receipts: BTreeMap<String, Vec<Prompt>> = BTreeMap::new();
    for p in cluster.prompts() {
        if let Some(job) = job(&p.text) {
            receipts.entry(job).or_default().push(p);
        }
    }
    assert_eq!(receipts.len(), 200, "every job reached an agent");
    let pids: BTreeSet<u32> = [victim_pid, b.pid(), c.pid()].into();
    for (job, got) in &receipts {
        assert!(got.iter().all(|p| pids.contains(&p.ppid)), "{job}: started by a replica of this cluster: {got:?}");
        for later in &got[1..] {
            assert!(
                got[0].ppid == victim_pid && later.at_ms >= killed_ms,
                "{job} reached a second agent while the first one's gateway lived (a = {victim_pid}, b = {}, c = {}, \
                 killed at {killed_ms}): {got:?}\nwhat the replicas noted:\n{}",
                b.pid(),
                c.pid(),
                [&a, &b, &c].iter().map(|r| notable(r)).collect::<String>()
            );
        }
    }
    let rerun = receipts.values().filter(|g| g.len() > 1).count();
    eprintln!("takeover after {taken:?}; {rerun} job(s) ran again after the kill");
    drop((b, c));
    Ok(())
}

/// SIGTERM to a replica with a running turn and an open event stream: the stream ends (the
/// browser reconnects elsewhere), the process exits within the grace (2 s here) plus 5 s, the
/// turn is handed over and run by the other replica, and the chat gets one line about it.
async fn sigterm_hands_a_running_turn_over_and_ends_open_streams(db: &TestDb) -> anyhow::Result<()> {
    let cluster = Cluster::new(db).await?;
    let store = db.store().await?;
    let mut a = cluster.start("a", BOTH).await?;
    let token = console_token(&a).await?;
    // An open console tab on `a`.
    let stream = reqwest::Client::new().get(format!("{}/api/stream", a.url)).bearer_auth(&token).send().await?;
    assert_eq!(stream.status(), 200);
    cluster.push(1, FIRST_USER, "/new SLOW_MS: 6000 job long-1");
    within(Duration::from_secs(30), "the turn running on a", || async {
        cluster.prompts().iter().any(|p| p.ppid == a.pid()).then_some(())
    })
    .await?;
    let b = cluster.start("b", BOTH).await?;

    let asked = Instant::now();
    a.terminate();
    let streamed = tokio::time::timeout(Duration::from_secs(7), stream.bytes()).await;
    assert!(streamed.is_ok(), "the event stream ended with the stop");
    let code = a.exited_within(Duration::from_secs(2 + 5)).await;
    assert_eq!(code, Some(0), "exited cleanly within grace + 5 s ({:?}):\n{}", asked.elapsed(), a.output());

    within(Duration::from_secs(30), "the turn run again by b", || async {
        cluster.prompts().iter().any(|p| p.ppid == b.pid() && job(&p.text).as_deref() == Some("long-1")).then_some(())
    })
    .await?;
    let task = store.tasks(10).await?.into_iter().next().expect("the task");
    within(Duration::from_secs(30), "the turn finished on b", || async {
        let finals = finals(&store, &[FIRST_USER]).await.ok()?;
        (finals.get(&task.id) == Some(&1)).then_some(())
    })
    .await?;
    let lines: Vec<String> = store
        .outbox_recent(Channel::Telegram, &FIRST_USER.to_string(), 100)
        .await?
        .into_iter()
        .map(|r| r.payload.text)
        .filter(|t| t.contains("interrupted by a gateway restart"))
        .collect();
    assert_eq!(lines.len(), 1, "one line to the chat: {lines:?}");
    drop(b);
    Ok(())
}

/// Two live replicas take messages for one task on different channels (Telegram on `a`, the
/// web console on `b`): they run in one agent process, the owner's, never two at once.
async fn messages_for_one_task_on_two_replicas_run_in_one_agent(db: &TestDb) -> anyhow::Result<()> {
    let cluster = Cluster::new(db).await?;
    let store = db.store().await?;
    let a = cluster.start("a", Channels { telegram: true, web: false }).await?;
    let b = cluster.start("b", Channels { telegram: false, web: true }).await?;
    let token = console_token(&b).await?;

    cluster.push(1, FIRST_USER, "/new SLOW_MS: 500 job one-1");
    let task = within(Duration::from_secs(30), "the task answered", || async {
        let task = store.tasks(10).await.ok()?.into_iter().next()?;
        (finals(&store, &[FIRST_USER]).await.ok()?.get(&task.id) == Some(&1)).then_some(task)
    })
    .await?;
    // The same task, from the web console on the other replica, twice.
    let http = reqwest::Client::new();
    for n in 2..=3 {
        let body = json!({"text": format!("SLOW_MS: 300 job one-{n}"), "task": task.id});
        let response = http.post(format!("{}/api/messages", b.url)).bearer_auth(&token).json(&body).send().await?;
        assert!(response.status().is_success(), "{}", response.status());
    }
    within(Duration::from_secs(30), "the web messages run", || async {
        let jobs: BTreeSet<String> = cluster.prompts().iter().filter_map(|p| job(&p.text)).collect();
        (jobs.contains("one-2") && jobs.contains("one-3")).then_some(())
    })
    .await?;
    let got: Vec<Prompt> = cluster.prompts();
    let processes: BTreeSet<(u32, u32)> = got.iter().map(|p| (p.pid, p.ppid)).collect();
    assert_eq!(processes.len(), 1, "one agent process, one gateway: {got:#?}");
    assert_eq!(processes.into_iter().next().map(|(_, ppid)| ppid), Some(a.pid()), "the owner's");
    assert_eq!(store.tasks(10).await?.len(), 1);
    drop((a, b));
    Ok(())
}

/// A web message with a NUL on PostgreSQL is stored (202, the NUL replaced) and the message
/// after it is answered.
async fn a_nul_in_a_web_message_is_stored_and_the_next_is_answered(db: &TestDb) -> anyhow::Result<()> {
    let cluster = Cluster::new(db).await?;
    let store = db.store().await?;
    let a = cluster.start("a", Channels { telegram: false, web: true }).await?;
    let token = console_token(&a).await?;
    let http = reqwest::Client::new();
    for text in ["make\u{0}it green", "/status"] {
        let response = http
            .post(format!("{}/api/messages", a.url))
            .bearer_auth(&token)
            .json(&json!({"text": text}))
            .send()
            .await?;
        assert!(response.status().is_success(), "{text:?}: {}", response.status());
    }
    within(Duration::from_secs(30), "the status answered", || async {
        let rows = store.outbox_recent(Channel::Web, "console", 100).await.ok()?;
        rows.iter()
            .any(|r| r.payload.text.contains("make\u{FFFD}it green") && r.payload.kind == ReplyKind::Answer)
            .then_some(())
    })
    .await?;
    assert!(store.inbox_set_aside(10).await?.is_empty(), "nothing set aside");
    drop(a);
    Ok(())
}

/// The console login token the replica printed at its first start (a fresh database).
async fn console_token(replica: &Replica) -> anyhow::Result<String> {
    within(Duration::from_secs(10), "the printed console token", || async {
        let output = replica.output();
        let mut lines = output.lines();
        lines.find(|l| l.contains("login token"))?;
        lines.next().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
    })
    .await
}
