//! Restart notes, the IO side: reading a task's note from the store with staleness judged
//! by git, the per-turn evidence the runner records, the Markdown export, and the MCP server
//! agents write through (and its stdio bridge, `taskgate mcp`). The pure rules live in
//! `taskgate_core::notes`.

pub mod bridge;
pub mod export;
pub mod git;
mod keeper;
pub mod mcp;

pub use keeper::{Keeper, NoteError, NoteWrite};

use std::collections::HashMap;
use std::path::PathBuf;

use taskgate_core::model::{Body, Id, Task};
use taskgate_core::notes::{RestartNote, ShownEntry, evidence_files, stale_files};
use taskgate_core::store::{Store, StoreResult};

/// The author of entries the gateway writes itself.
pub const GATEWAY: &str = "gateway";

/// The project directory a task works in, when it has one that exists.
pub async fn project_dir(store: &dyn Store, task: &Task) -> StoreResult<Option<PathBuf>> {
    let Some(project) = task.project_id else { return Ok(None) };
    let path = store.projects().await?.into_iter().find(|p| p.id == project).map(|p| PathBuf::from(p.path));
    Ok(path.filter(|p| p.is_dir()))
}

/// The task's note, each entry with the files it depends on and whether a commit since it
/// was written touched them.
pub async fn load(store: &dyn Store, task: &Task) -> StoreResult<RestartNote> {
    let entries = store.note_entries(task.id).await?;
    if entries.is_empty() {
        return Ok(RestartNote::new(task, Vec::new()));
    }
    let cites_turns = entries.iter().flat_map(|e| &e.evidence).any(|id| id.trim_start().starts_with("turn:"));
    let turns = if cites_turns { turn_files(store, task.id).await? } else { HashMap::new() };
    let dir = project_dir(store, task).await?;
    // One `git diff` per distinct commit, not per entry.
    let mut changed: HashMap<String, Option<Vec<String>>> = HashMap::new();
    let mut shown = Vec::with_capacity(entries.len());
    for entry in entries {
        let files = evidence_files(&entry.evidence, |turn| turns.get(&turn).cloned().unwrap_or_default());
        let stale_because = match (&dir, &entry.commit) {
            (Some(dir), Some(commit)) if !files.is_empty() => {
                if !changed.contains_key(commit) {
                    changed.insert(commit.clone(), git::changed_since(dir, commit).await);
                }
                changed.get(commit).and_then(Option::as_ref).map(|c| stale_files(&files, c)).unwrap_or_default()
            }
            _ => Vec::new(),
        };
        shown.push(ShownEntry { entry, files, stale_because });
    }
    Ok(RestartNote::new(task, shown))
}

/// What a fresh session is seeded with (the supervisor puts it before the next input when a
/// replacement cannot resume).
pub fn seed(task: &Task, note: &RestartNote) -> String {
    format!("Task: {}\n{}", task.title, note.condensed().unwrap_or_default())
}

/// Turn id → files changed, from the evidence records on the task's timeline.
async fn turn_files(store: &dyn Store, task: Id) -> StoreResult<HashMap<Id, Vec<String>>> {
    let mut out = HashMap::new();
    for event in store.timeline(task).await? {
        if let Some(Body::TurnFinished { turn, evidence, .. }) = event.body.known() {
            out.insert(*turn, evidence.files.clone());
        }
    }
    Ok(out)
}
