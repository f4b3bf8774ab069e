//! The router's wording: short lines for phones.

use super::state::{ConversationState, TaskState};
use crate::classify::{Decision, Intent};
use crate::model::{ApprovalStatus, Channel, TaskStatus, Timestamp};

/// "codex" → "Codex": agents are proper names in replies.
pub fn agent_name(agent: &str) -> String {
    let mut chars = agent.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

pub fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Telegram => "Telegram",
        Channel::Feishu => "Feishu",
        Channel::Web => "web",
    }
}

pub fn approval_verdict(status: ApprovalStatus) -> &'static str {
    match status {
        ApprovalStatus::Approved => "approved",
        ApprovalStatus::Denied | ApprovalStatus::Cancelled => "denied",
        ApprovalStatus::Expired => "expired",
        ApprovalStatus::Pending => "pending",
    }
}

/// "10:42" (UTC).
pub fn when(at: Timestamp) -> String {
    at.format("%H:%M").to_string()
}

/// A task title from its first message: a short phrase for the goal. The first line, without
/// leading commands (`/new`, `/cc`), mentions, markers (`BUG:`, `RUN_CMD:`), polite openings
/// ("please", "can you", "帮我") or a delegation ("use codex to", "have claude"), at most 60
/// characters cut on a word boundary.
pub fn title_from(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let mut rest = line;
    loop {
        let before = rest;
        rest = strip_opening(rest);
        if rest == before {
            break;
        }
    }
    let rest = rest.trim_end_matches(['.', '!', '?', '。', '！', '？']).trim();
    let rest = if rest.is_empty() { line } else { rest };
    const MAX: usize = 60;
    if rest.chars().count() <= MAX {
        return rest.to_owned();
    }
    let cut: String = rest.chars().take(MAX).collect();
    let cut = match cut.rfind(' ') {
        Some(space) if space > MAX / 2 => &cut[..space],
        _ => &cut,
    };
    format!("{}…", cut.trim_end())
}

/// One opening stripped off the front of a title, or `text` unchanged.
fn strip_opening(text: &str) -> &str {
    let text = text.trim_start_matches([' ', ',', '，', ':', '：', '-']);
    let first = text.split_whitespace().next().unwrap_or("");
    // `/new`, `/cc@bot`, `@taskgate_bot`.
    if first.starts_with('/') || first.starts_with('@') {
        return text[first.len()..].trim_start();
    }
    // `BUG:` or `RUN_CMD:`: an upper-case marker with a colon.
    if let Some(marker) = first.strip_suffix(':')
        && !marker.is_empty()
        && marker.chars().all(|c| c.is_ascii_uppercase() || c == '_')
    {
        return text[first.len()..].trim_start();
    }
    const OPENINGS: [&str; 22] = [
        "please ",
        "pls ",
        "hey ",
        "hi ",
        "ok ",
        "okay ",
        "can you ",
        "could you ",
        "would you ",
        "can u ",
        "i need you to ",
        "i want you to ",
        "let's ",
        "lets ",
        "请你",
        "请",
        "帮我",
        "帮忙",
        "麻烦",
        "你能不能",
        "能不能",
        "可以帮我",
    ];
    let lower = text.to_lowercase();
    for opening in OPENINGS {
        if lower.starts_with(opening) && text.is_char_boundary(opening.len()) {
            return &text[opening.len()..];
        }
    }
    // "use codex to …", "have claude …", "ask cc to …".
    for verb in ["use ", "have ", "ask ", "let ", "get "] {
        if let Some(after) = lower.strip_prefix(verb) {
            let mut words = after.splitn(2, ' ');
            let (agent, rest) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let is_agent = ["codex", "cx", "claude", "cc", "gemini", "agent"].contains(&agent);
            if is_agent {
                let rest = rest.strip_prefix("to ").unwrap_or(rest);
                return &text[text.len() - rest.len()..];
            }
        }
    }
    text
}

