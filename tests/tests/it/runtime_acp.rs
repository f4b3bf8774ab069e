//! The ACP adapter against a fake ACP agent written from the protocol schema with plain JSON.

use serde_json::{Value, json};
use taskgate_adapters::runtime::{AcpRuntime, RuntimeOptions};
use taskgate_core::runtime::{
    AgentKind, AgentRuntime, AgentSession, ApprovalDecision, ApprovalKind, ApprovalRequest, CommandStatus,
    RuntimeError, RuntimeEvent, TurnOutcome,
};
use taskgate_tests::harness::Trial;
use taskgate_tests::sessions::*;

pub fn trials() -> Vec<Trial> {
    taskgate_tests::trials! {
        current_thread: [
            handshake_and_turn_follow_the_protocol,
            permission_allow_once_runs_the_command,
            allow_for_session_picks_allow_always,
            deny_picks_reject_once_and_the_turn_goes_on,
            deny_and_stop_cancels_the_prompt,
            edit_permission_shows_the_diff,
            interrupt_sends_session_cancel,
            interrupt_answers_pending_permissions_with_cancelled,
            prompt_error_fails_the_turn_and_keeps_the_session,
            plan_updates_are_relayed,
            malformed_and_foreign_output_is_skipped,
            crash_then_session_load_resumes_without_replaying,
            resume_needs_load_session_support,
            sessions_that_ask_share_one_connection,
        ],
    }
}

async fn start(h: &Workspace) -> Box<dyn AgentSession> {
    start_with(h, options(), None, false).await.expect("acp session starts")
}

async fn start_with(
    h: &Workspace,
    options: RuntimeOptions,
    resume: Option<String>,
    can_load: bool,
) -> Result<Box<dyn AgentSession>, RuntimeError> {
    let mut spec = h.spec(AgentKind::Acp);
    if can_load {
        spec.args.push("--acp-load".into());
    }
    spec.resume = resume;
    AcpRuntime::new(options).start(spec).await
}

/// Our answers to the agent's permission requests.
fn outcomes(h: &Workspace) -> Vec<Value> {
    h.received()
        .into_iter()
        .filter(|m| m.get("method").is_none())
        .filter_map(|m| m.pointer("/result/outcome").cloned())
        .collect()
}

async fn approval(s: &mut Box<dyn AgentSession>) -> ApprovalRequest {
    let events = until(s, |e| matches!(e, RuntimeEvent::ApprovalRequested(_))).await;
    match last(&events) {
        RuntimeEvent::ApprovalRequested(req) => req.clone(),
        _ => unreachable!(),
    }
}

fn outcome(events: &[RuntimeEvent]) -> TurnOutcome {
    match last(events) {
        RuntimeEvent::TurnFinished { outcome, .. } => outcome.clone(),
        other => panic!("{other:?}"),
    }
}

async fn handshake_and_turn_follow_the_protocol() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    let Some(RuntimeEvent::SessionReady { provider_session_id, resumed: false }) = next(&mut s).await else { panic!() };
    assert_eq!(s.provider_session_id(), Some(provider_session_id.clone()));
    s.send_turn("hello").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert_eq!(text_of(&events), "FAKE-REPLY: you said 'hello'");
    assert_eq!(outcome(&events), TurnOutcome::Completed);

    let sent = h.received();
    assert!(sent.iter().all(|m| m["jsonrpc"] == "2.0"));
    let methods: Vec<&str> = sent.iter().filter_map(|m| m["method"].as_str()).collect();
    assert_eq!(methods, ["initialize", "session/new", "session/prompt"]);
    assert_eq!(sent[0]["params"]["protocolVersion"], 1);
    assert_eq!(sent[0]["params"]["clientCapabilities"]["terminal"], false);
    assert_eq!(sent[1]["params"]["cwd"], h.dir.path().to_string_lossy().as_ref());
    assert_eq!(sent[1]["params"]["mcpServers"], json!([]));
    assert_eq!(sent[2]["params"]["sessionId"], provider_session_id.as_str());
    assert_eq!(sent[2]["params"]["prompt"], json!([{ "type": "text", "text": "hello" }]));
    s.shutdown().await;
}

