//! The engine end to end, in-process: SQLite in a temp dir, the fake agent binary behind the
//! real runtime adapters and supervisor. Assertions read the store, never log text.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use taskgate::config::{AgentConfig, AgentKind, Command, Config, ProjectConfig};
use taskgate::engine::{Engine, IncomingMessage};
use taskgate_adapters::runtime::{AgentRuntimes, RuntimeOptions, Supervisor, SupervisorOptions};
use taskgate_adapters::store::SeaStore;
use taskgate_core::classify::Chat;
use taskgate_core::model::*;
use taskgate_core::store::Store;

const WAIT: Duration = Duration::from_secs(30);

struct World {
    dir: tempfile::TempDir,
    url: String,
    config: Arc<Config>,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("taskgate.db").display());
        let state = dir.path().join("fake-state").to_string_lossy().into_owned();
        let agent = |kind: AgentKind, mode: &str| AgentConfig {
            kind,
            command: Some(Command::Argv(vec![
                env!("CARGO_BIN_EXE_fake-agent").into(),
                mode.into(),
                "--state-dir".into(),
                state.clone(),
            ])),
            env: BTreeMap::new(),
            model: None,
        };
        let mut agents = BTreeMap::new();
        agents.insert("codex".to_owned(), agent(AgentKind::Codex, "codex"));
        agents.insert("claude".to_owned(), agent(AgentKind::Claude, "claude"));
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        let config = Config {
            projects: vec![ProjectConfig { name: "demo".into(), path: work, default_agent: Some("codex".into()) }],
            agents,
            ..Config::default()
        };
        World { dir, url, config: Arc::new(config) }
    }

    async fn engine(&self) -> Engine {
        let store = SeaStore::connect(&self.url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let runtime = AgentRuntimes::new(RuntimeOptions {
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_millis(300),
            ..RuntimeOptions::default()
        });
        let supervisor = Supervisor::new(
            Arc::new(runtime),
            SupervisorOptions { max_concurrent: 4, default_turn_timeout: Some(WAIT), interrupt_grace: Duration::from_millis(300), max_restarts: 2 },
        );
        let _ = &self.dir;
        Engine::with_supervisor(Arc::new(store), self.config.clone(), supervisor)
    }
}

fn msg(from: &str, name: &str, text: &str) -> IncomingMessage {
    IncomingMessage {
        channel: Channel::Telegram,
        chat_id: "chat-1".into(),
        thread_id: String::new(),
        sender_id: from.into(),
        sender_name: name.into(),
        text: text.into(),
        reply_to_task: None,
        chat: Chat::Direct,
        mentioned: false,
    }
}

/// Polls `probe` until it yields a value, or fails the test after `WAIT`.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn outbox_texts(store: &SeaStore) -> Vec<(Option<Id>, Option<Id>, String)> {
    // Everything enqueued, in order: mark nothing sent, read the heads one chat at a time.
    let mut out = Vec::new();
    let far = chrono::Utc::now() + chrono::Duration::days(1);
    loop {
        let due = store.outbox_due(far, 100).await.expect("outbox");
        if due.is_empty() {
            break;
        }
        for o in due {
            out.push((o.task_id, o.approval_id, o.payload["text"].as_str().unwrap_or_default().to_owned()));
            store.outbox_sent(o.id, Some(&format!("m-{}", o.id))).await.expect("sent");
        }
    }
    out
}

async fn pending(store: &SeaStore) -> Option<Approval> {
    store.pending_approvals(None).await.ok()?.into_iter().next()
}

async fn only_task(store: &SeaStore) -> Task {
    let tasks = store.tasks(10).await.expect("tasks");
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    tasks.into_iter().next().unwrap()
}

async fn idle_task(store: &SeaStore, id: Id) -> Option<Task> {
    store.task(id).await.ok().filter(|t| t.status == TaskStatus::Idle)
}

