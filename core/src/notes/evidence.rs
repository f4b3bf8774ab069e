//! Evidence ids: what a note entry rests on, as short stable strings.
//!
//! - `turn:<id>`: a finished turn; the gateway records its commands (with exit codes) and the
//!   files it changed, so citing the turn cites those files too.
//! - `file:<path>`: a file in the project, relative to its root.
//! - anything else (`cmd:…`, a URL, a log line): kept and shown, never interpreted.

use crate::model::Id;

/// One parsed evidence id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence<'a> {
    Turn(Id),
    File(&'a str),
    Other(&'a str),
}

impl<'a> Evidence<'a> {
    pub fn parse(id: &'a str) -> Self {
        let id = id.trim();
        if let Some(turn) = id.strip_prefix("turn:")
            && let Ok(turn) = turn.trim().parse::<Id>()
        {
            return Evidence::Turn(turn);
        }
        match id.strip_prefix("file:").map(str::trim) {
            Some(path) if !path.is_empty() => Evidence::File(path),
            _ => Evidence::Other(id),
        }
    }
}

/// The evidence id of a finished turn.
pub fn turn_evidence_id(turn: Id) -> String {
    format!("turn:{turn}")
}

/// The files an entry depends on: its `file:` evidence plus the files its cited turns changed
/// (`turn_files` looks a turn up; unknown turns contribute nothing). Sorted, without
/// duplicates, with a leading `./` dropped so paths compare like git prints them.
pub fn evidence_files(evidence: &[String], turn_files: impl Fn(Id) -> Vec<String>) -> Vec<String> {
    let mut files: Vec<String> = Vec::new();
    for id in evidence {
        match Evidence::parse(id) {
            Evidence::Turn(turn) => files.extend(turn_files(turn).iter().map(|f| normalize(f))),
            Evidence::File(path) => files.push(normalize(path)),
            Evidence::Other(_) => {}
        }
    }
    files.retain(|f| !f.is_empty());
    files.sort();
    files.dedup();
    files
}

pub(super) fn normalize(path: &str) -> String {
    let mut path = path.trim();
    while let Some(rest) = path.strip_prefix("./") {
        path = rest;
    }
    path.to_owned()
}
