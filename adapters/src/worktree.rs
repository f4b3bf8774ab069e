//! Git worktrees for executions, through the `git` CLI (argv, never a shell): made from the
//! current state of a checkout without touching it (uncommitted changes included, written to
//! a temporary index), settled into commits on their branch when a turn ends, diffed against
//! their base, merged into the project only when that cannot conflict, and removed.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use taskgate_core::worktree::MergeOutcome;
use tokio::process::Command;

/// Who taskgate's own commits (snapshots, settled turns) are by, when git has nobody set.
const NAME: &str = "taskgate";
const EMAIL: &str = "taskgate@localhost";

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("git {command} failed: {message}")]
    Failed { command: String, message: String },
}

pub type GitResult<T> = Result<T, GitError>;

/// One git invocation's result.
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `git <args>` in `dir` with `env`; the output whatever the exit code.
async fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> GitResult<Output> {
    let mut command = Command::new("git");
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Never wait on a prompt or an editor.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_EDITOR", "true")
        .env("GIT_MERGE_AUTOEDIT", "no")
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().await?;
    Ok(Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `git <args>` that must succeed; its trimmed stdout.
async fn git(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> GitResult<String> {
    let out = run(dir, args, env).await?;
    if out.code != 0 {
        return Err(GitError::Failed {
            command: args.first().copied().unwrap_or_default().to_owned(),
            message: out.stderr.trim().lines().last().unwrap_or_default().to_owned(),
        });
    }
    Ok(out.stdout.trim().to_owned())
}

/// The identity for commits taskgate makes: git's own when one is configured, else taskgate's.
async fn identity(dir: &Path) -> Vec<(&'static str, String)> {
    let configured = run(dir, &["var", "GIT_COMMITTER_IDENT"], &[]).await.is_ok_and(|o| o.code == 0)
        && run(dir, &["var", "GIT_AUTHOR_IDENT"], &[]).await.is_ok_and(|o| o.code == 0);
    if configured {
        return Vec::new();
    }
    vec![
        ("GIT_AUTHOR_NAME", NAME.to_owned()),
        ("GIT_AUTHOR_EMAIL", EMAIL.to_owned()),
        ("GIT_COMMITTER_NAME", NAME.to_owned()),
        ("GIT_COMMITTER_EMAIL", EMAIL.to_owned()),
    ]
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Whether `dir` is inside a git work tree with at least one commit.
pub async fn is_repository(dir: &Path) -> bool {
    dir.is_dir() && run(dir, &["rev-parse", "--verify", "--quiet", "HEAD"], &[]).await.is_ok_and(|o| o.code == 0)
}

/// The commit holding `dir`'s working tree as it is now, uncommitted and untracked (not
/// ignored) files included: `HEAD` itself when nothing differs, else a new commit on top of
/// it. Written through a temporary index, so the checkout and its index stay untouched.
pub async fn snapshot(dir: &Path) -> GitResult<String> {
    let head = git(dir, &["rev-parse", "HEAD"], &[]).await?;
    let tree = working_tree(dir).await?;
    let head_tree = git(dir, &["rev-parse", "HEAD^{tree}"], &[]).await?;
    if tree == head_tree {
        return Ok(head);
    }
    let id = identity(dir).await;
    git(dir, &["commit-tree", &tree, "-p", &head, "-m", "taskgate: snapshot of the working tree"], &env_refs(&id)).await
}

/// The tree object of `dir`'s working tree (through a copy of its index).
async fn working_tree(dir: &Path) -> GitResult<String> {
    let index = PathBuf::from(git(dir, &["rev-parse", "--path-format=absolute", "--git-path", "index"], &[]).await?);
    let temp = TempIndex(std::env::temp_dir().join(format!(
        "taskgate-index-{}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    )));
    let temp_path = temp.0.to_string_lossy().into_owned();
    if index.exists() {
        std::fs::copy(&index, &temp.0)?;
    } else {
        git(dir, &["read-tree", "HEAD"], &[("GIT_INDEX_FILE", &temp_path)]).await?;
    }
    let env = [("GIT_INDEX_FILE", temp_path.as_str())];
    git(dir, &["add", "-A", "--", ".", OWN_DIR], &env).await?;
    git(dir, &["write-tree"], &env).await
}

/// A temporary index file, deleted when dropped.
struct TempIndex(PathBuf);

impl Drop for TempIndex {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// taskgate's own files in a project (`.taskgate/`: exported restart notes, attachments) as
/// a pathspec that leaves them out: they are neither the user's work nor the agent's, so they
/// never make a checkout dirty, go into a snapshot or onto a branch.
const OWN_DIR: &str = ":(top,exclude).taskgate";

/// Paths with uncommitted changes in `dir` (staged, unstaged or untracked), taskgate's own
/// files left out.
pub async fn dirty_paths(dir: &Path) -> GitResult<Vec<String>> {
    let out = git(dir, &["status", "--porcelain=v1", "--untracked-files=all", "--", ".", OWN_DIR], &[]).await?;
    Ok(out.lines().filter(|l| l.len() > 3).map(|l| l[3..].to_owned()).collect())
}

/// A worktree made for an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub branch: String,
    /// The commit the branch starts at.
    pub base: String,
}

/// Makes a worktree at `path` on a new branch `branch` (or `fallback` when `branch` exists),
/// starting from `from`'s current state (a checkout of the same repository as `project`,
/// uncommitted changes included).
pub async fn create(project: &Path, from: &Path, path: &Path, branch: &str, fallback: &str) -> GitResult<Made> {
    let base = snapshot(from).await?;
    let exists = |name: String| async move {
        run(project, &["rev-parse", "--verify", "--quiet", &format!("refs/heads/{name}")], &[])
            .await
            .is_ok_and(|o| o.code == 0)
    };
    let branch = if exists(branch.to_owned()).await { fallback } else { branch };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let path_str = path.to_string_lossy();
    git(project, &["worktree", "add", "-b", branch, &path_str, &base], &[]).await?;
    Ok(Made { branch: branch.to_owned(), base })
}

/// Puts worktree `path` back on its existing branch `branch` (after it was closed).
pub async fn reopen(project: &Path, path: &Path, branch: &str) -> GitResult<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let _ = run(project, &["worktree", "prune"], &[]).await;
    git(project, &["worktree", "add", &path.to_string_lossy(), branch], &[]).await?;
    Ok(())
}

/// Removes worktree `path` but keeps its branch (when the branch holds nothing `project`'s
/// `HEAD` lacks, it goes too). Whether the branch was kept.
pub async fn close(project: &Path, path: &Path, branch: &str) -> GitResult<bool> {
    let path_str = path.to_string_lossy();
    if path.exists() {
        git(project, &["worktree", "remove", "--force", "--force", &path_str], &[]).await?;
    }
    let _ = run(project, &["worktree", "prune"], &[]).await;
    let merged = run(project, &["merge-base", "--is-ancestor", &format!("refs/heads/{branch}"), "HEAD"], &[]).await?;
    if merged.code == 0 {
        git(project, &["branch", "-D", "-q", branch], &[]).await?;
        return Ok(false);
    }
    Ok(true)
}

/// Commits whatever the agent left uncommitted in worktree `path` onto its branch, and
/// returns the paths its branch changed since `base`.
pub async fn settle(path: &Path, base: &str, message: &str) -> GitResult<Vec<String>> {
    git(path, &["add", "-A", "--", ".", OWN_DIR], &[]).await?;
    let staged = run(path, &["diff", "--cached", "--quiet"], &[]).await?;
    if staged.code == 1 {
        let id = identity(path).await;
        git(path, &["commit", "--no-verify", "-q", "-m", message], &env_refs(&id)).await?;
    }
    changed_paths(path, base, "HEAD").await
}

/// Paths that differ between two commits.
pub async fn changed_paths(dir: &Path, from: &str, to: &str) -> GitResult<Vec<String>> {
    let out = git(dir, &["diff", "--name-only", "--no-renames", from, to], &[]).await?;
    Ok(out.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect())
}

/// The diff of `dir`'s working tree (uncommitted changes included) against `base` (`HEAD`
/// when `None`), as `git diff` prints it.
pub async fn diff(dir: &Path, base: Option<&str>) -> GitResult<String> {
    let now = snapshot(dir).await?;
    let base = match base {
        Some(base) => base.to_owned(),
        None => git(dir, &["rev-parse", "HEAD"], &[]).await?,
    };
    let out = run(dir, &["diff", "--no-color", "--no-ext-diff", &base, &now], &[]).await?;
    if out.code != 0 {
        return Err(GitError::Failed { command: "diff".into(), message: out.stderr.trim().to_owned() });
    }
    Ok(out.stdout)
}

/// Merges `branch` into `project`'s checked-out branch: a fast-forward when possible, else a
/// merge commit, never a force. The checkout is touched only when the merge is known to be
/// clean (`git merge-tree` first) and the checkout has no uncommitted changes.
pub async fn merge(project: &Path, branch: &str) -> GitResult<MergeOutcome> {
    let Ok(into) = git(project, &["symbolic-ref", "--short", "-q", "HEAD"], &[]).await else {
        return Ok(MergeOutcome::Detached);
    };
    let head = git(project, &["rev-parse", "HEAD"], &[]).await?;
    let tip = git(project, &["rev-parse", &format!("refs/heads/{branch}")], &[]).await?;
    if run(project, &["merge-base", "--is-ancestor", &tip, &head], &[]).await?.code == 0 {
        return Ok(MergeOutcome::UpToDate { into });
    }
    // Against what the checkout holds now, uncommitted changes included.
    let now = snapshot(project).await?;
    let dirty = now != head;
    let conflicts = merge_tree_conflicts(project, &now, &tip).await?;
    if !conflicts.is_empty() {
        let with_uncommitted = dirty && merge_tree_conflicts(project, &head, &tip).await?.is_empty();
        return Ok(MergeOutcome::Conflict { into, paths: conflicts, with_uncommitted });
    }
    if dirty {
        return Ok(MergeOutcome::Dirty { paths: dirty_paths(project).await? });
    }
    let files = changed_paths(project, &head, &tip).await?.len();
    let fast_forward = run(project, &["merge-base", "--is-ancestor", &head, &tip], &[]).await?.code == 0;
    let id = identity(project).await;
    let message = format!("Merge {branch} (taskgate)");
    git(project, &["merge", "--no-verify", "--ff", "-q", "-m", &message, &tip], &env_refs(&id)).await?;
    Ok(if fast_forward { MergeOutcome::FastForward { into, files } } else { MergeOutcome::Merged { into, files } })
}

/// Paths a merge of `ours` and `theirs` would conflict in (none: it merges cleanly).
async fn merge_tree_conflicts(dir: &Path, ours: &str, theirs: &str) -> GitResult<Vec<String>> {
    let out = run(dir, &["merge-tree", "--write-tree", "--name-only", "--no-messages", ours, theirs], &[]).await?;
    match out.code {
        0 => Ok(Vec::new()),
        // The first line is the tree; the conflicted paths follow.
        1 => {
            let mut paths: Vec<String> =
                out.stdout.lines().skip(1).take_while(|l| !l.is_empty()).map(str::to_owned).collect();
            paths.dedup();
            Ok(paths)
        }
        _ => Err(GitError::Failed { command: "merge-tree".into(), message: out.stderr.trim().to_owned() }),
    }
}

/// Removes worktree `path` and deletes `branch` from `project`. Missing pieces are fine (a
/// person removed them by hand); what is left is reported.
pub async fn remove(project: &Path, path: &Path, branch: &str) -> GitResult<()> {
    let path_str = path.to_string_lossy();
    if path.exists() {
        git(project, &["worktree", "remove", "--force", "--force", &path_str], &[]).await?;
    }
    let _ = run(project, &["worktree", "prune"], &[]).await;
    let exists = run(project, &["rev-parse", "--verify", "--quiet", &format!("refs/heads/{branch}")], &[]).await?;
    if exists.code == 0 {
        git(project, &["branch", "-D", "-q", branch], &[]).await?;
    }
    Ok(())
}

/// Worktrees of `project` on `taskgate/…` branches: `(path, branch)`.
pub async fn list(project: &Path) -> GitResult<Vec<(String, String)>> {
    let out = git(project, &["worktree", "list", "--porcelain"], &[]).await?;
    let mut found = Vec::new();
    let mut path = None;
    for line in out.lines() {
        if let Some(p) = line.strip_prefix("worktree ") {
            path = Some(p.to_owned());
        } else if let Some(b) = line.strip_prefix("branch refs/heads/")
            && b.starts_with("taskgate/")
            && let Some(p) = path.take()
        {
            found.push((p, b.to_owned()));
        }
    }
    Ok(found)
}

/// Bytes under `dir` (files only, symlinks not followed); 0 when it is gone.
pub fn disk_use(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}
