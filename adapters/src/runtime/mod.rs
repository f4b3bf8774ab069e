//! Agent runtimes: codex app-server, claude stream-json and ACP agents driven as child
//! processes through their structured protocols, plus a supervisor for crashes and limits.

mod acp;
mod claude;
mod codex;
mod jsonrpc;
mod mcp;
mod process;
mod session;
mod supervisor;

use std::time::Duration;

use async_trait::async_trait;
use taskgate_core::runtime::{AgentKind, AgentRuntime, AgentSession, RuntimeError, SessionSpec};

pub use acp::AcpRuntime;
pub use claude::ClaudeRuntime;
pub use codex::CodexRuntime;
/// Where the MCP stdio bridge finds the gateway (set in the agent's environment).
pub use mcp::URL_ENV as MCP_URL_ENV;
pub use session::{ProcessSession, SessionHandle};
pub use supervisor::{RestartNoteSlot, SupervisedSession, Supervisor, SupervisorOptions};

/// Limits shared by every protocol adapter.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Longer stdout lines are skipped (logged), never buffered whole.
    pub max_line_bytes: usize,
    /// How long `start` waits for the handshake (and resume).
    pub handshake_timeout: Duration,
    /// How long `shutdown` waits after closing stdin before killing.
    pub shutdown_grace: Duration,
    /// How long to wait for an exit status after the agent closed its output.
    pub exit_wait: Duration,
    /// Sent to agents as the client's name and version.
    pub client_name: String,
    pub client_version: String,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            max_line_bytes: 8 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(3),
            exit_wait: Duration::from_secs(2),
            client_name: "taskgate".to_string(),
            client_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// Starts a session with the adapter matching `spec.kind`.
#[derive(Debug, Clone, Default)]
pub struct AgentRuntimes {
    pub options: RuntimeOptions,
}

impl AgentRuntimes {
    pub fn new(options: RuntimeOptions) -> Self {
        AgentRuntimes { options }
    }
}

#[async_trait]
impl AgentRuntime for AgentRuntimes {
    async fn start(&self, spec: SessionSpec) -> Result<Box<dyn AgentSession>, RuntimeError> {
        let options = self.options.clone();
        match spec.kind {
            AgentKind::Codex => CodexRuntime::new(options).start(spec).await,
            AgentKind::Claude => ClaudeRuntime::new(options).start(spec).await,
            AgentKind::Acp => AcpRuntime::new(options).start(spec).await,
        }
    }
}
