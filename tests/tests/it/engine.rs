//! The engine end to end, in-process: SQLite in a temp dir, the fake agent binary behind the
//! real runtime adapters and supervisor. Assertions read the store, never log text.

use std::time::Duration;

use taskgate::engine::IncomingMessage;
use taskgate_adapters::store::SeaStore;
use taskgate_core::model::*;
use taskgate_core::store::Store;
use taskgate_tests::harness::{Trial, eventually};
use taskgate_tests::reads::{agent_text, completed_turns, outbox_texts, results};
use taskgate_tests::world::{World, message};

pub fn trials() -> Vec<Trial> {
    taskgate_tests::trials! {
        current_thread: [
            approval_round_trip_and_late_answer,
            follow_up_is_sticky_and_review_spawns_an_execution,
            restart_with_a_pending_approval_asks_again,
            stop_interrupts_the_turn_and_keeps_the_session,
            new_session_starts_clean_with_the_restart_note,
            deny_with_an_instruction_passes_it_to_the_agent,
            a_crash_mid_turn_resumes_and_completes,
            turn_time_limit_from_config_ends_the_turn,
            process_cap_makes_the_second_task_wait_then_run,
            takeover_expires_approvals_whose_turn_ended,
            shutdown_hands_a_running_turn_over_to_the_next_start,
            codex_question_is_answered_mid_turn,
            claude_question_is_answered_mid_turn,
            stop_after_an_earlier_approval_interrupts,
            yes_do_that_with_nothing_pending_reaches_the_agent,
            presses_from_elsewhere_or_from_non_approvers_change_nothing,
            a_listed_approver_decides_for_the_requester,
            every_decision_path_edits_the_card,
            a_file_change_approval_card_holds_the_diff,
            always_here_stores_a_rule_that_approves_without_asking,
            the_stop_button_interrupts_the_running_turn,
        ],
        multi_thread(2): [
            racing_wakes_run_each_turn_once,
            a_message_handed_over_twice_is_decided_once,
        ],
    }
}

fn msg(from: &str, name: &str, text: &str) -> IncomingMessage {
    message("chat-1", from, name, text)
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

/// (a) + (d): a RUN_CMD message opens a task whose approval waits in the store and the outbox;
/// "ok" approves it, the turn completes, the summary goes out, the task is idle; a second "ok"
/// hears who approved first.
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
    assert!(
        sent.iter().any(|(t, a, text)| *t == Some(task.id)
            && *a == Some(approval.id)
            && text == "Codex is waiting for approval: run `echo engine-ok`"),
        "{sent:#?}"
    );

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
    assert!(
        sent.iter().any(|(t, _, text)| *t == Some(task.id) && text == "Codex is working (approved)"),
        "the decision shows on the live status, not as a message of its own: {sent:#?}"
    );
    assert!(
        sent.iter().any(|(t, _, text)| *t == Some(task.id)
            && text.starts_with("Codex is waiting for approval: run `echo engine-ok`")
            && text.ends_with("Approved by Ada (Telegram)")),
        "the card says who decided: {sent:#?}"
    );
    assert_eq!(
        sent.last().map(|(_, _, text)| text.as_str()),
        Some("FAKE-REPLY: tool finished. exit=0"),
        "the final message is the agent's own answer: {sent:#?}"
    );

    // (d) A teammate's "ok" after the decision finds nothing pending: it decides nothing (no
    // "Already approved" from a stale list), and the approval stays as decided.
    engine.handle(msg("u2", "Bob", "ok")).await.expect("handle a later ok");
    let sent = outbox_texts(&store).await;
    assert!(!sent.iter().any(|(_, _, t)| t.starts_with("Already")), "{sent:#?}");
    assert_eq!(store.approval(approval.id).await.unwrap(), decided, "the approval resolves once");
}

/// (b) + (c): a follow-up runs in the same runtime session; "use cc to review it too" adds a
/// reviewer execution (claude) under the same task.
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

/// (e) The gateway dies while an approval waits (the engine dropped: its agent is gone with
/// it). The next start takes the execution over: the old request died with the process, so its
/// approval expires, the turn runs again in the resumed session with one line to the chat, and
/// the agent's new request is approved and finishes the turn.
async fn restart_with_a_pending_approval_asks_again() {
    let world = World::new();
    let engine = world.engine().await;
    let store = engine.store().clone();
    engine.handle(msg("u1", "Ada", "RUN_CMD: echo after-restart")).await.expect("handle");
    let approval = eventually("a pending approval", || pending(&store)).await;
    let exec = store.executions(approval.task_id).await.unwrap()[0].clone();
    let session_before = store.latest_session(exec.id).await.unwrap().unwrap();
    outbox_texts(&store).await;
    drop(engine);
    drop(store);

    let engine = world.engine().await;
    let store = engine.store().clone();
    let again = eventually("the request asked again", || async {
        store.pending_approvals(None).await.ok()?.into_iter().find(|a| a.id != approval.id)
    })
    .await;
    assert_eq!(again.action, approval.action);
    assert_eq!(store.approval(approval.id).await.unwrap().status, ApprovalStatus::Expired);
    let sent = outbox_texts(&store).await;
    let notices: Vec<_> = sent.iter().filter(|(_, _, t)| t.starts_with("Codex was interrupted")).collect();
    assert_eq!(notices.len(), 1, "one line about the restart: {sent:#?}");
    assert_eq!(notices[0].2, "Codex was interrupted by a gateway restart; running your last message again.");
    assert!(
        sent.iter().any(|(_, a, t)| a.is_none() && t.contains("Expired") && t.contains("run `echo after-restart`")),
        "the old card is edited to say it expired: {sent:#?}"
    );

    engine.handle(msg("u1", "Ada", "ok")).await.expect("approve after restart");
    assert_eq!(store.approval(again.id).await.unwrap().status, ApprovalStatus::Approved);
    eventually("the task idle after the restart", || idle_task(&store, approval.task_id)).await;
    let session = store.latest_session(exec.id).await.unwrap().unwrap();
    assert_eq!(session.id, session_before.id, "the same session row, resumed");
    assert_eq!(session.provider_session_id, session_before.provider_session_id);
    assert!(store.open_turns(None).await.unwrap().is_empty());
    let sent = outbox_texts(&store).await;
    assert!(sent.iter().any(|(_, _, text)| text.starts_with("FAKE-REPLY") && text.contains("exit=0")), "{sent:#?}");
}

