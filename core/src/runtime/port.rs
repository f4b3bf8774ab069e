//! The traits adapters implement.

use async_trait::async_trait;

use super::{ApprovalDecision, RuntimeEvent, SessionSpec};

/// A turn's input: the text, and files that go with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TurnInput {
    pub text: String,
    pub files: Vec<InputFile>,
}

/// One file of a turn, where the agent can read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// Absolute path on the agent's machine.
    pub path: std::path::PathBuf,
    pub name: String,
    pub mime: String,
    /// An image every protocol takes as image input; otherwise a file (a resource link for
    /// ACP, the path in the text for the others).
    pub image: bool,
}

impl TurnInput {
    pub fn text(text: impl Into<String>) -> Self {
        Self { text: text.into(), files: Vec::new() }
    }

    pub fn images(&self) -> impl Iterator<Item = &InputFile> {
        self.files.iter().filter(|f| f.image)
    }
}

/// Starts agent sessions. One implementation per protocol, plus a supervisor that wraps them.
#[async_trait]
pub trait AgentRuntime: Send + Sync {
    /// Spawns the agent and completes its handshake (and resume, when `spec.resume` is set).
    async fn start(&self, spec: SessionSpec) -> Result<Box<dyn AgentSession>, RuntimeError>;

    /// Sessions whose specs have the same key run on one agent process (and so take one
    /// process slot between them); `None` means the session gets a process of its own.
    fn process_key(&self, _spec: &SessionSpec) -> Option<String> {
        None
    }
}

/// One live runtime session: a provider session on an agent process (its own, or one shared
/// with other sessions of the same configuration; see [`AgentRuntime::process_key`]).
///
/// Commands take `&self`; `next_event` takes `&mut self` and is cancel-safe, so a caller can
/// `select!` on it alongside its own inbox.
#[async_trait]
pub trait AgentSession: Send + Sync {
    /// The provider's session or thread id, once known.
    fn provider_session_id(&self) -> Option<String>;

    /// Starts a turn. Fails with [`RuntimeError::Busy`] while another turn runs.
    async fn send_turn(&self, text: &str) -> Result<(), RuntimeError>;

    /// Starts a turn with files: images as the protocol's image input, other files as what
    /// the protocol has for them (the text already names them with their paths). A session
    /// that knows no such input gets the text alone.
    async fn send_input(&self, input: &TurnInput) -> Result<(), RuntimeError> {
        self.send_turn(&input.text).await
    }

    /// Answers a pending approval.
    async fn decide(&self, request_id: &str, decision: ApprovalDecision) -> Result<(), RuntimeError>;

    /// Answers a pending question.
    async fn answer(&self, request_id: &str, text: &str) -> Result<(), RuntimeError>;

    /// Asks the agent to stop the current turn; the session stays.
    async fn interrupt(&self) -> Result<(), RuntimeError>;

    /// The next event; `None` once the session is gone and every event was read.
    async fn next_event(&mut self) -> Option<RuntimeEvent>;

    /// Ends the session politely and waits for it: its process ends, or, on a process shared
    /// with other sessions, its thread is interrupted and released while the process goes on.
    async fn shutdown(&mut self);

    /// Ends the session at once, killing its process even when other sessions share it (they
    /// report [`RuntimeEvent::Died`]): for a turn that ignores the interrupt.
    async fn kill(&mut self) {
        self.shutdown().await;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("could not start the agent: {0}")]
    Spawn(String),
    #[error("the agent did not complete its handshake: {0}")]
    Handshake(String),
    #[error("could not resume the session: {0}")]
    Resume(String),
    #[error("a turn is already running")]
    Busy,
    #[error("no turn is running")]
    NoTurn,
    #[error("no pending request with id {0}")]
    UnknownRequest(String),
    #[error("the agent process is gone")]
    Dead,
    #[error("not supported by this agent: {0}")]
    Unsupported(String),
}
