//! Rule 6: another agent asked to act: on the current work (`spawn`, with a role) or on an
//! unrelated goal (`new_task` with that agent).

use super::backref::{Back, back_reference, described};
use super::decision::{Decision, Intent, Role};
use super::message::Msg;
use super::rules::Env;
use super::target::{self, Via};
use super::topic::NAMES;
use super::vocab::{Class, Hit};

/// Rule 6: an agent asked to act (named in the text or by a `/alias` command); `agent`
/// indexes the lexicon's agents.
pub(crate) fn agent_request(env: &Env, agent: u16) -> Decision {
    let (ctx, m) = (env.ctx, env.msg);
    let name = env.lex.agents[agent as usize].as_str();
    if !ctx.has_agent(name) {
        return Decision::clarify(format!("agent {name} is not configured"));
    }
    let role = role(m);
    let back = back_reference(env);
    let novel = env.novel(usize::MAX);
    let resolved = target::resolve(ctx, &env.scores);
    let named = env.best_score() >= NAMES;
    // Reviewing or testing "the numbers" is likelier about this work than writing "the
    // changelog" is.
    let small = if role == Role::Editor { 1.0 } else { 1.5 };
    let about_work = match back {
        Back::Strong => true,
        Back::Pronoun(p) => named || !described(env, p),
        Back::None => named || novel < small,
    };
    if !about_work || ctx.tasks.is_empty() && ctx.reply_to.is_none() {
        if ctx.tasks.is_empty() && back != Back::None && novel < 1.0 {
            return Decision::clarify("nothing visible for the agent to work on");
        }
        return Decision::new(Intent::NewTask, 0.8, "another agent asked for an unrelated goal").agent(Some(name));
    }
    let Some(t) = resolved.found() else {
        return Decision::clarify("which task should the agent work on?");
    };
    if role == Role::Editor && t.task.is_some_and(|t| t.agents.iter().any(|a| a == name)) {
        return Decision::new(Intent::Continue, 0.7, "the task's own agent asked to go on").task(Some(t.id));
    }
    let conf = if t.via == Via::Active || t.via == Via::Only { 0.85 } else { 0.9 };
    Decision::new(Intent::Spawn, conf, "another agent asked to act on this work")
        .task(Some(t.id))
        .agent(Some(name))
        .role(role)
}

/// The role words of a spawn: the first reviewer, tester or strong editor word wins;
/// "look at" alone means reviewer; no role word means editor.
pub(crate) fn role(m: &Msg) -> Role {
    // A role word inside a noun phrase ("the fix", "这个修复") names the work, not the role.
    let in_noun = |h: &Hit| {
        m.hits
            .iter()
            .any(|w| w.is(Class::WorkNoun) && w.start <= h.start && w.end >= h.end && w.end - w.start > h.end - h.start)
    };
    // "… a staging tenant for QA": a purpose, not the agent's role.
    let purpose = |h: &Hit| {
        m.tok_before(h.start).is_some_and(|t| {
            m.adjacent(t.end, h.start) && matches!(m.word(t), "for" | "before" | "after" | "so" | "until")
        })
    };
    let first = m
        .hits
        .iter()
        .filter(|h| !h.is(Class::Agent) && !m.negated(h) && !in_noun(h) && !purpose(h))
        .find(|h| h.is(Class::RoleReview) || h.is(Class::RoleTest) || h.is(Class::RoleEdit));
    match first {
        Some(h) => longest_role(m, h),
        None if m.has_live(Class::RoleLook) => Role::Reviewer,
        None => Role::Editor,
    }
}

/// Among role hits at the same start, the longest decides ("write tests" over "write").
fn longest_role(m: &Msg, h: &Hit) -> Role {
    let h = m
        .hits
        .iter()
        .filter(|o| o.start == h.start && (o.is(Class::RoleReview) || o.is(Class::RoleTest) || o.is(Class::RoleEdit)))
        .max_by_key(|o| o.end)
        .unwrap_or(h);
    if h.is(Class::RoleTest) {
        Role::Tester
    } else if h.is(Class::RoleReview) {
        Role::Reviewer
    } else {
        Role::Editor
    }
}
