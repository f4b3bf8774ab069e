//! The keeper of restart notes: every read and write of a task's note goes through it, from
//! an agent's MCP call, a person's `/note`, or the console. After each write, live sessions get
//! the new note (for a replacement that cannot resume) and the Markdown copy is rewritten;
//! renderings (`/note`, the `read_note` tool, a new session's seed) rewrite the copy too when a
//! commit since made it out of date.

use std::sync::Arc;

use taskgate_adapters::store::SeaStore;
use taskgate_core::model::{Body, Id, NewEvent, NewNoteEntry, NoteKind, Task};
use taskgate_core::notes::RestartNote;
use taskgate_core::store::{Store, StoreError, StoreResult};

use super::mcp::{Binding, Sessions};

/// Longest entry or field text; a note is read by people and prompts, not a log dump.
const MAX_TEXT: usize = 4000;
const MAX_EVIDENCE: usize = 32;
const MAX_EVIDENCE_ID: usize = 300;

/// One change to a task's note.
#[derive(Debug, Clone, PartialEq)]
pub enum NoteWrite {
    Entry { kind: NoteKind, text: String, evidence: Vec<String> },
    Objective(String),
    Reproduction(String),
    NextAction(String),
}

#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    /// The write itself is unacceptable (empty, too long); the text says why.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl NoteWrite {
    fn checked(self) -> Result<Self, NoteError> {
        let text = |t: String, what: &str| {
            let t = t.trim().to_owned();
            if t.is_empty() {
                Err(NoteError::Invalid(format!("the {what} is empty")))
            } else if t.chars().count() > MAX_TEXT {
                Err(NoteError::Invalid(format!("the {what} is longer than {MAX_TEXT} characters")))
            } else {
                Ok(t)
            }
        };
        Ok(match self {
            NoteWrite::Entry { kind, text: t, evidence } => {
                let evidence: Vec<String> =
                    evidence.into_iter().map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect();
                if evidence.len() > MAX_EVIDENCE || evidence.iter().any(|e| e.chars().count() > MAX_EVIDENCE_ID) {
                    return Err(NoteError::Invalid(format!(
                        "at most {MAX_EVIDENCE} evidence ids of at most {MAX_EVIDENCE_ID} characters"
                    )));
                }
                NoteWrite::Entry { kind, text: text(t, "entry text")?, evidence }
            }
            NoteWrite::Objective(t) => NoteWrite::Objective(text(t, "objective")?),
            NoteWrite::Reproduction(t) => NoteWrite::Reproduction(text(t, "reproduction")?),
            NoteWrite::NextAction(t) => NoteWrite::NextAction(text(t, "next action")?),
        })
    }
}

/// See the module documentation.
pub struct Keeper {
    store: Arc<SeaStore>,
    /// `[notes] export`: keep `<project>/.taskgate/tasks/<id>.md` current.
    export: bool,
    /// `[notes] seed_chars`: the longest note a fresh session is seeded with.
    seed_chars: usize,
    /// MCP tokens of live sessions and where each keeps its restart note.
    sessions: Sessions,
    /// Serializes exports (load, compare, write), so an older rendering never lands after a
    /// newer one.
    exporting: tokio::sync::Mutex<()>,
    /// Tasks whose export [`Keeper::keep_current`] has queued and not yet begun.
    due: std::sync::Mutex<std::collections::HashSet<Id>>,
    /// One background export at a time; the others wait (and coalesce) behind it.
    background: tokio::sync::Mutex<()>,
}

impl Keeper {
    pub fn new(store: Arc<SeaStore>, export: bool) -> Self {
        Keeper {
            store,
            export,
            seed_chars: crate::config::NotesConfig::default().seed_chars,
            sessions: Sessions::default(),
            exporting: tokio::sync::Mutex::new(()),
            due: Default::default(),
            background: tokio::sync::Mutex::new(()),
        }
    }

    /// With `[notes] seed_chars`.
    pub fn with_seed_chars(mut self, seed_chars: usize) -> Self {
        self.seed_chars = seed_chars;
        self
    }

    /// The longest note a fresh session is seeded with.
    pub fn seed_chars(&self) -> usize {
        self.seed_chars
    }

    /// What a fresh session of `task` is seeded with (see `notes::seed`).
    pub fn seed(&self, task: &Task, note: &RestartNote) -> String {
        super::seed(task, note, self.seed_chars)
    }

    /// The MCP tokens and note slots of this process's live sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// A task's restart note, staleness judged against the project's git history; the
    /// exported copy follows if that changed it.
    pub async fn restart_note(&self, task: Id) -> StoreResult<RestartNote> {
        let task = self.store.task(task).await?;
        self.load_and_export(&task).await
    }

    /// The stdio MCP bridge sessions are offered (see `notes::bridge`), for an engine embedded
    /// in a process other than the `taskgate` binary, which offers itself.
    pub fn set_mcp_bridge(&self, argv: Vec<String>) {
        self.sessions.set_bridge(argv);
    }

    /// `branch:<name>` when `author` is an execution working in a worktree of its own.
    async fn branch_of(&self, author: &str) -> Option<String> {
        let execution: Id = author.strip_prefix("execution:")?.parse().ok()?;
        let worktree = self.store.worktree(execution).await.ok()??;
        worktree.state.has_branch().then(|| format!("branch:{}", worktree.branch))
    }

