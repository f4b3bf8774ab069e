//! What the gateway notes on its own: a task's timeline folded into restart-note entries, so a
//! fresh session keeps the work even when no agent called the note tools.
//!
//! One pure function, [`capture`], reads the typed timeline (people's messages and the
//! classifier's decisions, approvals, the commands, file changes and outcomes the runtimes
//! reported) and returns entries in five sections plus, when the last request did not finish,
//! the next action. Nothing is stored: the note is derived whenever it is read, seeded or
//! exported, so it can never disagree with the timeline.

use std::collections::{BTreeMap, HashMap};

use crate::classify::Intent;
use crate::model::{ApprovalStatus, Body, Event, Execution, Id, Role, Timestamp};
use crate::runtime::{CommandStatus, TurnOutcome, one_line};

/// Longest instruction or outcome text kept in a captured entry.
const MAX_TEXT: usize = 600;
/// Longest output tail kept for a command.
const MAX_TAIL: usize = 300;

/// The section of the note a captured entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// The goal and every instruction a person added since (their words, time, channel).
    Instruction,
    /// Denied approvals with the person's note; interrupted turns and why.
    Rejected,
    /// Commands with exit codes and output tails, files changed, tests run.
    Evidence,
    /// Each execution's turn outcomes in one line (editor finished, reviewer's findings…).
    Outcome,
    /// An unanswered question, a failed or timed-out turn, a pending approval.
    Open,
}

impl Section {
    pub const ALL: [Section; 5] =
        [Section::Instruction, Section::Rejected, Section::Evidence, Section::Outcome, Section::Open];

    /// The heading readers see.
    pub fn title(self) -> &'static str {
        match self {
            Section::Instruction => "instructions",
            Section::Rejected => "rejected",
            Section::Evidence => "evidence",
            Section::Outcome => "outcomes",
            Section::Open => "open",
        }
    }
}

/// One entry the gateway captured from the timeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CapturedEntry {
    pub section: Section,
    /// The whole line (a command's output tail included).
    pub text: String,
    /// The same in a few words, for older entries in a seed with little room.
    pub short: String,
    /// When it happened.
    pub at: Timestamp,
    /// The timeline event it comes from: the full text is one click away in the console.
    pub event: Id,
    pub execution: Option<Id>,
    /// Files the entry rests on (a file change's paths): a later commit touching one makes it
    /// stale.
    pub files: Vec<String>,
    /// The git branch the execution worked on, when it had its own (worktree per execution).
    pub branch: Option<String>,
    /// Of `files`, those changed by commits since `settled_at`; filled by the reader with git.
    pub stale_because: Vec<String>,
    /// When the work the entry records was over (its turn's end): commits after this make it
    /// stale, not the agent's own commit within the turn.
    pub settled_at: Timestamp,
}

/// Everything captured from one timeline.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Captured {
    /// In timeline order.
    pub entries: Vec<CapturedEntry>,
    /// What a person last asked for, when the turn that took it did not complete.
    pub next_action: Option<String>,
}

impl Captured {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.next_action.is_none()
    }

    pub fn section(&self, section: Section) -> impl Iterator<Item = &CapturedEntry> {
        self.entries.iter().filter(move |e| e.section == section)
    }
}

/// Words a command line has when it runs tests.
const TEST_WORDS: [&str; 8] = ["test", "pytest", "jest", "vitest", "mocha", "rspec", "phpunit", "ctest"];

/// `true` when `command` looks like a test run (`cargo test`, `npm test`, `pytest -q`…).
pub fn is_test_command(command: &str) -> bool {
    command
        .split(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | ';' | '&' | '|' | '/' | ':'))
        .any(|word| TEST_WORDS.contains(&word) || word.starts_with("test:"))
}

/// Lines added and removed by a unified diff; `None` when the text is not one.
fn diff_counts(diff: &str) -> Option<(usize, usize)> {
    let mut seen = false;
    let (mut plus, mut minus) = (0, 0);
    for line in diff.lines() {
        if line.starts_with("+++") || line.starts_with("---") || line.starts_with("@@") {
            seen = true;
        } else if line.starts_with('+') {
            plus += 1;
        } else if line.starts_with('-') {
            minus += 1;
        }
    }
    (seen || plus + minus > 0).then_some((plus, minus))
}

fn label(executions: &HashMap<Id, &Execution>, exec: Option<Id>) -> String {
    match exec.and_then(|e| executions.get(&e)) {
        Some(e) => format!("{} ({})", e.role, e.agent),
        None => "agent".to_owned(),
    }
}

