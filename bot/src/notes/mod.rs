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

use taskgate_core::model::{Body, Event, Execution, Id, Task};
use taskgate_core::notes::{RestartNote, ShownEntry, capture, evidence_files, stale_files};
use taskgate_core::store::{Store, StoreResult};

/// The author of entries the gateway writes itself.
pub const GATEWAY: &str = "gateway";

/// The project directory a task works in, when it has one that exists.
pub async fn project_dir(store: &dyn Store, task: &Task) -> StoreResult<Option<PathBuf>> {
    let Some(project) = task.project_id else { return Ok(None) };
    let path = store.projects().await?.into_iter().find(|p| p.id == project).map(|p| PathBuf::from(p.path));
    Ok(path.filter(|p| p.is_dir()))
}

/// The task's note: each agent or person entry with the files it depends on and whether a
/// commit since it was written touched them, then what the gateway captured from the
/// timeline (see `taskgate_core::notes::capture`).
pub async fn load(store: &dyn Store, task: &Task) -> StoreResult<RestartNote> {
    let timeline = store.timeline(task.id).await?;
    let executions = store.executions(task.id).await?;
    load_from(store, task, &timeline, &executions).await
}

/// [`load`] with the timeline and executions already read.
pub async fn load_from(
    store: &dyn Store,
    task: &Task,
    timeline: &[Event],
    executions: &[Execution],
) -> StoreResult<RestartNote> {
    let entries = store.note_entries(task.id).await?;
    let mut captured = capture(timeline, executions);
    let dir = project_dir(store, task).await?;
    // Captured file changes go stale like entries do: when a commit after them touches a file.
    if let Some(dir) = &dir
        && let Some(first) = captured.entries.iter().filter(|e| !e.files.is_empty()).map(|e| e.settled_at).min()
        && let Some(commits) = git::commits_since(dir, first).await
    {
        for entry in captured.entries.iter_mut().filter(|e| !e.files.is_empty()) {
            let changed: Vec<String> = commits
                .iter()
                .filter(|(at, _)| *at > entry.settled_at)
                .flat_map(|(_, files)| files.iter().cloned())
                .collect();
            entry.stale_because = stale_files(&entry.files, &changed);
        }
    }
    if entries.is_empty() {
        return Ok(RestartNote::new(task, Vec::new()).with_captured(captured));
    }
    let turns = turn_files(timeline);
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
    Ok(RestartNote::new(task, shown).with_captured(captured))
}

/// What a fresh session is seeded with (the supervisor puts it before the next input when a
/// replacement cannot resume): the title and the note within `budget` characters
/// (`notes.seed_chars`).
pub fn seed(task: &Task, note: &RestartNote, budget: usize) -> String {
    let title = format!("Task: {}\n", taskgate_core::runtime::one_line(&task.title, 200));
    let rest = budget.saturating_sub(title.chars().count());
    format!("{title}{}", note.seed(rest).unwrap_or_default())
}

/// Turn id → files changed, from the evidence records on the task's timeline.
fn turn_files(timeline: &[Event]) -> HashMap<Id, Vec<String>> {
    let mut out = HashMap::new();
    for event in timeline {
        if let Some(Body::TurnFinished { turn, evidence, .. }) = event.body.known() {
            out.insert(*turn, evidence.files.clone());
        }
    }
    out
}
