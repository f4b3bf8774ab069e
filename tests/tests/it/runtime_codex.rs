//! The codex app-server adapter against a fake `codex app-server` shaped after the recorded
//! transcripts: handshake, turns, approvals, interrupt, crash and resume, bad output; and
//! several sessions as threads of one app-server: routing, leaving, crash, process cap.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use taskgate_adapters::runtime::{CodexRuntime, RuntimeOptions, Supervisor, SupervisorOptions};
use taskgate_core::runtime::{
    AgentKind, AgentRuntime, AgentSession, ApprovalDecision, ApprovalKind, CommandStatus, RuntimeError, RuntimeEvent,
    SessionSpec, TurnOutcome,
};
use taskgate_tests::harness::Trial;
use taskgate_tests::sessions::*;

pub fn trials() -> Vec<Trial> {
    taskgate_tests::trials! {
        current_thread: [
            handshake_and_turn_follow_the_protocol,
            command_approval_accept_runs_it,
            allow_for_session_is_not_asked_again,
            decline_lets_the_turn_go_on_without_the_command,
            deny_and_stop_ends_the_turn_interrupted,
            file_change_approval_carries_the_diff_from_item_started,
            interrupt_ends_a_running_turn_and_the_session_stays,
            interrupt_while_waiting_for_approval_withdraws_it,
            failed_turn_reports_the_error_and_keeps_the_session,
            plan_and_question_are_relayed,
            malformed_output_is_skipped,
            crash_mid_turn_reports_died_and_the_thread_resumes,
            resume_of_an_unknown_thread_fails_cleanly,
            a_missing_program_is_a_spawn_error,
            two_sessions_of_one_config_are_threads_of_one_process,
            concurrent_turns_get_their_own_events_and_approvals,
            interrupt_of_one_thread_leaves_the_other_running,
            a_leaving_session_stops_its_turn_and_the_last_one_ends_the_process,
            distinct_configs_get_distinct_processes,
            a_crash_mid_turn_resumes_every_thread_of_the_process,
            a_kill_at_the_time_limit_restarts_the_other_threads_too,
            the_process_cap_counts_processes_not_threads,
            the_mcp_server_goes_with_each_thread,
        ],
    }
}

async fn start(h: &Workspace) -> Box<dyn AgentSession> {
    start_with(h, options(), None).await.expect("codex session starts")
}

async fn start_with(
    h: &Workspace,
    options: RuntimeOptions,
    resume: Option<String>,
) -> Result<Box<dyn AgentSession>, RuntimeError> {
    let mut spec = h.spec(AgentKind::Codex);
    spec.approval_policy = Some("untrusted".into());
    spec.sandbox = Some("workspace-write".into());
    spec.model = Some("fake-model".into());
    spec.resume = resume;
    CodexRuntime::new(options).start(spec).await
}

