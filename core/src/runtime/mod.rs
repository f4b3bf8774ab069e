//! The agent runtime port: one interface over codex app-server, claude stream-json and ACP.
//!
//! Adapters drive real agent processes through their structured protocols and translate what
//! they say into [`RuntimeEvent`]s; everything above this port is protocol-agnostic.

mod event;
mod port;
mod spec;
mod summary;

pub use event::{
    ApprovalDecision, ApprovalKind, ApprovalRequest, CommandStatus, FileChange, PlanStep, PlanStepStatus, RuntimeEvent,
    TurnOutcome, Usage,
};
pub use port::{AgentRuntime, AgentSession, InputFile, RuntimeError, TurnInput};
pub use spec::{AgentKind, McpServer, SessionSpec};
pub use summary::{one_line, output_tail, summarize};
