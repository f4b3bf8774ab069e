//! Worktrees in the engine: where an execution works (the rules are
//! `taskgate_core::worktree`, the git commands `taskgate_adapters::worktree`), its branch
//! settled when a turn ends, and `/merge` / `/discard` (commands and buttons) handing the
//! branch back to the project.

use std::path::{Path, PathBuf};

use taskgate_adapters::worktree as git;
use taskgate_core::model::{Channel, Conversation, Execution, Id, NewOutbound, Role, Task, TaskStatus};
use taskgate_core::plan::{Effect, Plan};
use taskgate_core::reply::Reply;
use taskgate_core::store::{Store, StoreError};
use taskgate_core::worktree::{self as rules, BranchCommand, Isolation, Placement, Target, Worktree, WorktreeState};

use super::apply::{self, Origin};
use super::press::Pressed;
use super::runner::Shared;
use super::{Engine, EngineError, IncomingMessage};

/// Where an execution works, as its actor starts a session.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Workspace {
    pub cwd: String,
    /// A reviewer: it must not write where it works.
    pub read_only: bool,
    /// Its own worktree, when it has one.
    pub worktree: Option<Worktree>,
}

/// The project's isolation: as configured, else by whether `project_dir` is a repository. A
/// project that is not a repository is never isolated, whatever the config says.
pub(crate) async fn isolation(shared: &Shared, project_dir: &str) -> Isolation {
    let configured = shared.config.projects.iter().find(|p| Path::new(project_dir) == p.path).and_then(|p| p.isolation);
    let repository = git::is_repository(Path::new(project_dir)).await;
    match configured {
        Some(Isolation::Shared) => Isolation::Shared,
        Some(_) if !repository => {
            tracing::warn!(project = project_dir, "isolation needs a git repository with a commit; working shared");
            Isolation::Shared
        }
        Some(isolation) => isolation,
        None => Isolation::default_for(repository),
    }
}

/// Where `exec` (of `task`, in the project at `project_dir`) works: its recorded worktree; else
/// by the rules, making a worktree when it should have one. `Err` says in words why not.
pub(crate) async fn prepare(
    shared: &Shared,
    exec: &Execution,
    task: &Task,
    project_dir: &str,
) -> Result<Workspace, String> {
    let store = shared.store.as_ref();
    let recorded = store.worktree(exec.id).await.map_err(|e| e.to_string())?;
    if let Some(w) = recorded.as_ref().filter(|w| w.state == WorktreeState::Active && Path::new(&w.path).is_dir()) {
        return Ok(Workspace { cwd: w.path.clone(), read_only: false, worktree: Some(w.clone()) });
    }
    if let Some(w) = recorded.as_ref().filter(|w| w.state == WorktreeState::Closed) {
        // Its task was completed and has work again: the worktree comes back on its branch.
        git::reopen(Path::new(&w.project_dir), Path::new(&w.path), &w.branch)
            .await
            .map_err(|e| format!("cannot reopen its worktree: {e}"))?;
        store.set_worktree_state(w.execution, WorktreeState::Active).await.map_err(|e| e.to_string())?;
        let w = Worktree { state: WorktreeState::Active, ..w.clone() };
        return Ok(Workspace { cwd: w.path.clone(), read_only: false, worktree: Some(w) });
    }
    let project = Workspace { cwd: project_dir.to_owned(), read_only: false, worktree: None };
    let isolation = isolation(shared, project_dir).await;
    if isolation == Isolation::Shared {
        return Ok(project);
    }
    let executions = store.executions(exec.task_id).await.map_err(|e| e.to_string())?;
    let before: Vec<(Id, Role)> = executions.iter().filter(|e| e.id < exec.id).map(|e| (e.id, e.role)).collect();
    let first_editor = exec.role == Role::Editor && !before.iter().any(|(_, r)| *r == Role::Editor);
    // The work this one joins lives in its executor's worktree, or in the project.
    let joined_dir = match rules::joined(&before) {
        Some(joined) => match store.worktree(joined).await.map_err(|e| e.to_string())? {
            Some(w) if w.state == WorktreeState::Active && Path::new(&w.path).is_dir() => w.path,
            _ => project_dir.to_owned(),
        },
        None => project_dir.to_owned(),
    };
    match rules::placement(isolation, exec.role, first_editor) {
        Placement::Project => Ok(project),
        Placement::ReadOnly => Ok(Workspace { cwd: joined_dir, read_only: true, worktree: None }),
        Placement::OwnWorktree => {
            let path = worktrees_dir(shared, project_dir).join(format!("{}-{}", task.id, exec.id));
            if path.exists() {
                // Left by an attempt that failed before it was recorded.
                let _ = std::fs::remove_dir_all(&path);
            }
            let branch = rules::branch_name(task.id, &task.title, None);
            let fallback = rules::branch_name(task.id, &task.title, Some(exec.id));
            let from = if rules::branches_from_joined(exec.role) { joined_dir.as_str() } else { project_dir };
            let made = git::create(Path::new(project_dir), Path::new(from), &path, &branch, &fallback)
                .await
                .map_err(|e| format!("cannot make a worktree for it: {e}"))?;
            let worktree = Worktree {
                execution: exec.id,
                task: task.id,
                project_dir: project_dir.to_owned(),
                path: path.to_string_lossy().into_owned(),
                branch: made.branch,
                base: made.base,
                state: WorktreeState::Active,
            };
            if recorded.is_some() {
                store.forget_worktree(exec.id).await.map_err(|e| e.to_string())?;
            }
            store.record_worktree(&worktree).await.map_err(|e| e.to_string())?;
            tracing::info!(execution = exec.id, branch = %worktree.branch, "made a worktree");
            Ok(Workspace { cwd: worktree.path.clone(), read_only: false, worktree: Some(worktree) })
        }
    }
}

