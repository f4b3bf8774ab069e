//! The agent side of the engine, as pure functions: (runtime event, what the owner knows of
//! the execution) → a plan of effects, like [`crate::route`] does for people's messages. The
//! execution's owner applies the plan in one transaction; nothing a person sees or another
//! replica needs is decided in the owner's private state.

use std::collections::BTreeSet;

use crate::model::{Body, CommandRun, ExecutionStatus, Id, Role, SessionStatus, TaskStatus, TurnEvidence, TurnStatus};
use crate::plan::{Effect, Plan, TaskRef};
use crate::reply::{Reply, ReplyKind};
use crate::runtime::{ApprovalDecision, RuntimeEvent, TurnOutcome, one_line, summarize};

/// Longest live status line, in characters.
const MAX_LIVE: usize = 200;
/// Longest end-of-turn line.
const MAX_SUMMARY: usize = 300;
/// Streamed text shows as a draft (where a chat can show one) once this many characters
/// arrived since the last saved event: a draft every sentence or so, not every token.
const DRAFT_STEP: usize = 120;
/// A draft shows at most the last this many characters of the turn's text.
const MAX_DRAFT: usize = 3500;

/// What the owner has seen of the turn in flight. Streamed text is kept here and saved to
/// the timeline with the next event that is saved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnProgress {
    pub id: Id,
    /// All agent text of the turn so far.
    pub text: String,
    /// The part of `text` not yet on the timeline.
    pub unsaved: String,
    pub commands: Vec<CommandRun>,
    pub files: BTreeSet<String>,
}

impl TurnProgress {
    pub fn new(id: Id) -> Self {
        TurnProgress { id, ..TurnProgress::default() }
    }

    /// Takes in what an event adds to the turn's record (text, commands, files).
    pub fn observe(&mut self, event: &RuntimeEvent) {
        match event {
            RuntimeEvent::AgentText { text } => {
                self.text.push_str(text);
                self.unsaved.push_str(text);
            }
            RuntimeEvent::CommandFinished { command, exit_code, .. } => {
                self.commands.push(CommandRun { command: command.clone(), exit_code: *exit_code });
            }
            RuntimeEvent::FileChanged { changes, applied: true, .. } => {
                self.files.extend(changes.iter().map(|c| c.path.clone()));
            }
            _ => {}
        }
    }

    pub fn evidence(&self) -> TurnEvidence {
        TurnEvidence {
            id: crate::notes::turn_evidence_id(self.id),
            commands: self.commands.clone(),
            files: self.files.iter().cloned().collect(),
        }
    }
}

/// What the owner knows about the execution an event belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecView<'a> {
    pub execution: Id,
    pub task: Id,
    /// Display name ("Codex").
    pub agent: &'a str,
    pub role: Role,
    pub title: &'a str,
    /// The live session's row.
    pub session: Option<Id>,
    pub turn: Option<&'a TurnProgress>,
    /// Another execution of the task still works: the task stays running after this turn.
    pub others_busy: bool,
    /// Where the agent works (what an approval card names for a command).
    pub cwd: &'a str,
    /// A standing rule that approves the action an approval request asks for.
    pub rule: Option<Id>,
}