fn decisions(h: &Workspace) -> Vec<String> {
    h.received()
        .iter()
        .filter(|m| m.get("method").is_none())
        .filter_map(|m| m.pointer("/result/decision").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

async fn approval(session: &mut Box<dyn AgentSession>) -> taskgate_core::runtime::ApprovalRequest {
    let events = until(session, |e| matches!(e, RuntimeEvent::ApprovalRequested(_))).await;
    match last(&events) {
        RuntimeEvent::ApprovalRequested(req) => req.clone(),
        _ => unreachable!(),
    }
}

async fn handshake_and_turn_follow_the_protocol() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    let ready = next(&mut s).await.unwrap();
    let RuntimeEvent::SessionReady { provider_session_id, resumed: false } = ready else { panic!("{ready:?}") };
    assert_eq!(s.provider_session_id().as_deref(), Some(provider_session_id.as_str()));

    s.send_turn("hello").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(matches!(events[0], RuntimeEvent::TurnStarted { turn_id: Some(_) }), "{events:?}");
    assert_eq!(text_of(&events), "FAKE-REPLY: you said 'hello'");
    let RuntimeEvent::TurnFinished { outcome: TurnOutcome::Completed, usage: Some(usage) } = last(&events) else {
        panic!("{events:?}")
    };
    assert_eq!((usage.input_tokens, usage.output_tokens), (Some(11), Some(7)));

    let sent = h.received();
    let methods: Vec<&str> = sent.iter().filter_map(|m| m.get("method").and_then(Value::as_str)).collect();
    assert_eq!(methods, ["initialize", "initialized", "thread/start", "turn/start"]);
    assert!(sent.iter().all(|m| m.get("jsonrpc").is_none()), "app-server messages carry no jsonrpc field");
    let start = &sent[2]["params"];
    assert_eq!(start["approvalPolicy"], "untrusted");
    assert_eq!(start["sandbox"], "workspace-write");
    assert_eq!(start["model"], "fake-model");
    assert_eq!(start["cwd"], h.dir.path().to_string_lossy().as_ref());
    assert_eq!(sent[3]["params"]["input"][0]["text"], "hello");
    s.shutdown().await;
}

async fn command_approval_accept_runs_it() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("RUN_CMD: echo hi > ran.txt").await.unwrap();
    let req = approval(&mut s).await;
    assert_eq!(req.kind, ApprovalKind::Command);
    assert_eq!(req.action, "run `echo hi > ran.txt`");
    s.decide(&req.request_id, ApprovalDecision::AllowOnce).await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(events.contains(&RuntimeEvent::ApprovalResolved {
        request_id: req.request_id.clone(),
        decision: Some(ApprovalDecision::AllowOnce)
    }));
    let finished = events.iter().find_map(|e| match e {
        RuntimeEvent::CommandFinished { status, exit_code, command, .. } => {
            Some((*status, *exit_code, command.clone()))
        }
        _ => None,
    });
    assert_eq!(finished, Some((CommandStatus::Succeeded, Some(0), "echo hi > ran.txt".to_string())));
    assert!(matches!(last(&events), RuntimeEvent::TurnFinished { outcome: TurnOutcome::Completed, .. }));
    assert!(h.path("ran.txt").exists());
    assert_eq!(decisions(&h), ["accept"]);
    // Deciding twice is refused: the request is no longer pending.
    assert_eq!(
        s.decide(&req.request_id, ApprovalDecision::AllowOnce).await,
        Err(RuntimeError::UnknownRequest(req.request_id.clone()))
    );
    s.shutdown().await;
}

async fn allow_for_session_is_not_asked_again() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("RUN_CMD: true").await.unwrap();
    let req = approval(&mut s).await;
    s.decide(&req.request_id, ApprovalDecision::AllowForSession).await.unwrap();
    until_turn_finished(&mut s).await;
    s.send_turn("RUN_CMD: true").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(!events.iter().any(|e| matches!(e, RuntimeEvent::ApprovalRequested(_))), "{events:?}");
    assert_eq!(decisions(&h), ["acceptForSession"]);
    s.shutdown().await;
}

async fn decline_lets_the_turn_go_on_without_the_command() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("RUN_CMD: touch nope.txt").await.unwrap();
    let req = approval(&mut s).await;
    s.decide(&req.request_id, ApprovalDecision::Deny).await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(events.iter().any(|e| matches!(e, RuntimeEvent::CommandFinished { status: CommandStatus::Declined, .. })));
    assert!(text_of(&events).contains("rejected by user"));
    assert!(matches!(last(&events), RuntimeEvent::TurnFinished { outcome: TurnOutcome::Completed, .. }));
    assert!(!h.path("nope.txt").exists());
    assert_eq!(decisions(&h), ["decline"]);
    s.shutdown().await;
}

async fn deny_and_stop_ends_the_turn_interrupted() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("RUN_CMD: touch nope.txt").await.unwrap();
    let req = approval(&mut s).await;
    s.decide(&req.request_id, ApprovalDecision::DenyAndStop).await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(matches!(last(&events), RuntimeEvent::TurnFinished { outcome: TurnOutcome::Interrupted, .. }));
    assert!(!h.path("nope.txt").exists());
    assert_eq!(decisions(&h), ["cancel"]);
    // The session stays: the next turn works.
    s.send_turn("again").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(matches!(last(&events), RuntimeEvent::TurnFinished { outcome: TurnOutcome::Completed, .. }));
    s.shutdown().await;
}

