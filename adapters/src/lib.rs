//! Implementations of taskgate-core's ports: the sea-orm store, the channels and the agent
//! runtimes. Thin by design: decisions live in core.

pub mod feishu;
pub mod live;
pub mod outbox;
pub mod runtime;
pub mod store;
pub mod telegram;
pub mod worktree;
