//! The durable edges of the gateway: every inbound platform update is stored (and
//! deduplicated) before it is acknowledged, and every outbound message waits in the outbox
//! until the platform took it.

use super::{Channel, Id, Timestamp};

/// An inbound update as received, before anything interprets it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInbound {
    pub channel: Channel,
    /// The platform's id for the update (`update_id`, `event_id`, ...): the dedupe key.
    pub external_id: String,
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Inbound {
    pub id: Id,
    pub channel: Channel,
    pub external_id: String,
    pub payload: serde_json::Value,
    pub received_at: Timestamp,
    pub processed_at: Option<Timestamp>,
    /// Failed attempts at handling it, and the last error.
    pub attempts: i32,
    pub last_error: Option<String>,
}

/// Whether the inbox took an update. A platform redelivery is `Duplicate`: acknowledged again,
/// processed never again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxOutcome {
    Accepted(Id),
    Duplicate(Id),
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewOutbound {
    pub channel: Channel,
    pub chat_id: String,
    pub task_id: Option<Id>,
    pub approval_id: Option<Id>,
    pub payload: crate::reply::Reply,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Outbound {
    pub id: Id,
    pub channel: Channel,
    pub chat_id: String,
    pub task_id: Option<Id>,
    pub approval_id: Option<Id>,
    pub payload: crate::reply::Reply,
    pub attempts: i32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    /// The platform's id of the sent message, so replies to it find the task.
    pub external_message_id: Option<String>,
    pub sent_at: Option<Timestamp>,
    pub created_at: Timestamp,
}
