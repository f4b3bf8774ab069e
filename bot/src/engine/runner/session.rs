//! The actor's agent session: started fresh, resumed by the provider's id (after a restart,
//! a crash, a takeover, or an idle process given back), or replaced by a fresh one seeded with
//! the restart note when the agent cannot resume; and given back when another start waits for
//! a process slot.

use taskgate_core::model::{RuntimeSession, SessionStatus};
use taskgate_core::runtime::{AgentSession, RuntimeError, SessionSpec};
use taskgate_core::store::Store;

use super::actor::{Actor, Live};
use crate::engine::spec;

impl Actor {
    /// Makes `row`'s session live. Returns the restart note to put before the input when a
    /// resume was wanted but only a fresh session could be started. `handoff`: the `/new`
    /// handoff turn, which runs in the session `/new` closed (resumed if its process went).
    pub(super) async fn ensure_session(
        &mut self,
        row: RuntimeSession,
        handoff: bool,
    ) -> Result<Option<String>, String> {
        if self.live.as_ref().is_some_and(|l| l.row == row.id) {
            return Ok(None);
        }
        if let Some(mut old) = self.live.take() {
            // A new session row means the old one was closed (or died): its process goes.
            old.session.shutdown().await;
        }
        let task = self.shared.store.task(self.exec.task_id).await.map_err(|e| e.to_string())?;
        // Where it works: recorded, or decided (and a worktree made) now.
        let workspace = crate::engine::worktree::prepare(&self.shared, &self.exec, &task, &self.project_dir).await?;
        self.cwd = workspace.cwd;
        self.read_only = workspace.read_only;
        self.worktree = workspace.worktree;
        // Rendered for a new session: the export catches up with commits since it was written.
        let note = self.shared.notes.load_and_export(&task).await.map_err(|e| e.to_string())?;
        let seed = self.shared.notes.seed(&task, &note);
        // A closed row (`/new`) starts clean; any other resumes what the provider still has.
        let resume = row.provider_session_id.clone().filter(|_| handoff || row.status != SessionStatus::Closed);
        let mut spec = self.spec(resume.clone())?;
        // The restart-note tools, under a token for this session only.
        let notes = &self.shared.config.notes;
        if notes.mcp
            && let Some(token) = self.shared.notes.issue_token(self.exec.task_id, self.exec.id)
        {
            let url = notes.mcp_url(self.shared.config.server.listen);
            spec.mcp = Some(self.shared.notes.sessions().server(url, token));
        }
        let mut seeded = None;
        let session = match self.shared.supervisor.start_supervised(spec.clone(), Some(seed.clone())).await {
            Ok(s) => s,
            Err(RuntimeError::Resume(why)) if resume.is_some() => {
                tracing::warn!(execution = self.exec.id, "resume failed ({why}); starting a fresh session");
                spec.resume = None;
                seeded = Some(format!("{seed}\n(The previous agent session could not be resumed.)"));
                self.shared.supervisor.start_supervised(spec, Some(seed)).await.map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.to_string()),
        };
        self.shared.notes.sessions().attach(self.exec.task_id, self.exec.id, session.restart_note_slot());
        if let Some(id) = session.provider_session_id()
            && row.provider_session_id.as_ref() != Some(&id)
        {
            let mut row = row.clone();
            row.provider_session_id = Some(id);
            if let Err(e) = self.shared.store.update_session(&row).await {
                tracing::warn!(execution = self.exec.id, error = %e, "recording the provider's session id failed");
            }
        }
        self.live = Some(Live { session, row: row.id });
        Ok(seeded)
    }

    fn spec(&self, resume: Option<String>) -> Result<SessionSpec, String> {
        let mut spec = spec::session_spec(&self.shared.config, &self.exec.agent, &self.display, &self.cwd, resume)?;
        if self.read_only {
            // A reviewer looks at the work where it lives and changes nothing there: codex runs
            // its commands in the read-only sandbox and never asks to leave it (an approved
            // command would run outside the sandbox); claude plans instead of editing.
            spec.sandbox = Some("read-only".to_owned());
            spec.approval_policy = Some("never".to_owned());
        }
        Ok(spec)
    }

    /// A sticky session holds its process slot for life, so with every slot taken by idle
    /// sessions a new task would wait forever. When a start waits, an idle session gives its
    /// process back; its row stays usable and its next turn resumes it by provider id.
    pub(super) async fn release_if_wanted(&mut self) {
        if self.is_busy() || self.live.is_none() {
            return;
        }
        let queued = self.shared.store.execution_turns(self.exec.id).await.map(|t| !t.is_empty()).unwrap_or(true);
        if queued || !self.shared.claim_release() {
            return;
        }
        if let Some(mut live) = self.live.take() {
            tracing::info!(execution = self.exec.id, "releasing an idle agent process for a waiting session");
            live.session.shutdown().await;
            self.quiet_resume = true;
        }
        self.shared.release_done();
    }
}
