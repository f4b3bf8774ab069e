//! The exported copy of a note: `<project>/.taskgate/tasks/<task-id>.md`, rewritten whole
//! whenever the note changes, so it can be read (or committed) beside the code, and whenever
//! a rendering finds it out of date (a commit since made an entry stale).

use std::path::{Path, PathBuf};

use taskgate_core::model::Id;
use taskgate_core::notes::RestartNote;

pub fn path(project: &Path, task: Id) -> PathBuf {
    project.join(".taskgate").join("tasks").join(format!("{task}.md"))
}

/// Writes the note's Markdown.
pub async fn write(project: &Path, note: &RestartNote) -> std::io::Result<PathBuf> {
    write_markdown(project, note.task_id, &note.markdown()).await
}

/// Rewrites the export when it differs from `note` as rendered now: staleness is judged at
/// read time, so a commit changes the note without any write. `Ok(true)` when it wrote. A
/// task with nothing noted and no file gets none.
pub async fn sync(project: &Path, note: &RestartNote) -> std::io::Result<bool> {
    let markdown = note.markdown();
    let current = match tokio::fs::read_to_string(path(project, note.task_id)).await {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        // Not UTF-8 (someone else's file): replaced like any out-of-date copy.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Some(String::new()),
        Err(e) => return Err(e),
    };
    let wanted = match &current {
        Some(text) => *text != markdown,
        None => note.condensed().is_some(),
    };
    if wanted {
        write_markdown(project, note.task_id, &markdown).await?;
    }
    Ok(wanted)
}

/// Through a temporary file and a rename, so a reader never sees half a note. The temporary
/// name is per process: two gateways on one project must not write into each other's.
async fn write_markdown(project: &Path, task: Id, markdown: &str) -> std::io::Result<PathBuf> {
    let target = path(project, task);
    let dir = target.parent().unwrap_or(project);
    tokio::fs::create_dir_all(dir).await?;
    let temp = dir.join(format!(".{task}.md.{}.tmp", std::process::id()));
    tokio::fs::write(&temp, markdown).await?;
    tokio::fs::rename(&temp, &target).await?;
    Ok(target)
}
