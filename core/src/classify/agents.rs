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

fn actor_hit(m: &Msg, from: usize) -> Option<&Hit> {
    let first = m.tok_after(from).map_or(usize::MAX, |t| t.start);
    let mut last_end = 0;
    for h in m.hits.iter().filter(|h| h.is(Class::Agent) && h.start >= from) {
        // "claude" inside "claude code" is the same mention.
        if h.start < last_end {
            continue;
        }
        last_end = h.end;
        if is_actor(m, h, first) {
            return Some(h);
        }
    }
    None
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
    if let Some(t) = m.tok_before(h.start)
        && m.adjacent(t.end, h.start)
        && NOUN_BEFORE.contains(&m.word(t))
    {
        return false;
    }
    // Before: "use cc", "have gemini", "让 claude", "switch to claude".
    let cue_before = m.hits.iter().any(|c| {
        c.is(Class::ActorCue) && c.end <= h.start && m.adjacent(c.end, h.start) && !m.negated(c)
    });
    if cue_before || h.start == lead {
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
