//! The labelling rules of the contract, applied in its precedence order.

use super::agents;
use super::approval;
use super::command;
use super::context::{Chat, Context};
use super::decision::{Decision, Intent, Role};
use super::message::{Msg, is_punct};
use super::target::{self, Resolved, Target, Via};
use super::topic::{NAMES, Topic};
use super::vocab::{Class, Hit, Lexicon};

/// Everything the rules look at for one message.
pub(crate) struct Env<'a> {
    pub ctx: &'a Context,
    pub msg: &'a Msg,
    pub lex: &'a Lexicon,
    /// Topic of each visible task title, in `ctx.tasks` order.
    pub titles: Vec<Topic>,
    /// Overlap of the whole message with each title.
    pub scores: Vec<f32>,
    pub bot: Option<&'a str>,
}

impl Env<'_> {
    fn best_score(&self) -> f32 {
        self.scores.iter().copied().fold(0.0, f32::max)
    }

    fn score_of(&self, t: &Target) -> f32 {
        self.ctx.task_index(t.id).map_or(0.0, |i| self.scores[i])
    }

    /// Topic weight of the message that no visible task shares, before byte `before`.
    fn novel(&self, before: usize) -> f32 {
        self.msg.topic.novel(&self.titles, before)
    }
}

pub(crate) fn decide(env: &Env) -> Decision {
    let (ctx, m) = (env.ctx, env.msg);
    // Rule 1.
    if ctx.chat == Chat::Group && !ctx.mentioned {
        return Decision::new(Intent::Ignore, 0.99, "group message not addressed to the bot");
    }
    if m.is_blank() {
        return Decision::clarify("empty message");
    }
    // Rule 2.
    if let Some(cmd) = command::parse(m) {
        return command::decide(env, &cmd);
    }
    // Rule 3.
    if let Some(d) = approval::answer(env) {
        return d;
    }
    if let Some(d) = new_task_marker(env) {
        return d;
    }
    // Rule 8.
    if let Some(d) = cancel(env, m.lead) {
        return d;
    }
    // Rule 9.
    if let Some(d) = new_session(env) {
        return d;
    }
    // Rule 7.
    if let Some(d) = status(env, m.lead) {
        return d;
    }
    // Rule 6.
    if let Some(a) = agents::actor(m) {
        return agent_request(env, a.agent, a.end);
    }
    // Rule 5.
    follow_up(env)
}

/// "new task: …", "新任务：…".
fn new_task_marker(env: &Env) -> Option<Decision> {
    let m = env.msg;
    let h = m.live(Class::NewTaskMarker).next()?;
    let near_lead = h.start <= m.lead + 12 || m.norm[h.end..].trim_start().starts_with([':', '：']);
    if !near_lead {
        return None;
    }
    let agent = agents::actor(m).map(|a| env.lex.agents[a.agent as usize].as_str());
    if let Some(a) = agent
        && !env.ctx.has_agent(a)
    {
        return Some(Decision::clarify(format!("agent {a} is not configured")));
    }
    Some(Decision::new(Intent::NewTask, 0.9, "explicitly a new task").agent(agent))
}

/// Rule 8: "stop", "abort", "kill it", "停下" aimed at running work. `from` is where the
/// message proper starts (after a command word).
pub(crate) fn cancel(env: &Env, from: usize) -> Option<Decision> {
    let m = env.msg;
    let h = m
        .hits
        .iter()
        .filter(|h| h.start >= from && (h.is(Class::Stop) || h.is(Class::Abort)))
        .find(|h| !m.negated(h) && opens_message(env, h, from))?;
    let seg_end = stop_object_end(env, h)?;
    let ctx = env.ctx;
    // The words after the stop word may name the task ("stop the migration one").
    let seg = m.topic.slice(h.end, seg_end);
    let named = target::named(ctx, &target::scores(&seg, &env.titles));
    let target = match (ctx.reply_to.as_deref(), named) {
        (Some(r), _) => Some(Target { id: r, task: ctx.task(r), via: Via::Reply }),
        (None, Resolved::Found(t)) => Some(t),
        (None, Resolved::Ambiguous) => return Some(Decision::clarify("stop which task?")),
        (None, Resolved::None) => ctx
            .active_task
            .as_deref()
            .map(|a| Target { id: a, task: ctx.task(a), via: Via::Active }),
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
        (Some(t), None) => Some(
            Decision::new(Intent::Cancel, 0.7, "stop the only running task").task(Some(&t.id)),
        ),
        (None, _) => Some(Decision::clarify("nothing is running to stop")),
        _ => Some(Decision::clarify("several tasks are running; stop which?")),
    }
}