/// The first task to appear, with its first execution.
async fn first_task(store: &SeaStore) -> (Task, Execution) {
    let task = eventually("a task", || async { store.tasks(10).await.ok()?.into_iter().last() }).await;
    let exec = eventually("its execution", || async { store.executions(task.id).await.ok()?.into_iter().next() }).await;
    (task, exec)
}

/// The execution's latest session once a turn of it runs in the agent (not just queued).
async fn running(store: &SeaStore, exec: Id) -> RuntimeSession {
    eventually("a turn running", || async {
        let session = store.latest_session(exec).await.ok()??;
        let open = store.open_turns(Some(session.id)).await.ok()?;
        open.iter().any(|t| t.status == TurnStatus::Running).then_some(session)
    })
    .await
}

async fn turns_done(store: &SeaStore, exec: Id, n: usize) {
    eventually(&format!("{n} turn(s) done"), || async { (completed_turns(store, exec).await >= n).then_some(()) })
        .await;
}

/// "stop" while a turn runs: the turn ends interrupted, the session stays, and the next
/// message runs in that same session.
async fn stop_interrupts_the_turn_and_keeps_the_session() {
    let world = World::new();
    let engine = world.engine().await;
    let store = engine.store().clone();

    engine.handle(msg("u1", "Ada", "SLOW_REPLY: rewrite the parser")).await.expect("handle");
    let (task, exec) = first_task(&store).await;
    let session = running(&store, exec.id).await;

    engine.handle(msg("u1", "Ada", "stop")).await.expect("stop");
    turns_done(&store, exec.id, 1).await;
    let ended = results(&store, task.id).await;
    assert_eq!(ended[0]["outcome"]["status"], "interrupted", "{ended:#?}");
    let after = store.latest_session(exec.id).await.unwrap().expect("session");
    assert_eq!(after.id, session.id);
    assert!(after.status.is_usable(), "{after:?}");
    let sent = outbox_texts(&store).await;
    assert!(sent.iter().any(|(_, _, t)| t == "Stopping Codex…"), "{sent:#?}");
    assert!(sent.iter().any(|(_, _, t)| t == "Codex stopped (interrupted)"), "{sent:#?}");

    engine.handle(msg("u1", "Ada", "make it say hello again")).await.expect("follow-up");
    turns_done(&store, exec.id, 2).await;
    let ended = results(&store, task.id).await;
    assert_eq!(ended[1]["outcome"]["status"], "completed", "{ended:#?}");
    let last = store.latest_session(exec.id).await.unwrap().expect("session");
    assert_eq!((last.id, last.provider_session_id.clone()), (session.id, session.provider_session_id.clone()));
    assert!(agent_text(&store, task.id).await.contains("you said 'make it say hello again'"));
    assert_eq!(store.tasks(10).await.unwrap().len(), 1);
}

