//! The durable model: Person → Project → Task → Execution → RuntimeSession → Turn, with
//! approvals, the append-only timeline and restart-note entries. Plain data plus the rules
//! that govern it; storing it is the job of the `Store` port.

mod approval;
mod event;
mod messaging;
mod note;
mod people;
mod status;
mod work;

pub use approval::*;
pub use event::*;
pub use messaging::*;
pub use note::*;
pub use people::*;
pub use status::{IllegalTransition, StateMachine, UnknownName};
pub(crate) use status::{named_enum, transitions};
pub use work::*;

/// Rows are keyed by database-assigned integers: short enough for a Telegram `callback_data`
/// (64 bytes) and for people to say "task 42".
pub type Id = i64;

pub type Timestamp = chrono::DateTime<chrono::Utc>;

named_enum! {
    /// Where a message came from or goes to.
    pub enum Channel: "channel" {
        Telegram = "telegram",
        Feishu = "feishu",
        Web = "web",
    }
}

#[cfg(test)]
mod tests;
