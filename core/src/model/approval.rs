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
        /// Always, in this project: stored as a rule (`/rules` lists and revokes them).
        Project = "project",
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
    /// The rule that approved it without asking, if one did.
    pub rule_id: Option<Id>,
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

/// A standing "yes" for one action of one agent in one project: "always allow `npm test`
/// here". An approval request for exactly that action is approved without asking, and the
/// audit log says which rule did it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ApprovalRule {
    pub id: Id,
    pub project_id: Option<Id>,
    /// The configured agent name the rule is for (`codex`).
    pub agent: String,
    /// The action exactly as the approval showed it ("run `npm test`").
    pub action: String,
    pub created_by: Option<Id>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewApprovalRule {
    pub project_id: Option<Id>,
    pub agent: String,
    pub action: String,
    pub created_by: Option<Id>,
}

/// One approval decision in the audit log: who decided what, where, when, with which scope,
/// or which rule decided it. Entries are chained: each carries the hash of the one before, so
/// an edited or removed row breaks the chain (`taskgate audit --verify`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    pub id: Id,
    pub at: Timestamp,
    pub approval_id: Id,
    pub task_id: Id,
    /// Who decided ("Ada"), or "rule #3", or "gateway" (expired, stopped).
    pub who: String,
    pub person_id: Option<Id>,
    pub channel: Option<Channel>,
    /// The chat it was decided in.
    pub place: String,
    pub action: String,
    pub decision: ApprovalStatus,
    pub scope: Option<Scope>,
    pub rule_id: Option<Id>,
    /// Hex SHA-256 of the previous entry (empty for the first).
    pub prev_hash: String,
    /// Hex SHA-256 over `prev_hash` and this entry's fields.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub approval_id: Id,
    pub task_id: Id,
    pub who: String,
    pub person_id: Option<Id>,
    pub channel: Option<Channel>,
    pub place: String,
    pub action: String,
    pub decision: ApprovalStatus,
    pub scope: Option<Scope>,
    pub rule_id: Option<Id>,
}

impl AuditEntry {
    /// The text the entry's hash covers: every field but `id` and `hash`, in a fixed order,
    /// one per line (so no field can borrow another's content).
    pub fn preimage(&self) -> String {
        let opt = |v: Option<String>| v.unwrap_or_default();
        [
            self.prev_hash.clone(),
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            self.approval_id.to_string(),
            self.task_id.to_string(),
            escape(&self.who),
            opt(self.person_id.map(|p| p.to_string())),
            opt(self.channel.map(|c| c.name().to_owned())),
            escape(&self.place),
            escape(&self.action),
            self.decision.name().to_owned(),
            opt(self.scope.map(|s| s.name().to_owned())),
            opt(self.rule_id.map(|r| r.to_string())),
        ]
        .join("\n")
    }
}

/// Newlines and backslashes escaped, so each field stays on its line of the preimage.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Where a chain of audit entries first breaks: the id of the first entry whose hash does not
/// match its content, or whose `prev_hash` is not its predecessor's hash. `hash` is the
/// caller's SHA-256 (hex) of a preimage.
pub fn audit_break(entries: &[AuditEntry], hash: impl Fn(&str) -> String) -> Option<Id> {
    let mut prev = String::new();
    for entry in entries {
        if entry.prev_hash != prev || hash(&entry.preimage()) != entry.hash {
            return Some(entry.id);
        }
        prev = entry.hash.clone();
    }
    None
}
