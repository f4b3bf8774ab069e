//! Rule 7: a question about progress or outcome is `status`; "why" is for the agent.

use super::agents;
use super::context::TaskRef;
use super::decision::{Decision, Intent};
use super::rules::Env;
use super::target::{self, Resolved};
use super::vocab::Class;

/// Rule 7: a question about progress or outcome (but not "why": only the agent can answer that).
pub(crate) fn status(env: &Env, from: usize) -> Option<Decision> {
    let m = env.msg;
    if m.has_live(Class::Why) {
        return None;
    }
    let phrase = m.live(Class::StatusPhrase).any(|h| {
        let one_word = matches!(&m.norm[h.start..h.end], "status" | "progress" | "eta" | "进度" | "状态" | "进展");
        !one_word || m.question || h.start <= from || m.words_after(from) <= 3.0
    });
    let predicate = m.question
        && m.has_live(Class::StatusPredicate)
        && !m.has(Class::Request)
        && (m.hits.iter().any(|h| h.start == from && h.is(Class::QuestionLead)) || m.words_after(from) <= 5.0);
    if !phrase && !predicate {
        return None;
    }
    let global = m.has_live(Class::StatusGlobal);
    let d = |t: Option<&str>, why: &str| Some(Decision::new(Intent::Status, 0.88, why).task(t));
    if let Some(r) = env.ctx.reply_to.as_deref() {
        return d(Some(r), "progress question on the replied task");
    }
    match target::named(env.ctx, &env.scores) {
        Resolved::Found(t) => return d(Some(t.id), "progress question about a named task"),
        Resolved::Ambiguous => return Some(Decision::clarify("status of which task?")),
        Resolved::None => {}
    }
    if global {
        return d(None, "progress question about everything");
    }
    // "what's codex working on?": the one task that agent works in.
    if let Some(t) = agent_task(env) {
        return d(Some(t), "progress question about an agent's task");
    }
    d(env.ctx.active_task.as_deref(), "progress question")
}

/// The task an agent talked about works in, when it is not the active task's agent and
/// exactly one visible task (or exactly one running task) has it.
fn agent_task<'a>(env: &Env<'a>) -> Option<&'a str> {
    let a = agents::nouns(env.msg).next()?;
    let name = env.lex.agents[a.agent as usize].as_str();
    let ctx = env.ctx;
    let has = |t: &&TaskRef| t.agents.iter().any(|x| x == name);
    if ctx.active_task.as_deref().and_then(|a| ctx.task(a)).as_ref().is_some_and(has) {
        return None;
    }
    let only = |v: Vec<&'a TaskRef>| (v.len() == 1).then(|| v[0].id.as_str());
    only(ctx.tasks.iter().filter(has).collect())
        .or_else(|| only(ctx.tasks.iter().filter(has).filter(|t| t.status.is_active()).collect()))
}
