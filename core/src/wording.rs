//! What people read, produced from typed data in one place: approval cards and the line that
//! replaces their buttons once decided.

use crate::model::{ApprovalStatus, Channel, Id, Scope};
use crate::runtime::{ApprovalKind, ApprovalRequest};

/// Diff lines shown on a card; the rest is counted and left to the web console.
const CARD_DIFF_LINES: usize = 15;
/// Longest line of a card's detail.
const CARD_LINE: usize = 200;

/// An approval card: the headline ("Codex is waiting for approval: run `npm test`") and what
/// the person needs to decide with eyes open: where the command runs, the agent's reason, the
/// first lines of a file change's diff.
pub fn approval_card(agent: &str, request: &ApprovalRequest, cwd: &str, task: Id) -> (String, Option<String>) {
    let headline = format!("{agent} is waiting for approval: {}", request.action);
    let mut detail: Vec<String> = Vec::new();
    if request.kind == ApprovalKind::Command {
        let dir = request.cwd.as_deref().filter(|d| !d.is_empty()).unwrap_or(cwd);
        if !dir.is_empty() {
            detail.push(format!("in {dir}"));
        }
    }
    if let Some(reason) = request.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        detail.push(format!("Why: {}", cut(reason, CARD_LINE)));
    }
    if let Some(diff) = request.detail.as_deref().filter(|d| !d.trim().is_empty()) {
        let lines: Vec<&str> = diff.lines().collect();
        let shown: Vec<String> = lines.iter().take(CARD_DIFF_LINES).map(|l| cut(l, CARD_LINE)).collect();
        detail.push(shown.join("\n"));
        if lines.len() > CARD_DIFF_LINES {
            detail.push(format!(
                "+{} more lines: the whole change is on task #{task} in the web console",
                lines.len() - CARD_DIFF_LINES
            ));
        }
    }
    (headline, (!detail.is_empty()).then(|| detail.join("\n")))
}

/// Who decided, for the line under a decided card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decider<'a> {
    Person { name: &'a str, channel: Option<Channel> },
    Rule(Id),
}

/// "Approved by Ada from the web console", "Denied by Bob (Telegram)", "Always approved in this
/// project by Ada", "Approved by rule #3", "Expired: the turn ended before an answer".
pub fn decision_line(status: ApprovalStatus, scope: Option<Scope>, by: Decider<'_>, reason: Option<&str>) -> String {
    let verb = match (status, scope) {
        (ApprovalStatus::Approved, Some(Scope::Always)) => "Approved for this session",
        (ApprovalStatus::Approved, Some(Scope::Project)) => "Always approved in this project",
        (ApprovalStatus::Approved, _) => "Approved",
        (ApprovalStatus::Denied, _) => "Denied",
        (ApprovalStatus::Cancelled, _) => "Denied and stopped",
        (ApprovalStatus::Expired, _) => {
            return format!("Expired: {}", reason.unwrap_or("the turn ended before an answer"));
        }
        (ApprovalStatus::Pending, _) => return "Waiting for an answer".into(),
    };
    match by {
        Decider::Rule(rule) => format!("{verb} by rule #{rule} (always allowed in this project)"),
        Decider::Person { name, channel: Some(Channel::Web) } => format!("{verb} by {name} from the web console"),
        Decider::Person { name, channel: Some(channel) } => format!("{verb} by {name} ({})", channel_name(channel)),
        Decider::Person { name, channel: None } => format!("{verb} by {name}"),
    }
}

/// Told once to someone sending faster than `[limits] per_person_per_minute`.
pub fn slow_down(waiting: usize, limits: &crate::fair::Limits) -> String {
    let messages = if waiting == 1 { "message" } else { "messages" };
    format!(
        "Slow down: {waiting} {messages} waiting. I take {} a minute from one person; beyond {} waiting, newer ones are set aside unanswered.",
        limits.per_person_per_minute, limits.max_waiting
    )
}

pub fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Telegram => "Telegram",
        Channel::Feishu => "Feishu",
        Channel::Web => "web",
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: ApprovalKind, action: &str, detail: Option<&str>) -> ApprovalRequest {
        ApprovalRequest {
            request_id: "r".into(),
            kind,
            action: action.into(),
            detail: detail.map(str::to_owned),
            cwd: None,
            reason: Some("the tests must pass first".into()),
        }
    }

    #[test]
    fn a_command_card_shows_where_and_why() {
        let (head, detail) =
            approval_card("Codex", &request(ApprovalKind::Command, "run `npm test`", None), "/srv/web", 4);
        assert_eq!(head, "Codex is waiting for approval: run `npm test`");
        assert_eq!(detail.as_deref(), Some("in /srv/web\nWhy: the tests must pass first"));
    }

    #[test]
    fn a_file_change_card_shows_the_first_lines_of_its_diff() {
        let diff: String = (1..=20).map(|i| format!("+line {i}\n")).collect();
        let (head, detail) =
            approval_card("Codex", &request(ApprovalKind::FileChange, "edit notes/y.txt", Some(&diff)), "/w", 7);
        assert_eq!(head, "Codex is waiting for approval: edit notes/y.txt");
        let detail = detail.unwrap();
        assert!(detail.contains("+line 1\n") && detail.contains("+line 15"), "{detail}");
        assert!(!detail.contains("+line 16"), "{detail}");
        assert!(detail.ends_with("+5 more lines: the whole change is on task #7 in the web console"), "{detail}");
        assert!(!detail.contains("in /w"), "a file change has no working directory line");
    }

    #[test]
    fn decision_lines_say_who_where_and_how() {
        let ada = |channel| Decider::Person { name: "Ada", channel };
        assert_eq!(
            decision_line(ApprovalStatus::Approved, Some(Scope::Once), ada(Some(Channel::Web)), None),
            "Approved by Ada from the web console"
        );
        assert_eq!(
            decision_line(ApprovalStatus::Denied, None, ada(Some(Channel::Telegram)), None),
            "Denied by Ada (Telegram)"
        );
        assert_eq!(
            decision_line(ApprovalStatus::Approved, Some(Scope::Project), ada(None), None),
            "Always approved in this project by Ada"
        );
        assert_eq!(
            decision_line(ApprovalStatus::Approved, Some(Scope::Once), Decider::Rule(3), None),
            "Approved by rule #3 (always allowed in this project)"
        );
        assert_eq!(
            decision_line(ApprovalStatus::Expired, None, ada(None), Some("the gateway restarted")),
            "Expired: the gateway restarted"
        );
    }
}
