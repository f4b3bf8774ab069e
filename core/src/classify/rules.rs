//! The labelling rules of the contract, applied in its precedence order.

use super::agents;
use super::approval;
use super::backref::{Back, back_reference, described};
use super::cancel::cancel;
use super::command;
use super::context::{Chat, Context, TaskStatus};
use super::decision::{Decision, Intent};
use super::message::Msg;
use super::spawn::agent_request;
use super::status::status;
use super::target::{self, Resolved, Target, Via};
use super::topic::{NAMES, Topic};
use super::vocab::{Class, Lexicon};

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
    pub fn best_score(&self) -> f32 {
        self.scores.iter().copied().fold(0.0, f32::max)
    }

    pub fn score_of(&self, t: &Target) -> f32 {
        self.ctx.task_index(t.id).map_or(0.0, |i| self.scores[i])
    }

    /// Topic weight of the message that no visible task shares, before byte `before`.
    pub fn novel(&self, before: usize) -> f32 {
        self.msg.topic.novel(&self.titles, before)
    }
}

/// The rules the contract states as rules, which no learned weight overrides: group chatter
/// (rule 1), empty text and explicit slash commands (rule 2).
pub(crate) fn hard(env: &Env) -> Option<Decision> {
    let (ctx, m) = (env.ctx, env.msg);
    // Rule 1.
    if ctx.chat == Chat::Group && !ctx.mentioned {
        return Some(Decision::new(Intent::Ignore, 0.99, "group message not addressed to the bot"));
    }
    if m.is_blank() {
        return Some(Decision::clarify("empty message"));
    }
    // Rule 2.
    command::parse(m).map(|cmd| command::decide(env, &cmd))
}

/// Rules 3–10, once [`hard`] has not decided.
pub(crate) fn soft(env: &Env) -> Decision {
    let m = env.msg;
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
        return agent_request(env, a.agent);
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
        Resolved::Found(t) => {
            Some(Decision::new(Intent::NewSession, 0.9, "explicit ask for a clean context").task(Some(t.id)))
        }
        _ => Some(Decision::clarify("a fresh session for which task?")),
    }
}

/// Rule 5: the next turn of a task, or a new goal.
fn follow_up(env: &Env) -> Decision {
    let (ctx, m) = (env.ctx, env.msg);
    let novel = env.novel(usize::MAX);
    // A self-contained goal opens with a goal verb ("set up", "write", "帮我"), or asks for help
    // with a problem; refinement verbs ("make", "use", "rename") rarely start one.
    let goal = m.has_live(Class::GoalVerb) || m.has(Class::Request) && m.has(Class::Problem);
    let edit = m.has_live(Class::EditVerb);
    if ctx.tasks.is_empty() && ctx.reply_to.is_none() {
        return if novel >= 0.5 || goal || edit {
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
    // "thanks!", "nice": nothing to act on.
    if m.only(&[Class::Chatter, Class::Filler]) {
        return Decision::new(Intent::Clarify, 0.4, "small talk, nothing to act on");
    }
    let new = |conf: f32, why: &str| Decision::new(Intent::NewTask, conf, why);
    let best = env.best_score();
    let unrelated = best < 0.3;
    if env.score_of(&t) >= NAMES {
        // "write a blog post about the SSO launch" on the SSO task: same topic, other work.
        if goal && back == Back::None && novel >= 3.0 && novel > 2.5 * env.score_of(&t) {
            return Decision::clarify("same topic, but a different piece of work?");
        }
        return cont(0.9, "same topic as the task");
    }
    match back {
        Back::Strong => return cont(0.88, "refers back to the work"),
        Back::Pronoun(p) => {
            // "…the buttons are invisible, can you fix that": the pronoun is what was described.
            if described(env, p) && unrelated && t.via != Via::Reply {
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
    let waiting = t.task.is_some_and(|t| t.status == TaskStatus::WaitingInput);
    if m.has_live(Class::Why) {
        if novel >= 2.0 && goal && unrelated && !waiting {
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
        if novel < 2.0 {
            return Decision::clarify("a refinement or a new goal?");
        }
        return new(if unrelated { 0.85 } else { 0.7 }, "a goal unrelated to every task");
    }
    if !goal && novel >= 3.5 && unrelated && (edit || m.has(Class::Problem)) {
        return Decision::clarify("a new goal, or about the current task?");
    }
    cont(0.75, "a refinement of the current work")
}
