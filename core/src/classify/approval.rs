//! Rule 3: short yes/no answers, which answer a pending approval or the agent's question.

use super::context::{ApprovalRef, TaskStatus};
use super::decision::{Decision, Intent, Scope};
use super::message::{Msg, is_punct};
use super::rules::Env;
use super::text::is_cjk;
use super::topic::{NAMES, Topic};
use super::vocab::{Class, Hit};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Polarity {
    Yes,
    No,
    /// "stop": a no to an approval, or a cancel when none is pending.
    Stop,
}

/// A message that opens with yes or no.
#[derive(Debug, Clone, Copy)]
pub(crate) struct YesNo {
    pub polarity: Polarity,
    /// Nothing but yes/no words and fillers.
    pub pure: bool,
    /// Where the answer word ends; the rest is a reason or an instruction.
    pub end: usize,
}

/// Classes of a message that is nothing but an answer ("yeah yeah go ahead", "ok 跑吧").
const ANSWER: &[Class] =
    &[Class::Yes, Class::No, Class::Stop, Class::Filler, Class::ScopeAlways, Class::ScopeOnce, Class::Chatter];

/// Classes that can open an answer ("always allow it" opens with a yes).
const OPENER: &[Class] = &[Class::Yes, Class::No, Class::Stop, Class::ScopeAlways];

fn is_opener(h: &Hit) -> bool {
    OPENER.iter().any(|c| h.is(*c))
}

/// Only spaces and punctuation between two offsets.
fn blank(m: &Msg, from: usize, to: usize) -> bool {
    m.norm[from..to].chars().all(|c| c.is_whitespace() || is_punct(c))
}

/// The yes/no a message opens with, if any.
pub(crate) fn yes_no(m: &Msg) -> Option<YesNo> {
    // The first answer word; one inside a longer phrase ("no idea", "no worries") is none.
    let first = m.hits.iter().find(|h| {
        h.start >= m.lead
            && is_opener(h)
            && !m.hits.iter().any(|o| o.is(Class::Chatter) && o.start <= h.start && o.end > h.end)
    })?;
    let lead = m.hits.iter().filter(|h| h.start == first.start && is_opener(h)).max_by_key(|h| h.end)?;
    // Only small talk or a lead-in may come before it: "thanks, looks good", "hold on, don't".
    let lead_in = |h: &&Hit| h.is(Class::Chatter) || h.is(Class::Filler) && !h.is(Class::Pronoun);
    let mut at = m.lead;
    for h in m.hits.iter().filter(lead_in).filter(|h| h.end <= lead.start) {
        if h.start >= at && blank(m, at, h.start) {
            at = h.end;
        }
    }
    if !blank(m, at, lead.start) {
        return None;
    }
    let in_always = m.hits.iter().any(|a| a.is(Class::ScopeAlways) && a.start <= lead.start && a.end >= lead.end);
    let polarity = if in_always || lead.is(Class::Yes) && !lead.is(Class::No) {
        Polarity::Yes
    } else if lead.is(Class::Stop) {
        Polarity::Stop
    } else if lead.is(Class::No) {
        Polarity::No
    } else {
        return None;
    };
    if !valid_lead(m, lead, polarity) {
        return None;
    }
    Some(YesNo { polarity, pure: m.only(ANSWER), end: lead.end })
}

/// A yes/no word at the start still has to *be* the answer: "好看" is not "好", "不错" is not
/// "不", and "don't stop" is not a refusal.
fn valid_lead(m: &Msg, lead: &Hit, polarity: Polarity) -> bool {
    let next = m.hits.iter().filter(|h| h.start >= lead.end && m.adjacent(lead.end, h.start));
    if lead.is(Class::Negation) {
        // "don't stop, keep going", "不用停": a negated cancel keeps the work going.
        return !next
            .clone()
            .any(|h| h.is(Class::Stop) || h.is(Class::Abort) || h.is(Class::Continue) || h.is(Class::Retry));
    }
    if lead.is(Class::ScopeAlways) {
        return true;
    }
    let glued = m.norm[lead.end..].chars().next().is_some_and(is_cjk)
        && m.norm[..lead.end].chars().next_back().is_some_and(is_cjk);
    if glued && polarity != Polarity::Stop {
        // Part of a longer word unless another answer word follows.
        return next.clone().any(|h| ANSWER.iter().any(|c| h.is(*c)));
    }
    true
}

