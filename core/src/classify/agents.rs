//! Agent mentions: is the agent asked to act ("have claude review it"), or only talked about
//! ("the codex output looks wrong", "codex is stuck", "what claude proposed")?

use super::message::{Msg, is_punct};
use super::vocab::{Class, Hit};

/// Words right before an agent that make it a noun phrase.
const NOUN_BEFORE: &[&str] = &["the", "what", "from", "than", "of", "about", "like", "whatever", "by"];

/// The first agent asked to act (its hit; `agent` indexes the lexicon's agents).
pub(crate) fn actor(m: &Msg) -> Option<&Hit> {
    actor_hit(m, m.lead)
}

/// The first agent asked to act at or after byte `from` (the arguments of a command).
pub(crate) fn actor_from(m: &Msg, from: usize) -> Option<u16> {
    actor_hit(m, from).map(|h| h.agent)
}

/// Agents only talked about ("the codex output", "claude said …").
pub(crate) fn nouns(m: &Msg) -> impl Iterator<Item = &Hit> {
    let lead = m.tok_after(m.lead).map_or(usize::MAX, |t| t.start);
    let mut last_end = 0;
    m.hits.iter().filter(move |h| {
        if !h.is(Class::Agent) || h.start < last_end {
            return false;
        }
        last_end = h.end;
        !is_actor(m, h, lead)
    })
}

/// Among agents asked to act, one named by an explicit cue ("换 claude", "have gemini") wins
/// over one that merely opens the message ("codex 跑得太慢了，换 claude").
fn actor_hit(m: &Msg, from: usize) -> Option<&Hit> {
    let first = m.tok_after(from).map_or(usize::MAX, |t| t.start);
    let mut last_end = 0;
    let mut best: Option<(&Hit, bool)> = None;
    for h in m.hits.iter().filter(|h| h.is(Class::Agent) && h.start >= from) {
        // "claude" inside "claude code" is the same mention.
        if h.start < last_end {
            continue;
        }
        last_end = h.end;
        if is_actor(m, h, first) {
            let cued = cued(m, h);
            match best {
                None => best = Some((h, cued)),
                Some((_, false)) if cued => best = Some((h, cued)),
                _ => {}
            }
        }
    }
    best.map(|(h, _)| h)
}

fn cued(m: &Msg, h: &Hit) -> bool {
    handed_to(m, h)
        || m.hits
            .iter()
            .any(|c| c.is(Class::ActorCue) && c.end <= h.start && m.adjacent(c.end, h.start) && !m.negated(c))
}

fn is_actor(m: &Msg, h: &Hit, lead: usize) -> bool {
    // After: "codex is stuck", "claude's fix", "claude 太慢了", "codex output".
    let noun_after = m.hits.iter().any(|n| {
        n.is(Class::NounCue)
            && n.start >= h.end
            && (n.start == h.end || m.adjacent(h.end, n.start))
            && !m.hits.iter().any(|a| a.start == n.start && a.is(Class::ActorNext) && a.end > n.end)
    });
    if noun_after {
        return false;
    }
    // Before: "use cc", "have gemini", "让 claude", "switch to claude", "a second opinion from".
    let cue_before =
        m.hits.iter().any(|c| c.is(Class::ActorCue) && c.end <= h.start && m.adjacent(c.end, h.start) && !m.negated(c));
    if cue_before || handed_to(m, h) {
        return true;
    }
    if let Some(t) = m.tok_before(h.start)
        && m.adjacent(t.end, h.start)
        && NOUN_BEFORE.contains(&m.word(t))
    {
        return false;
    }
    if h.start == lead {
        return true;
    }
    // "claude, review this" / "gemini: tests please".
    if m.norm[h.end..].trim_start().chars().next().is_some_and(|c| matches!(c, ',' | ':' | '，' | '：')) {
        return true;
    }
    // "cc should QA this", "claude-code 帮忙 audit", "codex 接手吧".
    m.hits.iter().any(|n| n.is(Class::ActorNext) && n.start >= h.end && m.adjacent(h.end, n.start))
        && !m.norm[h.end..].trim_start().starts_with(|c: char| is_punct(c))
}

/// Verbs that hand work over: "give the cron one to gemini", "把这个交给 claude".
pub(crate) const HAND_OVER: &[&str] =
    &["give", "hand", "pass", "assign", "send", "move", "reassign", "transfer", "delegate"];

/// "give X to <agent>": the agent receives the work.
pub(crate) fn handed_to(m: &Msg, h: &Hit) -> bool {
    let Some(to) = m.tok_before(h.start).filter(|t| m.adjacent(t.end, h.start) && m.word(t) == "to") else {
        return false;
    };
    m.toks.iter().take_while(|t| t.start < to.start).any(|t| HAND_OVER.contains(&m.word(t)))
}
