use super::*;
use crate::runtime::{ApprovalKind, ApprovalRequest, CommandStatus};

fn view(turn: Option<&TurnProgress>) -> ExecView<'_> {
    ExecView {
        execution: 3,
        task: 1,
        agent: "Codex",
        role: Role::Editor,
        title: "fix routing",
        session: Some(2),
        turn,
        others_busy: false,
        cwd: "/srv/web",
        rule: None,
    }
}

fn kinds(plan: &Plan) -> Vec<&'static str> {
    plan.effects
        .iter()
        .map(|e| match e {
            Effect::Record { body, .. } => match body {
                Body::AgentText { .. } => "record:text",
                Body::TurnFinished { .. } => "record:finished",
                _ => "record",
            },
            Effect::SetTurn { .. } => "turn",
            Effect::SetSession { .. } => "session",
            Effect::SetExecution { .. } => "execution",
            Effect::SetTask { .. } => "task",
            Effect::AskApproval { .. } => "ask",
            Effect::ExpireApprovals { .. } => "expire",
            Effect::WithdrawApproval { .. } => "withdraw",
            Effect::Live { .. } => "live",
            Effect::Reply(_) => "reply",
            Effect::QueueTurn { .. } => "queue",
            _ => "other",
        })
        .collect()
}

#[test]
fn streamed_text_waits_for_the_next_saved_event() {
    let mut turn = TurnProgress::new(9);
    let text = RuntimeEvent::AgentText { text: "looking".into() };
    turn.observe(&text);
    assert!(react(&text, &view(Some(&turn))).effects.is_empty());
    let command = RuntimeEvent::CommandStarted { id: "c".into(), command: "ls".into() };
    assert_eq!(kinds(&react(&command, &view(Some(&turn)))), ["record:text", "record", "live"]);
}

#[test]
fn enough_streamed_text_is_saved_and_shown_as_the_turns_draft() {
    let mut turn = TurnProgress::new(9);
    let chunk = RuntimeEvent::AgentText { text: "a sentence of the answer, long enough. ".repeat(4) };
    turn.observe(&chunk);
    let plan = react(&chunk, &view(Some(&turn)));
    assert_eq!(kinds(&plan), ["record:text", "reply"]);
    let Effect::Reply(draft) = &plan.effects[1] else { panic!() };
    assert_eq!(draft.kind, ReplyKind::Draft);
    assert_eq!(draft.live.as_deref(), Some("turn:9:draft"));
    assert_eq!(draft.text, turn.text.trim());
    let mut long = TurnProgress::new(9);
    long.observe(&RuntimeEvent::AgentText { text: "x".repeat(10_000) });
    let plan = react(&RuntimeEvent::AgentText { text: "x".into() }, &view(Some(&long)));
    let Effect::Reply(draft) = &plan.effects[1] else { panic!() };
    assert!(draft.text.starts_with('…') && draft.text.chars().count() <= MAX_DRAFT + 1);
}

#[test]
fn an_approval_request_waits_with_a_card_and_says_so_live() {
    let turn = TurnProgress::new(9);
    let ask = RuntimeEvent::ApprovalRequested(ApprovalRequest {
        request_id: "r".into(),
        kind: ApprovalKind::Command,
        action: "run `npm test`".into(),
        detail: None,
        cwd: None,
        reason: None,
    });
    let plan = react(&ask, &view(Some(&turn)));
    assert_eq!(kinds(&plan), ["turn", "task", "ask", "live"]);
    assert!(plan.effects.contains(&Effect::Live {
        turn: 9,
        line: "Codex is waiting for approval: run `npm test`".into(),
        running: true
    }));
    let card = plan.effects.iter().find_map(|e| match e {
        Effect::AskApproval { text, detail, rule: None, .. } => Some((text.clone(), detail.clone())),
        _ => None,
    });
    assert_eq!(card, Some(("Codex is waiting for approval: run `npm test`".into(), Some("in /srv/web".into()))));
}

#[test]
fn a_standing_rule_approves_without_asking() {
    let turn = TurnProgress::new(9);
    let ask = RuntimeEvent::ApprovalRequested(ApprovalRequest {
        request_id: "r".into(),
        kind: ApprovalKind::Command,
        action: "run `npm test`".into(),
        detail: None,
        cwd: None,
        reason: None,
    });
    let plan = react(&ask, &ExecView { rule: Some(3), ..view(Some(&turn)) });
    assert_eq!(kinds(&plan), ["ask", "live"], "no waiting status, no card");
    assert!(plan.effects.iter().any(|e| matches!(e, Effect::AskApproval { rule: Some(3), .. })));
}