async fn file_change_approval_carries_the_diff_from_item_started() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("WRITE_FILE: new.txt").await.unwrap();
    let req = approval(&mut s).await;
    assert_eq!(req.kind, ApprovalKind::FileChange);
    assert!(req.action.contains("new.txt"), "{}", req.action);
    assert!(req.detail.as_deref().unwrap_or_default().contains("hello from fake model"), "{req:?}");
    s.decide(&req.request_id, ApprovalDecision::AllowOnce).await.unwrap();
    let events = until_turn_finished(&mut s).await;
    let changed = events.iter().find_map(|e| match e {
        RuntimeEvent::FileChanged { changes, applied, .. } => Some((changes[0].path.clone(), *applied)),
        _ => None,
    });
    let (path, applied) = changed.expect("a file change event");
    assert!(path.ends_with("new.txt") && applied);
    assert_eq!(std::fs::read_to_string(h.path("new.txt")).unwrap(), "hello from fake model\n");
    s.shutdown().await;
}

async fn interrupt_ends_a_running_turn_and_the_session_stays() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("SLOW_REPLY please").await.unwrap();
    until(&mut s, |e| matches!(e, RuntimeEvent::TurnStarted { .. })).await;
    assert_eq!(s.send_turn("too soon").await, Err(RuntimeError::Busy));
    s.interrupt().await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(matches!(last(&events), RuntimeEvent::TurnFinished { outcome: TurnOutcome::Interrupted, .. }));
    let interrupt = h.received().into_iter().find(|m| m["method"] == "turn/interrupt").expect("turn/interrupt sent");
    assert!(interrupt["params"]["threadId"].is_string() && interrupt["params"]["turnId"].is_string());
    assert_eq!(s.interrupt().await, Err(RuntimeError::NoTurn));
    s.send_turn("after").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert_eq!(text_of(&events), "FAKE-REPLY: you said 'after'");
    s.shutdown().await;
}

async fn interrupt_while_waiting_for_approval_withdraws_it() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("RUN_CMD: touch late.txt").await.unwrap();
    let req = approval(&mut s).await;
    s.interrupt().await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(events.contains(&RuntimeEvent::ApprovalResolved { request_id: req.request_id.clone(), decision: None }));
    assert!(matches!(last(&events), RuntimeEvent::TurnFinished { outcome: TurnOutcome::Interrupted, .. }));
    assert!(s.decide(&req.request_id, ApprovalDecision::AllowOnce).await.is_err());
    assert!(!h.path("late.txt").exists());
    s.shutdown().await;
}

async fn failed_turn_reports_the_error_and_keeps_the_session() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("FAIL_TURN").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    let RuntimeEvent::TurnFinished { outcome: TurnOutcome::Failed { message }, .. } = last(&events) else {
        panic!("{events:?}")
    };
    assert!(message.contains("FAIL_TURN"), "{message}");
    s.send_turn("still here").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(matches!(last(&events), RuntimeEvent::TurnFinished { outcome: TurnOutcome::Completed, .. }));
    s.shutdown().await;
}

async fn plan_and_question_are_relayed() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("PLAN").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    let plans: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            RuntimeEvent::Plan { steps } => Some(steps.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(plans.len(), 2);
    assert_eq!(plans[0][0].text, "read the code");

    s.send_turn("ASK: ship it?").await.unwrap();
    let events = until(&mut s, |e| matches!(e, RuntimeEvent::Question { .. })).await;
    let RuntimeEvent::Question { request_id, text } = last(&events).clone() else { unreachable!() };
    assert!(text.contains("ship it?") && text.contains("yes"), "{text}");
    s.answer(&request_id, "yes").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert_eq!(text_of(&events), "FAKE-REPLY: you answered 'yes'");
    s.shutdown().await;
}

