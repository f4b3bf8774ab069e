//! The classifier's output: an intent, its target fields, a confidence and a short reason.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    Continue,
    Spawn,
    NewTask,
    NewSession,
    Approve,
    Deny,
    Status,
    Cancel,
    Ignore,
    Clarify,
}

impl Intent {
    pub const ALL: [Intent; 10] = [
        Self::Continue,
        Self::Spawn,
        Self::NewTask,
        Self::NewSession,
        Self::Approve,
        Self::Deny,
        Self::Status,
        Self::Cancel,
        Self::Ignore,
        Self::Clarify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Continue => "continue",
            Self::Spawn => "spawn",
            Self::NewTask => "new_task",
            Self::NewSession => "new_session",
            Self::Approve => "approve",
            Self::Deny => "deny",
            Self::Status => "status",
            Self::Cancel => "cancel",
            Self::Ignore => "ignore",
            Self::Clarify => "clarify",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.as_str() == s)
    }
}

impl fmt::Display for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Roles and scopes are the model's own: the classifier names what the store will hold.
pub use crate::model::{Role, Scope};

/// One classification. Serializes exactly like the contract's output line (minus `id`, which the
/// jsonl layer adds): every target field is present, `null` when it does not apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub intent: Intent,
    pub task: Option<String>,
    pub agent: Option<String>,
    pub role: Option<Role>,
    pub approval: Option<String>,
    pub scope: Option<Scope>,
    /// In [0, 1].
    pub confidence: f32,
    pub reason: String,
}

impl Decision {
    pub(crate) fn new(intent: Intent, confidence: f32, reason: impl Into<String>) -> Self {
        Self {
            intent,
            task: None,
            agent: None,
            role: None,
            approval: None,
            scope: None,
            confidence: confidence.clamp(0.0, 1.0),
            reason: reason.into(),
        }
    }

    pub(crate) fn task(mut self, task: Option<&str>) -> Self {
        self.task = task.map(str::to_owned);
        self
    }

    pub(crate) fn agent(mut self, agent: Option<&str>) -> Self {
        self.agent = agent.map(str::to_owned);
        self
    }

    pub(crate) fn role(mut self, role: Role) -> Self {
        self.role = Some(role);
        self
    }

    pub(crate) fn approval(mut self, approval: &str, scope: Option<Scope>) -> Self {
        self.approval = Some(approval.to_owned());
        self.scope = scope;
        self
    }

    /// The bot should ask rather than guess.
    pub(crate) fn clarify(reason: impl Into<String>) -> Self {
        Self::new(Intent::Clarify, 0.5, reason)
    }
}
