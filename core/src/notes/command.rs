//! `/note` in chat: bare, it shows the note; `/note <kind>: <text>` records an entry;
//! `/note next: …`, `/note reproduction: …`, `/note objective: …` set the headline fields.
//! A trailing `(evidence: turn:12, file:src/a.rs)` cites evidence.

use crate::model::NoteKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteCommand {
    Show,
    Record {
        kind: NoteKind,
        text: String,
        evidence: Vec<String>,
    },
    Objective(String),
    Reproduction(String),
    NextAction(String),
    /// Not understood; the text says how to write it.
    Help(String),
}

pub const USAGE: &str = "Write /note to see the task's note, or /note <verified|rejected|open|blocked|stale|next|reproduction|objective>: <text>";

/// `None` when `text` is not a `/note` command at all (so it goes on to classification).
pub fn parse_command(text: &str) -> Option<NoteCommand> {
    let text = text.trim();
    let (head, rest) = match text.split_once(char::is_whitespace) {
        Some((head, rest)) => (head, rest.trim()),
        None => (text, ""),
    };
    // `/note@taskgate_bot` in groups; another bot's command is still ours to ignore upstream.
    let command = head.split_once('@').map_or(head, |(c, _)| c);
    if !command.eq_ignore_ascii_case("/note") {
        return None;
    }
    if rest.is_empty() {
        return Some(NoteCommand::Show);
    }
    let Some((key, body)) = rest.split_once(':') else { return Some(NoteCommand::Help(USAGE.to_owned())) };
    let key = key.trim().to_lowercase();
    let (body, evidence) = split_evidence(body.trim());
    if body.is_empty() {
        return Some(NoteCommand::Help(USAGE.to_owned()));
    }
    let body = body.to_owned();
    Some(match key.as_str() {
        "next" | "next action" | "next_action" => NoteCommand::NextAction(body),
        "reproduction" | "repro" => NoteCommand::Reproduction(body),
        "objective" | "goal" => NoteCommand::Objective(body),
        other => match other.parse::<NoteKind>() {
            Ok(kind) => NoteCommand::Record { kind, text: body, evidence },
            Err(_) => NoteCommand::Help(USAGE.to_owned()),
        },
    })
}

/// Splits a trailing `(evidence: a, b)` off the text.
fn split_evidence(text: &str) -> (&str, Vec<String>) {
    if let Some(open) = text.rfind("(evidence:")
        && text.ends_with(')')
    {
        let inner = &text[open + "(evidence:".len()..text.len() - 1];
        let ids = inner.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        return (text[..open].trim_end(), ids);
    }
    (text, Vec::new())
}
