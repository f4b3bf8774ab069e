//! Agent runtimes: codex app-server, claude stream-json and ACP agents driven as child
//! processes through their structured protocols, plus a supervisor for crashes and limits.

mod acp;
mod claude;
mod codex;
mod jsonrpc;
mod mcp;
mod process;
mod session;
mod shared;
mod supervisor;

use std::sync::Arc;
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
    /// How long a process shared by several sessions stays after its last session left, so
    /// a session that follows at once (a `/new`, a restart) finds it running.
    pub shared_linger: Duration,
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
            shared_linger: Duration::from_secs(2),
            client_name: "taskgate".to_string(),
            client_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// Starts a session with the adapter matching `spec.kind`. Clones share their processes:
/// codex sessions of one configuration run as threads of one `codex app-server`, and ACP
/// sessions that ask for it share one agent connection (see [`SessionSpec::share_process`]).
#[derive(Debug, Clone, Default)]
pub struct AgentRuntimes {
    pub options: RuntimeOptions,
    codex: Arc<shared::Pool>,
    acp: Arc<shared::Pool>,
}

impl AgentRuntimes {
    pub fn new(options: RuntimeOptions) -> Self {
        AgentRuntimes { options, ..AgentRuntimes::default() }
    }
}

#[async_trait]
impl AgentRuntime for AgentRuntimes {
    async fn start(&self, spec: SessionSpec) -> Result<Box<dyn AgentSession>, RuntimeError> {
        let options = self.options.clone();
        match spec.kind {
            AgentKind::Codex => CodexRuntime::on_pool(options, self.codex.clone()).start(spec).await,
            AgentKind::Claude => ClaudeRuntime::new(options).start(spec).await,
            AgentKind::Acp => AcpRuntime::on_pool(options, self.acp.clone()).start(spec).await,
        }
    }

    fn process_key(&self, spec: &SessionSpec) -> Option<String> {
        match spec.kind {
            AgentKind::Codex => codex::process_key(spec),
            AgentKind::Claude => None,
            AgentKind::Acp => acp::process_key(spec),
        }
    }
}

/// The key of a process shared by several sessions: everything that configures the process
/// itself rather than one session on it. Environment values are compared, never printed.
fn shared_key(spec: &SessionSpec, args: &[String]) -> String {
    let mut env = spec.env.clone();
    env.sort();
    serde_json::json!({ "kind": spec.kind, "program": spec.program, "args": args, "env": env }).to_string()
}

/// The session's working directory as an absolute path: a shared process was started in some
/// other session's directory, so a relative one would point elsewhere.
fn absolute_cwd(spec: &SessionSpec) -> std::path::PathBuf {
    std::path::absolute(&spec.cwd).unwrap_or_else(|_| spec.cwd.clone())
}
