//! Restart notes, the pure part: which entries a later change made stale, the note as a few
//! lines (prompts and `/note`) and as Markdown (the exported file), and the `/note` command.
//!
//! The bot supplies what needs IO (the entries, each entry's files, what git says changed);
//! everything here is a function of its inputs.

mod capture;
mod command;
mod evidence;
mod render;
mod stale;

pub use capture::{Captured, CapturedEntry, Section, capture, is_test_command};
pub use command::{NoteCommand, parse_command};
pub use evidence::{Evidence, evidence_files, turn_evidence_id};
pub use render::{RestartNote, ShownEntry};
pub use stale::stale_files;

#[cfg(test)]
mod tests;
