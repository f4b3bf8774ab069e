use super::{Id, Timestamp, named_enum};

named_enum! {
    /// How far a restart-note finding can be trusted.
    pub enum NoteKind: "note entry kind" {
        /// Confirmed, with evidence.
        Verified = "verified",
        /// Tested and ruled out.
        Rejected = "rejected",
        /// A known question.
        Open = "open",
        /// Waiting on access or a decision.
        Blocked = "blocked",
        /// Needs a rerun after the code changed.
        Stale = "stale",
    }
}

/// One restart-note finding. Entries are additive: a contradiction is a new entry with its own
/// evidence, so the history of what was believed stays auditable.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NoteEntry {
    pub id: Id,
    pub task_id: Id,
    pub kind: NoteKind,
    pub text: String,
    /// Evidence ids (turns, commands, files) the finding rests on.
    pub evidence: Vec<String>,
    /// "execution:7", "person:3" or "gateway".
    pub author: String,
    /// The project's git commit when the entry was written, to detect staleness later.
    pub commit: Option<String>,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewNoteEntry {
    pub task_id: Id,
    pub kind: NoteKind,
    pub text: String,
    pub evidence: Vec<String>,
    pub author: String,
    pub commit: Option<String>,
}