/// `/new` closes the sticky session (after its handoff turn); the next message, sent while the
/// handoff may still run, opens a new session row, and the agent gets the task's context and
/// restart note before the message.
async fn new_session_starts_clean_with_the_restart_note() {
    let world = World::new();
    let engine = world.engine().await;
    let store = engine.store().clone();

    engine.handle(msg("u1", "Ada", "fix the greeting in hello.txt")).await.expect("handle");
    let (task, exec) = first_task(&store).await;
    turns_done(&store, exec.id, 1).await;
    let old = store.latest_session(exec.id).await.unwrap().expect("session");
    store
        .add_note_entry(NewNoteEntry {
            task_id: task.id,
            kind: NoteKind::Verified,
            text: "the typo is on line 1 of hello.txt".into(),
            evidence: Vec::new(),
            author: "Ada".into(),
            commit: None,
        })
        .await
        .expect("note");

    engine.handle(msg("u1", "Ada", "/new")).await.expect("/new");
    assert_eq!(store.session(old.id).await.unwrap().status, SessionStatus::Closed);

    engine.handle(msg("u1", "Ada", "make it say hello again")).await.expect("next");
    // The handoff turn `/new` asked of the old session (`notes.handoff`), then the message.
    turns_done(&store, exec.id, 3).await;
    let fresh = store.latest_session(exec.id).await.unwrap().expect("session");
    assert_ne!(fresh.id, old.id, "a new session row");
    assert_ne!(fresh.provider_session_id, old.provider_session_id, "a new provider session, not a resume");
    // The fake echoes its whole input: what the new session's first turn received.
    let timeline = store.timeline(task.id).await.unwrap();
    let said = timeline
        .iter()
        .rev()
        .find_map(|e| match e.body.known() {
            Some(Body::AgentText { text }) => Some(text.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let first_input = said.strip_prefix("FAKE-REPLY: you said '").unwrap_or_default();
    assert!(first_input.contains("Task: fix the greeting in hello.txt"), "{said}");
    assert!(first_input.contains("the typo is on line 1 of hello.txt"), "restart note: {said}");
    assert!(first_input.contains("make it say hello again"), "{said}");
}

/// "no, run only the unit tests": the approval is denied, and the agent receives the
/// instruction as its next turn.
async fn deny_with_an_instruction_passes_it_to_the_agent() {
    let world = World::new();
    let engine = world.engine().await;
    let store = engine.store().clone();

    engine.handle(msg("u1", "Ada", "RUN_CMD: echo all-the-tests")).await.expect("handle");
    let approval = eventually("a pending approval", || pending(&store)).await;
    engine.handle(msg("u1", "Ada", "no, run only the unit tests")).await.expect("deny");
    let denied = store.approval(approval.id).await.unwrap();
    assert_eq!(denied.status, ApprovalStatus::Denied);
    assert_eq!(denied.decided_channel, Some(Channel::Telegram));

    let exec = store.executions(approval.task_id).await.unwrap()[0].clone();
    turns_done(&store, exec.id, 2).await;
    let said = agent_text(&store, approval.task_id).await;
    assert!(said.contains("rejected by user"), "the command was declined: {said}");
    assert!(
        said.contains("you said 'The person declined run `echo all-the-tests` and said: no, run only the unit tests'"),
        "{said}"
    );
    eventually("the task idle", || idle_task(&store, approval.task_id)).await;
    assert!(store.pending_approvals(None).await.unwrap().is_empty());
}

/// The agent crashes mid-turn: a Died event on the timeline, one short line in the chat, and
/// the turn still completes in the resumed session.
async fn a_crash_mid_turn_resumes_and_completes() {
    let world = World::new();
    let engine = world.engine().await;
    let store = engine.store().clone();

    engine.handle(msg("u1", "Ada", "CRASH_ONCE: tidy the imports")).await.expect("handle");
    let (task, exec) = first_task(&store).await;
    turns_done(&store, exec.id, 1).await;
    let ended = results(&store, task.id).await;
    assert_eq!(ended.len(), 1, "one turn, one result: {ended:#?}");
    assert_eq!(ended[0]["outcome"]["status"], "completed", "{ended:#?}");
    assert!(agent_text(&store, task.id).await.contains("FAKE-REPLY: survived"));

    let timeline = store.timeline(task.id).await.unwrap();
    assert!(
        timeline.iter().any(|e| e.kind == EventKind::Runtime
            && e.body.to_json()["type"] == "died"
            && e.body.to_json()["restarting"] == true),
        "{timeline:#?}"
    );
    let session = store.latest_session(exec.id).await.unwrap().expect("session");
    assert_eq!(session.status, SessionStatus::Ready, "the same row, resumed, not dead");
    let ready: Vec<_> = timeline.iter().filter(|e| e.body.to_json()["type"] == "session_ready").collect();
    assert!(
        ready.iter().all(|e| e.body.to_json()["provider_session_id"] == serde_json::json!(session.provider_session_id)),
        "resumed by id: {ready:#?}"
    );

    let sent = outbox_texts(&store).await;
    let crash: Vec<_> = sent.iter().filter(|(_, _, t)| t.contains("unexpectedly") || t.contains("resumed")).collect();
    assert_eq!(crash.len(), 1, "{sent:#?}");
    assert_eq!(crash[0].2, "Codex stopped unexpectedly; restarting it");
    for (_, _, text) in &sent {
        assert!(text.len() <= 300 && !text.contains('\n'), "a phone line, not a report: {text:?}");
        assert!(!text.contains("panicked") && !text.contains("backtrace"), "{text:?}");
    }
}

/// A turn that ignores the interrupt at its configured limit ends timed out, the chat is told,
/// and the session takes the next message.
async fn turn_time_limit_from_config_ends_the_turn() {
    let world = World::with(|config| {
        if let Some(codex) = config.agents.get_mut("codex") {
            codex.turn_timeout_secs = Some(1);
        }
        config.runtime.interrupt_grace_secs = 1;
    });
    let engine = world.engine().await;
    let store = engine.store().clone();

    let started = tokio::time::Instant::now();
    engine.handle(msg("u1", "Ada", "STUBBORN: refactor everything")).await.expect("handle");
    let (task, exec) = first_task(&store).await;
    turns_done(&store, exec.id, 1).await;
    assert!(started.elapsed() < Duration::from_secs(15), "the limit ended it, not the fake's 20 s");
    let ended = results(&store, task.id).await;
    assert_eq!(ended[0]["outcome"], serde_json::json!({"status": "timed_out", "limit_secs": 1}), "{ended:#?}");
    let sent = outbox_texts(&store).await;
    assert!(sent.iter().any(|(_, _, t)| t == "Codex stopped: the turn hit its 1s time limit"), "{sent:#?}");
    eventually("the task idle", || idle_task(&store, task.id)).await;

    engine.handle(msg("u1", "Ada", "make it say hello again")).await.expect("follow-up");
    turns_done(&store, exec.id, 2).await;
    assert_eq!(results(&store, task.id).await[1]["outcome"]["status"], "completed");
}

/// With one process allowed, a second task waits while the first holds it, runs once the
/// first goes idle, and the first resumes in its own session afterwards.
async fn process_cap_makes_the_second_task_wait_then_run() {
    let world = World::with(|config| config.runtime.max_processes = 1);
    let engine = world.engine().await;
    let store = engine.store().clone();

    engine.handle(message("chat-1", "u1", "Ada", "RUN_CMD: echo first")).await.expect("first");
    let approval = eventually("the first task waiting", || pending(&store)).await;
    let first_exec = store.executions(approval.task_id).await.unwrap()[0].clone();
    let first_session = store.latest_session(first_exec.id).await.unwrap().expect("session");

    // Claude: codex sessions would share the first one's app-server (one process slot).
    engine.handle(message("chat-2", "u2", "Bob", "/cc fix the greeting in hello.txt")).await.expect("second");
    let second = eventually("the second task", || async {
        store.tasks(10).await.ok()?.into_iter().find(|t| t.id != approval.task_id)
    })
    .await;
    let second_exec = store.executions(second.id).await.unwrap()[0].clone();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(completed_turns(&store, second_exec.id).await, 0, "the second waits for the slot");
    let queued = store.latest_session(second_exec.id).await.unwrap().expect("session row");
    assert!(queued.provider_session_id.is_none(), "no process started: {queued:?}");

    engine.handle(message("chat-1", "u1", "Ada", "ok")).await.expect("approve");
    turns_done(&store, first_exec.id, 1).await;
    turns_done(&store, second_exec.id, 1).await;
    let said = agent_text(&store, second.id).await;
    assert!(said.contains("fix the greeting in hello.txt"), "{said}");

    // The first task's session gave its process up while idle; it resumes, same row.
    engine.handle(message("chat-1", "u1", "Ada", "make it say hello again")).await.expect("follow-up");
    turns_done(&store, first_exec.id, 2).await;
    let resumed = store.latest_session(first_exec.id).await.unwrap().expect("session");
    assert_eq!((resumed.id, resumed.provider_session_id), (first_session.id, first_session.provider_session_id));
}

/// An approval still pending after its turn ended cannot be answered by anyone: the next owner
/// expires it through the state machine and says so on the timeline.
async fn takeover_expires_approvals_whose_turn_ended() {
    let world = World::new();
    let engine = world.engine().await;
    let store = engine.store().clone();
    engine.handle(msg("u1", "Ada", "RUN_CMD: echo stale")).await.expect("handle");
    let approval = eventually("a pending approval", || pending(&store)).await;
    drop(engine);
    drop(store);

    // As if the turn had ended with the approval left open (a database edited by hand).
    let store = world.store_on("taskgate.db").await;
    for mut turn in store.open_turns(None).await.unwrap() {
        turn.status = TurnStatus::Failed;
        store.update_turn(&turn).await.expect("end the turn");
    }
    drop(store);

    let engine = world.engine().await;
    let store = engine.store().clone();
    eventually("the approval expired", || async {
        (store.approval(approval.id).await.ok()?.status == ApprovalStatus::Expired).then_some(())
    })
    .await;
    let timeline = store.timeline(approval.task_id).await.unwrap();
    assert!(
        timeline.iter().any(|e| e.kind == EventKind::Approval
            && e.body.to_json()["type"] == "approval_expired"
            && e.body.to_json()["approval"] == serde_json::json!(approval.id)),
        "{timeline:#?}"
    );
    assert!(store.pending_approvals(None).await.unwrap().is_empty());
    eventually("nothing left to run", || async { store.work(10).await.ok()?.is_empty().then_some(()) }).await;
}

/// A graceful stop with a turn running: the turn gets the grace, then is interrupted and handed
/// over (ended interrupted, the same input queued again, one line to the chat) and the
/// execution released; the next start runs it. Nothing runs twice at once.
async fn shutdown_hands_a_running_turn_over_to_the_next_start() {
    let world = World::new();
    let engine = world.engine().await;
    let store = engine.store().clone();
    engine.handle(msg("u1", "Ada", "SLOW_MS: 60000 migrate the database")).await.expect("handle");
    let (_, exec) = first_task(&store).await;
    running(&store, exec.id).await;
    let started = tokio::time::Instant::now();
    engine.shutdown(Duration::from_millis(200)).await;
    assert!(started.elapsed() < Duration::from_secs(6), "grace + handover, not the turn: {:?}", started.elapsed());
    let open = store.open_turns(None).await.unwrap();
    assert_eq!(open.len(), 1, "the same input, queued again: {open:?}");
    assert_eq!(open[0].status, TurnStatus::Queued);
    assert!(open[0].input.contains("SLOW_MS: 60000 migrate the database"));
    assert_eq!(completed_turns(&store, exec.id).await, 0, "the turn did not end as a result");
    let sent = outbox_texts(&store).await;
    let notices: Vec<_> = sent.iter().filter(|(_, _, t)| t.contains("gateway restart")).collect();
    assert_eq!(notices.len(), 1, "{sent:#?}");
    let work = store.work(10).await.unwrap();
    assert_eq!(work.len(), 1);
    assert_eq!(work[0].owner, None, "released: another replica takes it at once");
    drop(engine);

    // The next start takes it; a stop of that turn ends it for good.
    let engine = world.engine().await;
    let store = engine.store().clone();
    running(&store, exec.id).await;
    engine.handle(msg("u1", "Ada", "stop")).await.expect("stop");
    turns_done(&store, exec.id, 1).await;
    assert!(store.open_turns(None).await.unwrap().is_empty());
    let sent = outbox_texts(&store).await;
    assert!(!sent.iter().any(|(_, _, t)| t.contains("gateway restart")), "no second notice: {sent:#?}");
    assert_eq!(store.tasks(10).await.unwrap().len(), 1);
}

/// The agent asks mid-turn (the fake's `ASK:`): the chat shows the question, the task waits
/// for input, and the person's next message reaches the agent as the answer to that question
/// (the fake echoes it) instead of queueing behind the blocked turn until its time limit.
async fn question_is_answered_mid_turn(prompt: &str, display: &str) {
    let limit = Duration::from_secs(20);
    let world = World::with(|config| config.runtime.turn_timeout_secs = limit.as_secs());
    let engine = world.engine().await;
    let store = engine.store().clone();

    engine.handle(msg("u1", "Ada", prompt)).await.expect("handle");
    let (task, exec) = first_task(&store).await;
    let waiting = eventually("the task waiting for input", || async {
        store.task(task.id).await.ok().filter(|t| t.status == TaskStatus::WaitingInput)
    })
    .await;
    let sent = outbox_texts(&store).await;
    assert!(
        sent.iter().any(|(t, _, text)| *t == Some(task.id)
            && text.starts_with(&format!("{display} asks:"))
            && text.contains("which colour?")),
        "{sent:#?}"
    );

    let answered = tokio::time::Instant::now();
    engine.handle(msg("u1", "Ada", "the blue one")).await.expect("answer");
    let after = store.task(task.id).await.unwrap();
    assert_ne!(after.status, TaskStatus::WaitingInput, "the answer moved the task on");
    assert_eq!(store.tasks(10).await.unwrap().len(), 1, "the answer continued the task");

    let idle = eventually("the task idle", || idle_task(&store, task.id)).await;
    assert!(answered.elapsed() < limit / 4, "answered promptly, not at the {limit:?} limit: {:?}", answered.elapsed());
    // waiting_input → running (the answer) → idle (the turn's end): two moves, nothing else.
    assert_eq!(idle.version, waiting.version + 2, "{waiting:?} then {idle:?}");
    assert_eq!(completed_turns(&store, exec.id).await, 1, "one turn: the answer did not queue another");
    let ended = results(&store, task.id).await;
    assert_eq!(ended[0]["outcome"]["status"], "completed", "{ended:#?}");
    let said = agent_text(&store, task.id).await;
    assert!(said.contains("FAKE-REPLY: you answered 'the blue one'"), "{said}");
    let timeline = store.timeline(task.id).await.unwrap();
    assert!(
        timeline.iter().any(|e| e.execution_id == Some(exec.id)
            && e.body.to_json()["type"] == "question_answered"
            && e.body.to_json()["text"] == "the blue one"),
        "{timeline:#?}"
    );
    let sent = outbox_texts(&store).await;
    assert!(sent.iter().any(|(_, _, t)| *t == format!("{display} got your answer")), "{sent:#?}");
    assert!(store.open_turns(None).await.unwrap().is_empty());
}

async fn codex_question_is_answered_mid_turn() {
    question_is_answered_mid_turn("ASK: which colour?", "Codex").await;
}

async fn claude_question_is_answered_mid_turn() {
    question_is_answered_mid_turn("/cc ASK: which colour?", "Claude").await;
}

/// A direct message from Bob in Ada's chat (a second person of the same chat).
fn from_bob(text: &str) -> IncomingMessage {
    msg("u2", "Bob", text)
}

/// "stop" right after an earlier approval was decided stops the running turn: a decided
/// approval is never offered to the classifier as pending, so "stop" is a cancel, not a late
/// "deny" answered "Already approved".
async fn stop_after_an_earlier_approval_interrupts() {
    let world = World::new();
    let engine = world.engine().await;
    let store = engine.store().clone();
    engine.handle(msg("u1", "Ada", "RUN_CMD: echo first")).await.expect("handle");
    let approval = eventually("a pending approval", || pending(&store)).await;
    engine.handle(msg("u1", "Ada", "yes")).await.expect("approve");
    eventually("the task idle", || idle_task(&store, approval.task_id)).await;
    let exec = store.executions(approval.task_id).await.unwrap()[0].clone();

    let reply = store.latest_outbound(approval.task_id).await.unwrap().expect("a reply");
    let mut follow = msg("u1", "Ada", "SLOW_MS: 60000 now the slow part");
    follow.reply_to_task = reply.task_id;
    engine.handle(follow).await.expect("follow-up");
    running(&store, exec.id).await;
    let asked = tokio::time::Instant::now();
    engine.handle(msg("u1", "Ada", "stop")).await.expect("stop");
    turns_done(&store, exec.id, 2).await;
    assert!(asked.elapsed() < Duration::from_secs(5), "stopped in {:?}", asked.elapsed());
    let ended = results(&store, approval.task_id).await;
    assert_eq!(ended[1]["outcome"]["status"], "interrupted", "{ended:#?}");
    let sent = outbox_texts(&store).await;
    assert!(!sent.iter().any(|(_, _, t)| t.starts_with("Already")), "{sent:#?}");
    assert!(sent.iter().any(|(_, _, t)| t.starts_with("Stopping Codex")), "{sent:#?}");
}

/// "yes, do that" with nothing pending is a message for the agent, not a late approval.
async fn yes_do_that_with_nothing_pending_reaches_the_agent() {
    let world = World::new();
    let engine = world.engine().await;
    let store = engine.store().clone();
    engine.handle(msg("u1", "Ada", "RUN_CMD: echo first")).await.expect("handle");
    let approval = eventually("a pending approval", || pending(&store)).await;
    engine.handle(msg("u1", "Ada", "ok")).await.expect("approve");
    eventually("the task idle", || idle_task(&store, approval.task_id)).await;
    let exec = store.executions(approval.task_id).await.unwrap()[0].clone();

    engine.handle(msg("u1", "Ada", "yes, do that")).await.expect("yes");
    turns_done(&store, exec.id, 2).await;
    assert!(agent_text(&store, approval.task_id).await.contains("you said 'yes, do that'"));
    let sent = outbox_texts(&store).await;
    assert!(!sent.iter().any(|(_, _, t)| t.starts_with("Already")), "{sent:#?}");
}

/// A decision counts only where the approval was asked, with the nonce its buttons carry,
/// from someone allowed to decide: anything else is refused and changes nothing.
async fn presses_from_elsewhere_or_from_non_approvers_change_nothing() {
    use taskgate::engine::Pressed;
    let world = World::new();
    let engine = world.engine().await;
    let store = engine.store().clone();
    engine.handle(msg("u1", "Ada", "RUN_CMD: echo guarded")).await.expect("handle");
    let approval = eventually("a pending approval", || pending(&store)).await;
    let approve = Answer::Approve(Scope::Once);

    // From another chat, where the card was never shown (ids are sequential: guessable).
    let elsewhere = message("chat-2", "u1", "Ada", "");
    let refused = engine.decide(&elsewhere, approval.id, Some(&approval.nonce), approve).await.unwrap();
    assert!(matches!(&refused, Pressed::Refused(why) if why.contains("not asked here")), "{refused:?}");
    // In the chat, with a made-up nonce.
    let forged = engine.decide(&msg("u1", "Ada", ""), approval.id, Some("guessed"), approve).await.unwrap();
    assert!(matches!(forged, Pressed::Refused(_)), "{forged:?}");
    // In the chat, with the right nonce, by someone who may not decide (not the requester, not
    // an approver of the project).
    let bob = engine.decide(&from_bob(""), approval.id, Some(&approval.nonce), approve).await.unwrap();
    assert!(matches!(&bob, Pressed::Refused(why) if why.contains("approvers")), "{bob:?}");
    // Typing "yes" does not get around it.
    engine.handle(from_bob("yes")).await.expect("bob says yes");
    assert_eq!(store.approval(approval.id).await.unwrap().status, ApprovalStatus::Pending, "nothing changed");
    let sent = outbox_texts(&store).await;
    assert!(sent.iter().any(|(_, _, t)| t.starts_with("Only the project's approvers")), "{sent:#?}");
    assert!(taskgate_adapters::store::audit_log(store.as_ref()).await.unwrap().0.is_empty(), "no decision on record");

    // The requester decides: it counts, once, and is on the audit log with where it came from.
    let ada = engine.decide(&msg("u1", "Ada", ""), approval.id, Some(&approval.nonce), approve).await.unwrap();
    assert_eq!(ada, Pressed::Done("Approved by Ada (Telegram)".into()));
    let (log, broken) = taskgate_adapters::store::audit_log(store.as_ref()).await.unwrap();
    assert_eq!(broken, None);
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].who.as_str(), log[0].place.as_str(), log[0].channel),
        ("Ada", "chat-1", Some(Channel::Telegram))
    );
    assert_eq!(log[0].decision, ApprovalStatus::Approved);
}

