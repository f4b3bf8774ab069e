//! taskgate's domain: the durable task model and its state machines, the classifier and router,
//! and the ports (traits) that adapters implement. No IO crates live here, so everything in this
//! crate is a pure function of its inputs and testable without a database or a network.

pub mod attachment;
pub mod classify;
pub mod fair;
pub mod model;
pub mod notes;
pub mod plan;
pub mod react;
pub mod reply;
pub mod route;
pub mod runtime;
pub mod store;
pub mod wording;
pub mod worktree;