#[test]
fn the_end_of_a_turn_records_evidence_and_sends_one_final_message() {
    let mut turn = TurnProgress::new(9);
    for e in [
        RuntimeEvent::AgentText { text: "done.\nAll green".into() },
        RuntimeEvent::CommandFinished {
            id: "c".into(),
            command: "npm test".into(),
            status: CommandStatus::Failed,
            exit_code: Some(1),
            output_tail: String::new(),
        },
    ] {
        turn.observe(&e);
    }
    let end = RuntimeEvent::TurnFinished { outcome: TurnOutcome::Completed, usage: None };
    let plan = react(&end, &view(Some(&turn)));
    assert_eq!(
        kinds(&plan),
        ["record:text", "turn", "session", "expire", "execution", "task", "record:finished", "live", "reply"]
    );
    let finals: Vec<&Reply> = plan
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Reply(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(finals.len(), 1);
    assert_eq!(finals[0].text, "done.\nAll green", "the agent's words, not a second \"Codex finished\"");
    assert_eq!(finals[0].kind, ReplyKind::Final);
    assert_eq!(finals[0].closes.as_deref(), Some("turn:9"));
    let evidence = plan.effects.iter().find_map(|e| match e {
        Effect::Record { body: Body::TurnFinished { evidence, .. }, .. } => Some(evidence.clone()),
        _ => None,
    });
    let evidence = evidence.expect("evidence");
    assert_eq!((evidence.id.as_str(), evidence.commands[0].exit_code), ("turn:9", Some(1)));
}

#[test]
fn another_busy_execution_keeps_the_task_running() {
    let turn = TurnProgress::new(9);
    let busy = ExecView { others_busy: true, ..view(Some(&turn)) };
    let plan = finished(&busy, &TurnOutcome::Completed, None);
    assert!(!kinds(&plan).contains(&"task"));
}

#[test]
fn a_death_without_restart_fails_the_turn_once() {
    let turn = TurnProgress::new(9);
    let died = RuntimeEvent::Died { reason: "oom".into(), restarting: false };
    let plan = react(&died, &view(Some(&turn)));
    let k = kinds(&plan);
    assert_eq!(k.iter().filter(|k| **k == "record:finished").count(), 1);
    assert_eq!(
        plan.effects.iter().filter(|e| matches!(e, Effect::SetSession { to: SessionStatus::Dead, .. })).count(),
        1
    );
    assert!(!plan.effects.iter().any(|e| matches!(e, Effect::SetSession { to: SessionStatus::Ready, .. })));
}

#[test]
fn a_handed_over_turn_runs_again_with_one_notice() {
    let turn = TurnProgress::new(9);
    let plan = handed_over(&view(Some(&turn)), 9, "make it green", "gateway restart", Some(restart_notice("Codex")));
    assert_eq!(kinds(&plan), ["turn", "expire", "record", "queue", "reply"]);
    let input = plan.effects.iter().find_map(|e| match e {
        Effect::QueueTurn { execution: 3, input } => Some(input.clone()),
        _ => None,
    });
    assert_eq!(input.as_deref(), Some("(The gateway restarted during this request; do it again.)\n\nmake it green"));
    // Running it again does not stack the prefix.
    assert_eq!(rerun_input(&input.unwrap()).matches("restarted").count(), 1);
}

#[test]
fn a_long_result_is_condensed_to_its_end_with_a_pointer() {
    let mut text = String::from("```\n");
    for i in 0..200 {
        text.push_str(&format!("line {i} of the agent's long answer\n"));
    }
    let short = condensed(&text, 1200, 7).expect("something");
    assert!(short.chars().count() <= 1200, "{}", short.chars().count());
    assert!(short.contains("line 199"), "the end is kept");
    assert!(!short.contains("line 0 "), "the start is cut");
    assert!(short.ends_with("(cut: the whole result is on task #7 in the web console)"));
    assert_eq!(short.matches("```").count() % 2, 0, "fences stay balanced: {short}");
    assert_eq!(condensed("  ", 10, 1), None);
    assert_eq!(condensed("short", 10, 1).as_deref(), Some("short"));
}

#[test]
fn a_reviewer_final_says_who_reviewed_what() {
    let mut turn = TurnProgress::new(9);
    turn.observe(&RuntimeEvent::AgentText { text: "two findings: a race in cache.rs".into() });
    let reviewer = ExecView { role: Role::Reviewer, agent: "Claude", ..view(Some(&turn)) };
    let plan = finished(&reviewer, &TurnOutcome::Completed, None);
    let text = plan.effects.iter().find_map(|e| match e {
        Effect::Reply(r) if r.kind == ReplyKind::Final => Some(r.text.clone()),
        _ => None,
    });
    assert_eq!(text.as_deref(), Some("Claude finished reviewing 'fix routing':\ntwo findings: a race in cache.rs"));
}