/// A project's `approvers` may decide, in the chat the approval was asked in.
async fn a_listed_approver_decides_for_the_requester() {
    let world = World::with(|config| config.projects[0].approvers = vec!["u2".into()]);
    let engine = world.engine().await;
    let store = engine.store().clone();
    engine.handle(msg("u1", "Ada", "RUN_CMD: echo approved-by-bob")).await.expect("handle");
    let approval = eventually("a pending approval", || pending(&store)).await;
    engine.handle(from_bob("ok")).await.expect("bob approves");
    let decided = store.approval(approval.id).await.unwrap();
    assert_eq!(decided.status, ApprovalStatus::Approved);
    eventually("the task idle", || idle_task(&store, approval.task_id)).await;
}

/// Whatever decides an approval (a typed answer, the console, a stop), its card is edited to
/// say so and loses its buttons.
async fn every_decision_path_edits_the_card() {
    use taskgate::engine::Pressed;
    let world = World::new();
    let engine = world.engine().await;
    let store = engine.store().clone();
    // A card edit: the row that shares the card's live key, without buttons.
    let edit_of = |approval: Id| {
        let store = store.clone();
        async move {
            let rows = store.outbox_recent(Channel::Telegram, "chat-1", 200).await.ok()?;
            let key = format!("approval:{approval}");
            rows.into_iter().find(|r| r.payload.live.as_deref() == Some(key.as_str()) && r.payload.buttons.is_empty())
        }
    };

    // Typed.
    engine.handle(msg("u1", "Ada", "RUN_CMD: echo one")).await.expect("handle");
    let first = eventually("an approval", || pending(&store)).await;
    let card = store.approval_cards(first.id).await.unwrap();
    assert_eq!(card.len(), 1);
    assert_eq!(card[0].payload.buttons.len(), 4, "Approve, Deny, This session, Always here");
    engine.handle(msg("u1", "Ada", "yes")).await.expect("typed yes");
    let edit = eventually("the card edited", || edit_of(first.id)).await;
    assert!(edit.payload.text.ends_with("Approved by Ada (Telegram)"), "{:?}", edit.payload);
    assert!(edit.payload.text.starts_with(&card[0].payload.text));
    eventually("idle", || idle_task(&store, first.task_id)).await;

    // From the web console.
    let reply = store.latest_outbound(first.task_id).await.unwrap();
    let mut next = msg("u1", "Ada", "RUN_CMD: echo two");
    next.reply_to_task = reply.and_then(|r| r.task_id);
    engine.handle(next).await.expect("second");
    let second = eventually("a second approval", || pending(&store)).await;
    let console = IncomingMessage { channel: Channel::Web, chat_id: "console".into(), ..msg("web", "Ada (web)", "") };
    let done = engine.decide(&console, second.id, None, Answer::Deny).await.unwrap();
    assert_eq!(done, Pressed::Done("Denied by Ada (web) from the web console".into()));
    let edit = eventually("the card edited", || edit_of(second.id)).await;
    assert!(edit.payload.text.ends_with("Denied by Ada (web) from the web console"), "{:?}", edit.payload);
    eventually("idle", || idle_task(&store, second.task_id)).await;

    // By a stop: denied with it, and the card says so.
    let mut third = msg("u1", "Ada", "RUN_CMD: echo three");
    third.reply_to_task = Some(first.task_id);
    engine.handle(third).await.expect("third");
    let third = eventually("a third approval", || pending(&store)).await;
    engine.handle(msg("u1", "Ada", "/cancel")).await.expect("cancel");
    let edit = eventually("the card edited", || edit_of(third.id)).await;
    assert!(edit.payload.text.ends_with("Denied and stopped by Ada (Telegram)"), "{:?}", edit.payload);
    assert_eq!(store.approval(third.id).await.unwrap().status, ApprovalStatus::Cancelled);
    let (log, broken) = taskgate_adapters::store::audit_log(store.as_ref()).await.unwrap();
    assert_eq!((log.len(), broken), (3, None), "three decisions on the audit log: {log:#?}");
}