async fn malformed_output_is_skipped() {
    let h = Workspace::new();
    let options = RuntimeOptions { max_line_bytes: 64 * 1024, ..options() };
    let mut s = start_with(&h, options, None).await.unwrap();
    s.send_turn("GARBAGE").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert_eq!(text_of(&events), "FAKE-REPLY: after garbage");
    assert!(matches!(last(&events), RuntimeEvent::TurnFinished { outcome: TurnOutcome::Completed, .. }));
    s.shutdown().await;
}

async fn crash_mid_turn_reports_died_and_the_thread_resumes() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    let thread = s.provider_session_id().expect("thread id");
    s.send_turn("remember this").await.unwrap();
    until_turn_finished(&mut s).await;
    s.send_turn("CRASH").await.unwrap();
    let events = until(&mut s, |e| matches!(e, RuntimeEvent::Died { .. })).await;
    let RuntimeEvent::Died { reason, restarting: false } = last(&events) else { panic!("{events:?}") };
    assert!(reason.contains("code 3"), "{reason}");
    assert_eq!(next(&mut s).await, None, "nothing after Died");
    assert_eq!(s.send_turn("x").await, Err(RuntimeError::Dead));

    let mut s = start_with(&h, options(), Some(thread.clone())).await.expect("resume");
    assert_eq!(next(&mut s).await, Some(RuntimeEvent::SessionReady { provider_session_id: thread, resumed: true }));
    s.send_turn("RECALL").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert_eq!(text_of(&events), "FAKE-REPLY: previous input was 'remember this'");
    assert!(h.received().iter().any(|m| m["method"] == "thread/resume"));
    s.shutdown().await;
}

async fn resume_of_an_unknown_thread_fails_cleanly() {
    let h = Workspace::new();
    let err = start_with(&h, options(), Some("no-such-thread".into())).await.err().expect("resume fails");
    assert!(matches!(err, RuntimeError::Resume(ref m) if m.contains("no rollout")), "{err:?}");
}

async fn a_missing_program_is_a_spawn_error() {
    let h = Workspace::new();
    let mut spec = h.spec(AgentKind::Codex);
    spec.program = "/nonexistent/codex".into();
    let err = CodexRuntime::new(options()).start(spec).await.err().expect("spawn fails");
    assert!(matches!(err, RuntimeError::Spawn(_)), "{err:?}");
}

/// A session of the workspace's codex configuration working in its own subdirectory: every
/// such session has the same process key.
fn thread_spec(h: &Workspace, dir: &str) -> SessionSpec {
    let cwd = h.path(dir);
    std::fs::create_dir_all(&cwd).unwrap();
    let mut spec = h.spec(AgentKind::Codex);
    spec.cwd = cwd;
    spec.approval_policy = Some("untrusted".into());
    spec.sandbox = Some("workspace-write".into());
    spec
}

fn thread_of(session: &dyn AgentSession) -> String {
    session.provider_session_id().expect("a thread id")
}

/// What the client sent with `method` for `thread`, in order.
fn sent_for(h: &Workspace, method: &str, thread: &str) -> Vec<Value> {
    h.received().into_iter().filter(|m| m["method"] == method && m["params"]["threadId"] == thread).collect()
}

