//! Rule 8: "stop", "abort", "kill it", "停下" aimed at running work.

use super::decision::{Decision, Intent};
use super::message::is_punct;
use super::rules::Env;
use super::target::{self, Resolved, Target, Via};
use super::vocab::{Class, Hit};

/// A stop word aimed at running work. `from` is where the message proper starts.
pub(crate) fn cancel(env: &Env, from: usize) -> Option<Decision> {
    let m = env.msg;
    let h = m
        .hits
        .iter()
        .filter(|h| h.start >= from && (h.is(Class::Stop) || h.is(Class::Abort)))
        .find(|h| !m.negated(h) && !inside_a_word(env, h) && opens_message(env, h, from))?;
    let seg_end = stop_object_end(env, h)?;
    let ctx = env.ctx;
    // The words after the stop word may name the task ("stop the migration one").
    let seg = m.topic.slice(from, seg_end);
    let named = target::named(ctx, &target::scores(&seg, &env.titles));
    let target = match (ctx.reply_to.as_deref(), named) {
        (Some(r), _) => Some(Target { id: r, task: ctx.task(r), via: Via::Reply }),
        (None, Resolved::Found(t)) => Some(t),
        (None, Resolved::Ambiguous) => return Some(Decision::clarify("stop which task?")),
        (None, Resolved::None) => {
            ctx.active_task.as_deref().map(|a| Target { id: a, task: ctx.task(a), via: Via::Active })
        }
    };
    if let Some(t) = target
        && (t.is_running() || t.task.is_none())
    {
        let conf = if t.via == Via::Active { 0.88 } else { 0.92 };
        return Some(Decision::new(Intent::Cancel, conf, "stop the current turn").task(Some(t.id)));
    }
    if target.is_some_and(|t| t.via != Via::Active) {
        return Some(Decision::clarify("that task has nothing running to stop"));
    }
    // The focused task is idle: stop the one running task, if there is exactly one.
    let mut running = ctx.tasks.iter().filter(|t| t.status.is_active());
    match (running.next(), running.next()) {
        (Some(t), None) => Some(Decision::new(Intent::Cancel, 0.7, "stop the only running task").task(Some(&t.id))),
        (None, _) => Some(Decision::clarify("nothing is running to stop")),
        _ => Some(Decision::clarify("several tasks are running; stop which?")),
    }
}

/// Only fillers, small talk, a polite lead-in or the name of a task ("推送那个先停掉") come
/// before the stop word.
fn opens_message(env: &Env, h: &Hit, from: usize) -> bool {
    let m = env.msg;
    let prefix = m.topic.slice(from, h.start);
    if !prefix.keys.is_empty() && prefix.novel(&env.titles, usize::MAX) >= 1.0 && !names_a_task(env, &prefix) {
        return false;
    }
    let named_prefix = !prefix.keys.is_empty();
    // "codex, stop": an agent addressed first is a vocative.
    let vocative = |o: &Hit| o.start == m.lead && m.norm[o.end..].trim_start().starts_with([',', '，', ':']);
    !m.hits.iter().any(|o| {
        o.start >= from
            && o.end <= h.start
            && (o.is(Class::GoalVerb)
                || o.is(Class::EditVerb)
                || o.is(Class::Agent) && !vocative(o)
                || o.is(Class::Pronoun) && !o.is(Class::Filler) && !named_prefix)
    })
}

/// What follows a stop word must be its object, a reason clause or nothing: "stop it",
/// "stop the migration one", "stop stop it's rewriting the css"; but "stop using floats" and
/// "stop the tests from running in parallel" are instructions. Returns the end of the object.
fn stop_object_end(env: &Env, h: &Hit) -> Option<usize> {
    let m = env.msg;
    let clause_end = m.norm[h.end..]
        .char_indices()
        .find(|(_, c)| is_punct(*c) && !matches!(c, '/' | '_' | '-' | '.' | '\''))
        .map_or(m.norm.len(), |(i, _)| h.end + i);
    // Skip repeated stop words.
    let mut at = h.end;
    while let Some(n) = m
        .hits
        .iter()
        .filter(|n| n.start >= at && m.adjacent(at, n.start) && (n.is(Class::Stop) || n.is(Class::Abort)))
        .max_by_key(|n| n.end)
    {
        at = n.end;
    }
    // "stop it's rewriting the css": a reason clause.
    if m.norm[at..].starts_with('\'') {
        return Some(clause_end);
    }
    let Some(next) = m.tok_after(at).filter(|t| t.start < clause_end) else {
        return Some(clause_end);
    };
    let word = m.word(next);
    if word.ends_with("ing") && !matches!(word, "everything" | "anything" | "thing") {
        return None;
    }
    if super::text::is_cjk(m.norm[next.start..].chars().next().unwrap_or(' ')) {
        // "停用" is "disable", not "stop".
        return (!m.norm[at..].trim_start().starts_with('用')).then_some(clause_end);
    }
    let pronoun = m.hits.iter().any(|p| p.start == next.start && p.is(Class::Pronoun));
    let filler = m
        .hits
        .iter()
        .any(|p| p.start == next.start && (p.is(Class::Filler) || p.is(Class::StatusGlobal) || p.is(Class::Request)));
    if pronoun || filler || matches!(word, "everything" | "all" | "now") {
        return Some(clause_end);
    }
    // "stop the X one", "kill the gemini run": the rest names a task or says nothing specific;
    // "stop the server" is an instruction.
    let seg = m.topic.slice(at, clause_end);
    (seg.novel(&env.titles, usize::MAX) < 1.0 || h.is(Class::Abort) && names_a_task(env, &seg)).then_some(clause_end)
}

/// Words that name a visible task by its title ("the daily_orders backfill", "回填任务").
fn names_a_task(env: &Env, t: &super::topic::Topic) -> bool {
    env.titles.iter().any(|title| t.overlap(title) >= super::topic::NAMES)
}

/// "停" starting a longer Chinese word ("停机窗口", "停车场", "停用") is no stop.
fn inside_a_word(env: &Env, h: &Hit) -> bool {
    let m = env.msg;
    &m.norm[h.start..h.end] == "停"
        && m.norm[h.end..]
            .chars()
            .next()
            .is_some_and(|c| super::text::is_cjk(c) && !"下止掉一了吧啊呀住手吗呢".contains(c))
}
