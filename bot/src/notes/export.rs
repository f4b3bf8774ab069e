//! The exported copy of a note: `<project>/.taskgate/tasks/<task-id>.md`, rewritten whole
//! whenever the note changes, so it can be read (or committed) beside the code.

use std::path::{Path, PathBuf};

use taskgate_core::model::Id;
use taskgate_core::notes::RestartNote;

pub fn path(project: &Path, task: Id) -> PathBuf {
    project.join(".taskgate").join("tasks").join(format!("{task}.md"))
}

/// Writes the note's Markdown. Through a temporary file and a rename, so a reader never sees
/// half a note.
pub async fn write(project: &Path, note: &RestartNote) -> std::io::Result<PathBuf> {
    let target = path(project, note.task_id);
    let dir = target.parent().unwrap_or(project);
    tokio::fs::create_dir_all(dir).await?;
    let temp = dir.join(format!(".{}.md.tmp", note.task_id));
    tokio::fs::write(&temp, note.markdown()).await?;
    tokio::fs::rename(&temp, &target).await?;
    Ok(target)
}
