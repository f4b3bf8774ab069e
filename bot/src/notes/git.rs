//! What git says about a project: the commit an entry was written at, and which files changed
//! since. Every failure (not a repository, no git, a commit that is gone) is `None`: notes
//! work in any directory, they just cannot judge staleness there.

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

/// git on a local repository answers in milliseconds; a hung one must not hold a note up.
const GIT_WAIT: Duration = Duration::from_secs(5);

/// `git rev-parse HEAD` in `dir`.
pub async fn head(dir: &Path) -> Option<String> {
    let out = git(dir, &["rev-parse", "--verify", "--quiet", "HEAD"]).await?;
    let commit = out.trim();
    is_commit(commit).then(|| commit.to_owned())
}

/// `git diff --name-only <commit>..HEAD` in `dir`: the files committed changes touched since
/// `commit`. Uncommitted edits do not count: an entry is written against the working tree it
/// was checked on, so only a later commit says that tree moved.
pub async fn changed_since(dir: &Path, commit: &str) -> Option<Vec<String>> {
    // Only a hex id reaches the command line: a stored "commit" must never become an option.
    if !is_commit(commit) {
        return None;
    }
    let range = format!("{commit}..HEAD");
    let out = git(dir, &["diff", "--name-only", "--no-renames", &range, "--"]).await?;
    Some(out.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect())
}

/// The commits on HEAD made since `since` (committer time), each with the files it touched:
/// what a captured file change is judged stale by (it has no commit of its own).
pub async fn commits_since(
    dir: &Path,
    since: chrono::DateTime<chrono::Utc>,
) -> Option<Vec<(chrono::DateTime<chrono::Utc>, Vec<String>)>> {
    let since = format!("--since=@{}", since.timestamp());
    let out = git(dir, &["log", &since, "--format=@%ct", "--name-only", "--no-renames", "HEAD", "--"]).await?;
    let mut commits: Vec<(chrono::DateTime<chrono::Utc>, Vec<String>)> = Vec::new();
    for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(secs) = line.strip_prefix('@').and_then(|t| t.parse::<i64>().ok()) {
            commits.push((chrono::DateTime::from_timestamp(secs, 0)?, Vec::new()));
        } else if let Some((_, files)) = commits.last_mut() {
            files.push(line.to_owned());
        }
    }
    Some(commits)
}

fn is_commit(s: &str) -> bool {
    (4..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn git(dir: &Path, args: &[&str]) -> Option<String> {
    if !dir.is_dir() {
        return None;
    }
    let mut command = Command::new("git");
    command.arg("-C").arg(dir).args(args).kill_on_drop(true).stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(GIT_WAIT, command.output()).await.ok()?.ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()
}
