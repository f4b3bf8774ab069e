//! A git-initialised working directory: codex treats a repository as a workspace root, and
//! both agents record the git state of their cwd.

use std::io;
use std::path::Path;
use std::process::Command;

/// Creates `dir` and runs `git init` in it, with no global or system git config involved.
pub fn git_workdir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let out = Command::new("git")
        .args(["-c", "init.defaultBranch=main", "init", "-q"])
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("git init failed: {}", String::from_utf8_lossy(&out.stderr))));
    }
    Ok(())
}