async fn permission_allow_once_runs_the_command() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("RUN_CMD: echo acp > ran.txt").await.unwrap();
    let req = approval(&mut s).await;
    assert_eq!((req.kind, req.action.as_str()), (ApprovalKind::Command, "run `echo acp > ran.txt`"));
    s.decide(&req.request_id, ApprovalDecision::AllowOnce).await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(events.iter().any(|e| matches!(e, RuntimeEvent::CommandStarted { .. })));
    assert!(
        events.iter().any(|e| matches!(
            e,
            RuntimeEvent::CommandFinished { status: CommandStatus::Succeeded, exit_code: Some(0), .. }
        )),
        "{events:?}"
    );
    assert_eq!(outcome(&events), TurnOutcome::Completed);
    assert!(h.path("ran.txt").exists());
    assert_eq!(outcomes(&h), [json!({ "outcome": "selected", "optionId": "allow-once" })]);
    s.shutdown().await;
}

async fn allow_for_session_picks_allow_always() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("RUN_CMD: true").await.unwrap();
    let req = approval(&mut s).await;
    s.decide(&req.request_id, ApprovalDecision::AllowForSession).await.unwrap();
    until_turn_finished(&mut s).await;
    s.send_turn("RUN_CMD: true").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(!events.iter().any(|e| matches!(e, RuntimeEvent::ApprovalRequested(_))));
    assert_eq!(outcomes(&h), [json!({ "outcome": "selected", "optionId": "allow-always" })]);
    s.shutdown().await;
}

async fn deny_picks_reject_once_and_the_turn_goes_on() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("RUN_CMD: touch nope.txt").await.unwrap();
    let req = approval(&mut s).await;
    s.decide(&req.request_id, ApprovalDecision::Deny).await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(
        events.iter().any(|e| matches!(e, RuntimeEvent::CommandFinished { status: CommandStatus::Declined, .. })),
        "{events:?}"
    );
    assert_eq!(outcome(&events), TurnOutcome::Completed);
    assert!(!h.path("nope.txt").exists());
    assert_eq!(outcomes(&h), [json!({ "outcome": "selected", "optionId": "reject-once" })]);
    s.shutdown().await;
}

async fn deny_and_stop_cancels_the_prompt() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("RUN_CMD: touch nope.txt").await.unwrap();
    let req = approval(&mut s).await;
    s.decide(&req.request_id, ApprovalDecision::DenyAndStop).await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert_eq!(outcome(&events), TurnOutcome::Interrupted);
    assert_eq!(outcomes(&h), [json!({ "outcome": "cancelled" })]);
    assert!(h.received().iter().any(|m| m["method"] == "session/cancel" && m.get("id").is_none()));
    s.send_turn("next").await.unwrap();
    assert_eq!(outcome(&until_turn_finished(&mut s).await), TurnOutcome::Completed);
    s.shutdown().await;
}

async fn edit_permission_shows_the_diff() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("WRITE_FILE: acp.txt").await.unwrap();
    let req = approval(&mut s).await;
    assert_eq!(req.kind, ApprovalKind::FileChange);
    assert!(req.action.ends_with("acp.txt"), "{}", req.action);
    assert!(req.detail.as_deref().unwrap_or_default().contains("+hello from fake model"), "{req:?}");
    s.decide(&req.request_id, ApprovalDecision::AllowOnce).await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(events.iter().any(|e| matches!(e, RuntimeEvent::FileChanged { applied: true, .. })), "{events:?}");
    assert!(h.path("acp.txt").exists());
    s.shutdown().await;
}

async fn interrupt_sends_session_cancel() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("SLOW_REPLY please").await.unwrap();
    until(&mut s, |e| matches!(e, RuntimeEvent::TurnStarted { .. })).await;
    assert_eq!(s.send_turn("too soon").await, Err(RuntimeError::Busy));
    s.interrupt().await.unwrap();
    assert_eq!(outcome(&until_turn_finished(&mut s).await), TurnOutcome::Interrupted);
    s.send_turn("after").await.unwrap();
    assert_eq!(text_of(&until_turn_finished(&mut s).await), "FAKE-REPLY: you said 'after'");
    s.shutdown().await;
}

async fn interrupt_answers_pending_permissions_with_cancelled() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("RUN_CMD: touch late.txt").await.unwrap();
    let req = approval(&mut s).await;
    s.interrupt().await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(events.contains(&RuntimeEvent::ApprovalResolved { request_id: req.request_id.clone(), decision: None }));
    assert_eq!(outcome(&events), TurnOutcome::Interrupted);
    assert_eq!(outcomes(&h), [json!({ "outcome": "cancelled" })]);
    assert!(!h.path("late.txt").exists());
    s.shutdown().await;
}

async fn prompt_error_fails_the_turn_and_keeps_the_session() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("FAIL_TURN").await.unwrap();
    let TurnOutcome::Failed { message } = outcome(&until_turn_finished(&mut s).await) else { panic!() };
    assert!(message.contains("FAIL_TURN"), "{message}");
    s.send_turn("ok").await.unwrap();
    assert_eq!(outcome(&until_turn_finished(&mut s).await), TurnOutcome::Completed);
    s.shutdown().await;
}

