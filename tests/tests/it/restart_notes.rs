//! Restart notes end to end, in-process: an investigation with the fake agent. The first
//! session records a reproduction, a verified finding and a rejected hypothesis through the
//! taskgate MCP tools, then dies and loses its session; the replacement's first prompt holds
//! them and the next action. A later commit to a cited file marks the finding stale, and the
//! exported Markdown matches the store. Assertions read the store, the agent's stdin log and
//! the exported file, never log text.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use taskgate::config::{AgentConfig, AgentKind, Command, Config, ProjectConfig};
use taskgate::engine::{Engine, IncomingMessage};
use taskgate_adapters::runtime::{AgentRuntimes, RuntimeOptions};
use taskgate_adapters::store::SeaStore;
use taskgate_core::classify::Chat;
use taskgate_core::model::*;
use taskgate_core::store::Store;
use taskgate_tests::harness::{Trial, eventually};

pub fn trials() -> Vec<Trial> {
    taskgate_tests::trials! {
        current_thread: [
            an_investigation_survives_a_lost_session_and_goes_stale_when_its_file_changes,
            an_acp_agent_without_http_mcp_writes_the_note_through_the_stdio_bridge,
            the_mcp_endpoint_wants_a_session_token,
        ],
    }
}

const WAIT: Duration = Duration::from_secs(30);