/// Where the worktrees of the project at `project_dir` live: `<data_dir>/worktrees/<name>`.
fn worktrees_dir(shared: &Shared, project_dir: &str) -> PathBuf {
    let name = shared
        .config
        .projects
        .iter()
        .find(|p| Path::new(project_dir) == p.path)
        .map(|p| rules::slug(&p.name))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "project".to_owned());
    let data =
        std::path::absolute(&shared.config.server.data_dir).unwrap_or_else(|_| shared.config.server.data_dir.clone());
    data.join("worktrees").join(name)
}

/// A turn of the execution working in `worktree` ended: what the agent left uncommitted is
/// committed on its branch. How many files the branch changed since its base.
pub(crate) async fn settle(worktree: &Worktree, agent: &str, turn: Option<Id>) -> usize {
    let message = match turn {
        Some(turn) => format!("taskgate: {agent}, turn {turn}"),
        None => format!("taskgate: {agent}"),
    };
    match git::settle(Path::new(&worktree.path), &worktree.base, &message).await {
        Ok(files) => files.len(),
        Err(e) => {
            tracing::warn!(execution = worktree.execution, error = %e, "settling the worktree failed");
            0
        }
    }
}

/// The execution's task is completed or cancelled and its owner leaves it: its worktree goes
/// (what the agent left uncommitted is committed first), its branch stays for `/merge` unless
/// the project already has all of it.
pub(crate) async fn close_if_finished(shared: &Shared, execution: Id) {
    let store = shared.store.as_ref();
    let Ok(Some(w)) = store.worktree(execution).await else { return };
    if w.state != WorktreeState::Active {
        return;
    }
    let finished =
        store.task(w.task).await.is_ok_and(|t| matches!(t.status, TaskStatus::Completed | TaskStatus::Cancelled));
    if !finished {
        return;
    }
    settle(&w, "taskgate", None).await;
    match git::close(Path::new(&w.project_dir), Path::new(&w.path), &w.branch).await {
        Ok(kept) => {
            let state = if kept { WorktreeState::Closed } else { WorktreeState::Removed };
            if let Err(e) = store.set_worktree_state(execution, state).await {
                tracing::warn!(execution, error = %e, "recording a closed worktree failed");
            }
            tracing::info!(execution, branch = %w.branch, kept, "the task is finished; its worktree is removed");
        }
        Err(e) => tracing::warn!(execution, error = %e, "removing a finished task's worktree failed"),
    }
}