/// Turns of the execution's latest session that ended, however they ended.
async fn completed_turns(store: &SeaStore, exec: Id) -> usize {
    store
        .timeline(store.execution(exec).await.expect("exec").task_id)
        .await
        .expect("timeline")
        .into_iter()
        .filter(|e| e.kind == EventKind::Result && e.execution_id == Some(exec))
        .count()
}

/// (a) + (d): a RUN_CMD message opens a task whose approval waits in the store and the outbox;
/// "ok" approves it, the turn completes, the summary goes out, the task is idle; a second "ok"
/// hears who approved first.
#[tokio::test]
async fn approval_round_trip_and_late_answer() {
    let world = World::new();
    let engine = world.engine().await;
    let store = engine.store().clone();

    engine.handle(msg("u1", "Ada", "RUN_CMD: echo engine-ok")).await.expect("handle");
    let approval = eventually("a pending approval", || pending(&store)).await;
    let task = only_task(&store).await;
    assert_eq!(approval.task_id, task.id);
    assert_eq!(approval.action, "run `echo engine-ok`");
    assert_eq!(store.task(task.id).await.unwrap().status, TaskStatus::WaitingApproval);
    let execs = store.executions(task.id).await.unwrap();
    assert_eq!(execs.len(), 1);
    assert_eq!((execs[0].agent.as_str(), execs[0].role), ("codex", Role::Editor));

    let sent = outbox_texts(&store).await;
    assert!(sent.iter().any(|(t, a, text)| *t == Some(task.id)
        && *a == Some(approval.id)
        && text == "Codex is waiting for approval: run `echo engine-ok`"), "{sent:#?}");

    engine.handle(msg("u1", "Ada", "ok")).await.expect("handle ok");
    let decided = store.approval(approval.id).await.unwrap();
    assert_eq!(decided.status, ApprovalStatus::Approved);
    assert_eq!(decided.scope, Some(Scope::Once));
    assert_eq!(decided.decided_channel, Some(Channel::Telegram));

    let task = eventually("the task idle again", || idle_task(&store, task.id)).await;
    let session = store.latest_session(execs[0].id).await.unwrap().expect("session");
    assert_eq!(session.status, SessionStatus::Ready);
    assert!(session.provider_session_id.is_some());
    assert!(store.open_turns(Some(session.id)).await.unwrap().is_empty());
    assert_eq!(store.execution(execs[0].id).await.unwrap().status, ExecutionStatus::Idle);
    let sent = outbox_texts(&store).await;
    assert!(sent.iter().any(|(t, _, text)| *t == Some(task.id) && text.starts_with("Approved: run `echo engine-ok`")), "{sent:#?}");
    assert!(sent.iter().any(|(t, _, text)| *t == Some(task.id) && text.starts_with("Codex finished") && text.contains("exit=0")), "{sent:#?}");

    // (d) A teammate's late "ok" is told who decided, from where, and when.
    engine.handle(msg("u2", "Bob", "ok")).await.expect("handle late ok");
    let sent = outbox_texts(&store).await;
    let at = decided.decided_at.unwrap().format("%H:%M").to_string();
    assert_eq!(sent.last().map(|s| s.2.clone()), Some(format!("Already approved by Ada (Telegram, {at}).")), "{sent:#?}");
    assert_eq!(store.approval(approval.id).await.unwrap(), decided, "the approval resolves once");
}

