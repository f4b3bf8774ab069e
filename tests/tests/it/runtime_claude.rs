//! The claude adapter against a fake `claude` speaking stream-json and the stdio control
//! protocol, shaped after the recorded transcripts.

use serde_json::Value;
use taskgate_adapters::runtime::{ClaudeRuntime, RuntimeOptions};
use taskgate_core::runtime::{
    AgentKind, AgentRuntime, AgentSession, ApprovalDecision, ApprovalKind, ApprovalRequest, CommandStatus,
    RuntimeError, RuntimeEvent, TurnOutcome,
};
use taskgate_tests::harness::Trial;
use taskgate_tests::sessions::*;

pub fn trials() -> Vec<Trial> {
    taskgate_tests::trials! {
        current_thread: [
            handshake_then_turn_with_usage_and_cost,
            bash_approval_allow_runs_the_command,
            failing_command_reports_its_exit_code,
            allow_for_session_adds_session_rules,
            deny_lets_the_turn_go_on,
            deny_and_stop_interrupts_the_turn,
            write_approval_shows_the_content_and_reports_the_change,
            interrupt_ends_the_turn_not_the_session,
            api_error_fails_the_turn_and_keeps_the_session,
            todos_become_a_plan_and_questions_get_answers,
            malformed_output_is_skipped,
            crash_then_resume_with_the_same_session_id,
            resume_of_an_unknown_session_fails_cleanly,
        ],
    }
}

async fn start(h: &Workspace) -> Box<dyn AgentSession> {
    start_with(h, options(), None).await.expect("claude session starts")
}

async fn start_with(
    h: &Workspace,
    options: RuntimeOptions,
    resume: Option<String>,
) -> Result<Box<dyn AgentSession>, RuntimeError> {
    let mut spec = h.spec(AgentKind::Claude);
    spec.model = Some("fake-model".into());
    spec.resume = resume;
    ClaudeRuntime::new(options).start(spec).await
}

/// The `response` bodies of the control responses we sent for permission prompts.
fn permission_answers(h: &Workspace) -> Vec<Value> {
    h.received()
        .into_iter()
        .filter(|m| m["type"] == "control_response")
        .filter_map(|m| m.pointer("/response/response").cloned())
        .collect()
}

async fn approval(s: &mut Box<dyn AgentSession>) -> ApprovalRequest {
    let events = until(s, |e| matches!(e, RuntimeEvent::ApprovalRequested(_))).await;
    match last(&events) {
        RuntimeEvent::ApprovalRequested(req) => req.clone(),
        _ => unreachable!(),
    }
}

fn completed(events: &[RuntimeEvent]) -> bool {
    matches!(last(events), RuntimeEvent::TurnFinished { outcome: TurnOutcome::Completed, .. })
}

async fn handshake_then_turn_with_usage_and_cost() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    // Claude names its session only once the first turn starts.
    assert_eq!(s.provider_session_id(), None);
    s.send_turn("hello").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    let id = events.iter().find_map(|e| match e {
        RuntimeEvent::SessionReady { provider_session_id, resumed: false } => Some(provider_session_id.clone()),
        _ => None,
    });
    assert_eq!(id, s.provider_session_id());
    assert_eq!(text_of(&events), "FAKE-REPLY: you said 'hello'");
    let RuntimeEvent::TurnFinished { outcome: TurnOutcome::Completed, usage: Some(usage) } = last(&events) else {
        panic!("{events:?}")
    };
    assert_eq!((usage.input_tokens, usage.output_tokens), (Some(24), Some(12)));
    assert!((usage.cost_usd.unwrap() - 0.00042).abs() < 1e-9);

    // Cost is cumulative on the wire; each turn reports its own share.
    s.send_turn("again").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    let RuntimeEvent::TurnFinished { usage: Some(usage), .. } = last(&events) else { panic!("{events:?}") };
    assert!((usage.cost_usd.unwrap() - 0.00042).abs() < 1e-9, "{usage:?}");

    let sent = h.received();
    assert_eq!(sent[0]["type"], "control_request");
    assert_eq!(sent[0]["request"]["subtype"], "initialize");
    assert_eq!(sent[1]["type"], "user");
    assert_eq!(sent[1]["message"], serde_json::json!({ "role": "user", "content": "hello" }));
    assert_eq!(sent[1]["session_id"], "default");
    assert_eq!(sent[2]["session_id"].as_str(), s.provider_session_id().as_deref());
    s.shutdown().await;
}

