//! The learned layer on top of the rules: the model's probabilities decide the intent, the
//! rules' target machinery (topic similarity between the message and each task's title or
//! approval's action) fills in the target fields.

use super::agents;
use super::approval;
use super::cancel::cancel;
use super::context::{ApprovalRef, TaskStatus};
use super::decision::{Decision, Intent, Role};
use super::model::{CLASSES, K, Model, class_of};
use super::rules::Env;
use super::spawn::{agent_request, role};
use super::status::status;
use super::target;
use super::topic::Topic;
use super::vocab::Class;

fn acts(i: Intent) -> bool {
    i != Intent::Clarify
}

/// The rules' decision `rule`, kept, overridden or turned into `clarify` by the model's
/// probabilities `p` (over [`CLASSES`]).
pub(crate) fn combine(env: &Env, rule: Decision, p: &[f32; K], model: &Model) -> Decision {
    let th = model.thresholds;
    let Some(kr) = class_of(rule.intent) else {
        return rule;
    };

    let mut order = [0usize; K];
    for (i, o) in order.iter_mut().enumerate() {
        *o = i;
    }
    order.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
    let (k1, k2) = (order[0], order[1]);
    let (i1, i2) = (CLASSES[k1], CLASSES[k2]);
    if k1 == kr {
        // Agreement; still ask when another acting reading is nearly as likely (rule 10).
        if acts(i1) && acts(i2) && possible(env, i2) && p[k1] - p[k2] < th.ask {
            return Decision::new(Intent::Clarify, 1.0 - p[k1], format!("{i1} or {i2}?"));
        }
        return Decision { confidence: p[k1].clamp(0.0, 1.0), ..rule };
    }
    // The model answers no approval the message gives no yes or no for (a long "ok so the
    // thing is …" explains, it does not approve; "note 5" only looks like "no"), nor asks
    // about one: the rules' reading stands.
    if !possible(env, i1) {
        // Unless it is close and may object to what is asked ("the full suite is too slow,
        // only the unit tests"): an implicit no is worth a question.
        if p[k1] - p[kr] < th.margin && acts(rule.intent) && about_an_approval(env) {
            return Decision::new(Intent::Clarify, 1.0 - p[k1], format!("{i1} or {}?", rule.intent));
        }
        return Decision { confidence: p[kr].clamp(0.0, 1.0), ..rule };
    }
    if p[k1] - p[kr] < th.margin {
        // The two readings are close: ask when both act, else keep the rules' reading.
        if acts(i1) && acts(rule.intent) {
            return Decision::new(Intent::Clarify, 1.0 - p[k1], format!("{i1} or {}?", rule.intent));
        }
        return Decision { confidence: p[kr].clamp(0.0, 1.0), ..rule };
    }
    let mut d = realize(env, i1, &rule);
    if d.intent == i1 {
        d.confidence = p[k1].clamp(0.0, 1.0);
    }
    d
}

/// A decision of intent `intent` for the message in `env`, with its targets.
pub(crate) fn realize(env: &Env, intent: Intent, rule: &Decision) -> Decision {
    let (ctx, m) = (env.ctx, env.msg);
    let why = "learned reading";
    let resolved = target::resolve(ctx, &env.scores);
    let task = resolved.found().map(|t| t.id);
    match intent {
        Intent::Continue => match task.or(rule.task.as_deref()) {
            Some(t) => Decision::new(intent, 0.5, why).task(Some(t)),
            // With no task around there is nothing to follow up: the rules' reading of the
            // message alone (a goal is a new task, rule 5) stands.
            None if ctx.tasks.is_empty() && ctx.reply_to.is_none() => rule.clone(),
            None => Decision::clarify("a follow-up, but to which task?"),
        },
        Intent::NewSession => match task {
            Some(t) => Decision::new(intent, 0.5, why).task(Some(t)),
            None => Decision::clarify("a fresh session for which task?"),
        },
        Intent::Status => {
            if let Some(d) = status(env, m.lead).filter(|d| d.intent == Intent::Status) {
                return d;
            }
            // With no task around, a question the status words do not mark ("which colour?",
            // "what does this screen say?") is one only an agent can answer (rule 7): the
            // rules' reading stands.
            if ctx.tasks.is_empty() && ctx.reply_to.is_none() && !m.has_live(Class::StatusGlobal) {
                return rule.clone();
            }
            let t = if ctx.reply_to.is_some() {
                ctx.reply_to.as_deref()
            } else if let Some(t) = target::named(ctx, &env.scores).found() {
                Some(t.id)
            } else if m.has_live(Class::StatusGlobal) {
                None
            } else {
                ctx.active_task.as_deref().or_else(|| (ctx.tasks.len() == 1).then(|| ctx.tasks[0].id.as_str()))
            };
            Decision::new(intent, 0.5, why).task(t)
        }
        Intent::Cancel => {
            if let Some(d) = cancel(env, m.lead).filter(|d| d.intent == Intent::Cancel) {
                return d;
            }
            let found = resolved.found().filter(|t| t.is_running() || t.task.is_none());
            let t = match found {
                Some(t) => Some(t.id),
                None => {
                    let mut running = ctx.tasks.iter().filter(|t| t.status.is_active());
                    match (running.next(), running.next()) {
                        (Some(t), None) => Some(t.id.as_str()),
                        _ => None,
                    }
                }
            };
            match t {
                Some(t) => Decision::new(intent, 0.5, why).task(Some(t)),
                None => Decision::clarify("stop which task?"),
            }
        }
        Intent::NewTask => match agents::actor(m) {
            Some(a) => {
                let name = env.lex.agents[a.agent as usize].as_str();
                if ctx.has_agent(name) {
                    Decision::new(intent, 0.5, why).agent(Some(name))
                } else {
                    Decision::clarify(format!("agent {name} is not configured"))
                }
            }
            None => Decision::new(intent, 0.5, why),
        },
        Intent::Spawn => {
            let actor = agents::actor(m).or_else(|| agents::nouns(m).next());
            if let Some(a) = actor {
                let d = agent_request(env, a.agent);
                if d.intent == Intent::Spawn {
                    return d;
                }
                let name = env.lex.agents[a.agent as usize].as_str();
                return match (task, ctx.has_agent(name)) {
                    (Some(t), true) => Decision::new(intent, 0.5, why).task(Some(t)).agent(Some(name)).role(role(m)),
                    _ => Decision::clarify("which agent, on which task?"),
                };
            }
            // No agent named: the first configured agent not yet working on the task.
            let Some(t) = resolved.found() else {
                return Decision::clarify("which task should another agent work on?");
            };
            let busy = |a: &String| t.task.is_some_and(|t| t.agents.contains(a));
            match ctx.agents.iter().find(|a| !busy(a)) {
                Some(a) => {
                    let r = role(m);
                    let r = if r == Role::Editor && m.has_live(Class::RoleLook) { Role::Reviewer } else { r };
                    Decision::new(intent, 0.5, why).task(Some(t.id)).agent(Some(a)).role(r)
                }
                None => Decision::clarify("every agent already works on it"),
            }
        }
        Intent::Approve | Intent::Deny => match pick_approval(env) {
            Some(a) => {
                let scope = (intent == Intent::Approve).then(|| approval::scope(m, m.lead));
                Decision::new(intent, 0.5, why).task(Some(&a.task)).approval(&a.id, scope)
            }
            None => Decision::clarify("answer which approval?"),
        },
        Intent::Clarify => Decision::clarify("the readings are too close to act on"),
        Intent::Ignore => Decision::new(Intent::Ignore, 0.5, why),
    }
}