fn alive(pid: u32) -> bool {
    // A zombie is gone for our purposes: it only waits to be reaped.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

async fn two_sessions_of_one_config_are_threads_of_one_process() {
    let h = Workspace::new();
    let runtime = CodexRuntime::new(options());
    let mut a = runtime.start(thread_spec(&h, "a")).await.unwrap();
    let mut b = runtime.start(thread_spec(&h, "b")).await.unwrap();
    assert_eq!(runtime.process_key(&thread_spec(&h, "a")), runtime.process_key(&thread_spec(&h, "b")));
    assert_ne!(thread_of(&*a), thread_of(&*b));
    for (s, text) in [(&mut a, "hello from a"), (&mut b, "hello from b")] {
        s.send_turn(text).await.unwrap();
        let events = until_turn_finished(s).await;
        assert_eq!(text_of(&events), format!("FAKE-REPLY: you said '{text}'"));
    }
    let (pa, pb) = (h.pid_of("hello from a"), h.pid_of("hello from b"));
    assert!(pa.is_some() && pa == pb, "one app-server: {:?}", h.prompt_pids());

    // One handshake on the connection, then a thread per session with its own cwd.
    let sent = h.received();
    let count = |method: &str| sent.iter().filter(|m| m["method"] == method).count();
    assert_eq!((count("initialize"), count("initialized"), count("thread/start")), (1, 1, 2));
    let cwds: Vec<&str> =
        sent.iter().filter(|m| m["method"] == "thread/start").filter_map(|m| m["params"]["cwd"].as_str()).collect();
    assert_eq!(cwds, [h.path("a").to_str().unwrap(), h.path("b").to_str().unwrap()]);
    a.shutdown().await;
    b.shutdown().await;
}

async fn concurrent_turns_get_their_own_events_and_approvals() {
    let h = Workspace::new();
    let runtime = CodexRuntime::new(options());
    let mut a = runtime.start(thread_spec(&h, "a")).await.unwrap();
    let mut b = runtime.start(thread_spec(&h, "b")).await.unwrap();
    // Both turns run before anyone decides anything.
    a.send_turn("RUN_CMD: touch a.txt").await.unwrap();
    b.send_turn("RUN_CMD: touch b.txt").await.unwrap();
    let req_a = approval(&mut a).await;
    let req_b = approval(&mut b).await;
    assert_eq!(req_a.action, "run `touch a.txt`");
    assert_eq!(req_b.action, "run `touch b.txt`");
    assert_eq!(req_a.cwd.as_deref(), h.path("a").to_str());
    assert_ne!(req_a.request_id, req_b.request_id);
    // A session cannot decide another thread's approval.
    assert_eq!(
        a.decide(&req_b.request_id, ApprovalDecision::AllowOnce).await,
        Err(RuntimeError::UnknownRequest(req_b.request_id.clone()))
    );

    a.decide(&req_a.request_id, ApprovalDecision::AllowOnce).await.unwrap();
    b.decide(&req_b.request_id, ApprovalDecision::Deny).await.unwrap();
    let events_a = until_turn_finished(&mut a).await;
    let events_b = until_turn_finished(&mut b).await;
    let command = |events: &[RuntimeEvent]| {
        events.iter().find_map(|e| match e {
            RuntimeEvent::CommandFinished { command, status, .. } => Some((command.clone(), *status)),
            _ => None,
        })
    };
    assert_eq!(command(&events_a), Some(("touch a.txt".into(), CommandStatus::Succeeded)), "{events_a:#?}");
    assert_eq!(command(&events_b), Some(("touch b.txt".into(), CommandStatus::Declined)), "{events_b:#?}");
    assert_eq!(text_of(&events_a), "FAKE-REPLY: tool finished. exit=0");
    assert_eq!(text_of(&events_b), "FAKE-REPLY: tool finished. output=\"rejected by user\"");
    // Each session saw its own approval only, and each thread ran in its own directory.
    for (events, own) in [(&events_a, &req_a.request_id), (&events_b, &req_b.request_id)] {
        let resolved: Vec<&String> = events
            .iter()
            .filter_map(|e| match e {
                RuntimeEvent::ApprovalResolved { request_id, .. } => Some(request_id),
                _ => None,
            })
            .collect();
        assert_eq!(resolved, [own], "{events:#?}");
    }
    assert!(h.path("a/a.txt").exists());
    assert!(!h.path("b/b.txt").exists() && !h.path("a/b.txt").exists());
    let mut decided = decisions(&h);
    decided.sort();
    assert_eq!(decided, ["accept", "decline"]);
    a.shutdown().await;
    b.shutdown().await;
}

async fn interrupt_of_one_thread_leaves_the_other_running() {
    let h = Workspace::new();
    let runtime = CodexRuntime::new(options());
    let mut a = runtime.start(thread_spec(&h, "a")).await.unwrap();
    let mut b = runtime.start(thread_spec(&h, "b")).await.unwrap();
    a.send_turn("SLOW_REPLY a").await.unwrap();
    b.send_turn("SLOW_MS: 1000 b").await.unwrap();
    until(&mut a, |e| matches!(e, RuntimeEvent::TurnStarted { .. })).await;
    until(&mut b, |e| matches!(e, RuntimeEvent::TurnStarted { .. })).await;
    a.interrupt().await.unwrap();
    let events_a = until_turn_finished(&mut a).await;
    assert!(matches!(last(&events_a), RuntimeEvent::TurnFinished { outcome: TurnOutcome::Interrupted, .. }));
    let events_b = until_turn_finished(&mut b).await;
    assert!(matches!(last(&events_b), RuntimeEvent::TurnFinished { outcome: TurnOutcome::Completed, .. }));
    assert_eq!(text_of(&events_b), "FAKE-REPLY: slow reply done");
    assert_eq!(sent_for(&h, "turn/interrupt", &thread_of(&*a)).len(), 1);
    assert!(sent_for(&h, "turn/interrupt", &thread_of(&*b)).is_empty());
    a.shutdown().await;
    b.shutdown().await;
}

async fn a_leaving_session_stops_its_turn_and_the_last_one_ends_the_process() {
    let h = Workspace::new();
    let runtime = CodexRuntime::new(RuntimeOptions { shared_linger: Duration::from_millis(200), ..options() });
    let mut a = runtime.start(thread_spec(&h, "a")).await.unwrap();
    let mut b = runtime.start(thread_spec(&h, "b")).await.unwrap();
    let thread_a = thread_of(&*a);
    a.send_turn("SLOW_REPLY leaving").await.unwrap();
    until(&mut a, |e| matches!(e, RuntimeEvent::TurnStarted { .. })).await;
    let pid = h.pid_when_logged("SLOW_REPLY leaving").await;

    // Leaving interrupts the running turn, then releases the thread; the process stays.
    a.shutdown().await;
    let released = tokio::time::timeout(STEP, async {
        while sent_for(&h, "thread/unsubscribe", &thread_a).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(released.is_ok(), "thread/unsubscribe sent: {:#?}", h.received());
    let order: Vec<Value> = h.received().into_iter().filter(|m| m["params"]["threadId"] == thread_a.as_str()).collect();
    let methods: Vec<&str> = order.iter().filter_map(|m| m["method"].as_str()).collect();
    assert_eq!(methods, ["turn/start", "turn/interrupt", "thread/unsubscribe"]);
    b.send_turn("still here").await.unwrap();
    assert_eq!(text_of(&until_turn_finished(&mut b).await), "FAKE-REPLY: you said 'still here'");
    assert_eq!(h.pid_of("still here"), Some(pid));
    assert!(alive(pid));

    // The last session gone, the process ends after its linger.
    b.shutdown().await;
    let gone = tokio::time::timeout(STEP, async {
        while alive(pid) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the app-server {pid} still runs with no session");
    // The next session starts another.
    let mut c = runtime.start(thread_spec(&h, "c")).await.unwrap();
    c.send_turn("anew").await.unwrap();
    until_turn_finished(&mut c).await;
    assert_ne!(h.pid_of("anew"), Some(pid));
    c.shutdown().await;
}

async fn distinct_configs_get_distinct_processes() {
    let h = Workspace::new();
    let runtime = CodexRuntime::new(options());
    let mut other_env = thread_spec(&h, "b");
    other_env.env.push(("CODEX_HOME".into(), h.path("other-home").to_string_lossy().into_owned()));
    let mut own = thread_spec(&h, "c");
    own.share_process = Some(false);
    assert_ne!(runtime.process_key(&thread_spec(&h, "a")), runtime.process_key(&other_env));
    assert_eq!(runtime.process_key(&own), None);
    let mut sessions = Vec::new();
    for (spec, text) in [(thread_spec(&h, "a"), "first"), (other_env, "second"), (own, "third")] {
        let mut s = runtime.start(spec).await.unwrap();
        s.send_turn(text).await.unwrap();
        until_turn_finished(&mut s).await;
        sessions.push(s);
    }
    let pids: std::collections::BTreeSet<u32> = h.prompt_pids().into_iter().map(|(pid, _)| pid).collect();
    assert_eq!(pids.len(), 3, "{:?}", h.prompt_pids());
    for mut s in sessions {
        s.shutdown().await;
    }
}

fn supervisor(runtime: CodexRuntime, max_concurrent: usize) -> Supervisor {
    Supervisor::new(
        Arc::new(runtime),
        SupervisorOptions {
            max_concurrent,
            default_turn_timeout: None,
            interrupt_grace: Duration::from_millis(300),
            max_restarts: 2,
        },
    )
}

async fn supervised(sup: &Supervisor, spec: SessionSpec) -> Box<dyn AgentSession> {
    Box::new(sup.start_supervised(spec, None).await.expect("starts").into_handle())
}

async fn a_crash_mid_turn_resumes_every_thread_of_the_process() {
    let h = Workspace::new();
    let sup = supervisor(CodexRuntime::new(options()), 4);
    let mut a = supervised(&sup, thread_spec(&h, "a")).await;
    let mut b = supervised(&sup, thread_spec(&h, "b")).await;
    let (thread_a, thread_b) = (thread_of(&*a), thread_of(&*b));
    for (s, text) in [(&mut a, "remember a"), (&mut b, "remember b")] {
        s.send_turn(text).await.unwrap();
        until_turn_finished(s).await;
    }
    let before = h.pid_when_logged("remember a").await;
    assert_eq!(h.pid_of("remember b"), Some(before));

    // b is mid-turn when a's turn takes the process down.
    b.send_turn("SLOW_MS: 1500 b was busy").await.unwrap();
    until(&mut b, |e| matches!(e, RuntimeEvent::TurnStarted { .. })).await;
    a.send_turn("CRASH_ONCE a").await.unwrap();
    for (s, thread, reply) in
        [(&mut a, &thread_a, "FAKE-REPLY: survived"), (&mut b, &thread_b, "FAKE-REPLY: slow reply done")]
    {
        let events = until_turn_finished(s).await;
        let died = events.iter().position(|e| matches!(e, RuntimeEvent::Died { restarting: true, .. }));
        let ready = events.iter().position(|e| {
            matches!(e, RuntimeEvent::SessionReady { resumed: true, provider_session_id } if provider_session_id == thread)
        });
        assert!(died.is_some() && died < ready, "Died, then resumed: {events:#?}");
        assert!(text_of(&events).ends_with(reply), "{events:#?}");
        assert!(matches!(last(&events), RuntimeEvent::TurnFinished { outcome: TurnOutcome::Completed, .. }));
    }
    // Both threads resumed on one new process, each with its own history.
    let after = h.pid_when_logged("CRASH_ONCE a").await;
    assert_ne!(after, before);
    assert_eq!(h.pid_of("SLOW_MS: 1500 b was busy"), Some(after));
    assert_eq!(sent_for(&h, "thread/resume", &thread_a).len(), 1);
    assert_eq!(sent_for(&h, "thread/resume", &thread_b).len(), 1);
    for (s, previous) in [(&mut a, "CRASH_ONCE a"), (&mut b, "SLOW_MS: 1500 b was busy")] {
        s.send_turn("RECALL").await.unwrap();
        let events = until_turn_finished(s).await;
        assert_eq!(text_of(&events), format!("FAKE-REPLY: previous input was '{previous}'"));
    }
    a.shutdown().await;
    b.shutdown().await;
}

async fn a_kill_at_the_time_limit_restarts_the_other_threads_too() {
    let h = Workspace::new();
    let sup = supervisor(CodexRuntime::new(options()), 4);
    let mut stubborn = thread_spec(&h, "a");
    stubborn.turn_timeout = Some(Duration::from_millis(300));
    let mut a = supervised(&sup, stubborn).await;
    let mut b = supervised(&sup, thread_spec(&h, "b")).await;
    let thread_b = thread_of(&*b);
    a.send_turn("STUBBORN").await.unwrap();
    let events = until_turn_finished(&mut a).await;
    assert!(matches!(last(&events), RuntimeEvent::TurnFinished { outcome: TurnOutcome::TimedOut { .. }, .. }));
    // The whole app-server was killed: b learns it and resumes its thread on a new one.
    let events = until(&mut b, |e| matches!(e, RuntimeEvent::SessionReady { resumed: true, .. })).await;
    assert!(events.iter().any(|e| matches!(e, RuntimeEvent::Died { restarting: true, .. })), "{events:#?}");
    assert_eq!(last(&events), &RuntimeEvent::SessionReady { provider_session_id: thread_b, resumed: true });
    b.send_turn("after the kill").await.unwrap();
    assert_eq!(text_of(&until_turn_finished(&mut b).await), "FAKE-REPLY: you said 'after the kill'");
    assert_ne!(h.pid_of("after the kill"), h.pid_of("STUBBORN"));
    a.shutdown().await;
    b.shutdown().await;
}

async fn the_process_cap_counts_processes_not_threads() {
    let h = Workspace::new();
    let sup = supervisor(CodexRuntime::new(options()), 1);
    let mut wanted = sup.slot_wanted();
    // Two threads of one app-server take the one slot between them.
    let mut a = tokio::time::timeout(STEP, supervised(&sup, thread_spec(&h, "a"))).await.expect("a starts");
    let mut b = tokio::time::timeout(STEP, supervised(&sup, thread_spec(&h, "b"))).await.expect("b starts");
    assert_eq!(sup.available_slots(), 0);
    assert_eq!(sup.waiting(), 0);

    // Another configuration is another process: it waits.
    let mut other = thread_spec(&h, "c");
    other.env.push(("CODEX_HOME".into(), h.path("other-home").to_string_lossy().into_owned()));
    let c = {
        let sup = sup.clone();
        tokio::spawn(async move { sup.start_supervised(other, None).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!c.is_finished(), "the other process waits for a slot");
    assert_eq!(sup.waiting(), 1);
    assert!(wanted.has_changed().unwrap());
    wanted.borrow_and_update();

    // One thread leaving frees nothing (and idle owners are asked again); the last one does.
    a.shutdown().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!c.is_finished(), "b still holds the app-server's slot");
    assert!(wanted.has_changed().unwrap(), "idle sessions are asked again");
    b.shutdown().await;
    let c = tokio::time::timeout(STEP, c).await.expect("c starts").unwrap().expect("ok");
    let mut c: Box<dyn AgentSession> = Box::new(c.into_handle());
    c.send_turn("hello").await.unwrap();
    until_turn_finished(&mut c).await;
    c.shutdown().await;
    assert_eq!(sup.available_slots(), 1);
}

/// Each thread reaches the MCP server with its own token, which the fake reads from the
/// thread's `config` overrides (as codex does); nothing of it is on the process.
async fn the_mcp_server_goes_with_each_thread() {
    let h = Workspace::new();
    let runtime = CodexRuntime::new(options());
    let mut specs = Vec::new();
    for (dir, token) in [("a", "token-a"), ("b", "token-b")] {
        let mut spec = thread_spec(&h, dir);
        spec.mcp = Some(taskgate_core::runtime::McpServer {
            name: "taskgate".into(),
            url: "http://127.0.0.1:9/mcp".into(),
            token: token.into(),
            token_env: "TASKGATE_MCP_TOKEN".into(),
            stdio_bridge: None,
        });
        specs.push(spec);
    }
    assert_eq!(runtime.process_key(&specs[0]), runtime.process_key(&specs[1]));
    let mut sessions = Vec::new();
    for spec in specs {
        sessions.push(runtime.start(spec).await.unwrap());
    }
    let configs: Vec<Value> = h
        .received()
        .into_iter()
        .filter(|m| m["method"] == "thread/start")
        .map(|m| m["params"]["config"].clone())
        .collect();
    let tokens: Vec<&str> =
        configs.iter().filter_map(|c| c["mcp_servers.taskgate.http_headers"]["Authorization"].as_str()).collect();
    assert_eq!(tokens, ["Bearer token-a", "Bearer token-b"]);
    assert!(configs.iter().all(|c| c["mcp_servers.taskgate.url"] == "http://127.0.0.1:9/mcp"));
    for mut s in sessions {
        s.shutdown().await;
    }
}