    /// Adds to a task's note (an entry, or a headline field) as `author` ("execution:7",
    /// "person:3", "gateway"), with a timeline event for the audit trail. Returns a short
    /// confirmation for the writer.
    pub async fn write(&self, task_id: Id, write: NoteWrite, author: &str) -> Result<String, NoteError> {
        let mut write = write.checked()?;
        let store = self.store.as_ref();
        // An agent working on a branch of its own (issue 20): its findings name that branch.
        if let NoteWrite::Entry { evidence, .. } = &mut write
            && let Some(branch) = self.branch_of(author).await
            && evidence.len() < MAX_EVIDENCE
            && !evidence.contains(&branch)
        {
            evidence.push(branch);
        }
        let task = store.task(task_id).await?;
        // Before the lock: git may take a moment and must not hold other writers up.
        let commit = match super::project_dir(store, &task).await? {
            Some(dir) => super::git::head(&dir).await,
            None => None,
        };
        let done = {
            let tx = store.begin().await?;
            let (done, body) = match &write {
                NoteWrite::Entry { kind, text, evidence } => {
                    let entry = tx
                        .add_note_entry(NewNoteEntry {
                            task_id,
                            kind: *kind,
                            text: text.clone(),
                            evidence: evidence.clone(),
                            author: author.to_owned(),
                            commit: commit.clone(),
                        })
                        .await?;
                    let done = format!("Recorded {} #{} on task {task_id}.", entry.kind, entry.id);
                    let body = Body::NoteEntry {
                        entry: entry.id,
                        kind: entry.kind,
                        text: entry.text.clone(),
                        evidence: entry.evidence.clone(),
                        commit: entry.commit.clone(),
                    };
                    (done, body)
                }
                NoteWrite::Objective(v) | NoteWrite::Reproduction(v) | NoteWrite::NextAction(v) => {
                    let mut current = tx.task(task_id).await?;
                    let (field, slot) = match &write {
                        NoteWrite::Objective(_) => ("objective", &mut current.objective),
                        NoteWrite::Reproduction(_) => ("reproduction", &mut current.reproduction),
                        _ => ("next_action", &mut current.next_action),
                    };
                    // The old value goes on the timeline: the field is replaced, its history is not.
                    let previous = slot.replace(v.clone());
                    tx.update_task(&current).await?;
                    let done = format!("Set the {} of task {task_id}.", field.replace('_', " "));
                    (done, Body::NoteField { field: field.to_owned(), value: v.clone(), previous })
                }
            };
            tx.append_event(NewEvent {
                task_id,
                execution_id: author.strip_prefix("execution:").and_then(|e| e.parse().ok()),
                channel: None,
                actor: Some(author.to_owned()),
                body: body.into(),
            })
            .await?;
            tx.commit().await?;
            done
        };
        self.changed(task_id).await;
        Ok(done)
    }

    /// After a note changed: live sessions' replacement seed and the exported file follow.
    /// Failures are logged; the note itself is already stored.
    async fn changed(&self, task_id: Id) {
        let store = self.store.as_ref();
        let _export = self.exporting.lock().await;
        let loaded = async {
            let task = store.task(task_id).await?;
            let note = super::load(store, &task).await?;
            let dir = super::project_dir(store, &task).await?;
            Ok::<_, StoreError>((task, note, dir))
        }
        .await;
        let (task, note, dir) = match loaded {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(task = task_id, error = %e, "could not reload a changed note");
                return;
            }
        };
        let seed = self.seed(&task, &note);
        for slot in self.sessions.slots(task_id) {
            slot.set(seed.clone());
        }
        if self.export
            && let Some(dir) = dir
            && let Err(e) = super::export::write(&dir, &note).await
        {
            tracing::warn!(task = task_id, error = %e, "could not export the note");
        }
    }

    /// The timeline of `task` grew (a message, a turn's end): what the gateway captures from it
    /// changed, so the exported file follows, in the background. Nothing when export is off.
    pub fn keep_current(self: &Arc<Self>, task: Id) {
        if !self.export {
            return;
        }
        // Coalesced: a burst of messages on one task is one export, not one per message. The
        // task leaves `due` before its timeline is read, so a later change exports again.
        if !self.due.lock().is_ok_and(|mut due| due.insert(task)) {
            return;
        }
        let keeper = self.clone();
        tokio::spawn(async move {
            let _turn = keeper.background.lock().await;
            if let Ok(mut due) = keeper.due.lock() {
                due.remove(&task);
            }
            let result = async {
                let task = keeper.store.task(task).await?;
                keeper.load_and_export(&task).await
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(task, error = %e, "could not bring the exported note up to date");
            }
        });
    }

    /// Who an MCP token speaks for.
    pub fn binding(&self, token: &str) -> Option<Binding> {
        self.sessions.binding(token)
    }

    /// A fresh MCP token speaking for `execution` of `task`, as a session start issues one
    /// (the execution's previous token stops working). For embedding the MCP route without
    /// the engine's own sessions, e.g. the real-CLI compatibility tests.
    pub fn issue_token(&self, task: Id, execution: Id) -> Option<String> {
        self.sessions.issue(task, execution)
    }

    /// `task`'s note as rendered now, with the export rewritten when it no longer matches
    /// (staleness comes from commits, which write nothing). Export failures are logged: the
    /// note itself is what the caller wants.
    pub async fn load_and_export(&self, task: &Task) -> StoreResult<RestartNote> {
        let store = self.store.as_ref();
        if !self.export {
            return super::load(store, task).await;
        }
        let dir = super::project_dir(store, task).await?;
        // Loaded under the lock, so the file never goes back to an older rendering.
        let _export = self.exporting.lock().await;
        let note = super::load(store, task).await?;
        if let Some(dir) = dir {
            match super::export::sync(&dir, &note).await {
                Ok(true) => tracing::debug!(task = task.id, "re-exported an out-of-date note"),
                Ok(false) => {}
                Err(e) => tracing::warn!(task = task.id, error = %e, "could not export the note"),
            }
        }
        Ok(note)
    }
}