/// Only fillers, small talk or a polite lead-in come before the stop word.
fn opens_message(env: &Env, h: &Hit, from: usize) -> bool {
    let m = env.msg;
    if m.topic.keys.iter().any(|k| k.pos >= from && k.pos < h.start) {
        return false;
    }
    !m.hits.iter().any(|o| {
        o.start >= from
            && o.end <= h.start
            && (o.is(Class::GoalVerb) || o.is(Class::Agent) || o.is(Class::Pronoun) && !o.is(Class::Filler))
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
    let filler = m.hits.iter().any(|p| {
        p.start == next.start && (p.is(Class::Filler) || p.is(Class::StatusGlobal) || p.is(Class::Request))
    });
    if pronoun || filler || matches!(word, "everything" | "all" | "now") {
        return Some(clause_end);
    }
    // "stop the X one": the rest must name a task and say little else.
    let seg = m.topic.slice(at, clause_end);
    let named = target::scores(&seg, &env.titles).into_iter().fold(0.0, f32::max) >= NAMES;
    (named && seg.novel(&env.titles, usize::MAX) < 1.0).then_some(clause_end)
}

/// Rule 9: an explicit ask for a clean context.
fn new_session(env: &Env) -> Option<Decision> {
    let m = env.msg;
    let h = m.live(Class::NewSession).next()?;
    // A clean start *for a new goal* is a new task.
    let goal_elsewhere = m.live(Class::GoalVerb).any(|g| g.end <= h.start || g.start >= h.end);
    if goal_elsewhere && env.novel(usize::MAX) >= 2.5 && env.best_score() < NAMES {
        return Some(Decision::new(Intent::NewTask, 0.7, "fresh start for an unrelated goal"));
    }
    match target::resolve(env.ctx, &env.scores) {
        Resolved::Found(t) => Some(
            Decision::new(Intent::NewSession, 0.9, "explicit ask for a clean context").task(Some(t.id)),
        ),
        _ => Some(Decision::clarify("a fresh session for which task?")),
    }
}

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
        && (m.hits.iter().any(|h| h.start == from && h.is(Class::QuestionLead))
            || m.words_after(from) <= 5.0);
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
    d(env.ctx.active_task.as_deref(), "progress question")
}

/// Rule 6: an agent asked to act. `agent` indexes the lexicon's agents; `after` is where the
/// request proper starts (after the alias or the `/alias` command).
pub(crate) fn agent_request(env: &Env, agent: u16, after: usize) -> Decision {
    let (ctx, m) = (env.ctx, env.msg);
    let name = env.lex.agents[agent as usize].as_str();
    if !ctx.has_agent(name) {
        return Decision::clarify(format!("agent {name} is not configured"));
    }
    let role = role(m, after);
    let back = back_reference(env);
    let novel = env.novel(usize::MAX);
    let resolved = target::resolve(ctx, &env.scores);
    let named = env.best_score() >= NAMES;
    let about_work = match back {
        Back::Strong => true,
        Back::Pronoun(p) => named || env.novel(p) < 2.5,
        Back::None => named || novel < 1.0,
    };
    if !about_work || ctx.tasks.is_empty() && ctx.reply_to.is_none() {
        if ctx.tasks.is_empty() && back != Back::None && novel < 1.0 {
            return Decision::clarify("nothing visible for the agent to work on");
        }
        return Decision::new(Intent::NewTask, 0.8, "another agent asked for an unrelated goal")
            .agent(Some(name));
    }
    let Some(t) = resolved.found() else {
        return Decision::clarify("which task should the agent work on?");
    };
    if role == Role::Editor && t.task.is_some_and(|t| t.agents.iter().any(|a| a == name)) {
        return Decision::new(Intent::Continue, 0.7, "the task's own agent asked to go on")
            .task(Some(t.id));
    }
    let conf = if t.via == Via::Active || t.via == Via::Only { 0.85 } else { 0.9 };
    Decision::new(Intent::Spawn, conf, "another agent asked to act on this work")
        .task(Some(t.id))
        .agent(Some(name))
        .role(role)
}

/// The role words of a spawn: the first reviewer, tester or strong editor word wins;
/// "look at" alone means reviewer; no role word means editor.
fn role(m: &Msg, _after: usize) -> Role {
    let first = m
        .hits
        .iter()
        .filter(|h| !h.is(Class::Agent) && !m.negated(h))
        .find(|h| h.is(Class::RoleReview) || h.is(Class::RoleTest) || h.is(Class::RoleEdit));
    match first {
        Some(h) if h.is(Class::RoleTest) && longest_role(m, h) == Role::Tester => Role::Tester,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Back {
    /// Words that only make sense about existing work: again, instead, retry, 改成, the diff.
    Strong,
    /// A pronoun at this byte offset: it may point at the work or at what the message just
    /// described ("the buttons are invisible, can you fix that").
    Pronoun(usize),
    None,
}

fn back_reference(env: &Env) -> Back {
    let m = env.msg;
    let strong = [Class::BackStrong, Class::Retry, Class::Continue, Class::WorkNoun];
    if m.hits.iter().any(|h| strong.iter().any(|c| h.is(*c)) && !m.negated(h) && !is_degree_too(m, h)) {
        return Back::Strong;
    }
    // Taking over or handing over is about the current work by definition.
    if m.hits.iter().any(|h| {
        h.is(Class::RoleEdit)
            && matches!(&m.norm[h.start..h.end], "take over" | "take a stab" | "take a crack" | "stab at" | "its own version" | "own version" | "own take" | "接手" | "接过去")
            || h.is(Class::ActorCue) && matches!(&m.norm[h.start..h.end], "switch to" | "switch over to" | "hand it to" | "hand it over to" | "hand this to" | "give it to" | "give this to" | "pass it to" | "换成" | "交给" | "切到" | "切换到")
    }) {
        return Back::Strong;
    }
    m.hits
        .iter()
        .find(|h| h.is(Class::Pronoun) && is_back_pronoun(m, h))
        .map_or(Back::None, |h| Back::Pronoun(h.start))
}

/// "too" after a word is degree ("4px too low"), not "as well".
fn is_degree_too(m: &Msg, h: &Hit) -> bool {
    &m.norm[h.start..h.end] == "too" && !m.clause_ends_at(h.end)
}

/// "that" as a conjunction or relative pronoun ("a migration that adds", "make sure that")
/// points nowhere.
fn is_back_pronoun(m: &Msg, h: &Hit) -> bool {
    let w = &m.norm[h.start..h.end];
    if w == "that" || w == "this" {
        if let Some(prev) = m.tok_before(h.start)
            && matches!(m.word(prev), "so" | "sure" | "such" | "think" | "know" | "say" | "says" | "said" | "means" | "seems" | "check" | "verify" | "ensure")
        {
            return false;
        }
        if w == "that"
            && let Some(next) = m.tok_after(h.end)
            && m.adjacent(h.end, next.start)
        {
            let n = m.word(next);
            let verbish = (n.ends_with('s') && !n.ends_with("ss") && !n.ends_with("'s") && n.len() > 3)
                || matches!(n, "is" | "was" | "are" | "were" | "will" | "would" | "can" | "could" | "should" | "has" | "have" | "had" | "does" | "did" | "do" | "we" | "you" | "i" | "they" | "he" | "she" | "it" | "the" | "a" | "an" | "runs" | "needs");
            if verbish {
                return false;
            }
        }
        if w == "this"
            && let Some(next) = m.tok_after(h.end)
            && matches!(m.word(next), "week" | "month" | "morning" | "afternoon" | "time" | "year" | "sprint")
        {
            return false;
        }
    }
    // "this" inside a scope phrase ("just this once") was handled by rule 3.
    !m.hits.iter().any(|o| o.start <= h.start && o.end >= h.end && (o.is(Class::ScopeOnce) || o.is(Class::StatusPhrase)))
}

/// Rule 5: the next turn of a task, or a new goal.
fn follow_up(env: &Env) -> Decision {
    let (ctx, m) = (env.ctx, env.msg);
    let novel = env.novel(usize::MAX);
    let goal = m.has_live(Class::GoalVerb)
        || m.has(Class::Request) && m.has(Class::Problem)
        || m.has(Class::Request) && novel >= 2.0;
    if ctx.tasks.is_empty() && ctx.reply_to.is_none() {
        return if novel >= 0.5 || goal {
            Decision::new(Intent::NewTask, 0.9, "a goal with no task around")
        } else {
            Decision::clarify("nothing to continue and no goal")
        };
    }
    let back = back_reference(env);
    let t = match target::resolve(ctx, &env.scores) {
        Resolved::Found(t) => t,
        Resolved::Ambiguous | Resolved::None => {
            if back == Back::None && goal && novel >= 1.5 && env.best_score() < NAMES {
                return Decision::new(Intent::NewTask, 0.75, "a goal unrelated to every task");
            }
            return Decision::clarify("a follow-up, but to which task?");
        }
    };
    let cont = |conf: f32, why: &str| Decision::new(Intent::Continue, conf, why).task(Some(t.id));
    let new = |conf: f32, why: &str| Decision::new(Intent::NewTask, conf, why);
    let best = env.best_score();
    let unrelated = best < 0.3;
    if env.score_of(&t) >= NAMES {
        return cont(0.9, "same topic as the task");
    }
    match back {
        Back::Strong => return cont(0.88, "refers back to the work"),
        Back::Pronoun(p) => {
            // "…the buttons are invisible, can you fix that": the pronoun is what was described.
            if env.novel(p) >= 2.5 && unrelated && t.via != Via::Reply {
                return new(0.7, "describes a new problem, then refers to it");
            }
            return cont(0.85, "refers back to the work");
        }
        Back::None => {}
    }
    if t.via == Via::Reply {
        if goal && novel >= 3.0 && unrelated {
            return Decision::clarify("a reply, but with an unrelated goal");
        }
        return cont(0.85, "reply to the task");
    }
    let waiting = t.task.is_some_and(|t| t.status == super::context::TaskStatus::WaitingInput);
    if m.has_live(Class::Why) {
        if novel >= 2.5 && goal && unrelated && !waiting {
            return new(0.7, "asks about something no task covers");
        }
        return cont(0.85, "asks the agent to explain");
    }
    if waiting {
        if goal && m.has(Class::Request) && novel >= 3.0 && unrelated {
            return Decision::clarify("an answer to the agent, or a new goal?");
        }
        return cont(0.85, "answers the agent's question");
    }
    if goal && novel >= 1.5 && best < NAMES {
        if novel < 2.0 && !unrelated {
            return Decision::clarify("a refinement or a new goal?");
        }
        return new(if unrelated { 0.85 } else { 0.7 }, "a goal unrelated to every task");
    }
    if !goal && novel >= 3.0 && unrelated && m.has(Class::Problem) {
        return Decision::clarify("a new problem, or about the current task?");
    }
    cont(0.75, "a refinement of the current work")
}