async fn bash_approval_allow_runs_the_command() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("RUN_CMD: touch sdk_ok.txt").await.unwrap();
    let req = approval(&mut s).await;
    assert_eq!(req.kind, ApprovalKind::Command);
    assert_eq!(req.action, "run `touch sdk_ok.txt`");
    s.decide(&req.request_id, ApprovalDecision::AllowOnce).await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(
        events.iter().any(|e| matches!(
            e,
            RuntimeEvent::CommandFinished { status: CommandStatus::Succeeded, exit_code: Some(0), .. }
        )),
        "{events:?}"
    );
    assert!(completed(&events));
    assert!(h.path("sdk_ok.txt").exists());
    let answers = permission_answers(&h);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0]["behavior"], "allow");
    assert_eq!(answers[0]["updatedInput"]["command"], "touch sdk_ok.txt");
    s.shutdown().await;
}

async fn failing_command_reports_its_exit_code() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("RUN_CMD: exit 4").await.unwrap();
    let req = approval(&mut s).await;
    s.decide(&req.request_id, ApprovalDecision::AllowOnce).await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(
        events.iter().any(|e| matches!(
            e,
            RuntimeEvent::CommandFinished { status: CommandStatus::Failed, exit_code: Some(4), .. }
        )),
        "{events:?}"
    );
    s.shutdown().await;
}

async fn allow_for_session_adds_session_rules() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("RUN_CMD: true").await.unwrap();
    let req = approval(&mut s).await;
    s.decide(&req.request_id, ApprovalDecision::AllowForSession).await.unwrap();
    until_turn_finished(&mut s).await;
    let answers = permission_answers(&h);
    let rules = answers[0]["updatedPermissions"].as_array().expect("updatedPermissions");
    assert!(rules.iter().all(|r| r["destination"] == "session"), "{rules:?}");
    s.send_turn("RUN_CMD: true").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(!events.iter().any(|e| matches!(e, RuntimeEvent::ApprovalRequested(_))), "{events:?}");
    s.shutdown().await;
}

async fn deny_lets_the_turn_go_on() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("RUN_CMD: touch sdk_denied.txt").await.unwrap();
    let req = approval(&mut s).await;
    s.decide(&req.request_id, ApprovalDecision::Deny).await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(
        events.iter().any(|e| matches!(e, RuntimeEvent::CommandFinished { status: CommandStatus::Declined, .. })),
        "{events:?}"
    );
    assert!(completed(&events));
    assert!(!h.path("sdk_denied.txt").exists());
    let answers = permission_answers(&h);
    assert_eq!(answers[0]["behavior"], "deny");
    assert!(answers[0].get("interrupt").is_none());
    s.shutdown().await;
}

async fn deny_and_stop_interrupts_the_turn() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("RUN_CMD: touch stop.txt").await.unwrap();
    let req = approval(&mut s).await;
    s.decide(&req.request_id, ApprovalDecision::DenyAndStop).await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(
        matches!(last(&events), RuntimeEvent::TurnFinished { outcome: TurnOutcome::Interrupted, .. }),
        "{events:?}"
    );
    assert_eq!(permission_answers(&h)[0]["interrupt"], true);
    s.send_turn("next").await.unwrap();
    assert!(completed(&until_turn_finished(&mut s).await));
    s.shutdown().await;
}

async fn write_approval_shows_the_content_and_reports_the_change() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("WRITE_FILE: sdk_write.txt").await.unwrap();
    let req = approval(&mut s).await;
    assert_eq!(req.kind, ApprovalKind::FileChange);
    assert!(req.action.ends_with("sdk_write.txt"), "{}", req.action);
    assert_eq!(req.detail.as_deref(), Some("+hello from fake model"));
    s.decide(&req.request_id, ApprovalDecision::AllowOnce).await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(events.iter().any(|e| matches!(e, RuntimeEvent::FileChanged { applied: true, changes, .. } if changes[0].path.ends_with("sdk_write.txt"))), "{events:?}");
    assert!(h.path("sdk_write.txt").exists());
    s.shutdown().await;
}

