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
    /// The gateway's MCP server for this session (restart-note tools), if it offers one.
    pub mcp: Option<McpServer>,
    /// Whether this session may share its agent process with other sessions of the same
    /// process configuration (program, arguments, environment). `None` is the protocol's
    /// default: codex shares (one `codex app-server` hosts many threads), claude and ACP run a
    /// process per session. `Some(true)` asks an ACP agent to host several sessions on one
    /// connection (the protocol allows it; agents do not advertise whether they cope);
    /// `Some(false)` gives a codex session an app-server of its own. Claude ignores it.
    pub share_process: Option<bool>,
}

/// An MCP server the agent should connect to: streamable HTTP at `url` with a bearer token
/// bound to this one session. Adapters pass the token through the child's environment
/// (`token_env`) wherever the agent can read it from there, so it stays off command lines.
#[derive(Clone, PartialEq)]
pub struct McpServer {
    /// The server's name in the agent's tool list (`taskgate`).
    pub name: String,
    pub url: String,
    pub token: String,
    /// The environment variable that carries `token` to the child.
    pub token_env: String,
    /// For agents that only speak stdio MCP: a command that bridges stdio to `url`
    /// (`taskgate mcp`), reading the URL and token from `TASKGATE_MCP_URL` and `token_env`.
    pub stdio_bridge: Option<Vec<String>>,
}

impl std::fmt::Debug for McpServer {
    /// The token is a credential: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("token", &"[REDACTED]")
            .field("token_env", &self.token_env)
            .field("stdio_bridge", &self.stdio_bridge)
            .finish()
    }
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
            mcp: None,
            share_process: None,
        }
    }
}