/// The plan for one runtime event.
pub fn react(event: &RuntimeEvent, view: &ExecView<'_>) -> Plan {
    let mut plan = Plan::default();
    if matches!(event, RuntimeEvent::AgentText { .. }) {
        // Text waits in the turn's progress; the next saved event carries it along. Enough
        // of it is saved now and shown as the turn's draft (streamed to the phone).
        if let Some(turn) = view.turn
            && turn.unsaved.chars().count() >= DRAFT_STEP
        {
            flush_text(&mut plan, view);
            plan.push(Effect::Reply(draft(turn)));
        }
        return plan;
    }
    if let RuntimeEvent::TurnFinished { outcome, usage } = event {
        return finished(view, outcome, usage.clone());
    }
    flush_text(&mut plan, view);
    match event {
        RuntimeEvent::SessionReady { provider_session_id, .. } => {
            if let Some(session) = view.session {
                plan.push(Effect::SetSession {
                    session,
                    to: SessionStatus::Ready,
                    provider_session_id: Some(provider_session_id.clone()),
                });
            }
            record(&mut plan, view, event);
        }
        RuntimeEvent::ApprovalRequested(request) => {
            let (text, detail) = crate::wording::approval_card(view.agent, request, view.cwd, view.task);
            let turn = view.turn.map(|t| t.id);
            if let Some(rule) = view.rule {
                // Approved by a standing rule: recorded, delivered at once, nobody asked.
                plan.push(Effect::AskApproval { turn, request: request.clone(), text, detail, rule: Some(rule) });
                let line = one_line(&format!("{} is working (approved by rule #{rule})", view.agent), MAX_LIVE);
                live(&mut plan, view, line);
                return plan;
            }
            let line =
                live_line(view.agent, event).unwrap_or_else(|| format!("{} is waiting for approval", view.agent));
            if let Some(turn) = turn {
                plan.push(Effect::SetTurn { turn, to: TurnStatus::WaitingApproval, summary: None });
            }
            plan.push(Effect::SetTask { to: TaskStatus::WaitingApproval });
            plan.push(Effect::AskApproval { turn, request: request.clone(), text, detail, rule: None });
            live(&mut plan, view, line);
        }
        RuntimeEvent::ApprovalResolved { request_id, decision } => {
            if decision.is_none() {
                plan.push(Effect::WithdrawApproval { request_id: request_id.clone() });
            }
            record(&mut plan, view, event);
            if let Some(line) = live_line(view.agent, event) {
                live(&mut plan, view, line);
            }
        }
        RuntimeEvent::Question { text, .. } => {
            record(&mut plan, view, event);
            plan.push(Effect::SetTask { to: TaskStatus::WaitingInput });
            let line = one_line(&format!("{} asks: {text}", view.agent), MAX_SUMMARY);
            plan.push(Effect::Reply(Reply::text(line).kind(ReplyKind::Question)));
        }
        RuntimeEvent::Died { restarting, .. } => {
            record(&mut plan, view, event);
            if let Some(line) = summarize(view.agent, event) {
                plan.push(Effect::Reply(Reply::text(line)));
            }
            if !restarting {
                if let Some(session) = view.session {
                    plan.push(Effect::SetSession { session, to: SessionStatus::Dead, provider_session_id: None });
                }
                if view.turn.is_some() {
                    let outcome = TurnOutcome::Failed { message: "the agent process died".into() };
                    plan.effects.extend(finished(&ExecView { session: None, ..view.clone() }, &outcome, None).effects);
                }
            }
        }
        _ => {
            record(&mut plan, view, event);
            if let Some(line) = live_line(view.agent, event) {
                live(&mut plan, view, line);
            }
        }
    }
    plan
}

/// The owner sent `turn` to the agent: everything above it is busy now.
pub fn turn_started(view: &ExecView<'_>, turn: Id) -> Plan {
    let mut plan = Plan::default();
    plan.push(Effect::SetTurn { turn, to: TurnStatus::Running, summary: None });
    if let Some(session) = view.session {
        plan.push(Effect::SetSession { session, to: SessionStatus::Busy, provider_session_id: None });
    }
    plan.push(Effect::SetExecution { to: ExecutionStatus::Running });
    plan.push(Effect::SetTask { to: TaskStatus::Running });
    plan
}

/// A decision reached the agent: the turn goes on.
pub fn decided(view: &ExecView<'_>, decision: ApprovalDecision, still_waiting: bool) -> Plan {
    let mut plan = Plan::default();
    let Some(turn) = view.turn else { return plan };
    if decision != ApprovalDecision::DenyAndStop && !still_waiting {
        plan.push(Effect::SetTurn { turn: turn.id, to: TurnStatus::Running, summary: None });
        plan.push(Effect::SetTask { to: TaskStatus::Running });
    }
    let event = RuntimeEvent::ApprovalResolved { request_id: String::new(), decision: Some(decision) };
    if let Some(line) = live_line(view.agent, &event) {
        live(&mut plan, view, line);
    }
    plan
}

/// The turn in flight ended: statuses by outcome, the session ready for the next turn, its
/// pending approvals expired, the result on the timeline, the status line and one message.
pub fn finished(view: &ExecView<'_>, outcome: &TurnOutcome, usage: Option<crate::runtime::Usage>) -> Plan {
    let mut plan = Plan::default();
    let Some(turn) = view.turn else { return plan };
    flush_text(&mut plan, view);
    let (turn_to, exec_to, task_to) = match outcome {
        TurnOutcome::Completed => (TurnStatus::Completed, ExecutionStatus::Idle, TaskStatus::Idle),
        TurnOutcome::Interrupted | TurnOutcome::TimedOut { .. } => {
            (TurnStatus::Interrupted, ExecutionStatus::Idle, TaskStatus::Idle)
        }
        TurnOutcome::Failed { .. } => (TurnStatus::Failed, ExecutionStatus::Failed, TaskStatus::Failed),
    };
    let status_line = finished_line(view.agent, view.role, view.title, outcome);
    let summary = match last_line(&turn.text) {
        Some(reply) => one_line(&format!("{status_line}: {reply}"), MAX_SUMMARY),
        None => status_line.clone(),
    };
    plan.push(Effect::SetTurn { turn: turn.id, to: turn_to, summary: Some(summary.clone()) });
    if let Some(session) = view.session {
        plan.push(Effect::SetSession { session, to: turn_to.session_after(), provider_session_id: None });
    }
    plan.push(Effect::ExpireApprovals { turn: turn.id, reason: "the turn ended before an answer".into() });
    plan.push(Effect::SetExecution { to: exec_to });
    if !view.others_busy {
        plan.push(Effect::SetTask { to: task_to });
    }
    plan.push(Effect::Record {
        task: TaskRef::Existing(view.task),
        body: Body::TurnFinished {
            turn: turn.id,
            outcome: outcome.clone(),
            usage,
            summary: summary.clone(),
            evidence: turn.evidence(),
        },
    });
    let text = final_text(view, outcome, &status_line, &turn.text);
    plan.push(Effect::Live { turn: turn.id, line: status_line, running: false });
    plan.push(Effect::Reply(Reply { closes: Some(live_key(turn.id)), ..Reply::text(text).kind(ReplyKind::Final) }));
    plan
}

