//! The codex app-server adapter against a fake `codex app-server` shaped after the recorded
//! transcripts: handshake, turns, approvals, interrupt, crash and resume, bad output.

use serde_json::Value;
use taskgate_adapters::runtime::{CodexRuntime, RuntimeOptions};
use taskgate_core::runtime::{
    AgentKind, AgentRuntime, AgentSession, ApprovalDecision, ApprovalKind, CommandStatus, RuntimeError, RuntimeEvent,
    TurnOutcome,
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