/// A file-change approval shows what would be written before anyone decides.
async fn a_file_change_approval_card_holds_the_diff() {
    let world = World::new();
    let engine = world.engine().await;
    let store = engine.store().clone();
    engine.handle(msg("u1", "Ada", "WRITE_FILE: notes/y.txt")).await.expect("handle");
    let approval = eventually("a pending approval", || pending(&store)).await;
    assert!(approval.action.starts_with("edit "), "{approval:?}");
    let card = store.approval_cards(approval.id).await.unwrap().remove(0);
    let detail = card.payload.detail.clone().unwrap_or_default();
    assert!(detail.contains("hello from fake model"), "the diff is on the card: {:?}", card.payload);
    assert!(card.payload.text.starts_with("Codex is waiting for approval: edit "), "{:?}", card.payload);
}

/// "Always here" stores a rule: the next identical request is approved without asking, by the
/// rule, on the audit log; `/rules revoke` makes it ask again.
async fn always_here_stores_a_rule_that_approves_without_asking() {
    use taskgate::engine::Pressed;
    // Ada is the project's approver: only approvers revoke rules.
    let world = World::with(|config| config.projects[0].approvers = vec!["u1".into()]);
    let engine = world.engine().await;
    let store = engine.store().clone();
    engine.handle(msg("u1", "Ada", "RUN_CMD: echo trusted")).await.expect("handle");
    let first = eventually("an approval", || pending(&store)).await;
    let pressed = engine
        .decide(&msg("u1", "Ada", ""), first.id, Some(&first.nonce), Answer::Approve(Scope::Project))
        .await
        .unwrap();
    assert_eq!(pressed, Pressed::Done("Always approved in this project by Ada (Telegram)".into()));
    eventually("idle", || idle_task(&store, first.task_id)).await;
    let rules = store.rules(None).await.unwrap();
    assert_eq!((rules.len(), rules[0].action.as_str()), (1, "run `echo trusted`"));

    let mut again = msg("u1", "Ada", "RUN_CMD: echo trusted");
    again.reply_to_task = Some(first.task_id);
    engine.handle(again).await.expect("again");
    let exec = store.executions(first.task_id).await.unwrap()[0].clone();
    turns_done(&store, exec.id, 2).await;
    let approvals = store.approvals(first.task_id, 10).await.unwrap();
    assert_eq!(approvals.len(), 2);
    assert_eq!((approvals[0].status, approvals[0].rule_id), (ApprovalStatus::Approved, Some(rules[0].id)));
    assert!(store.approval_cards(approvals[0].id).await.unwrap().is_empty(), "nobody was asked");
    let (log, _) = taskgate_adapters::store::audit_log(store.as_ref()).await.unwrap();
    assert_eq!(
        log.last().map(|e| (e.who.clone(), e.rule_id)),
        Some((format!("rule #{}", rules[0].id), Some(rules[0].id)))
    );

    engine.handle(msg("u1", "Ada", &format!("/rules revoke {}", rules[0].id))).await.expect("revoke");
    assert!(store.rules(None).await.unwrap().is_empty());
    let mut third = msg("u1", "Ada", "RUN_CMD: echo trusted");
    third.reply_to_task = Some(first.task_id);
    engine.handle(third).await.expect("third");
    eventually("asked again", || pending(&store)).await;
}

