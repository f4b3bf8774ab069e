//! Condensed one-line summaries of runtime events, for phones.

use super::{ApprovalDecision, CommandStatus, PlanStepStatus, RuntimeEvent, TurnOutcome};

/// Longest line a summary produces, in characters.
const MAX_LINE: usize = 160;

/// One short line for a person, or `None` for events that are not worth a line (streamed text).
pub fn summarize(agent: &str, event: &RuntimeEvent) -> Option<String> {
    let line = match event {
        RuntimeEvent::SessionReady { resumed: true, .. } => format!("{agent} resumed its session"),
        RuntimeEvent::SessionReady { .. } | RuntimeEvent::AgentText { .. } => return None,
        RuntimeEvent::TurnStarted { .. } => format!("{agent} is working"),
        RuntimeEvent::Plan { steps } => {
            let done = steps.iter().filter(|s| s.status == PlanStepStatus::Completed).count();
            match steps.iter().find(|s| s.status == PlanStepStatus::InProgress) {
                Some(now) => format!("{agent} plan {done}/{}: {}", steps.len(), now.text),
                None => format!("{agent} plan {done}/{} done", steps.len()),
            }
        }
        RuntimeEvent::CommandStarted { command, .. } => format!("{agent} is running `{}`", short(command, 80)),
        RuntimeEvent::CommandFinished { command, status, exit_code, .. } => {
            let command = short(command, 80);
            let code = exit_code.map(|c| format!(" (exit {c})")).unwrap_or_default();
            match status {
                CommandStatus::Succeeded => format!("{agent} ran `{command}`{code}"),
                CommandStatus::Failed => format!("{agent}: `{command}` failed{code}"),
                CommandStatus::Declined => format!("{agent} skipped `{command}` (declined)"),
            }
        }
        RuntimeEvent::FileChanged { changes, applied, .. } => {
            let mut names: Vec<&str> = changes.iter().take(3).map(|c| file_name(&c.path)).collect();
            if changes.len() > 3 {
                names.push("…");
            }
            let verb = if *applied { "edited" } else { "did not edit" };
            format!("{agent} {verb} {}", names.join(", "))
        }
        RuntimeEvent::ApprovalRequested(req) => format!("{agent} is waiting for approval: {}", req.action),
        RuntimeEvent::ApprovalResolved { decision, .. } => match decision {
            Some(ApprovalDecision::AllowOnce) => "Approved once".to_string(),
            Some(ApprovalDecision::AllowForSession) => "Approved for this session".to_string(),
            Some(ApprovalDecision::Deny) => "Denied".to_string(),
            Some(ApprovalDecision::DenyAndStop) => "Denied; stopping the turn".to_string(),
            None => format!("{agent} withdrew its approval request"),
        },
        RuntimeEvent::Question { text, .. } => format!("{agent} asks: {text}"),
        RuntimeEvent::TurnFinished { outcome, .. } => match outcome {
            TurnOutcome::Completed => format!("{agent} finished"),
            TurnOutcome::Failed { message } => format!("{agent} failed: {message}"),
            TurnOutcome::Interrupted => format!("{agent} stopped (interrupted)"),
            TurnOutcome::TimedOut { limit_secs } => {
                format!("{agent} stopped: the turn hit its {} time limit", duration(*limit_secs))
            }
        },
        RuntimeEvent::Died { restarting: true, .. } => format!("{agent} stopped unexpectedly; restarting it"),
        RuntimeEvent::Died { reason, .. } => format!("{agent} stopped unexpectedly: {reason}"),
    };
    Some(one_line(&line, MAX_LINE))
}

/// Collapses whitespace (newlines included) and cuts at `max` characters with an ellipsis.
pub fn one_line(text: &str, max: usize) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    short(&joined, max)
}

/// The last `max_lines` lines of `output`, at most `max_chars` characters, for event payloads.
pub fn output_tail(output: &str, max_lines: usize, max_chars: usize) -> String {
    let trimmed = output.trim_end();
    let start = trimmed.rmatch_indices('\n').nth(max_lines.saturating_sub(1)).map_or(0, |(i, _)| i + 1);
    let tail = &trimmed[start..];
    let count = tail.chars().count();
    if count <= max_chars {
        tail.to_string()
    } else {
        let skip = count - max_chars;
        format!("…{}", tail.chars().skip(skip + 1).collect::<String>())
    }
}

fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or(path)
}

fn duration(secs: u64) -> String {
    match secs {
        s if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{ApprovalKind, ApprovalRequest};

    #[test]
    fn approval_line_names_the_action() {
        let event = RuntimeEvent::ApprovalRequested(ApprovalRequest {
            request_id: "0".into(),
            kind: ApprovalKind::Command,
            action: "run `npm test`".into(),
            detail: None,
            cwd: None,
            reason: None,
        });
        assert_eq!(summarize("Codex", &event).unwrap(), "Codex is waiting for approval: run `npm test`");
    }

    #[test]
    fn failure_is_one_short_line() {
        let event = RuntimeEvent::TurnFinished {
            outcome: TurnOutcome::Failed { message: format!("tests still red\n{}", "x".repeat(500)) },
            usage: None,
        };
        let line = summarize("Codex", &event).unwrap();
        assert!(line.starts_with("Codex failed: tests still red x"));
        assert!(!line.contains('\n'));
        assert_eq!(line.chars().count(), MAX_LINE);
    }

    #[test]
    fn streamed_text_has_no_line() {
        assert_eq!(summarize("Codex", &RuntimeEvent::AgentText { text: "hi".into() }), None);
    }

    #[test]
    fn timeout_line_says_the_limit() {
        let event = RuntimeEvent::TurnFinished { outcome: TurnOutcome::TimedOut { limit_secs: 600 }, usage: None };
        assert_eq!(summarize("cc", &event).unwrap(), "cc stopped: the turn hit its 10m time limit");
    }

    #[test]
    fn output_tail_keeps_the_end() {
        assert_eq!(output_tail("a\nb\nc\nd\n", 2, 100), "c\nd");
        assert_eq!(output_tail("abcdef", 5, 4), "…def");
        assert_eq!(output_tail("", 3, 10), "");
    }
}