async fn interrupt_ends_the_turn_not_the_session() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("SLOW_REPLY please").await.unwrap();
    until(&mut s, |e| matches!(e, RuntimeEvent::SessionReady { .. })).await;
    assert_eq!(s.send_turn("too soon").await, Err(RuntimeError::Busy));
    s.interrupt().await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(
        matches!(last(&events), RuntimeEvent::TurnFinished { outcome: TurnOutcome::Interrupted, .. }),
        "{events:?}"
    );
    assert!(h.received().iter().any(|m| m["type"] == "control_request" && m["request"]["subtype"] == "interrupt"));
    s.send_turn("after interrupt").await.unwrap();
    assert_eq!(text_of(&until_turn_finished(&mut s).await), "FAKE-REPLY: you said 'after interrupt'");
    s.shutdown().await;
}

async fn api_error_fails_the_turn_and_keeps_the_session() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("FAIL_TURN").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    let RuntimeEvent::TurnFinished { outcome: TurnOutcome::Failed { message }, .. } = last(&events) else {
        panic!("{events:?}")
    };
    assert!(message.contains("400") && message.contains("FAIL_TURN"), "{message}");
    s.send_turn("ok").await.unwrap();
    assert!(completed(&until_turn_finished(&mut s).await));
    s.shutdown().await;
}

async fn todos_become_a_plan_and_questions_get_answers() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("PLAN").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    let steps = events
        .iter()
        .find_map(|e| match e {
            RuntimeEvent::Plan { steps } => Some(steps.clone()),
            _ => None,
        })
        .expect("a plan");
    assert_eq!(steps.len(), 3);

    s.send_turn("ASK: ship it?").await.unwrap();
    let events = until(&mut s, |e| matches!(e, RuntimeEvent::Question { .. })).await;
    let RuntimeEvent::Question { request_id, text } = last(&events).clone() else { unreachable!() };
    assert_eq!(text, "ship it? (yes / no)");
    assert!(s.decide(&request_id, ApprovalDecision::AllowOnce).await.is_err(), "a question is not an approval");
    s.answer(&request_id, "no").await.unwrap();
    assert_eq!(text_of(&until_turn_finished(&mut s).await), "FAKE-REPLY: you answered 'no'");
    s.shutdown().await;
}

async fn malformed_output_is_skipped() {
    let h = Workspace::new();
    let mut s = start_with(&h, RuntimeOptions { max_line_bytes: 64 * 1024, ..options() }, None).await.unwrap();
    s.send_turn("GARBAGE").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert_eq!(text_of(&events), "FAKE-REPLY: after garbage");
    assert!(completed(&events));
    s.shutdown().await;
}

async fn crash_then_resume_with_the_same_session_id() {
    let h = Workspace::new();
    let mut s = start(&h).await;
    s.send_turn("remember this").await.unwrap();
    until_turn_finished(&mut s).await;
    let id = s.provider_session_id().expect("session id");
    s.send_turn("CRASH").await.unwrap();
    let events = until(&mut s, |e| matches!(e, RuntimeEvent::Died { .. })).await;
    assert!(matches!(last(&events), RuntimeEvent::Died { restarting: false, .. }));
    assert_eq!(next(&mut s).await, None);

    let mut s = start_with(&h, options(), Some(id.clone())).await.expect("resume");
    assert_eq!(next(&mut s).await, Some(RuntimeEvent::SessionReady { provider_session_id: id.clone(), resumed: true }));
    s.send_turn("RECALL").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert_eq!(text_of(&events), "FAKE-REPLY: previous input was 'remember this'");
    assert!(!events.iter().any(|e| matches!(e, RuntimeEvent::SessionReady { .. })), "no second announcement");
    s.shutdown().await;
}

async fn resume_of_an_unknown_session_fails_cleanly() {
    let h = Workspace::new();
    let err = start_with(&h, options(), Some("gone".into())).await.err().expect("resume fails");
    assert!(matches!(err, RuntimeError::Resume(ref m) if m.contains("No conversation found")), "{err:?}");
}