/// The Stop button on a live status: it interrupts the running turn, and only from a chat
/// where the task's messages were shown.
/// Wakes racing the first claim of an execution (commits and polls do this under load, many
/// at once) start one actor: the agent gets each prompt once and both turns complete. A wake
/// that saw no actor yet used to claim again after the first claim had started one, renewing
/// the lease under a new fence: the live actor was fenced out mid-turn and the turn ran again
/// in a fresh session.
async fn racing_wakes_run_each_turn_once() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let log = scratch.path().join("prompts.jsonl");
    let world = World::with(|config| {
        let Some(taskgate::config::Command::Argv(mut argv)) = config.agents["codex"].command.clone() else {
            panic!("the fake agent's argv")
        };
        argv.extend(["--prompts".to_owned(), log.to_string_lossy().into_owned()]);
        config.agents.get_mut("codex").expect("codex").command = Some(taskgate::config::Command::Argv(argv));
    });
    let engine = std::sync::Arc::new(world.engine().await);
    let store = engine.store().clone();
    let spam = {
        let engine = engine.clone();
        tokio::spawn(async move {
            loop {
                // The first executions this test creates, woken in bursts: the claims queue up
                // behind the first one.
                for _ in 0..200 {
                    for exec in 1..=3 {
                        engine.wake(exec);
                    }
                }
                tokio::task::yield_now().await;
            }
        })
    };
    engine.handle(msg("u1", "Ada", "SLOW_MS: 300 first job")).await.expect("handle");
    let task = eventually("the task", || async { store.tasks(10).await.ok()?.into_iter().next() }).await;
    eventually("the first turn done", || idle_task(&store, task.id)).await;
    let mut follow = msg("u1", "Ada", "SLOW_MS: 300 second job");
    follow.reply_to_task = Some(task.id);
    engine.handle(follow).await.expect("follow-up");
    let exec = store.executions(task.id).await.unwrap()[0].clone();
    turns_done(&store, exec.id, 2).await;
    spam.abort();
    let prompts = taskgate_tests::cluster::prompts(&log);
    let texts: Vec<&str> = prompts.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(texts.iter().filter(|t| t.contains("first job")).count(), 1, "{texts:#?}");
    assert_eq!(texts.iter().filter(|t| t.contains("second job")).count(), 1, "{texts:#?}");
    let agents: std::collections::BTreeSet<u32> = prompts.iter().map(|p| p.pid).collect();
    assert_eq!(agents.len(), 1, "one agent process ran both turns: {prompts:#?}");
}

