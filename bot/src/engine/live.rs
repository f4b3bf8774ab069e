//! Live status of a turn, channel-neutral: every status update of a turn goes to the outbox
//! with the same key in its payload (`"live": "turn:<id>"`). A channel shows the first one
//! and edits that message (or patches that card) for the later ones, coalescing those that
//! queued up; approvals and the final summary stay messages of their own, since they carry
//! buttons or should notify.

use taskgate_core::model::{Id, Role};
use taskgate_core::runtime::{ApprovalDecision, RuntimeEvent, TurnOutcome, one_line, summarize};

/// The payload field channels look for.
pub const FIELD: &str = "live";

/// Longest live line, in characters.
const MAX_LINE: usize = 200;

/// The key all status updates of `turn` share.
pub fn key(turn: Id) -> String {
    format!("turn:{turn}")
}

/// The status line an event puts in the turn's live message, `None` when it changes nothing
/// a person would look for (streamed text, session plumbing).
pub fn line(agent: &str, event: &RuntimeEvent) -> Option<String> {
    match event {
        RuntimeEvent::TurnStarted { .. }
        | RuntimeEvent::Plan { .. }
        | RuntimeEvent::CommandStarted { .. }
        | RuntimeEvent::CommandFinished { .. }
        | RuntimeEvent::FileChanged { .. }
        | RuntimeEvent::ApprovalRequested(_) => summarize(agent, event),
        // The agent goes on after the answer: say so, with the answer.
        RuntimeEvent::ApprovalResolved { decision: Some(decision), .. } => Some(match decision {
            ApprovalDecision::AllowOnce | ApprovalDecision::AllowForSession => format!("{agent} is working (approved)"),
            ApprovalDecision::Deny => format!("{agent} is working (denied)"),
            ApprovalDecision::DenyAndStop => format!("{agent} is stopping (denied)"),
        }),
        RuntimeEvent::ApprovalResolved { decision: None, .. } => summarize(agent, event),
        _ => None,
    }
}

/// How the turn ended, for the live message and as the start of the summary: "Codex
/// finished", "Claude finished reviewing 'fix routing'", "Codex failed: tests still red".
pub fn finished(agent: &str, role: Role, title: &str, outcome: &TurnOutcome) -> String {
    let line = match (outcome, role) {
        (TurnOutcome::Completed, Role::Reviewer) => format!("{agent} finished reviewing '{title}'"),
        (TurnOutcome::Completed, Role::Tester) => format!("{agent} finished testing '{title}'"),
        _ => summarize(agent, &RuntimeEvent::TurnFinished { outcome: outcome.clone(), usage: None })
            .unwrap_or_else(|| format!("{agent} finished")),
    };
    one_line(&line, MAX_LINE)
}

#[cfg(test)]
mod tests {
    use taskgate_core::runtime::{ApprovalKind, ApprovalRequest};

    use super::*;

    #[test]
    fn status_lines_are_condensed() {
        let ask = RuntimeEvent::ApprovalRequested(ApprovalRequest {
            request_id: "1".into(),
            kind: ApprovalKind::Command,
            action: "run `npm test`".into(),
            detail: None,
        });
        assert_eq!(line("Codex", &ask).as_deref(), Some("Codex is waiting for approval: run `npm test`"));
        let resolved =
            RuntimeEvent::ApprovalResolved { request_id: "1".into(), decision: Some(ApprovalDecision::AllowOnce) };
        assert_eq!(line("Codex", &resolved).as_deref(), Some("Codex is working (approved)"));
        assert_eq!(line("Codex", &RuntimeEvent::AgentText { text: "hi".into() }), None);
        assert_eq!(key(42), "turn:42");
    }

    #[test]
    fn the_end_names_the_role_and_the_failure() {
        assert_eq!(
            finished("Claude", Role::Reviewer, "fix routing", &TurnOutcome::Completed),
            "Claude finished reviewing 'fix routing'"
        );
        assert_eq!(finished("Codex", Role::Editor, "x", &TurnOutcome::Completed), "Codex finished");
        let failed = TurnOutcome::Failed { message: "tests still red (exit 1)".into() };
        assert_eq!(finished("Codex", Role::Reviewer, "x", &failed), "Codex failed: tests still red (exit 1)");
    }
}