/// The scope of an approval: "always" words widen it, "just this once" words keep it narrow.
pub(crate) fn scope(m: &Msg, from: usize) -> Scope {
    let after = |h: &&Hit| h.start >= from;
    if m.live(Class::ScopeOnce).any(|h| after(&h)) {
        Scope::Once
    } else if m.hits.iter().filter(after).any(|h| h.is(Class::ScopeAlways) && !m.negated(h))
        // "don't ask me about migrations again", "以后别再问".
        || m.hits.iter().filter(after).any(|h| h.is(Class::AskVerb) && m.negated(h))
    {
        Scope::Always
    } else {
        Scope::Once
    }
}

/// Rule 3. `None` lets the other rules decide.
pub(crate) fn answer(env: &Env) -> Option<Decision> {
    let (ctx, m) = (env.ctx, env.msg);
    let yn = yes_no(m)?;
    if ctx.pending_approvals.is_empty() {
        // "stop" and "算了，别跑了" are cancels when nothing is pending (rule 8).
        let stops = m.hits.iter().any(|h| (h.is(Class::Stop) || h.is(Class::Abort)) && !m.negated(h));
        if !yn.pure || yn.polarity == Polarity::Stop || stops {
            return None;
        }
        let target = ctx
            .reply_to
            .as_deref()
            .or(ctx.active_task.as_deref())
            .or_else(|| (ctx.tasks.len() == 1).then(|| ctx.tasks[0].id.as_str()));
        return Some(match target.and_then(|t| ctx.task(t)) {
            Some(t) if t.status == TaskStatus::WaitingInput => {
                Decision::new(Intent::Continue, 0.85, "yes/no answers the agent's question").task(Some(&t.id))
            }
            _ => Decision::clarify("yes/no with no pending approval and no question asked"),
        });
    }
    if !yn.pure && !answer_like(env, &yn) {
        return None;
    }
    let chosen = match choose(env, &yn) {
        Choice::One(a, conf) => (a, conf),
        Choice::Continue(task) => {
            return Some(
                Decision::new(Intent::Continue, 0.8, "answers the question of the replied task").task(Some(task)),
            );
        }
        Choice::Cancel(task) => {
            return Some(Decision::new(Intent::Cancel, 0.85, "stop in reply to a running task").task(Some(task)));
        }
        Choice::Unclear(why) => return Some(Decision::clarify(why)),
    };
    let (a, conf) = chosen;
    match yn.polarity {
        Polarity::Yes => {
            let scope = scope(m, m.lead);
            Some(
                Decision::new(Intent::Approve, conf, "yes to the pending approval")
                    .task(Some(&a.task))
                    .approval(&a.id, Some(scope)),
            )
        }
        Polarity::No => Some(
            Decision::new(Intent::Deny, conf, "no to the pending approval").task(Some(&a.task)).approval(&a.id, None),
        ),
        Polarity::Stop => {
            // "stop" could deny the approval or cancel another running task (rule 10).
            let other = ctx.reply_to.as_deref().or(ctx.active_task.as_deref()).and_then(|t| ctx.task(t));
            let other_running = match other {
                Some(t) => t.id != a.task && t.status.is_active() && ctx.approvals_of(&t.id).next().is_none(),
                None => ctx.tasks.iter().any(|t| {
                    t.id != a.task && t.status == TaskStatus::Running && ctx.approvals_of(&t.id).next().is_none()
                }),
            };
            if other_running {
                return Some(Decision::clarify("stop: deny the approval or cancel the running task?"));
            }
            Some(
                Decision::new(Intent::Deny, conf - 0.05, "stop answers the pending approval")
                    .task(Some(&a.task))
                    .approval(&a.id, None),
            )
        }
    }
}

