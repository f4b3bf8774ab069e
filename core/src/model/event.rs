use super::{Channel, Id, Timestamp, named_enum};

named_enum! {
    /// What a timeline entry records.
    pub enum EventKind: "event kind" {
        /// A person's message, with its channel.
        Message = "message",
        /// The classifier's decision and its reason.
        Decision = "decision",
        /// Streamed agent output, plans, session start/death.
        Runtime = "runtime",
        Command = "command",
        FileChange = "file_change",
        Approval = "approval",
        /// A turn's outcome.
        Result = "result",
        Note = "note",
        Status = "status",
    }
}

/// An entry of a task's append-only timeline. Entries are never updated or deleted; `id`
/// orders them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub id: Id,
    pub task_id: Id,
    pub execution_id: Option<Id>,
    pub kind: EventKind,
    pub channel: Option<Channel>,
    pub actor: Option<String>,
    /// Kind-specific payload, shown whole on the web and condensed on phones.
    pub body: serde_json::Value,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub task_id: Id,
    pub execution_id: Option<Id>,
    pub kind: EventKind,
    pub channel: Option<Channel>,
    pub actor: Option<String>,
    pub body: serde_json::Value,
}
