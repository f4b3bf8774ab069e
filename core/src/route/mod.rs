//! The router: (decision, conversation and task state) → a plan of effects. Pure, so every
//! rule is a table-driven test; the bot applies the plan in one transaction.

pub mod prompt;
mod state;
mod words;

pub use crate::plan::{Effect, ExecRef, Plan, TaskRef};
pub use state::{ApprovalState, BusyPolicy, ConversationState, ExecutionState, ProjectInfo, Sender, TaskState};

use crate::classify::{Decision, Intent};
use crate::model::{Answer, ApprovalStatus, Body, Id, Role, Scope};
use crate::reply::{Action, Button, Reply};
use words::{agent_name, approval_verdict, title_from, when};

/// Routes one classified message. `alternatives` are the likeliest readings when the
/// decision is `clarify`; pressing a button re-routes the chosen one with the same text.
pub fn route(
    decision: &Decision,
    alternatives: &[Decision],
    text: &str,
    sender: &Sender,
    state: &ConversationState,
) -> Plan {
    let mut plan = Plan::default();
    let target = decision.task.as_deref().and_then(|id| id.parse::<Id>().ok()).and_then(|id| state.task(id));
    // Every message that lands on a task is on its timeline, with the decision and why.
    let record = |plan: &mut Plan, task: TaskRef| {
        plan.push(Effect::Record {
            task,
            body: Body::Message {
                text: text.to_owned(),
                from: sender.name.clone(),
                person_id: Some(sender.person_id),
                channel: Some(sender.channel),
            },
        });
        plan.push(Effect::Record {
            task,
            body: Body::Decision {
                intent: decision.intent,
                confidence: decision.confidence,
                reason: decision.reason.clone(),
            },
        });
    };

    match decision.intent {
        Intent::Ignore => {}
        Intent::Continue => match target {
            Some(task) => {
                record(&mut plan, TaskRef::Existing(task.task.id));
                focus(&mut plan, state, task.task.id);
                continue_task(&mut plan, state, task, text);
            }
            None => new_task(&mut plan, record, state, decision.agent.as_deref(), text),
        },
        Intent::NewTask => new_task(&mut plan, record, state, decision.agent.as_deref(), text),
        Intent::Spawn => {
            let task = target.or_else(|| state.focused_task.and_then(|id| state.task(id)));
            match task {
                Some(task) => {
                    record(&mut plan, TaskRef::Existing(task.task.id));
                    focus(&mut plan, state, task.task.id);
                    let agent = decision.agent.clone().unwrap_or_else(|| state.project.default_agent.clone());
                    let role = decision.role.unwrap_or(Role::Editor);
                    spawn(&mut plan, task, &agent, role, text);
                }
                None => new_task(&mut plan, record, state, decision.agent.as_deref(), text),
            }
        }
        Intent::NewSession => match target.and_then(|t| t.main_execution().map(|e| (t, e))) {
            Some((task, exec)) => {
                record(&mut plan, TaskRef::Existing(task.task.id));
                let usable = exec.session.as_ref().is_some_and(|s| s.status.is_usable()) && !exec.busy;
                // `/new!`: straight to a fresh session.
                let skipped = text.trim_start().starts_with("/new!");
                let agent = agent_name(&exec.execution.agent);
                if state.project.handoff && usable && !skipped {
                    plan.push(Effect::Handoff { execution: exec.execution.id, input: prompt::HANDOFF.to_owned() });
                    plan.reply(format!(
                        "Fresh session for '{}': {agent} first writes down what it found in the restart note \
                         (a short handoff; /new! skips it), then your next message starts clean, with the note.",
                        task.task.title
                    ));
                } else {
                    plan.push(Effect::CloseSession { execution: exec.execution.id });
                    let why = if !state.project.handoff {
                        ""
                    } else if skipped {
                        " No handoff (/new!)."
                    } else {
                        " No handoff: the old session is not usable."
                    };
                    plan.reply(format!(
                        "Fresh session for '{}': the next message starts clean, with the restart note.{why}",
                        task.task.title
                    ));
                }
            }
            None => {
                plan.reply("There is no task here to restart; send a goal to start one.");
            }
        },
        Intent::Approve | Intent::Deny => {
            let approval = decision.approval.as_deref().and_then(|id| id.parse::<Id>().ok());
            match approval.and_then(|id| state.approval(id)) {
                Some((task, approval)) => {
                    record(&mut plan, TaskRef::Existing(task.task.id));
                    resolve(&mut plan, decision, approval, text);
                }
                None => {
                    plan.reply("That approval is no longer open.");
                }
            }
        }
        Intent::Status => match target {
            Some(task) => {
                plan.reply(words::task_status(task));
            }
            None => {
                plan.reply(words::overview(state));
            }
        },
        Intent::Cancel => match target {
            Some(task) => {
                record(&mut plan, TaskRef::Existing(task.task.id));
                match task.busy_execution() {
                    Some(exec) => {
                        // Stop wins: whatever the turn waits on is denied with it, so no card
                        // stays answerable for a turn that is gone.
                        for pending in task.approvals.iter().filter(|a| {
                            a.approval.status == ApprovalStatus::Pending
                                && a.approval.execution_id.is_none_or(|e| e == exec.execution.id)
                        }) {
                            plan.push(Effect::Resolve {
                                approval: pending.approval.id,
                                answer: Answer::DenyAndStop,
                                note: None,
                            });
                        }
                        plan.push(Effect::InterruptTurn { execution: exec.execution.id });
                        plan.push(Effect::Ack(format!("Stopping {}…", agent_name(&exec.execution.agent))));
                    }
                    None => {
                        plan.reply(format!("Nothing is running on '{}'.", task.task.title));
                    }
                }
            }
            None => {
                plan.reply("Nothing to stop here.");
            }
        },
        Intent::Clarify => clarify(&mut plan, alternatives, state),
    }
    plan
}