/// The key every status update of `turn` shares: channels edit one message per key.
pub fn live_key(turn: Id) -> String {
    format!("turn:{turn}")
}

/// Longest final message, in characters: a phone screen or two.
const MAX_FINAL: usize = 1200;

/// The one notifying message of a turn: what the agent said, condensed to a phone's size,
/// after a headline only where the chat needs one (another role than the editor, or a turn
/// that did not complete).
fn final_text(view: &ExecView<'_>, outcome: &TurnOutcome, status_line: &str, said: &str) -> String {
    let result = condensed(said, MAX_FINAL, view.task);
    match (outcome, view.role, result) {
        (TurnOutcome::Completed, Role::Editor, Some(result)) => result,
        (TurnOutcome::Completed, _, Some(result)) => format!("{status_line}:\n{result}"),
        _ => status_line.to_owned(),
    }
}

/// The end of `text` within `max` characters, cut on a paragraph (else line) boundary, with
/// code fences kept balanced and a pointer to the whole text when anything was cut.
pub fn condensed(text: &str, max: usize, task: Id) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.chars().count() <= max {
        return Some(text.to_owned());
    }
    let budget = max.saturating_sub(80);
    let mut kept: Vec<String> = Vec::new();
    let mut used = 0;
    for line in text.lines().rev() {
        let n = line.chars().count() + 1;
        if used + n > budget {
            break;
        }
        used += n;
        kept.push(line.to_owned());
    }
    if kept.is_empty() {
        // One enormous last line: its end.
        let chars: Vec<char> = text.chars().collect();
        kept.push(chars[chars.len().saturating_sub(budget)..].iter().collect());
    }
    kept.reverse();
    // Start at a paragraph when one begins in what was kept.
    if let Some(start) = kept.iter().position(|l| l.trim().is_empty())
        && start + 1 < kept.len()
    {
        kept.drain(..=start);
    }
    let mut body = kept.join("\n");
    if body.matches("```").count() % 2 == 1 {
        body = format!("```\n{body}");
    }
    Some(format!("…\n{body}\n\n(cut: the whole result is on task #{task} in the web console)"))
}

/// A turn that never got to the agent (the session could not start): failed, with why.
pub fn unstarted(view: &ExecView<'_>, turn: Id, message: &str) -> Plan {
    let mut plan = Plan::default();
    // Queued → Failed is not a move the turn machine has: it goes through Running.
    plan.push(Effect::SetTurn { turn, to: TurnStatus::Running, summary: None });
    plan.push(Effect::SetTurn { turn, to: TurnStatus::Failed, summary: Some(message.to_owned()) });
    plan.push(Effect::SetExecution { to: ExecutionStatus::Running });
    plan.push(Effect::SetExecution { to: ExecutionStatus::Failed });
    plan.push(Effect::SetTask { to: TaskStatus::Failed });
    plan.push(Effect::Record {
        task: TaskRef::Existing(view.task),
        body: Body::TurnFinished {
            turn,
            outcome: TurnOutcome::Failed { message: message.to_owned() },
            usage: None,
            summary: message.to_owned(),
            evidence: TurnEvidence { id: crate::notes::turn_evidence_id(turn), ..TurnEvidence::default() },
        },
    });
    plan.push(Effect::Reply(Reply::text(message).kind(ReplyKind::Final)));
    plan
}