async fn the_stop_button_interrupts_the_running_turn() {
    use taskgate::engine::Pressed;
    let world = World::new();
    let engine = world.engine().await;
    let store = engine.store().clone();
    engine.handle(msg("u1", "Ada", "SLOW_MS: 60000 index everything")).await.expect("handle");
    let (task, exec) = first_task(&store).await;
    running(&store, exec.id).await;
    let live = eventually("a live status with a Stop button", || async {
        let rows = store.outbox_recent(Channel::Telegram, "chat-1", 50).await.ok()?;
        rows.into_iter().find(|r| r.payload.buttons.iter().any(|b| b.label == "Stop"))
    })
    .await;
    assert!(live.payload.live.as_deref().is_some_and(|k| k.starts_with("turn:")), "{:?}", live.payload);

    let elsewhere = engine.stop(&message("chat-9", "u1", "Ada", ""), task.id).await.unwrap();
    assert!(matches!(elsewhere, Pressed::Refused(_)), "{elsewhere:?}");
    let asked = tokio::time::Instant::now();
    assert_eq!(engine.stop(&msg("u1", "Ada", ""), task.id).await.unwrap(), Pressed::Done("Stopping".into()));
    turns_done(&store, exec.id, 1).await;
    assert!(asked.elapsed() < Duration::from_secs(5), "{:?}", asked.elapsed());
    assert_eq!(results(&store, task.id).await[0]["outcome"]["status"], "interrupted");
}