/// Folds a task's timeline (in order) into captured note entries. `executions` names the
/// agent and role of each execution the events mention.
pub fn capture(events: &[Event], executions: &[Execution]) -> Captured {
    let execs: HashMap<Id, &Execution> = executions.iter().map(|e| (e.id, e)).collect();
    let mut out: Vec<CapturedEntry> = Vec::new();
    let entry = |section, text: String, short: String, event: &Event| CapturedEntry {
        section,
        text,
        short,
        at: event.at,
        event: event.id,
        execution: event.execution_id,
        files: Vec::new(),
        branch: None,
        stale_because: Vec::new(),
        settled_at: event.at,
    };
    // A message waits for its decision (the next event of the same plan) to say what it was.
    let mut message: Option<(&Event, String, String)> = None;
    // Open items, removed again when they are settled: (key → index into `out`).
    let mut open: BTreeMap<String, usize> = BTreeMap::new();
    // Why the next interrupted turn stopped (a person's stop).
    let mut stop_reason: Option<String> = None;
    // The last request and whether a turn completed since.
    let mut last_request: Option<(String, bool)> = None;
    // A `/new` was the last word: the next turn to finish is its handoff.
    let mut handoff = false;
    // The last turn end seen per execution (event id).
    let mut last_end: HashMap<Option<Id>, Id> = HashMap::new();

    for event in events {
        let Some(body) = event.body.known() else { continue };
        match body {
            Body::Message { text, from, channel, .. } => {
                let channel = channel.map(|c| c.to_string()).unwrap_or_else(|| "chat".to_owned());
                let when = event.at.format("%Y-%m-%d %H:%M UTC");
                message = Some((event, text.clone(), format!("{from}, {channel}, {when}")));
            }
            Body::Decision { intent, .. } => {
                let Some((at, text, who)) = message.take() else { continue };
                match intent {
                    Intent::NewTask | Intent::Continue | Intent::Spawn => {
                        let words = one_line(&text, MAX_TEXT);
                        out.push(entry(Section::Instruction, format!("{words} ({who})"), one_line(&text, 100), at));
                        last_request = Some((words, false));
                        handoff = false;
                    }
                    // The next turn to finish is the old session's handoff (if it gets one): it
                    // does not complete what was asked before.
                    Intent::NewSession => handoff = true,
                    Intent::Cancel => stop_reason = Some(format!("stopped by a person: {}", one_line(&text, 200))),
                    _ => {}
                }
            }
            Body::QuestionAnswered { text, .. } => {
                if let Some(i) = event.execution_id.and_then(|e| open.remove(&format!("question:{e}"))) {
                    out[i].section = Section::Instruction;
                    let answered = format!("answered {}: {}", out[i].short, one_line(text, MAX_TEXT));
                    out[i].short = one_line(&answered, 100);
                    out[i].text = answered;
                }
            }
            Body::ApprovalRequested { approval, request } => {
                let text = format!("approval pending: {}", one_line(&request.action, 300));
                open.insert(format!("approval:{approval}"), out.len());
                out.push(entry(Section::Open, text.clone(), one_line(&text, 100), event));
            }
            Body::ApprovalDecided { approval, action, status, note, .. } => {
                settle(&mut out, &mut open, &format!("approval:{approval}"));
                if *status == ApprovalStatus::Denied {
                    let action = one_line(action, 300);
                    let text = match note.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
                        Some(note) => format!("denied {action}: \"{}\"", one_line(note, MAX_TEXT)),
                        None => format!("denied {action}"),
                    };
                    out.push(entry(Section::Rejected, text.clone(), one_line(&text, 120), event));
                }
            }
            Body::ApprovalExpired { approval, .. } => settle(&mut out, &mut open, &format!("approval:{approval}")),
            Body::Question { text, .. } => {
                if let Some(exec) = event.execution_id {
                    let text = format!("{} asked: {}", label(&execs, Some(exec)), one_line(text, MAX_TEXT));
                    open.insert(format!("question:{exec}"), out.len());
                    out.push(entry(Section::Open, text.clone(), one_line(&text, 100), event));
                }
            }
            Body::CommandFinished { command, status, exit_code, output_tail, .. } => {
                if *status == CommandStatus::Declined {
                    continue;
                }
                let command = one_line(command, 200);
                let code = match exit_code {
                    Some(code) => format!("exit {code}"),
                    None if *status == CommandStatus::Succeeded => "succeeded".to_owned(),
                    None => "failed".to_owned(),
                };
                let failed = *status == CommandStatus::Failed || exit_code.is_some_and(|c| c != 0);
                let head = if is_test_command(&command) {
                    format!("tests `{command}` {} ({code})", if failed { "FAILED" } else { "passed" })
                } else {
                    format!("`{command}` {code}")
                };
                let tail = one_line(output_tail, MAX_TAIL);
                let text = if tail.is_empty() { head.clone() } else { format!("{head}: {tail}") };
                out.push(entry(Section::Evidence, text, head, event));
            }
            Body::FileChanged { changes, applied: true, .. } => {
                let parts: Vec<String> = changes
                    .iter()
                    .map(|c| match c.diff.as_deref().and_then(diff_counts) {
                        Some((plus, minus)) => format!("{} (+{plus} −{minus})", c.path),
                        None => c.path.clone(),
                    })
                    .collect();
                if parts.is_empty() {
                    continue;
                }
                let text = format!("changed {}", parts.join(", "));
                let mut e = entry(Section::Evidence, one_line(&text, MAX_TEXT), one_line(&text, 100), event);
                e.files = changes.iter().map(|c| c.path.clone()).collect();
                out.push(e);
            }
            Body::TurnFinished { turn, outcome, summary, .. } => {
                // The turn's file changes are judged from its end on.
                for e in out
                    .iter_mut()
                    .rev()
                    .take_while(|e| e.event > last_end.get(&event.execution_id).copied().unwrap_or(0))
                {
                    if e.execution == event.execution_id && !e.files.is_empty() {
                        e.settled_at = event.at;
                    }
                }
                last_end.insert(event.execution_id, event.id);
                let who = label(&execs, event.execution_id);
                let role = event.execution_id.and_then(|e| execs.get(&e)).map(|e| e.role);
                // A turn's end settles the question it asked (nobody can answer it any more).
                if let Some(exec) = event.execution_id {
                    settle(&mut out, &mut open, &format!("question:{exec}"));
                }
                let summary = one_line(summary, MAX_TEXT);
                match outcome {
                    TurnOutcome::Completed => {
                        // A later success settles this execution's earlier failure.
                        if let Some(exec) = event.execution_id {
                            settle(&mut out, &mut open, &format!("failed:{exec}"));
                        }
                        let was_handoff = std::mem::take(&mut handoff);
                        if let Some((_, done)) = &mut last_request
                            && !was_handoff
                        {
                            *done = true;
                        }
                        let verb = match role {
                            _ if was_handoff => "handoff",
                            Some(Role::Reviewer) => "reviewer's findings",
                            Some(Role::Tester) => "tester's result",
                            _ => "finished",
                        };
                        let text = format!("{who} turn {turn} {verb}: {summary}");
                        let short = format!("{who} turn {turn} {verb}: {}", one_line(&summary, 100));
                        out.push(entry(Section::Outcome, text, short, event));
                    }
                    TurnOutcome::Interrupted => {
                        let why = stop_reason.take().unwrap_or_else(|| "interrupted".to_owned());
                        let text = format!("{who} turn {turn} interrupted ({why})");
                        out.push(entry(Section::Rejected, text.clone(), one_line(&text, 120), event));
                    }
                    TurnOutcome::Failed { message } => {
                        let text = format!("{who} turn {turn} failed: {}", one_line(message, 300));
                        failed(&mut out, &mut open, event, text, &entry);
                    }
                    TurnOutcome::TimedOut { limit_secs } => {
                        let text = format!("{who} turn {turn} timed out after {limit_secs} s");
                        failed(&mut out, &mut open, event, text, &entry);
                    }
                }
            }
            _ => {}
        }
    }
    // Settled open items were marked with an empty text; they go.
    out.retain(|e| !(e.section == Section::Open && e.text.is_empty()));
    let next_action = match last_request {
        Some((words, false)) => Some(format!("finish what was last asked: {words}")),
        _ => None,
    };
    Captured { entries: out, next_action }
}

/// Removes an open item (blanked now, dropped at the end so indices stay valid).
fn settle(out: &mut [CapturedEntry], open: &mut BTreeMap<String, usize>, key: &str) {
    if let Some(i) = open.remove(key) {
        out[i].text.clear();
    }
}

fn failed(
    out: &mut Vec<CapturedEntry>,
    open: &mut BTreeMap<String, usize>,
    event: &Event,
    text: String,
    entry: &impl Fn(Section, String, String, &Event) -> CapturedEntry,
) {
    if let Some(exec) = event.execution_id {
        settle(out, open, &format!("failed:{exec}"));
        open.insert(format!("failed:{exec}"), out.len());
    }
    out.push(entry(Section::Open, text.clone(), one_line(&text, 120), event));
}