/// Whether the text asks to stop (rather than only to refuse one action).
pub fn is_stop(text: &str) -> bool {
    const STOP: [&str; 16] = [
        "stop",
        "/cancel",
        "/stop",
        "cancel",
        "abort",
        "halt",
        "kill it",
        "stop it",
        "stop now",
        "forget it",
        "停",
        "停下",
        "停止",
        "停一下",
        "别跑了",
        "取消",
    ];
    let t = text.trim().trim_matches(|c: char| c.is_ascii_punctuation() && c != '/' || "！。，、 ".contains(c));
    let t = t.to_lowercase();
    STOP.iter().any(|s| t == *s || t.starts_with(&format!("{s} ")) || t.starts_with(&format!("{s},")))
        || t.starts_with("stop")
        || t.starts_with("停")
        || t.contains("算了")
}

/// Whether a denial carries an instruction beyond the "no" itself.
pub fn has_instruction(text: &str) -> bool {
    let words = text.split_whitespace().count();
    let cjk = text.chars().filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c)).count();
    words > 2 || cjk > 4
}

fn status_phrase(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Idle => "idle",
        TaskStatus::Running => "running",
        TaskStatus::WaitingApproval => "waiting for approval",
        TaskStatus::WaitingInput => "waiting for your answer",
        TaskStatus::Completed => "completed",
        TaskStatus::Failed => "failed",
        TaskStatus::Cancelled => "cancelled",
    }
}

/// One short message about a task.
pub fn task_status(task: &TaskState) -> String {
    let agents: Vec<String> = task.executions.iter().map(|e| agent_name(&e.execution.agent)).collect();
    let mut out = format!("'{}' (#{}) is {}", task.task.title, task.task.id, status_phrase(task.task.status));
    if !agents.is_empty() {
        out.push_str(&format!(" · {}", agents.join(", ")));
    }
    for approval in task.approvals.iter().filter(|a| a.approval.status == ApprovalStatus::Pending) {
        out.push_str(&format!("\n{} is waiting for approval: {}", approval.agent, approval.approval.action));
    }
    if let Some(result) = &task.latest_result {
        out.push_str(&format!("\nLatest: {result}"));
    }
    out
}

/// The active tasks of a conversation, one line each.
pub fn overview(state: &ConversationState) -> String {
    let active: Vec<&TaskState> = state
        .tasks
        .iter()
        .filter(|t| !matches!(t.task.status, TaskStatus::Completed | TaskStatus::Cancelled))
        .collect();
    if active.is_empty() {
        return "No active tasks.".to_owned();
    }
    let mut out = format!("{} active task(s):", active.len());
    for task in active.iter().take(10) {
        out.push_str(&format!("\n• #{} {} — {}", task.task.id, task.task.title, status_phrase(task.task.status)));
    }
    out
}

/// A button label for one reading of an ambiguous message.
pub fn reading(decision: &Decision, state: &ConversationState) -> String {
    let title = |id: Option<&str>| {
        id.and_then(|id| id.parse().ok())
            .and_then(|id| state.task(id))
            .map_or_else(|| "the task".to_owned(), |t| format!("'{}'", t.task.title))
    };
    let approval = || {
        decision
            .approval
            .as_deref()
            .and_then(|id| id.parse().ok())
            .and_then(|id| state.approval(id))
            .map_or_else(|| "the request".to_owned(), |(_, a)| a.approval.action.clone())
    };
    match decision.intent {
        Intent::Continue => format!("Continue {}", title(decision.task.as_deref())),
        Intent::NewTask => "Start a new task".to_owned(),
        Intent::Spawn => format!(
            "Add {} to {}",
            agent_name(decision.agent.as_deref().unwrap_or("an agent")),
            title(decision.task.as_deref())
        ),
        Intent::NewSession => format!("Fresh session for {}", title(decision.task.as_deref())),
        Intent::Approve => format!("Approve {}", approval()),
        Intent::Deny => format!("Deny {}", approval()),
        Intent::Status => "Show status".to_owned(),
        Intent::Cancel => format!("Stop {}", title(decision.task.as_deref())),
        Intent::Ignore | Intent::Clarify => "Never mind".to_owned(),
    }
}