/// One stored message handed to the engine by two drain leaders at once (a lease that changed
/// hands while the old leader was still deciding), and once more later (a leader killed after
/// deciding, before it marked the row): one task, one turn, one answer; the row is handled.
async fn a_message_handed_over_twice_is_decided_once() {
    let world = World::new();
    let engine = std::sync::Arc::new(world.engine().await);
    let store = engine.store().clone();
    let stored = store
        .inbox_accept(NewInbound {
            channel: Channel::Web,
            external_id: "in-1".into(),
            payload: serde_json::json!({"text": "write hello.txt"}),
        })
        .await
        .expect("accepted");
    let InboxOutcome::Accepted(row) = stored else { panic!("a new row: {stored:?}") };
    let handed = IncomingMessage { inbound: Some(row), ..msg("u1", "Ada", "write hello.txt") };
    let racing: Vec<_> = (0..2)
        .map(|_| {
            let (engine, handed) = (engine.clone(), handed.clone());
            tokio::spawn(async move { engine.handle(handed).await })
        })
        .collect();
    for handle in racing {
        handle.await.expect("joined").expect("handled");
    }
    engine.handle(handed).await.expect("handled again");

    let task = only_task(&store).await;
    let execs = store.executions(task.id).await.unwrap();
    assert_eq!(execs.len(), 1, "{execs:?}");
    eventually("the answer", || async { (completed_turns(&store, execs[0].id).await >= 1).then_some(()) }).await;
    assert!(store.inbox_pending(Channel::Web, 10).await.unwrap().is_empty(), "the row is handled");
    assert!(store.execution_turns(execs[0].id).await.unwrap().is_empty(), "no turn left open");
    assert_eq!(completed_turns(&store, execs[0].id).await, 1, "one turn");
    let finals: Vec<_> = store
        .outbox_recent(Channel::Telegram, "chat-1", 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.payload.kind == taskgate_core::reply::ReplyKind::Final)
        .collect();
    assert_eq!(finals.len(), 1, "one answer: {finals:?}");
}
