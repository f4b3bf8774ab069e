//! First prompts for new runtime sessions and executions: the task's context plus a role
//! template, so a reviewer, a tester or a fresh session starts from the work, not from zero.

use super::state::TaskState;
use crate::model::Role;

fn role_template(role: Role) -> &'static str {
    match role {
        Role::Editor => {
            "You are implementing this task. Make the change, run the relevant checks, and \
             report what you changed and how you verified it."
        }
        Role::Reviewer => {
            "You are reviewing another agent's work on this task. Review the changes and report \
             findings (file, line, problem, suggested fix), most important first. Do not edit \
             files unless asked to."
        }
        Role::Tester => {
            "You are testing this task. Write tests for the change, run them, and report what \
             passes and what fails, with the commands you ran."
        }
    }
}

/// The task's context, for a session that has none yet.
pub fn context(task: &TaskState) -> String {
    let mut out = format!("Task: {}\n", task.task.title);
    if task.task.goal != task.task.title && !task.task.goal.is_empty() {
        out.push_str(&format!("Goal: {}\n", task.task.goal));
    }
    if let Some(note) = &task.restart_note {
        out.push_str(&format!("\nRestart note (what is known so far):\n{note}\n"));
    }
    if let Some(result) = &task.latest_result {
        out.push_str(&format!("\nLatest result: {result}\n"));
    }
    if !task.changed_files.is_empty() {
        out.push_str(&format!("\nChanged files: {}\n", task.changed_files.join(", ")));
    }
    out
}

/// The first prompt of a new execution in `role`, with the user's own words last.
pub fn first_turn(task: &TaskState, role: Role, request: &str) -> String {
    format!("{}\n{}\n\nRequest: {request}", context(task), role_template(role))
}

/// The first prompt of a fresh session of an existing execution (after `/new` or a session that
/// cannot be resumed): the context, then the message.
pub fn reseeded(task: &TaskState, message: &str) -> String {
    format!("{}\nContinue from the restart note.\n\n{message}", context(task))
}

/// The handoff turn `/new` asks of the old session before a fresh one takes over.
pub const HANDOFF: &str = "taskgate handoff: a fresh session will continue this task from its restart note. \
Before it does, record what you found through the taskgate note tools: record_entry for what you \
verified, ruled out (rejected), left open or are blocked on, each with evidence (turn:<id>, \
file:<path>), and set_next_action for the one next step. Then reply in one short line. Do not \
start new work.";
