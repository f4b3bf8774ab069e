use super::{Channel, Id, StateMachine, Timestamp, named_enum, transitions};

named_enum! {
    pub enum ApprovalStatus: "approval status" {
        Pending = "pending",
        Approved = "approved",
        Denied = "denied",
        /// Denied and the turn stopped ("deny and stop").
        Cancelled = "cancelled",
        /// The turn ended before anyone answered.
        Expired = "expired",
    }
}

transitions!(ApprovalStatus: "approval" {
    Pending => [Approved, Denied, Cancelled, Expired],
    Approved => [],
    Denied => [],
    Cancelled => [],
    Expired => [],
});

named_enum! {
    pub enum Scope: "scope" {
        Once = "once",
        /// For the rest of the runtime session.
        Always = "always",
    }
}

/// What someone answered to an approval request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Answer {
    Approve(Scope),
    Deny,
    DenyAndStop,
}

impl Answer {
    fn status(self) -> ApprovalStatus {
        match self {
            Answer::Approve(_) => ApprovalStatus::Approved,
            Answer::Deny => ApprovalStatus::Denied,
            Answer::DenyAndStop => ApprovalStatus::Cancelled,
        }
    }
}

/// An agent's request to act, waiting for (or holding) a person's answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Approval {
    pub id: Id,
    pub task_id: Id,
    /// The execution whose agent asked (rows from before this was recorded have none).
    pub execution_id: Option<Id>,
    pub turn_id: Option<Id>,
    /// A random value every button for this approval repeats: ids are sequential and could be
    /// guessed, the nonce cannot.
    pub nonce: String,
    /// The protocol's own id for the request, to answer the agent with.
    pub request_id: String,
    /// What the agent wants to do, for people: "run `npm test`".
    pub action: String,
    pub status: ApprovalStatus,
    pub scope: Option<Scope>,
    pub decided_by: Option<Id>,
    pub decided_channel: Option<Channel>,
    pub decided_at: Option<Timestamp>,
    pub version: i32,
    pub created_at: Timestamp,
}

/// A second answer to an approval: says who answered first, so the chat can tell the user.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("already {status} by person {by:?} via {channel:?} at {at:?}")]
pub struct AlreadyDecided {
    pub status: ApprovalStatus,
    pub by: Option<Id>,
    pub channel: Option<Channel>,
    pub at: Option<Timestamp>,
}

impl Approval {
    /// Resolves the approval once. A second answer, from any channel, is refused with who
    /// answered first; the stored decision never changes.
    pub fn decide(&mut self, answer: Answer, by: Id, channel: Channel, at: Timestamp) -> Result<(), AlreadyDecided> {
        let status = self.status.transition(answer.status()).map_err(|_| AlreadyDecided {
            status: self.status,
            by: self.decided_by,
            channel: self.decided_channel,
            at: self.decided_at,
        })?;
        self.status = status;
        self.scope = match answer {
            Answer::Approve(scope) => Some(scope),
            _ => None,
        };
        self.decided_by = Some(by);
        self.decided_channel = Some(channel);
        self.decided_at = Some(at);
        Ok(())
    }
}