fn focus(plan: &mut Plan, state: &ConversationState, task: Id) {
    if state.focused_task != Some(task) {
        plan.push(Effect::Focus { task: TaskRef::Existing(task) });
    }
}

fn continue_task(plan: &mut Plan, state: &ConversationState, task: &TaskState, text: &str) {
    // A turn blocked on a question ends only with the answer: queueing would wait for its
    // time limit, and the busy policy is about work in progress, not a question asked.
    if let Some(exec) = task.asking_execution() {
        plan.push(Effect::AnswerQuestion { execution: exec.execution.id, text: text.to_owned() });
        plan.push(Effect::Ack(format!("{} got your answer", agent_name(&exec.execution.agent))));
        return;
    }
    let Some(exec) = task.main_execution() else {
        // A task without an execution (all were cancelled): start one with the default agent.
        let agent = state.project.default_agent.clone();
        plan.push(Effect::CreateExecution {
            task: TaskRef::Existing(task.task.id),
            agent: agent.clone(),
            role: Role::Editor,
        });
        let input = first_turn(plan, task, Role::Editor, text);
        plan.push(Effect::StartTurn { execution: ExecRef::Created, input, fresh_session: true });
        plan.push(Effect::Ack(format!("{} is on it", agent_name(&agent))));
        return;
    };
    let id = exec.execution.id;
    let agent = agent_name(&exec.execution.agent);
    if !exec.busy {
        // Sticky: the same session when it is usable; else a fresh one seeded with the note.
        let usable = exec.session.as_ref().is_some_and(|s| s.status.is_usable());
        let input = sticky_input(plan, task, usable, text);
        plan.push(Effect::StartTurn { execution: ExecRef::Existing(id), input, fresh_session: !usable });
        return;
    }
    let policy = match state.project.busy_policy {
        BusyPolicy::Steer if !exec.can_steer => BusyPolicy::Queue,
        policy => policy,
    };
    match policy {
        BusyPolicy::Queue => {
            // Behind a closed session's last turn (a `/new` handoff): the turn starts the fresh
            // session, so it carries the note like any first prompt.
            let usable = exec.session.as_ref().is_some_and(|s| s.status.is_usable());
            let input = sticky_input(plan, task, usable, text);
            plan.push(Effect::QueueTurn { execution: id, input });
            plan.push(Effect::Ack(format!("Queued for {agent}, {} ahead", exec.queued + 1)));
        }
        BusyPolicy::Steer => {
            plan.push(Effect::SteerTurn { execution: id, input: text.to_owned() });
            plan.push(Effect::Ack(format!("Passed to {agent} while it works")));
        }
        BusyPolicy::Interrupt => {
            plan.push(Effect::InterruptTurn { execution: id });
            let usable = exec.session.as_ref().is_some_and(|s| s.status.is_usable());
            let input = sticky_input(plan, task, usable, text);
            plan.push(Effect::StartTurn { execution: ExecRef::Existing(id), input, fresh_session: !usable });
            plan.push(Effect::Ack(format!("{agent} stopped its last turn to take this one")));
        }
    }
}