/// An execution's changes as `git diff` prints them, for the console.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExecutionDiff {
    pub execution: Id,
    /// Where it works.
    pub cwd: String,
    /// Its branch, when it works in a worktree of its own.
    pub branch: Option<String>,
    /// What the diff is against: the branch's base commit, or the project's `HEAD`.
    pub base: Option<String>,
    pub diff: String,
    /// Bytes its worktree takes on disk (0 without one).
    pub disk_bytes: u64,
}

impl Engine {
    /// `/merge` and `/discard`.
    pub(super) async fn branch_command(
        &self,
        command: BranchCommand,
        msg: &IncomingMessage,
        conversation: &Conversation,
    ) -> Result<(), EngineError> {
        let (merge, target) = match command {
            BranchCommand::Merge(t) => (true, t),
            BranchCommand::Discard(t) => (false, t),
        };
        let task = msg.reply_to_task.or(conversation.focused_task_id);
        let found = self.find_worktree(&target, task).await?;
        let (text, task_id) = match found {
            None => (nothing_to(merge, &target), task),
            Some(w) => (self.hand_back(msg, &w, merge).await?, Some(w.task)),
        };
        self.store()
            .outbox_enqueue(NewOutbound {
                channel: conversation.channel,
                chat_id: conversation.chat_id.clone(),
                task_id,
                approval_id: None,
                payload: Reply::text(text).in_thread(conversation.thread_id.clone()),
            })
            .await?;
        Ok(())
    }

    /// The Merge / Discard buttons of a turn's final message.
    pub async fn merge_press(&self, by: &IncomingMessage, execution: Id, merge: bool) -> Result<Pressed, EngineError> {
        if !self.admitted(by) {
            return Ok(Pressed::Refused("You are not allowed to use this bot.".into()));
        }
        let Some(w) = self.store().worktree(execution).await? else {
            return Ok(Pressed::Refused("This button is no longer active.".into()));
        };
        if by.channel != Channel::Web && !self.store().shown_in(by.channel, &by.chat_id, None, Some(w.task)).await? {
            return Ok(Pressed::Refused("This button is no longer active.".into()));
        }
        let line = self.hand_back(by, &w, merge).await?;
        let conversation = self.store().conversation(by.channel, &by.chat_id, &by.thread_id).await?;
        self.store()
            .outbox_enqueue(NewOutbound {
                channel: conversation.channel,
                chat_id: conversation.chat_id.clone(),
                task_id: Some(w.task),
                approval_id: None,
                payload: Reply::text(line.clone()).in_thread(conversation.thread_id.clone()),
            })
            .await?;
        Ok(Pressed::Done(line))
    }