/// (b) + (c): a follow-up runs in the same runtime session; "use cc to review it too" adds a
/// reviewer execution (claude) under the same task.
#[tokio::test]
async fn follow_up_is_sticky_and_review_spawns_an_execution() {
    let world = World::new();
    let engine = world.engine().await;
    let store = engine.store().clone();

    engine.handle(msg("u1", "Ada", "fix the greeting in hello.txt")).await.expect("handle");
    let task = eventually("the first task", || async { store.tasks(1).await.ok()?.into_iter().next() }).await;
    let exec = store.executions(task.id).await.unwrap()[0].clone();
    eventually("the first turn done", || async { (completed_turns(&store, exec.id).await == 1).then_some(()) }).await;
    let first = store.latest_session(exec.id).await.unwrap().expect("session");
    let provider = first.provider_session_id.clone().expect("provider id");

    engine.handle(msg("u1", "Ada", "make it say hello again")).await.expect("follow-up");
    eventually("the follow-up done", || async { (completed_turns(&store, exec.id).await == 2).then_some(()) }).await;
    let second = store.latest_session(exec.id).await.unwrap().expect("session");
    assert_eq!(second.id, first.id, "no new session row");
    assert_eq!(second.provider_session_id.as_deref(), Some(provider.as_str()));
    assert_eq!(store.tasks(10).await.unwrap().len(), 1, "the follow-up continued the task");

    engine.handle(msg("u1", "Ada", "use cc to review it too")).await.expect("review");
    let execs = store.executions(task.id).await.unwrap();
    assert_eq!(execs.len(), 2, "{execs:?}");
    assert_eq!((execs[1].agent.as_str(), execs[1].role), ("claude", Role::Reviewer));
    eventually("the review done", || async { (completed_turns(&store, execs[1].id).await == 1).then_some(()) }).await;
    let reviewer = store.latest_session(execs[1].id).await.unwrap().expect("reviewer session");
    assert_ne!(reviewer.provider_session_id, Some(provider));
    assert_eq!(store.tasks(10).await.unwrap().len(), 1);
}

/// (e) The gateway stops while an approval waits; a new engine on the same database recovers:
/// the approval is announced again, and approving it finishes the turn.
#[tokio::test]
async fn restart_with_a_pending_approval_recovers_it() {
    let world = World::new();
    let engine = world.engine().await;
    let store = engine.store().clone();
    engine.handle(msg("u1", "Ada", "RUN_CMD: echo after-restart")).await.expect("handle");
    let approval = eventually("a pending approval", || pending(&store)).await;
    let before = outbox_texts(&store).await;
    let session_before = store.latest_session(store.executions(approval.task_id).await.unwrap()[0].id).await.unwrap().unwrap();
    drop(engine);
    drop(store);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let engine = world.engine().await;
    let store = engine.store().clone();
    let recovered = engine.recover().await.expect("recover");
    assert_eq!((recovered.executions, recovered.approvals), (1, 1), "{recovered:?}");
    let again = outbox_texts(&store).await;
    assert!(again.iter().any(|(_, a, text)| *a == Some(approval.id) && text.contains("run `echo after-restart`")), "{before:#?} then {again:#?}");
    assert_eq!(store.approval(approval.id).await.unwrap().status, ApprovalStatus::Pending);

    engine.handle(msg("u1", "Ada", "ok")).await.expect("approve after restart");
    assert_eq!(store.approval(approval.id).await.unwrap().status, ApprovalStatus::Approved);
    eventually("the task idle after the restart", || idle_task(&store, approval.task_id)).await;
    let exec = store.executions(approval.task_id).await.unwrap()[0].clone();
    let session = store.latest_session(exec.id).await.unwrap().unwrap();
    assert_eq!(session.id, session_before.id, "the same session row, resumed");
    assert_eq!(session.provider_session_id, session_before.provider_session_id);
    assert!(store.open_turns(None).await.unwrap().is_empty());
    let sent = outbox_texts(&store).await;
    assert!(sent.iter().any(|(_, _, text)| text.starts_with("Codex finished") && text.contains("exit=0")), "{sent:#?}");
    assert!(store.pending_approvals(None).await.unwrap().is_empty(), "the repeated request was answered, not re-asked");
    let timeline = store.timeline(approval.task_id).await.unwrap();
    assert!(
        timeline.iter().any(|e| e.kind == EventKind::Approval && e.body["answered_by_approval"] == serde_json::json!(approval.id)),
        "the re-run's request was answered with the person's decision: {timeline:#?}"
    );
}
