//! Back-references: words that tie a message to the work already under way (rule 5's "it,
//! that, again, too, instead, 继续, 再, 改成"), and the cases where they do not.

use super::agents;
use super::message::Msg;
use super::rules::Env;
use super::topic::Topic;
use super::vocab::{Class, Hit};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Back {
    /// Words that only make sense about existing work: again, instead, retry, 改成, the diff.
    Strong,
    /// A pronoun at this byte offset: it may point at the work or at what the message just
    /// described ("the buttons are invisible, can you fix that").
    Pronoun(usize),
    None,
}

pub(crate) fn back_reference(env: &Env) -> Back {
    let m = env.msg;
    let strong = [Class::BackStrong, Class::Retry, Class::Continue, Class::WorkNoun];
    if m.hits.iter().any(|h| strong.iter().any(|c| h.is(*c)) && !m.negated(h) && !is_degree_too(m, h)) {
        return Back::Strong;
    }
    // "the codex output looks wrong", "claude said the tests pass": talk about an agent's
    // work is talk about the task.
    if agents::nouns(m).next().is_some() {
        return Back::Strong;
    }
    // "give the cron one to gemini"; "gemini 也写几个测试" (the agent joins in, like "too").
    if agents::actor(m).is_some_and(|a| agents::handed_to(m, a) || m.norm[a.end..].trim_start().starts_with('也')) {
        return Back::Strong;
    }
    // Taking over or handing over is about the current work by definition.
    if m.hits.iter().any(|h| {
        h.is(Class::RoleEdit)
            && matches!(
                &m.norm[h.start..h.end],
                "take over"
                    | "take a stab"
                    | "take a crack"
                    | "stab at"
                    | "its own version"
                    | "own version"
                    | "own take"
                    | "接手"
                    | "接过去"
            )
            || h.is(Class::ActorCue)
                && matches!(
                    &m.norm[h.start..h.end],
                    "switch to"
                        | "switch over to"
                        | "hand it to"
                        | "hand it over to"
                        | "hand this to"
                        | "give it to"
                        | "give this to"
                        | "pass it to"
                        | "换成"
                        | "交给"
                        | "切到"
                        | "切换到"
                )
    }) {
        return Back::Strong;
    }
    m.hits
        .iter()
        .find(|h| h.is(Class::Pronoun) && is_back_pronoun(m, &env.titles, h))
        .map_or(Back::None, |h| Back::Pronoun(h.start))
}

/// The pronoun at `p` is the object of a request ("can you fix that", "dig into it") after the
/// message has described something no task covers: it points at that description.
pub(crate) fn described(env: &Env, p: usize) -> bool {
    let m = env.msg;
    let object = m.hits.iter().any(|v| {
        v.end <= p
            && (v.is(Class::GoalVerb) || v.is(Class::RoleEdit) || v.is(Class::RoleLook) || v.is(Class::RoleReview))
            && (m.adjacent(v.end, p) || matches!(m.norm[v.end..p].trim(), "into" | "at" | "with" | "on" | "about"))
    });
    object && env.novel(p) >= 2.5
}

/// "too" after a word is degree ("4px too low"), not "as well".
fn is_degree_too(m: &Msg, h: &Hit) -> bool {
    &m.norm[h.start..h.end] == "too" && !m.clause_ends_at(h.end)
}

/// "that" as a conjunction or relative pronoun ("a migration that adds", "make sure that")
/// points nowhere.
fn is_back_pronoun(m: &Msg, titles: &[Topic], h: &Hit) -> bool {
    let w = &m.norm[h.start..h.end];
    if w == "that" || w == "this" {
        if let Some(prev) = m.tok_before(h.start)
            && matches!(
                m.word(prev),
                "so" | "sure"
                    | "such"
                    | "think"
                    | "know"
                    | "say"
                    | "says"
                    | "said"
                    | "means"
                    | "seems"
                    | "check"
                    | "verify"
                    | "ensure"
            )
        {
            return false;
        }
        if w == "that"
            && let Some(next) = m.tok_after(h.end)
            && m.adjacent(h.end, next.start)
        {
            let n = m.word(next);
            let verbish = (n.ends_with('s') && !n.ends_with("ss") && !n.ends_with("'s") && n.len() > 3)
                || matches!(
                    n,
                    "is" | "was"
                        | "are"
                        | "were"
                        | "will"
                        | "would"
                        | "can"
                        | "could"
                        | "should"
                        | "has"
                        | "have"
                        | "had"
                        | "does"
                        | "did"
                        | "do"
                        | "we"
                        | "you"
                        | "i"
                        | "they"
                        | "he"
                        | "she"
                        | "it"
                        | "the"
                        | "a"
                        | "an"
                        | "runs"
                        | "needs"
                );
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
    // A determiner before something no task mentions introduces it ("我们那个用户头像上传…",
    // "that new endpoint"): it does not point back.
    if matches!(w, "this" | "that" | "这个" | "那个" | "这" | "那" | "these" | "those" | "这些" | "那些")
        && let Some(k) = m.topic.keys.iter().find(|k| k.pos >= h.end)
        && m.adjacent(h.end, k.pos)
        && m.topic.slice(k.pos, k.pos + 1).novel(titles, usize::MAX) > 0.0
    {
        return false;
    }
    // "this" inside a longer phrase ("just this once", "这么慢") is no pronoun.
    !m.hits
        .iter()
        .any(|o| o.start <= h.start && o.end >= h.end && o.end - o.start > h.end - h.start && !o.is(Class::Pronoun))
}