    /// Merges or discards `w`'s branch for the sender of `by`; the line that says what happened.
    async fn hand_back(&self, by: &IncomingMessage, w: &Worktree, merge: bool) -> Result<String, EngineError> {
        if !w.state.has_branch() {
            return Ok(format!("{} was already discarded.", w.branch));
        }
        let project =
            self.config().projects.iter().find(|p| Path::new(&w.project_dir) == p.path).map(|p| p.name.clone());
        if !self.is_approver(by.channel, &by.sender_id, project.as_deref()) {
            return Ok("Only the project's approvers can merge or discard branches.".into());
        }
        let project_dir = Path::new(&w.project_dir);
        if merge {
            let outcome = match git::merge(project_dir, &w.branch).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::warn!(execution = w.execution, error = %e, "merge failed");
                    return Ok(format!("Not merged: {e}"));
                }
            };
            tracing::info!(execution = w.execution, branch = %w.branch, outcome = ?outcome, "merge asked");
            Ok(rules::merge_line(&w.branch, &outcome))
        } else {
            if let Err(e) = git::remove(project_dir, Path::new(&w.path), &w.branch).await {
                tracing::warn!(execution = w.execution, error = %e, "discard failed");
                return Ok(format!("Could not discard {}: {e}", w.branch));
            }
            self.store().set_worktree_state(w.execution, WorktreeState::Removed).await?;
            // Its session worked in the worktree just removed: the next turn starts afresh
            // (in a new worktree).
            self.close_session(by, w).await?;
            Ok(format!("Discarded {}: its worktree and branch are gone.", w.branch))
        }
    }

    async fn close_session(&self, by: &IncomingMessage, w: &Worktree) -> Result<(), EngineError> {
        let store = self.store().as_ref();
        let mut plan = Plan::default();
        plan.push(Effect::CloseSession { execution: w.execution });
        let identity = store.find_identity(by.channel, &by.sender_id).await?;
        let Some(identity) = identity else { return Ok(()) };
        let person = store.person(identity.person_id).await?;
        let sender = taskgate_core::route::Sender {
            person_id: person.id,
            name: person.name,
            channel: by.channel,
            at: chrono::Utc::now(),
        };
        let conversation = store.conversation(by.channel, &by.chat_id, &by.thread_id).await?;
        let model_of = |_: &str| None;
        let origin = Origin::Person {
            conversation: &conversation,
            sender: &sender,
            text: "",
            message_id: by.message_id.as_deref(),
            model_of: &model_of,
            files: &[],
            inbound: None,
        };
        let applied = apply::commit(store, &plan, &origin, None).await?;
        self.shared.outbox.after(&plan);
        for exec in applied.wake {
            self.runner.wake(exec);
        }
        Ok(())
    }

    async fn find_worktree(&self, target: &Target, task: Option<Id>) -> Result<Option<Worktree>, StoreError> {
        let store = self.store();
        Ok(match target {
            Target::Execution(id) => store.worktree(*id).await?,
            Target::Branch(name) => store.live_worktrees().await?.into_iter().find(|w| &w.branch == name),
            Target::Latest => match task {
                Some(task) => store.task_worktrees(task).await?.into_iter().rev().find(|w| w.state.has_branch()),
                None => None,
            },
        })
    }

    /// The diff of execution `execution`'s work: its branch (committed and not) against its
    /// base, or, working in the project, the project's uncommitted changes. `None` when its
    /// project is not a git repository.
    pub async fn execution_diff(&self, execution: Id) -> Result<Option<ExecutionDiff>, EngineError> {
        let store = self.store();
        let exec = store.execution(execution).await?;
        if let Some(w) = store.worktree(execution).await?.filter(|w| w.state == WorktreeState::Active) {
            let path = Path::new(&w.path);
            let diff = git::diff(path, Some(&w.base)).await.unwrap_or_else(|e| format!("(no diff: {e})"));
            return Ok(Some(ExecutionDiff {
                execution,
                cwd: w.path.clone(),
                branch: Some(w.branch.clone()),
                base: Some(w.base.clone()),
                diff,
                disk_bytes: git::disk_use(path),
            }));
        }
        let task = store.task(exec.task_id).await?;
        let projects = store.projects().await?;
        let Some(dir) = task.project_id.and_then(|id| projects.into_iter().find(|p| p.id == id)).map(|p| p.path) else {
            return Ok(None);
        };
        if !git::is_repository(Path::new(&dir)).await {
            return Ok(None);
        }
        let diff = git::diff(Path::new(&dir), None).await.unwrap_or_else(|e| format!("(no diff: {e})"));
        Ok(Some(ExecutionDiff { execution, cwd: dir, branch: None, base: Some("HEAD".into()), diff, disk_bytes: 0 }))
    }
}

fn nothing_to(merge: bool, target: &Target) -> String {
    let verb = if merge { "merge" } else { "discard" };
    match target {
        Target::Latest => format!("Nothing to {verb}: this task has no branch of its own."),
        Target::Execution(id) => format!("Nothing to {verb}: execution #{id} has no branch."),
        Target::Branch(name) => format!("Nothing to {verb}: no branch `{name}` is known."),
    }
}