/// The first prompt of a new execution of `task` (its context goes in: see `Plan::seeded`).
fn first_turn(plan: &mut Plan, task: &TaskState, role: Role, text: &str) -> String {
    plan.seeded.push(task.task.id);
    prompt::first_turn(task, role, text)
}

/// The message itself in a usable session; else it starts a fresh one, seeded with the
/// task's context (see `Plan::seeded`).
fn sticky_input(plan: &mut Plan, task: &TaskState, usable: bool, text: &str) -> String {
    if usable {
        return text.to_owned();
    }
    plan.seeded.push(task.task.id);
    prompt::reseeded(task, text)
}

fn spawn(plan: &mut Plan, task: &TaskState, agent: &str, role: Role, text: &str) {
    plan.push(Effect::CreateExecution { task: TaskRef::Existing(task.task.id), agent: agent.to_owned(), role });
    let input = first_turn(plan, task, role, text);
    plan.push(Effect::StartTurn { execution: ExecRef::Created, input, fresh_session: true });
    let doing = match role {
        Role::Reviewer => "reviewing",
        Role::Tester => "testing",
        Role::Editor => "working on",
    };
    plan.push(Effect::Ack(format!("{} is {doing} '{}'", agent_name(agent), task.task.title)));
}

fn new_task(
    plan: &mut Plan,
    record: impl Fn(&mut Plan, TaskRef),
    state: &ConversationState,
    agent: Option<&str>,
    text: &str,
) {
    let agent = agent.unwrap_or(&state.project.default_agent).to_owned();
    let title = title_from(text);
    plan.push(Effect::CreateTask { title: title.clone(), goal: text.to_owned(), project_id: state.project.id });
    record(plan, TaskRef::Created);
    plan.push(Effect::CreateExecution { task: TaskRef::Created, agent: agent.clone(), role: Role::Editor });
    plan.push(Effect::Focus { task: TaskRef::Created });
    plan.push(Effect::StartTurn { execution: ExecRef::Created, input: text.to_owned(), fresh_session: true });
    plan.push(Effect::Ack(format!("New task '{title}': {} is on it", agent_name(&agent))));
}

fn resolve(plan: &mut Plan, decision: &Decision, approval: &ApprovalState, text: &str) {
    let a = &approval.approval;
    if a.status != ApprovalStatus::Pending {
        let who = approval.decided_by_name.as_deref().unwrap_or("someone");
        let channel = a.decided_channel.map(|c| words::channel_name(c).to_owned());
        let details = match (channel, a.decided_at) {
            (Some(c), Some(at)) => format!(" ({c}, {})", when(at)),
            (Some(c), None) => format!(" ({c})"),
            (None, Some(at)) => format!(" ({})", when(at)),
            (None, None) => String::new(),
        };
        plan.reply(format!("Already {} by {who}{details}.", approval_verdict(a.status)));
        return;
    }
    let answer = if decision.intent == Intent::Approve {
        Answer::Approve(decision.scope.unwrap_or(Scope::Once))
    } else if words::is_stop(text) {
        // "stop" answering an approval denies it and stops the turn: the person wants the
        // agent to halt, not to go on without this one action.
        Answer::DenyAndStop
    } else {
        Answer::Deny
    };
    // "no, run only the unit tests": the instruction travels with the denial.
    let note = (answer == Answer::Deny && words::has_instruction(text)).then(|| text.to_owned());
    // The card itself is edited to say how it was decided: no message of its own.
    plan.push(Effect::Resolve { approval: a.id, answer, note });
}

fn clarify(plan: &mut Plan, alternatives: &[Decision], state: &ConversationState) {
    let buttons: Vec<Button> = alternatives
        .iter()
        .take(2)
        .enumerate()
        .map(|(choice, d)| Button {
            label: words::reading(d, state),
            action: Action::Choose { choice, reading: d.clone() },
        })
        .collect();
    let text = if buttons.is_empty() {
        "I'm not sure what you mean. Could you say which task, or what to do?".to_owned()
    } else {
        "Did you mean:".to_owned()
    };
    plan.push(Effect::Reply(Reply { text, buttons, ..Reply::default() }));
}

#[cfg(test)]
mod tests;