fn git(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .args(["-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

fn msg(text: &str) -> IncomingMessage {
    IncomingMessage {
        channel: Channel::Telegram,
        chat_id: "chat-1".into(),
        thread_id: String::new(),
        sender_id: "u1".into(),
        sender_name: "Ada".into(),
        text: text.into(),
        reply_to_task: None,
        chat: Chat::Direct,
        mentioned: false,
    }
}

async fn results(store: &SeaStore, task: Id) -> Vec<Value> {
    let timeline = store.timeline(task).await.expect("timeline");
    timeline.into_iter().filter(|e| e.kind == EventKind::Result).map(|e| e.body).collect()
}

async fn turns_done(store: &SeaStore, task: Id, n: usize) -> Vec<Value> {
    eventually(&format!("{n} turn(s) done"), || async {
        let done = results(store, task).await;
        (done.len() >= n && store.task(task).await.ok()?.status == TaskStatus::Idle).then_some(done)
    })
    .await
}

async fn agent_text(store: &SeaStore, task: Id) -> String {
    let timeline = store.timeline(task).await.expect("timeline");
    timeline
        .iter()
        .filter(|e| e.body["type"] == "agent_text")
        .filter_map(|e| e.body["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Everything the gateway has enqueued for the chat so far, oldest first.
async fn chat_lines(store: &SeaStore) -> Vec<String> {
    let mut out = Vec::new();
    let far = chrono::Utc::now() + chrono::Duration::days(1);
    loop {
        let due = store.outbox_due(Channel::Telegram, far, 100).await.expect("outbox");
        if due.is_empty() {
            return out;
        }
        for o in due {
            out.push(o.payload["text"].as_str().unwrap_or_default().to_owned());
            store.outbox_sent(o.id, Some(&format!("m-{}", o.id))).await.expect("sent");
        }
    }
}

/// The prompts the fake codex received (`turn/start` inputs), in order.
fn prompts(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["method"] == "turn/start")
        .filter_map(|m| m.pointer("/params/input/0/text").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

async fn an_investigation_survives_a_lost_session_and_goes_stale_when_its_file_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("src")).expect("work dir");
    std::fs::write(work.join("src/session.rs"), "fn save() {}\n").expect("file");
    git(&work, &["init", "-q"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "start"]);

    // The MCP endpoint is served beside the in-process engine, as `taskgate serve` does.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mcp_url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
    let log = dir.path().join("agent-stdin.jsonl");
    let mut agents = BTreeMap::new();
    agents.insert(
        "codex".to_owned(),
        AgentConfig {
            command: Some(Command::Argv(vec![
                env!("CARGO_BIN_EXE_fake-agent").into(),
                "codex".into(),
                "--state-dir".into(),
                dir.path().join("fake-state").to_string_lossy().into_owned(),
                "--log".into(),
                log.to_string_lossy().into_owned(),
            ])),
            ..AgentConfig::new(AgentKind::Codex)
        },
    );
    let mut config = Config {
        projects: vec![ProjectConfig {
            name: "demo".into(),
            path: work.clone(),
            default_agent: Some("codex".into()),
            busy_policy: Default::default(),
        }],
        agents,
        ..Config::default()
    };
    config.runtime.turn_timeout_secs = WAIT.as_secs();
    config.runtime.interrupt_grace_secs = 1;
    config.notes.mcp_url = Some(mcp_url);
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("taskgate.db").display());
    let store = SeaStore::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let runtime = AgentRuntimes::new(RuntimeOptions {
        handshake_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_millis(300),
        ..RuntimeOptions::default()
    });
    let engine = Arc::new(Engine::new(Arc::new(store), Arc::new(config), Arc::new(runtime)));
    let server = tokio::spawn(axum::serve(listener, taskgate::notes::mcp::router(engine.clone())).into_future());
    let store = engine.store().clone();

    // Turn 1: the investigation starts.
    engine.handle(msg("investigate why login fails after a restart")).await.expect("handle");
    let task = eventually("a task", || async { store.tasks(10).await.ok()?.into_iter().next() }).await;
    let first = turns_done(&store, task.id, 1).await;
    let turn1 = first[0]["evidence"]["id"].as_str().expect("every finished turn has an evidence id").to_owned();
    assert_eq!(turn1, format!("turn:{}", first[0]["turn"]), "{first:#?}");
    assert_eq!(first[0]["evidence"]["commands"], json!([]));

    // Turn 2: the agent writes the note through the MCP tools.
    let calls = json!([
        {"tool": "set_reproduction", "arguments": {"text": "restart the server, log in: HTTP 500"}},
        {"tool": "record_entry", "arguments": {"kind": "verified", "text": "the session row is written after the response", "evidence": [turn1, "file:src/session.rs"]}},
        {"tool": "record_entry", "arguments": {"kind": "rejected", "text": "cookie expiry is not the cause", "evidence": ["cmd:curl -v /login"]}},
        {"tool": "record_entry", "arguments": {"kind": "maybe", "text": "not a kind"}},
        {"tool": "set_next_action", "arguments": {"text": "move the session write before the response"}},
    ]);
    // A reply to the task's message, in words, like a person would send it.
    let note_msg = IncomingMessage {
        reply_to_task: Some(task.id),
        ..msg(&format!("go on and write down what you found NOTE: {calls}"))
    };
    engine.handle(note_msg).await.expect("note turn");
    turns_done(&store, task.id, 2).await;
    let said = agent_text(&store, task.id).await;
    assert!(said.contains("FAKE-REPLY: noted: Set the reproduction"), "the tools answered: {said}");
    assert!(said.contains("error: kind must be one of"), "a bad kind is a tool error, not a crash: {said}");

    let entries = store.note_entries(task.id).await.expect("entries");
    assert_eq!(entries.len(), 2, "{entries:#?}");
    let exec = store.executions(task.id).await.expect("executions")[0].clone();
    for e in &entries {
        assert_eq!(e.author, format!("execution:{}", exec.id));
        assert_eq!(e.commit.as_deref().map(str::len), Some(40), "the project's HEAD: {e:?}");
    }
    let task_now = store.task(task.id).await.expect("task");
    assert_eq!(task_now.reproduction.as_deref(), Some("restart the server, log in: HTTP 500"));
    assert_eq!(task_now.next_action.as_deref(), Some("move the session write before the response"));
    let timeline = store.timeline(task.id).await.expect("timeline");
    assert_eq!(timeline.iter().filter(|e| e.kind == EventKind::Note).count(), 4, "every note write is on the timeline");

    // The exported file matches the store.
    let exported = work.join(".taskgate/tasks").join(format!("{}.md", task.id));
    let note = engine.restart_note(task.id).await.expect("note");
    assert_eq!(std::fs::read_to_string(&exported).expect("exported note"), note.markdown());

    // Turn 3: the agent dies and its session is gone; the replacement starts fresh from the note.
    engine.handle(msg("CRASH_FORGET: keep digging")).await.expect("crash turn");
    turns_done(&store, task.id, 3).await;
    assert!(agent_text(&store, task.id).await.contains("FAKE-REPLY: survived"));
    let sent = prompts(&log);
    let replacement = sent
        .iter()
        .find(|p| p.contains("previous agent session was lost"))
        .unwrap_or_else(|| panic!("a fresh replacement: {sent:#?}"));
    for expected in [
        "reproduction: restart the server, log in: HTTP 500",
        "verified: the session row is written after the response",
        "rejected: cookie expiry is not the cause",
        "next action: move the session write before the response",
        "CRASH_FORGET: keep digging",
    ] {
        assert!(
            replacement.contains(expected),
            "{expected:?} missing from the replacement's first prompt:\n{replacement}"
        );
    }

    // A later commit to the cited file: the finding is stale, the rejection (no files) is not.
    std::fs::write(work.join("src/session.rs"), "fn save() { /* moved */ }\n").expect("edit");
    git(&work, &["commit", "-q", "-am", "move the write"]);
    // A commit writes nothing: the export still shows the finding as verified...
    let before = std::fs::read_to_string(&exported).expect("exported note");
    assert!(!before.contains("stale (was verified"), "{before}");

    // People: `/note` shows it in chat (stale marked), `/note <kind>: …` adds to it, and the
    // export follows, still matching the store.
    chat_lines(&store).await;
    engine.handle(msg("/note")).await.expect("/note");
    let lines = chat_lines(&store).await;
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("Task {} note:", task.id)) && l.contains("stale (was verified")),
        "{lines:#?}"
    );
    // ...until the note is rendered: `/note` re-exported it with the finding stale.
    let after = std::fs::read_to_string(&exported).expect("exported note");
    assert!(after.contains("- **stale (was verified;"), "{after}");

    let note = engine.restart_note(task.id).await.expect("note");
    assert_eq!(after, note.markdown());
    let verified = note.entries.iter().find(|e| e.entry.kind == NoteKind::Verified).expect("verified");
    assert_eq!(verified.stale_because, ["src/session.rs"]);
    assert!(!note.entries.iter().find(|e| e.entry.kind == NoteKind::Rejected).expect("rejected").is_stale());
    let condensed = note.condensed().expect("a note");
    assert!(condensed.contains("stale (was verified; src/session.rs changed since"), "{condensed}");
    engine
        .handle(msg("/note open: does a second restart fail too? (evidence: file:src/session.rs)"))
        .await
        .expect("/note open");
    let lines = chat_lines(&store).await;
    assert!(lines.iter().any(|l| l.starts_with("Recorded open #")), "{lines:#?}");
    let entries = store.note_entries(task.id).await.expect("entries");
    assert_eq!(entries.last().map(|e| (e.kind, e.author.starts_with("person:"))), Some((NoteKind::Open, true)));
    let note = engine.restart_note(task.id).await.expect("note");
    assert_eq!(std::fs::read_to_string(&exported).expect("exported note"), note.markdown());
    assert!(note.markdown().contains("stale (was verified;"));
    assert_eq!(store.tasks(10).await.expect("tasks").len(), 1, "no message became a new task");

    engine.shutdown().await;
    server.abort();
}

/// An ACP agent without HTTP MCP is offered the stdio bridge (`taskgate mcp`) in
/// `session/new`, the token only in its env block; the agent spawns it and writes the note
/// through it. The fake also checks that a malformed line gets a parse error and that the
/// bridge exits cleanly when its stdin closes (a problem would show as `error:` in its reply).
async fn an_acp_agent_without_http_mcp_writes_the_note_through_the_stdio_bridge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mcp_url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
    let log = dir.path().join("agent-stdin.jsonl");
    let bridge = env!("CARGO_BIN_EXE_taskgate-mcp");
    let mut agents = BTreeMap::new();
    agents.insert(
        "acp".to_owned(),
        AgentConfig {
            command: Some(Command::Argv(vec![
                env!("CARGO_BIN_EXE_fake-agent").into(),
                "acp".into(),
                "--acp-stdio-mcp".into(),
                "--log".into(),
                log.to_string_lossy().into_owned(),
            ])),
            ..AgentConfig::new(AgentKind::Acp)
        },
    );
    let mut config = Config {
        projects: vec![ProjectConfig {
            name: "demo".into(),
            path: work.clone(),
            default_agent: Some("acp".into()),
            busy_policy: Default::default(),
        }],
        agents,
        ..Config::default()
    };
    config.runtime.turn_timeout_secs = WAIT.as_secs();
    config.runtime.interrupt_grace_secs = 1;
    config.notes.mcp_url = Some(mcp_url.clone());
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("taskgate.db").display());
    let store = SeaStore::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let runtime = AgentRuntimes::new(RuntimeOptions {
        handshake_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_millis(300),
        ..RuntimeOptions::default()
    });
    let engine = Arc::new(Engine::new(Arc::new(store), Arc::new(config), Arc::new(runtime)));
    // In `taskgate serve` the running executable offers itself; this process is a test.
    engine.set_mcp_bridge(vec![bridge.to_owned(), "mcp".to_owned()]);
    let server = tokio::spawn(axum::serve(listener, taskgate::notes::mcp::router(engine.clone())).into_future());
    let store = engine.store().clone();

    engine.handle(msg("look into the flaky upload")).await.expect("handle");
    let task = eventually("a task", || async { store.tasks(10).await.ok()?.into_iter().next() }).await;
    turns_done(&store, task.id, 1).await;
    let calls = json!([
        {"tool": "record_entry", "arguments": {"kind": "verified", "text": "uploads over 2 MiB time out", "evidence": ["cmd:curl -T big.bin"]}},
        {"tool": "read_note"},
    ]);
    let note_msg = IncomingMessage { reply_to_task: Some(task.id), ..msg(&format!("write it down NOTE: {calls}")) };
    engine.handle(note_msg).await.expect("note turn");
    turns_done(&store, task.id, 2).await;
    let said = agent_text(&store, task.id).await;
    let noted = said
        .split_once("FAKE-REPLY: noted: ")
        .map(|(_, n)| n.lines().next().unwrap_or_default())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(noted.starts_with("Recorded verified #"), "{noted}");
    assert!(noted.contains("uploads over 2 MiB time out"), "read_note answered through the bridge: {noted}");
    assert!(!noted.contains("error:"), "{noted}");

    let entries = store.note_entries(task.id).await.expect("entries");
    let exec = store.executions(task.id).await.expect("executions")[0].clone();
    assert_eq!(
        entries.iter().map(|e| (e.kind, e.author.clone())).collect::<Vec<_>>(),
        [(NoteKind::Verified, format!("execution:{}", exec.id))]
    );

    // What the agent was offered: the bridge as a stdio server, URL and token in its env only.
    let sent = std::fs::read_to_string(&log).expect("agent log");
    let new = sent
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["method"] == "session/new")
        .expect("session/new");
    let servers = new["params"]["mcpServers"].as_array().expect("mcpServers");
    assert_eq!(servers.len(), 1, "{servers:#?}");
    assert_eq!((servers[0]["command"].as_str(), servers[0]["args"].clone()), (Some(bridge), json!(["mcp"])));
    let env: BTreeMap<String, String> = servers[0]["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            (e["name"].as_str().unwrap_or_default().to_owned(), e["value"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    assert_eq!(env.get("TASKGATE_MCP_URL"), Some(&mcp_url));
    assert_eq!(env.get(taskgate::notes::mcp::TOKEN_ENV).map(String::len), Some(64), "{:?}", env.keys());

    engine.shutdown().await;
    server.abort();
}

/// The MCP endpoint refuses callers without a live session's token.
async fn the_mcp_endpoint_wants_a_session_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("taskgate.db").display());
    let store = SeaStore::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let engine =
        Arc::new(Engine::new(Arc::new(store), Arc::new(Config::default()), Arc::new(AgentRuntimes::default())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(axum::serve(listener, taskgate::notes::mcp::router(engine.clone())).into_future());
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    for auth in [None, Some("Bearer not-a-token")] {
        let mut request = client.post(format!("http://{addr}/mcp")).json(&body);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        assert_eq!(request.send().await.expect("response").status(), 401);
    }
    server.abort();
}