async fn plan_updates_are_relayed() {
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
    assert_eq!(plans[1].iter().filter(|s| s.status == taskgate_core::runtime::PlanStepStatus::Completed).count(), 3);
    s.shutdown().await;
}

async fn malformed_and_foreign_output_is_skipped() {
    let h = Workspace::new();
    let mut s = start_with(&h, RuntimeOptions { max_line_bytes: 64 * 1024, ..options() }, None, false).await.unwrap();
    s.send_turn("GARBAGE").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert_eq!(text_of(&events), "FAKE-REPLY: after garbage");
    assert_eq!(outcome(&events), TurnOutcome::Completed);
    s.shutdown().await;
}

async fn crash_then_session_load_resumes_without_replaying() {
    let h = Workspace::new();
    let mut s = start_with(&h, options(), None, true).await.unwrap();
    let id = s.provider_session_id().unwrap();
    s.send_turn("remember this").await.unwrap();
    until_turn_finished(&mut s).await;
    s.send_turn("CRASH").await.unwrap();
    let events = until(&mut s, |e| matches!(e, RuntimeEvent::Died { .. })).await;
    assert!(matches!(last(&events), RuntimeEvent::Died { restarting: false, .. }));

    let mut s = start_with(&h, options(), Some(id.clone()), true).await.expect("session/load");
    assert_eq!(next(&mut s).await, Some(RuntimeEvent::SessionReady { provider_session_id: id, resumed: true }));
    s.send_turn("RECALL").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert_eq!(
        text_of(&events),
        "FAKE-REPLY: previous input was 'remember this'",
        "replayed history is not re-emitted"
    );
    assert!(h.received().iter().any(|m| m["method"] == "session/load"));
    s.shutdown().await;
}

async fn resume_needs_load_session_support() {
    let h = Workspace::new();
    let err = start_with(&h, options(), Some("any".into()), false).await.err().expect("no loadSession");
    assert!(matches!(err, RuntimeError::Resume(_)), "{err:?}");
    let err = start_with(&h, options(), Some("unknown".into()), true).await.err().expect("unknown session");
    assert!(matches!(err, RuntimeError::Resume(ref m) if m.contains("not found")), "{err:?}");
}

/// `share_process: Some(true)`: sessions of one configuration are sessions of one ACP
/// connection; one that leaves is closed (the fake advertises `session/close`) and the other
/// goes on. Without it, every session has its process.
async fn sessions_that_ask_share_one_connection() {
    let h = Workspace::new();
    let runtime = AcpRuntime::new(options());
    let mut spec = h.spec(AgentKind::Acp);
    assert_eq!(runtime.process_key(&spec), None, "a process per session unless asked");
    spec.share_process = Some(true);
    assert!(runtime.process_key(&spec).is_some());
    let mut a = runtime.start(spec.clone()).await.unwrap();
    let mut b = runtime.start(spec).await.unwrap();
    let (id_a, id_b) = (a.provider_session_id().unwrap(), b.provider_session_id().unwrap());
    assert_ne!(id_a, id_b);
    for (s, text) in [(&mut a, "one from a"), (&mut b, "one from b")] {
        s.send_turn(text).await.unwrap();
        let events = until_turn_finished(s).await;
        assert_eq!(text_of(&events), format!("FAKE-REPLY: you said '{text}'"));
    }
    assert!(h.pid_of("one from a").is_some() && h.pid_of("one from a") == h.pid_of("one from b"));
    let methods = |h: &Workspace| -> Vec<String> {
        h.received().iter().filter_map(|m| m["method"].as_str().map(str::to_owned)).collect()
    };
    assert_eq!(methods(&h), ["initialize", "session/new", "session/new", "session/prompt", "session/prompt"]);

    a.shutdown().await;
    let closed = tokio::time::timeout(STEP, async {
        while !h.received().iter().any(|m| m["method"] == "session/close") {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "session/close sent: {:?}", methods(&h));
    let close = h.received().into_iter().find(|m| m["method"] == "session/close").unwrap();
    assert_eq!(close["params"]["sessionId"], id_a.as_str());
    b.send_turn("two from b").await.unwrap();
    assert_eq!(text_of(&until_turn_finished(&mut b).await), "FAKE-REPLY: you said 'two from b'");
    assert_eq!(h.pid_of("two from b"), h.pid_of("one from a"));
    b.shutdown().await;
}
