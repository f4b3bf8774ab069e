//! The exported copy of a note: `<project>/.taskgate/tasks/<task-id>.md`, rewritten whole
//! whenever the note changes (an entry of any kind, written by an agent, a person or captured
//! by the gateway), so it can be read (or committed) beside the code, and whenever a rendering
//! finds it out of date (a commit since made an entry stale).
//!
//! The directory is inside the project, where an agent (confined there by its sandbox) can
//! create links, and the note holds text agents supplied. So nothing here follows a link:
//! `.taskgate` and `.taskgate/tasks` must be real directories (each opened without following,
//! everything after relative to the opened directory, so a link swapped in meanwhile is not
//! followed either), the temporary file has an unpredictable name and is created exclusively
//! without following, and a target that is a link or not a regular file is refused, never
//! replaced.

use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use taskgate_core::model::Id;
use taskgate_core::notes::RestartNote;

/// The directories under the project, in order; each must be a real directory.
const DIRS: [&str; 2] = [".taskgate", "tasks"];

pub fn path(project: &Path, task: Id) -> PathBuf {
    project.join(DIRS[0]).join(DIRS[1]).join(file_name(task))
}

fn file_name(task: Id) -> String {
    format!("{task}.md")
}

/// Writes the note's Markdown.
pub async fn write(project: &Path, note: &RestartNote) -> io::Result<PathBuf> {
    let (project, task, markdown) = (project.to_owned(), note.task_id, note.markdown());
    blocking(move || {
        let dir = tasks_dir(&project)?;
        write_at(&dir, task, markdown.as_bytes())?;
        Ok(path(&project, task))
    })
    .await
}

/// Rewrites the export when it differs from `note` as rendered now: staleness is judged at
/// read time, so a commit changes the note without any write. `Ok(true)` when it wrote. A
/// task with nothing noted and no file gets none.
pub async fn sync(project: &Path, note: &RestartNote) -> io::Result<bool> {
    let (project, task, markdown) = (project.to_owned(), note.task_id, note.markdown());
    let noted = note.condensed().is_some();
    blocking(move || {
        let dir = tasks_dir(&project)?;
        let wanted = match read_at(&dir, task)? {
            Some(current) => current != markdown.as_bytes(),
            None => noted,
        };
        if wanted {
            write_at(&dir, task, markdown.as_bytes())?;
        }
        Ok(wanted)
    })
    .await
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(io::Error::other)?
}

fn refused(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("refusing to export the note: {what} is a symbolic link or not a regular directory or file"),
    )
}

/// `<project>/.taskgate/tasks`, opened; each part created when missing, refused when it is a
/// link or not a directory. The project directory itself is configured by the operator and
/// may be reached through links.
fn tasks_dir(project: &Path) -> io::Result<OwnedFd> {
    let mut dir =
        rustix::fs::openat(CWD, project, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let mut shown = String::new();
    for name in DIRS {
        shown = if shown.is_empty() { name.to_owned() } else { format!("{shown}/{name}") };
        match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        dir = match rustix::fs::openat(&dir, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => return Err(refused(&shown)),
            Err(e) => return Err(e.into()),
        };
    }
    Ok(dir)
}

/// The current export, `None` when there is none. A link or another kind of file in its
/// place reads as "not ours" (empty), so the write that follows refuses it.
fn read_at(dir: &OwnedFd, task: Id) -> io::Result<Option<Vec<u8>>> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    match rustix::fs::openat(dir, file_name(task), flags, Mode::empty()) {
        Ok(fd) => {
            let mut file = std::fs::File::from(fd);
            if !file.metadata()?.is_file() {
                return Ok(Some(Vec::new()));
            }
            // Through the descriptor opened without following (not `fs::read`, which would).
            let mut bytes = Vec::new();
            io::copy(&mut file, &mut bytes)?;
            Ok(Some(bytes))
        }
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(rustix::io::Errno::LOOP) => Ok(Some(Vec::new())),
        Err(e) => Err(e.into()),
    }
}

/// Through a temporary file and a rename, so a reader never sees half a note. The temporary
/// name is random (two gateways on one project never share one, and nobody can plant a link
/// at it in advance); it is created exclusively and without following links.
fn write_at(dir: &OwnedFd, task: Id, markdown: &[u8]) -> io::Result<()> {
    let target = file_name(task);
    let mut random = [0u8; 12];
    getrandom::fill(&mut random).map_err(|e| io::Error::other(format!("no randomness for a temporary name: {e}")))?;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let temp = format!(".{target}.{hex}.tmp");
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, &temp, flags, Mode::from_raw_mode(0o644))?;
    let written = (|| {
        let mut file = std::fs::File::from(fd);
        file.write_all(markdown)?;
        file.flush()?;
        match rustix::fs::statat(dir, &target, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile => {
                return Err(refused(&format!(".taskgate/tasks/{target}")));
            }
            Ok(_) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        rustix::fs::renameat(dir, &temp, dir, &target)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = rustix::fs::unlinkat(dir, &temp, AtFlags::empty());
    }
    written
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn note(task: Id) -> RestartNote {
        let at = chrono::Utc::now();
        let task = taskgate_core::model::Task {
            id: task,
            project_id: Some(1),
            title: "t".into(),
            goal: "g".into(),
            status: taskgate_core::model::TaskStatus::Idle,
            objective: Some("x".into()),
            reproduction: None,
            next_action: None,
            created_by: None,
            version: 1,
            created_at: at,
            updated_at: at,
        };
        RestartNote::new(&task, Vec::new())
    }

    #[tokio::test]
    async fn writes_and_keeps_the_export_current() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(sync(dir.path(), &note(3)).await.expect("sync"));
        let written = std::fs::read_to_string(path(dir.path(), 3)).expect("export");
        assert_eq!(written, note(3).markdown());
        assert!(!sync(dir.path(), &note(3)).await.expect("sync"), "unchanged: not written again");
        let left: Vec<_> = std::fs::read_dir(dir.path().join(".taskgate/tasks")).expect("dir").collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
    }

    #[tokio::test]
    async fn never_follows_links_out_of_the_project() {
        let outside = tempfile::tempdir().expect("outside");
        let victim = outside.path().join("profile");
        std::fs::write(&victim, "original\n").expect("victim");

        // The target itself is a link: refused, the link and its target untouched.
        let project = tempfile::tempdir().expect("project");
        std::fs::create_dir_all(project.path().join(".taskgate/tasks")).expect("dirs");
        symlink(&victim, path(project.path(), 4)).expect("link");
        let err = sync(project.path(), &note(4)).await.expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        assert!(write(project.path(), &note(4)).await.is_err());
        assert!(std::fs::symlink_metadata(path(project.path(), 4)).expect("link").file_type().is_symlink());

        // A directory where the file goes: refused too.
        std::fs::create_dir(path(project.path(), 5)).expect("dir");
        assert!(write(project.path(), &note(5)).await.is_err());

        // `.taskgate/tasks` is a link to a directory outside: refused before anything is made.
        let project = tempfile::tempdir().expect("project");
        std::fs::create_dir(project.path().join(".taskgate")).expect("dir");
        symlink(outside.path(), project.path().join(".taskgate/tasks")).expect("link");
        assert!(write(project.path(), &note(6)).await.is_err());
        // `.taskgate` itself a link.
        let project = tempfile::tempdir().expect("project");
        symlink(outside.path(), project.path().join(".taskgate")).expect("link");
        assert!(sync(project.path(), &note(6)).await.is_err());

        assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "original\n");
        let names: Vec<_> =
            std::fs::read_dir(outside.path()).expect("outside").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, ["profile"], "nothing was created outside the project");
    }
}