/// The approval a message answers: the replied task's, else the one its words name (action or
/// task title), else the only one pending.
fn pick_approval<'a>(env: &Env<'a>) -> Option<&'a ApprovalRef> {
    let ctx = env.ctx;
    if let Some(r) = ctx.reply_to.as_deref() {
        let mine: Vec<&ApprovalRef> = ctx.approvals_of(r).collect();
        match mine.len() {
            1 => return Some(mine[0]),
            0 => {}
            _ => return approval::by_text(env, &mine, env.msg.lead),
        }
    }
    let all: Vec<&ApprovalRef> = ctx.pending_approvals.iter().collect();
    match all.len() {
        0 => None,
        1 => Some(all[0]),
        _ => approval::by_text(env, &all, env.msg.lead).or_else(|| {
            // The focused task's only approval.
            let a = ctx.active_task.as_deref()?;
            let mine: Vec<&ApprovalRef> = ctx.approvals_of(a).collect();
            let waiting = ctx.task(a).is_some_and(|t| t.status == TaskStatus::WaitingApproval);
            (mine.len() == 1 && waiting).then(|| mine[0])
        }),
    }
}

/// Whether the message can mean `intent` at all: an approval answer needs its yes or no.
fn possible(env: &Env, intent: Intent) -> bool {
    match intent {
        Intent::Approve | Intent::Deny => answers(env, intent),
        // Nothing to follow up, refresh, stop or review without a task: never a reading to
        // act on or to ask about.
        Intent::Continue | Intent::NewSession | Intent::Cancel | Intent::Spawn => {
            !env.ctx.tasks.is_empty() || env.ctx.reply_to.is_some()
        }
        // A why-question is for the agent, who alone can answer it (rule 7), never a status.
        Intent::Status => !env.msg.has_live(Class::Why),
        _ => true,
    }
}

/// The message may be an objection to what is asked: it finds fault ("too slow", "instead")
/// or shares words with a pending approval's action.
fn about_an_approval(env: &Env) -> bool {
    let m = env.msg;
    if m.has_live(Class::Problem) || m.has_live(Class::BackStrong) {
        return true;
    }
    let words = Topic::of_text(&m.norm);
    env.ctx.pending_approvals.iter().any(|a| words.overlap(&Topic::cached(&a.action)) > 0.0)
}

/// The message holds an answer word of the intent's polarity: a yes for `approve` in a short
/// message; a no, a stop or an abort for `deny`. A word inside a longer phrase of another kind
/// ("no idea", "never mind") is no answer.
fn answers(env: &Env, intent: Intent) -> bool {
    let m = env.msg;
    let classes: &[Class] =
        if intent == Intent::Approve { &[Class::Yes] } else { &[Class::No, Class::Stop, Class::Abort] };
    let is_answer = |h: &super::vocab::Hit| classes.iter().any(|c| h.is(*c));
    let found = m.hits.iter().filter(|h| is_answer(h) && !h.negated).any(|h| {
        !m.hits
            .iter()
            .any(|o| !is_answer(o) && o.start <= h.start && o.end >= h.end && o.end - o.start > h.end - h.start)
    });
    found && (intent == Intent::Deny || m.words_after(m.lead) <= 12.0)
}

/// Several approvals pending and the message holds both a yes and a no.
pub(crate) fn mixed_answers(env: &Env) -> bool {
    env.ctx.pending_approvals.len() >= 2 && answers(env, Intent::Approve) && answers(env, Intent::Deny)
}