/// A yes/no followed by more words still answers when the rest is a reason, a scope or short.
fn answer_like(env: &Env, yn: &YesNo) -> bool {
    let m = env.msg;
    // A no carries any further instruction with it (the contract's deny); an emoji stands
    // apart from the words after it like a sentence of its own.
    let emoji = !m.norm[m.lead..yn.end].chars().any(char::is_alphanumeric);
    if yn.polarity != Polarity::Yes || emoji {
        return true;
    }
    if m.clause_ends_at(yn.end) || m.words_after(yn.end) <= 4.0 {
        return true;
    }
    let tail_has = |c: Class| m.hits.iter().any(|h| h.start >= yn.end && h.is(c));
    if [Class::Yes, Class::No, Class::Stop, Class::ScopeAlways, Class::ScopeOnce].into_iter().any(tail_has) {
        return true;
    }
    let tail = m.topic.slice(yn.end, m.norm.len());
    env.ctx.pending_approvals.iter().any(|a| tail.overlap(&Topic::cached(&a.action)) >= NAMES)
}

enum Choice<'a> {
    One(&'a ApprovalRef, f32),
    /// The reply targets a task that asked a question rather than an approval.
    Continue(&'a str),
    /// The reply targets a running task: "stop" stops it.
    Cancel(&'a str),
    Unclear(&'static str),
}

fn choose<'a>(env: &Env<'a>, yn: &YesNo) -> Choice<'a> {
    let ctx = env.ctx;
    let pending = &ctx.pending_approvals;
    if let Some(r) = ctx.reply_to.as_deref() {
        let of_reply: Vec<&ApprovalRef> = ctx.approvals_of(r).collect();
        match of_reply.len() {
            1 => return Choice::One(of_reply[0], 0.92),
            0 => {
                if let Some(t) = ctx.task(r)
                    && t.status == TaskStatus::WaitingInput
                    && yn.polarity != Polarity::Stop
                {
                    return Choice::Continue(&t.id);
                }
                // "stop" in reply to a running task's message stops that task.
                if yn.polarity == Polarity::Stop && ctx.task(r).is_some_and(|t| t.status.is_active()) {
                    return Choice::Cancel(r);
                }
            }
            _ => {
                return match by_text(env, &of_reply, env.msg.lead) {
                    Some(a) => Choice::One(a, 0.8),
                    None => Choice::Unclear("several approvals wait on the replied task"),
                };
            }
        }
    }
    let all: Vec<&ApprovalRef> = pending.iter().collect();
    if let Some(a) = by_text(env, &all, env.msg.lead) {
        return Choice::One(a, 0.85);
    }
    if all.len() > 1 {
        return Choice::Unclear("several approvals pending; which one?");
    }
    let a = all[0];
    // A bare yes while the focused task waits for an answer could be either (rule 10).
    if ctx.reply_to.is_none()
        && let Some(t) = ctx.active_task.as_deref().and_then(|t| ctx.task(t))
        && t.id != a.task
        && t.status == TaskStatus::WaitingInput
    {
        return Choice::Unclear("answer the approval or the active task's question?");
    }
    Choice::One(a, if ctx.reply_to.is_some() { 0.75 } else { 0.9 })
}

/// The approval the words after the yes/no name (by its action or its task's title).
pub(crate) fn by_text<'a>(env: &Env<'a>, cands: &[&'a ApprovalRef], from: usize) -> Option<&'a ApprovalRef> {
    if cands.len() < 2 {
        return None;
    }
    let m = env.msg;
    // An approval id typed out ("/approve a2").
    if let Some(a) = cands.iter().find(|a| m.toks.iter().any(|t| t.start >= from && m.word(t) == a.id.to_lowercase())) {
        return Some(a);
    }
    // The raw words after the answer: "yes, run the tests" names `npm test` by words the
    // vocabulary would otherwise swallow.
    let tail = Topic::of_text(&m.norm[from..]);
    let mut scored: Vec<(f32, &ApprovalRef)> = cands
        .iter()
        .map(|a| {
            let title = env.ctx.task_index(&a.task).map(|i| &env.titles[i]);
            let mut s = tail.overlap(&Topic::cached(&a.action)) + title.map_or(0.0, |t| tail.overlap(t));
            // "claude's one is fine": the approval of the agent named.
            if let Some(agent) = a.agent.as_deref()
                && m.hits
                    .iter()
                    .any(|h| h.is(Class::Agent) && h.start >= from && env.lex.agents[h.agent as usize] == agent)
            {
                s += 1.0;
            }
            (s, *a)
        })
        .collect();
    scored.sort_by(|x, y| y.0.total_cmp(&x.0));
    (scored[0].0 >= 0.6 && scored[0].0 - scored[1].0 >= 0.3).then_some(scored[0].1)
}