/// A turn whose runner went away mid-run (a gateway stop, or a crash noticed by the next
/// owner): it ends as interrupted, its pending approvals expire (their requests died with the
/// process), and the same input runs again as the execution's next turn. `notice` is the one
/// line the chat gets about it, when it has not had one yet.
pub fn handed_over(view: &ExecView<'_>, turn: Id, input: &str, reason: &str, notice: Option<String>) -> Plan {
    let mut plan = Plan::default();
    flush_text(&mut plan, view);
    plan.push(Effect::SetTurn { turn, to: TurnStatus::Interrupted, summary: Some(reason.to_owned()) });
    plan.push(Effect::ExpireApprovals { turn, reason: reason.to_owned() });
    plan.push(Effect::Record {
        task: TaskRef::Existing(view.task),
        body: Body::TurnHandedOver { turn, reason: reason.to_owned() },
    });
    plan.push(Effect::QueueTurn { execution: view.execution, input: rerun_input(input) });
    if let Some(line) = notice {
        plan.push(Effect::Reply(Reply::text(line)));
    }
    plan
}

/// What the agent reads when a turn runs again after a restart.
pub fn rerun_input(input: &str) -> String {
    const PREFIX: &str = "(The gateway restarted during this request; do it again.)";
    if input.starts_with(PREFIX) { input.to_owned() } else { format!("{PREFIX}\n\n{input}") }
}

/// The line the chat reads when its turn runs again: "Codex was interrupted by a gateway
/// restart; running your last message again."
pub fn restart_notice(agent: &str) -> String {
    format!("{agent} was interrupted by a gateway restart; running your last message again.")
}

/// The status line an event puts in the turn's live message, `None` when it changes nothing
/// a person would look for (streamed text, session plumbing).
pub fn live_line(agent: &str, event: &RuntimeEvent) -> Option<String> {
    let line = match event {
        RuntimeEvent::TurnStarted { .. }
        | RuntimeEvent::Plan { .. }
        | RuntimeEvent::CommandStarted { .. }
        | RuntimeEvent::CommandFinished { .. }
        | RuntimeEvent::FileChanged { .. }
        | RuntimeEvent::ApprovalRequested(_) => summarize(agent, event)?,
        // The agent goes on after the answer: say so, with the answer.
        RuntimeEvent::ApprovalResolved { decision: Some(decision), .. } => match decision {
            ApprovalDecision::AllowOnce | ApprovalDecision::AllowForSession => format!("{agent} is working (approved)"),
            ApprovalDecision::Deny => format!("{agent} is working (denied)"),
            ApprovalDecision::DenyAndStop => format!("{agent} is stopping (denied)"),
        },
        RuntimeEvent::ApprovalResolved { decision: None, .. } => summarize(agent, event)?,
        _ => return None,
    };
    Some(one_line(&line, MAX_LIVE))
}

/// How the turn ended: "Codex finished", "Claude finished reviewing 'fix routing'", "Codex
/// failed: tests still red".
pub fn finished_line(agent: &str, role: Role, title: &str, outcome: &TurnOutcome) -> String {
    let line = match (outcome, role) {
        (TurnOutcome::Completed, Role::Reviewer) => format!("{agent} finished reviewing '{title}'"),
        (TurnOutcome::Completed, Role::Tester) => format!("{agent} finished testing '{title}'"),
        _ => summarize(agent, &RuntimeEvent::TurnFinished { outcome: outcome.clone(), usage: None })
            .unwrap_or_else(|| format!("{agent} finished")),
    };
    one_line(&line, MAX_LIVE)
}

/// The agent's last non-empty line: what a phone shows as the result.
fn last_line(text: &str) -> Option<String> {
    text.lines().map(str::trim).rfind(|l| !l.is_empty()).map(|l| one_line(l, 200))
}

/// The live key of a turn's streamed draft.
pub fn draft_key(turn: Id) -> String {
    format!("{}:draft", live_key(turn))
}

/// The turn's text so far as a draft: its tail when long.
fn draft(turn: &TurnProgress) -> Reply {
    let count = turn.text.chars().count();
    let text = if count > MAX_DRAFT {
        let tail: String = turn.text.chars().skip(count - MAX_DRAFT).collect();
        format!("…{tail}")
    } else {
        turn.text.clone()
    };
    Reply { live: Some(draft_key(turn.id)), ..Reply::text(text.trim().to_owned()).kind(ReplyKind::Draft) }
}

fn flush_text(plan: &mut Plan, view: &ExecView<'_>) {
    if let Some(turn) = view.turn
        && !turn.unsaved.is_empty()
    {
        plan.push(Effect::Record {
            task: TaskRef::Existing(view.task),
            body: Body::AgentText { text: turn.unsaved.clone() },
        });
    }
}

fn record(plan: &mut Plan, view: &ExecView<'_>, event: &RuntimeEvent) {
    if let Some(body) = Body::of_runtime(event) {
        plan.push(Effect::Record { task: TaskRef::Existing(view.task), body });
    }
}

fn live(plan: &mut Plan, view: &ExecView<'_>, line: String) {
    if let Some(turn) = view.turn {
        plan.push(Effect::Live { turn: turn.id, line, running: true });
    }
}

#[cfg(test)]
mod tests;
