use super::{Channel, Id, Timestamp};

/// One human, reachable through several identities.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Person {
    pub id: Id,
    pub name: String,
    pub created_at: Timestamp,
}

/// A person's account on one channel; `(channel, external_id)` is unique.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub id: Id,
    pub person_id: Id,
    pub channel: Channel,
    pub external_id: String,
    pub display_name: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Project {
    pub id: Id,
    pub name: String,
    pub path: String,
    pub default_agent: Option<String>,
    pub created_at: Timestamp,
}

/// A chat (or a topic inside one) and the task it is focused on; `(channel, chat_id, thread_id)`
/// is unique. The focus is what a bare follow-up continues.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Conversation {
    pub id: Id,
    pub channel: Channel,
    pub chat_id: String,
    /// Empty when the chat has no threads; never null so that the unique key works on every
    /// backend (NULLs are distinct in unique indexes).
    pub thread_id: String,
    pub focused_task_id: Option<Id>,
    pub created_at: Timestamp,
}

/// A one-time code that links a second channel's identity to the person who asked for it
/// (`/link` on one channel, `/link CODE` on another).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinkCode {
    pub code: String,
    /// Who asked for the code: the person the other identity joins.
    pub person_id: Id,
    /// Where the code was shown.
    pub channel: Channel,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}
