//! What it takes to start one runtime session.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which structured protocol an agent speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// `codex app-server`: JSON-RPC without the `jsonrpc` field.
    Codex,
    /// `claude` with stream-json input/output and the stdio control protocol.
    Claude,
    /// Any Agent Client Protocol agent (JSON-RPC 2.0 over stdio).
    Acp,
}

impl AgentKind {
    /// Name used in condensed lines when a spec has no display name.
    pub fn default_name(self) -> &'static str {
        match self {
            AgentKind::Codex => "Codex",
            AgentKind::Claude => "Claude",
            AgentKind::Acp => "Agent",
        }
    }
}

/// Everything needed to spawn (or respawn) one agent process.
///
/// `args` are the operator's extra arguments; each adapter adds the protocol flags it needs
/// (codex: `app-server` unless present; claude: the stream-json and permission flags plus
/// `--resume`/`--model`; acp: nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSpec {
    /// Display name for people ("Codex", "cc", "gemini").
    pub agent: String,
    pub kind: AgentKind,
    pub program: String,
    pub args: Vec<String>,
    /// Extra environment for the child; values are never logged.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub model: Option<String>,
    /// Provider session id to resume (codex thread id, claude session id, ACP session id).
    pub resume: Option<String>,
    /// Codex `approvalPolicy` (`untrusted`, `on-request`, `never`).
    pub approval_policy: Option<String>,
    /// Codex `sandbox` (`read-only`, `workspace-write`, `danger-full-access`).
    pub sandbox: Option<String>,
    /// Per-turn time limit, enforced by the supervisor.
    pub turn_timeout: Option<Duration>,
}

impl SessionSpec {
    /// A spec with only the required parts; the rest can be set field by field.
    pub fn new(kind: AgentKind, program: impl Into<String>, cwd: impl Into<PathBuf>) -> Self {
        SessionSpec {
            agent: kind.default_name().to_string(),
            kind,
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: cwd.into(),
            model: None,
            resume: None,
            approval_policy: None,
            sandbox: None,
            turn_timeout: None,
        }
    }
}
