//! Runs the runtime side of plans: one actor per execution owns its supervised session (sticky:
//! reused while usable, resumed by provider id after a restart or a death, fresh only after
//! `/new` or for a new execution), queues turns FIFO, and persists every runtime event.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use taskgate_adapters::runtime::{SupervisedSession, Supervisor};
use taskgate_adapters::store::SeaStore;
use taskgate_core::model::{
    ApprovalStatus, Channel, EventKind, ExecutionStatus, Id, NewEvent, NewOutbound, Role, RuntimeSession,
    SessionStatus, StateMachine, TaskStatus, Turn, TurnStatus,
};
use taskgate_core::runtime::{
    AgentSession, ApprovalDecision, ApprovalRequest, RuntimeError, RuntimeEvent, SessionSpec, TurnOutcome, one_line,
    summarize,
};
use taskgate_core::store::{NewApproval, Store, StoreResult};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::apply::Command;
use super::{display_agent, live, spec, status};
use crate::config::Config;

/// How long a stop waits for the actors to shut their agent processes down before it aborts
/// them (an actor can be blocked waiting for a process slot that never frees).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(15);

/// What the engine and its runner share.
pub(super) struct Shared {
    pub store: Arc<SeaStore>,
    pub config: Arc<Config>,
    pub supervisor: Supervisor,
    /// Serializes this process's writes: SQLite has one writer, and a transaction that reads
    /// and then writes must not race another writer (it would fail instead of waiting).
    pub write: tokio::sync::Mutex<()>,
    /// Approval id → (execution, protocol request id): where a decision goes.
    pub approvals: Mutex<HashMap<Id, (Id, String)>>,
    /// Executions with a turn in flight or queued, as the runner knows it this moment.
    pub busy: Mutex<HashMap<Id, bool>>,
    /// Idle sessions shutting down right now to free a slot for a waiting start.
    pub releasing: Mutex<usize>,
    /// MCP tokens of live sessions and where each keeps its restart note.
    pub mcp: crate::notes::mcp::Sessions,
    /// Serializes note exports (load, compare, write), so an older rendering never lands
    /// after a newer one.
    pub export: tokio::sync::Mutex<()>,
}

impl Shared {
    pub fn is_busy(&self, exec: Id) -> bool {
        self.busy.lock().map(|b| b.get(&exec).copied().unwrap_or(false)).unwrap_or(false)
    }

    fn set_busy(&self, exec: Id, busy: bool) {
        if let Ok(mut b) = self.busy.lock() {
            b.insert(exec, busy);
        }
    }

    /// Whether an idle session should give its process back: more starts wait than sessions
    /// already on their way out, so two idle sessions do not both go for one waiter.
    fn claim_release(&self) -> bool {
        let Ok(mut releasing) = self.releasing.lock() else { return false };
        if self.supervisor.waiting() > *releasing {
            *releasing += 1;
            true
        } else {
            false
        }
    }

    fn release_done(&self) {
        if let Ok(mut releasing) = self.releasing.lock() {
            *releasing = releasing.saturating_sub(1);
        }
    }
}

/// A message to an execution's actor.
#[derive(Debug)]
pub(super) enum Msg {
    Run(Command),
    /// After a gateway restart: resume the session and pick the open turns up again.
    Recover {
        session: RuntimeSession,
        in_flight: Option<Turn>,
        queued: Vec<Turn>,
    },
}

/// The actors, one per execution that has had work this process.
pub(super) struct Runner {
    shared: Arc<Shared>,
    actors: Mutex<HashMap<Id, mpsc::UnboundedSender<Msg>>>,
    /// The actors' tasks, awaited on shutdown so their processes end before the gateway does.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    cancel: CancellationToken,
}

impl Drop for Runner {
    /// Dropping the engine stops its actors; their sessions shut the agent processes down.
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Runner {
    pub fn new(shared: Arc<Shared>) -> Self {
        Runner {
            shared,
            actors: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            cancel: CancellationToken::new(),
        }
    }

    /// Stops every actor and waits (bounded) for their agent processes to shut down. Turns in
    /// flight stay open in the database; `Engine::recover` resumes them on the next start.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let tasks: Vec<JoinHandle<()>> = match self.tasks.lock() {
            Ok(mut tasks) => tasks.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        let deadline = tokio::time::Instant::now() + SHUTDOWN_WAIT;
        for mut task in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!("an agent session did not stop in time; abandoning it");
                task.abort();
            }
        }
    }

    fn spawn(&self, exec: Id) -> mpsc::UnboundedSender<Msg> {
        let (tx, rx) = mpsc::unbounded_channel();
        let actor = Actor::new(self.shared.clone(), exec);
        let task = tokio::spawn(actor.run(rx, self.cancel.clone()));
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.retain(|t| !t.is_finished());
            tasks.push(task);
        }
        tx
    }

    pub fn dispatch(&self, command: Command) {
        let exec = match &command {
            Command::Turn { execution, .. }
            | Command::Interrupt { execution }
            | Command::Answer { execution, .. }
            | Command::Close { execution } => Some(*execution),
            Command::Decide { approval, .. } => {
                self.shared.approvals.lock().ok().and_then(|m| m.get(approval).map(|(e, _)| *e))
            }
        };
        match exec {
            Some(exec) => self.send(exec, Msg::Run(command)),
            None => {
                tracing::warn!(?command, "no live runtime session knows this approval; the decision is recorded only")
            }
        }
    }

    pub fn send(&self, exec: Id, msg: Msg) {
        if self.cancel.is_cancelled() {
            // Stopping: the work is durable and runs again after the restart.
            tracing::info!(execution = exec, "the gateway is stopping; the work waits for the next start");
            return;
        }
        if matches!(msg, Msg::Run(Command::Turn { .. }) | Msg::Recover { .. }) {
            self.shared.set_busy(exec, true);
        }
        let Ok(mut actors) = self.actors.lock() else { return };
        let tx = actors.entry(exec).or_insert_with(|| self.spawn(exec));
        if let Err(mpsc::error::SendError(msg)) = tx.send(msg) {
            // The actor ended (its task failed to load); start a new one for this message.
            let tx = self.spawn(exec);
            let _ = tx.send(msg);
            actors.insert(exec, tx);
        }
    }
}

struct Live {
    session: SupervisedSession,
    row: RuntimeSession,
}

/// The turn in flight and what it needs.
struct Current {
    turn: Turn,
    /// Agent text of this turn so far, and the part not yet on the timeline.
    text: String,
    unsaved: String,
    /// After a gateway restart the agent's approval request died with the old process: the
    /// person's answer re-runs the turn instead of being sent to a request that is gone.
    request_lost: bool,
    /// The turn's evidence so far: commands with exit codes, files changed.
    commands: Vec<Value>,
    files: std::collections::BTreeSet<String>,
    /// Request id of the question the agent asked and still waits on.
    question: Option<String>,
}

impl Current {
    fn new(turn: Turn, request_lost: bool) -> Self {
        Current {
            turn,
            text: String::new(),
            unsaved: String::new(),
            request_lost,
            commands: Vec::new(),
            files: Default::default(),
            question: None,
        }
    }
}

struct Actor {
    shared: Arc<Shared>,
    exec: Id,
    task: Id,
    agent: String,
    display: String,
    role: Role,
    /// The task's title, for the end-of-turn line ("finished reviewing '…'").
    title: String,
    cwd: String,
    live: Option<Live>,
    current: Option<Current>,
    queue: VecDeque<(RuntimeSession, Turn)>,
    /// A re-run turn will ask again for what was already decided: answer it the same way,
    /// once. (action, decision, approval id)
    auto_answer: Option<(String, ApprovalDecision, Id)>,
    /// Changes when a new session waits for a process slot (see `release_if_wanted`).
    slot_wanted: Option<watch::Receiver<u64>>,
    /// This actor gave its idle process back: resuming it is routine, not news for the chat.
    quiet_resume: bool,
}

impl Actor {
    fn new(shared: Arc<Shared>, exec: Id) -> Self {
        Actor {
            exec,
            task: 0,
            agent: String::new(),
            display: String::new(),
            role: Role::Editor,
            title: String::new(),
            cwd: String::new(),
            live: None,
            current: None,
            queue: VecDeque::new(),
            auto_answer: None,
            slot_wanted: Some(shared.supervisor.slot_wanted()),
            quiet_resume: false,
            shared,
        }
    }

    fn store(&self) -> &SeaStore {
        &self.shared.store
    }

    async fn load(&mut self) -> StoreResult<()> {
        let exec = self.store().execution(self.exec).await?;
        let task = self.store().task(exec.task_id).await?;
        self.task = task.id;
        self.display = display_agent(&exec.agent);
        self.agent = exec.agent;
        self.role = exec.role;
        self.title = task.title.clone();
        let projects = self.store().projects().await?;
        let from_store = task.project_id.and_then(|id| projects.into_iter().find(|p| p.id == id)).map(|p| p.path);
        let from_config = self.shared.config.projects.first().map(|p| p.path.to_string_lossy().into_owned());
        self.cwd = from_store
            .or(from_config)
            .unwrap_or_else(|| self.shared.config.server.data_dir.to_string_lossy().into_owned());
        Ok(())
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>, cancel: CancellationToken) {
        if let Err(e) = self.load().await {
            tracing::error!(execution = self.exec, error = %e, "cannot load the execution; its commands are dropped");
            return;
        }
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                msg = rx.recv() => match msg {
                    Some(msg) => self.on_msg(msg).await,
                    None => break,
                },
                event = next_event(&mut self.live) => self.on_event(event).await,
                changed = slot_wanted(&mut self.slot_wanted) => match changed {
                    Ok(()) => self.release_if_wanted().await,
                    // The supervisor is gone; nobody will want a slot again.
                    Err(_) => self.slot_wanted = None,
                },
            }
        }
        if let Some(mut live) = self.live.take() {
            live.session.shutdown().await;
        }
    }

    /// A sticky session holds its process slot for life, so with every slot taken by idle
    /// sessions a new task would wait forever. When a start waits, an idle session gives its
    /// process back; its row stays usable and its next turn resumes it by provider id.
    async fn release_if_wanted(&mut self) {
        if self.current.is_some() || !self.queue.is_empty() || self.live.is_none() {
            return;
        }
        if !self.shared.claim_release() {
            return;
        }
        if let Some(mut live) = self.live.take() {
            tracing::info!(execution = self.exec, "releasing an idle agent process for a waiting session");
            live.session.shutdown().await;
            self.quiet_resume = true;
        }
        self.shared.release_done();
    }

    fn log<T>(&self, what: &str, result: StoreResult<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::error!(execution = self.exec, error = %e, "{what}");
                None
            }
        }
    }

    async fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Run(Command::Turn { session, turn, .. }) => {
                self.queue.push_back((session, turn));
                self.start_next().await;
            }
            Msg::Run(Command::Interrupt { .. }) => self.interrupt().await,
            Msg::Run(Command::Answer { text, .. }) => self.answer(&text).await,
            Msg::Run(Command::Close { .. }) => {
                if let Some(mut live) = self.live.take() {
                    live.session.shutdown().await;
                }
            }
            Msg::Run(Command::Decide { approval, request_id, action, decision, note }) => {
                self.decide(approval, &request_id, &action, decision, note).await;
            }
            Msg::Recover { session, in_flight, queued } => {
                for turn in queued {
                    self.queue.push_back((session.clone(), turn));
                }
                match in_flight {
                    Some(turn) => self.recover(session, turn).await,
                    None => self.start_next().await,
                }
            }
        }
        self.shared.set_busy(self.exec, self.current.is_some() || !self.queue.is_empty());
    }

    /// Starts queued turns until one runs (or the queue is empty).
    async fn start_next(&mut self) {
        while self.current.is_none() {
            let Some((row, turn)) = self.queue.pop_front() else { return };
            let input = turn.input.clone();
            let seeded = match self.ensure_session(row).await {
                Ok(seeded) => seeded,
                Err(message) => {
                    self.fail_unstarted(turn, &format!("{} could not start: {message}", self.display)).await;
                    continue;
                }
            };
            let input = match seeded {
                Some(note) => format!("{note}\n\n{input}"),
                None => input,
            };
            self.current = Some(Current::new(turn, false));
            if let Err(message) = self.send_current(&input).await {
                let current = self.current.take();
                if let Some(c) = current {
                    self.fail_unstarted(c.turn, &format!("{} could not take the turn: {message}", self.display)).await;
                }
            }
        }
    }

    /// Sends `input` as the current turn and records that it runs.
    async fn send_current(&mut self, input: &str) -> Result<(), String> {
        let Some(live) = &self.live else { return Err("no session".into()) };
        live.session.send_turn(input).await.map_err(|e| e.to_string())?;
        let shared = self.shared.clone();
        let _w = shared.write.lock().await;
        let store = self.shared.store.clone();
        let (exec, task) = (self.exec, self.task);
        if let Some(c) = &mut self.current {
            let r = status::turn(&*store, &mut c.turn, TurnStatus::Running, None).await;
            self.log("recording the turn start", r);
        }
        if let Some(live) = &mut self.live {
            let r = status::session(&*store, &mut live.row, SessionStatus::Busy).await;
            self.log("recording the session busy", r);
        }
        let r = status::execution(&*store, exec, ExecutionStatus::Running).await;
        self.log("recording the execution running", r);
        let r = status::task(&*store, task, TaskStatus::Running).await;
        self.log("recording the task running", r);
        Ok(())
    }

    /// Makes `row`'s session live. Returns the restart note to put before the input when a
    /// resume was wanted but only a fresh session could be started.
    async fn ensure_session(&mut self, row: RuntimeSession) -> Result<Option<String>, String> {
        if self.live.as_ref().is_some_and(|l| l.row.id == row.id) {
            return Ok(None);
        }
        if let Some(mut old) = self.live.take() {
            // A new session row means the old one was closed (or died): its process goes.
            old.session.shutdown().await;
        }
        let task = self.store().task(self.task).await.map_err(|e| e.to_string())?;
        // Rendered for a new session: the export catches up with commits since it was written.
        let note = super::notes::load_and_export(&self.shared, &task).await.map_err(|e| e.to_string())?;
        let seed = crate::notes::seed(&task, &note);
        let resume = row.provider_session_id.clone();
        let mut spec = self.spec(resume.clone())?;
        // The restart-note tools, under a token for this session only.
        let notes = &self.shared.config.notes;
        if notes.mcp
            && let Some(token) = self.shared.mcp.issue(self.task, self.exec)
        {
            let url = notes.mcp_url(self.shared.config.server.listen);
            spec.mcp = Some(self.shared.mcp.server(url, token));
        }
        let mut seeded = None;
        let session = match self.shared.supervisor.start_supervised(spec.clone(), Some(seed.clone())).await {
            Ok(s) => s,
            Err(RuntimeError::Resume(why)) if resume.is_some() => {
                tracing::warn!(execution = self.exec, "resume failed ({why}); starting a fresh session");
                spec.resume = None;
                seeded = Some(format!("{seed}\n(The previous agent session could not be resumed.)"));
                self.shared.supervisor.start_supervised(spec, Some(seed)).await.map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.to_string()),
        };
        self.shared.mcp.attach(self.task, self.exec, session.restart_note_slot());
        let mut row = row;
        if let Some(id) = session.provider_session_id() {
            row.provider_session_id = Some(id);
            let shared = self.shared.clone();
            let _w = shared.write.lock().await;
            if let Ok(updated) = self.shared.store.update_session(&row).await {
                row = updated;
            }
        }
        self.live = Some(Live { session, row });
        Ok(seeded)
    }

    fn spec(&self, resume: Option<String>) -> Result<SessionSpec, String> {
        spec::session_spec(&self.shared.config, &self.agent, &self.display, &self.cwd, resume)
    }

    /// A turn that never ran: failed, and the person told why.
    async fn fail_unstarted(&mut self, mut turn: Turn, message: &str) {
        let shared = self.shared.clone();
        let _w = shared.write.lock().await;
        let store = self.shared.store.clone();
        let result = async {
            let tx = store.begin().await?;
            // Queued → Failed is not a move the turn machine has: it goes through Running.
            status::turn(&tx, &mut turn, TurnStatus::Running, None).await?;
            status::turn(&tx, &mut turn, TurnStatus::Failed, Some(message.to_owned())).await?;
            status::execution(&tx, self.exec, ExecutionStatus::Running).await?;
            status::execution(&tx, self.exec, ExecutionStatus::Failed).await?;
            status::task(&tx, self.task, TaskStatus::Failed).await?;
            self.event(&tx, EventKind::Result, json!({"turn": turn.id, "status": "failed", "summary": message}))
                .await?;
            self.notify(&tx, None, message, Vec::new(), Vec::new()).await?;
            tx.commit().await
        }
        .await;
        self.log("recording a turn that could not start", result);
    }

    async fn interrupt(&mut self) {
        let Some(current) = &self.current else { return };
        if current.request_lost {
            // Nothing runs in the agent: the turn waits only for the person. End it here.
            self.finish(TurnOutcome::Interrupted).await;
            return;
        }
        if let Some(live) = &self.live
            && let Err(e) = live.session.interrupt().await
        {
            tracing::warn!(execution = self.exec, error = %e, "interrupt failed");
        }
    }

    /// Delivers the person's answer to the question the turn waits on. Where nothing can take
    /// it (the protocol has no answers, or the question went with a restarted process) the text
    /// becomes the next turn instead, and the chat is told in one line.
    async fn answer(&mut self, text: &str) {
        let question = self.current.as_mut().and_then(|c| c.question.take());
        let delivered = match (&self.live, &question) {
            (Some(live), Some(id)) => live.session.answer(id, text).await,
            (None, _) => Err(RuntimeError::Dead),
            (_, None) => Err(RuntimeError::UnknownRequest("no question pending".into())),
        };
        let error = match delivered {
            Ok(()) => return,
            Err(e) => e,
        };
        tracing::info!(execution = self.exec, error = %error, "the answer could not be delivered; queueing it as the next turn");
        let row = match &self.live {
            Some(live) => Some(live.row.clone()),
            // A closed or dead row takes no turns (after `/new`, the next message starts one).
            None => self
                .log("reading the session", self.shared.store.latest_session(self.exec).await)
                .flatten()
                .filter(|s| s.status.is_usable()),
        };
        let Some(row) = row else {
            let line = format!("{} is no longer waiting for an answer; send it again to start a turn.", self.display);
            self.announce(&line, json!({"type": "answer_undelivered", "error": error.to_string()})).await;
            return;
        };
        let turn = {
            let shared = self.shared.clone();
            let _w = shared.write.lock().await;
            self.log("queueing an answer as a turn", self.shared.store.create_turn(row.id, text).await)
        };
        let Some(turn) = turn else { return };
        self.queue.push_front((row, turn));
        let line = format!("{} cannot take answers mid-turn; your reply runs as its next turn.", self.display);
        self.announce(&line, json!({"type": "answer_queued", "error": error.to_string()})).await;
        if self.current.is_none() {
            self.start_next().await;
        }
    }

    async fn decide(
        &mut self,
        approval: Id,
        request_id: &str,
        action: &str,
        decision: ApprovalDecision,
        note: Option<String>,
    ) {
        let lost = self.current.as_ref().is_some_and(|c| c.request_lost);
        let delivered = match (&self.live, lost) {
            (Some(live), false) => live.session.decide(request_id, decision).await,
            _ => Err(RuntimeError::UnknownRequest(request_id.to_owned())),
        };
        match delivered {
            Ok(()) => {
                let shared = self.shared.clone();
                let _w = shared.write.lock().await;
                let store = self.shared.store.clone();
                if let Some(c) = &mut self.current
                    && c.turn.status == TurnStatus::WaitingApproval
                {
                    let r = status::turn(&*store, &mut c.turn, TurnStatus::Running, None).await;
                    self.log("recording the turn running again", r);
                }
                let still_waiting =
                    store.pending_approvals(Some(self.task)).await.map(|p| !p.is_empty()).unwrap_or(false);
                if !still_waiting {
                    let r = status::task(&*store, self.task, TaskStatus::Running).await;
                    self.log("recording the task running again", r);
                }
            }
            Err(e) if self.current.is_some() => {
                // The request is gone with the process that asked (a gateway restart). Re-run
                // the turn on the resumed session and answer its repeated request the same way.
                tracing::info!(execution = self.exec, error = %e, "approval request lost; re-running the turn");
                if decision == ApprovalDecision::DenyAndStop {
                    self.finish(TurnOutcome::Interrupted).await;
                } else {
                    self.auto_answer = Some((action.to_owned(), decision, approval));
                    self.rerun_current().await;
                }
            }
            Err(e) => {
                tracing::warn!(execution = self.exec, error = %e, "the approval's turn is gone; nothing to answer");
                let line = format!("{} is no longer waiting for: {action}", self.display);
                self.announce(
                    &line,
                    json!({"type": "decision_undelivered", "approval": approval, "error": e.to_string()}),
                )
                .await;
            }
        }
        if let Some(note) = note
            && let Some(live) = &self.live
        {
            // The denial's instruction ("no, run only the unit tests") is the next turn.
            let row = live.row.clone();
            let input = format!("The person declined {action} and said: {note}");
            let shared = self.shared.clone();
            let _w = shared.write.lock().await;
            if let Some(turn) =
                self.log("queueing the denial's instruction", self.shared.store.create_turn(row.id, &input).await)
            {
                self.queue.push_front((row, turn));
            }
        }
        self.shared.approvals.lock().ok().map(|mut m| m.remove(&approval));
        if self.current.is_none() {
            self.start_next().await;
        }
    }

    /// Re-sends the current turn's input (on a resumed session when the process is gone).
    async fn rerun_current(&mut self) {
        let Some(current) = &mut self.current else { return };
        current.request_lost = false;
        let input = current.turn.input.clone();
        let session_id = current.turn.session_id;
        if self.live.is_none() {
            let row = match self.shared.store.session(session_id).await {
                Ok(row) => row,
                Err(e) => {
                    tracing::error!(execution = self.exec, error = %e, "cannot read the session to resume");
                    self.finish(TurnOutcome::Failed { message: e.to_string() }).await;
                    return;
                }
            };
            if let Err(message) = self.ensure_session(row).await {
                self.finish(TurnOutcome::Failed { message }).await;
                return;
            }
        }
        let input = format!("(The gateway restarted during this request; do it again.)\n\n{input}");
        if let Err(message) = self.send_current(&input).await {
            self.finish(TurnOutcome::Failed { message }).await;
        }
    }

    async fn recover(&mut self, session: RuntimeSession, turn: Turn) {
        let waiting = turn.status == TurnStatus::WaitingApproval;
        self.current = Some(Current::new(turn, waiting));
        if let Err(message) = self.ensure_session(session).await {
            let message = format!("{} could not resume after a restart: {message}", self.display);
            self.finish(TurnOutcome::Failed { message }).await;
            return;
        }
        if !waiting {
            // The turn was running when the gateway stopped: run it again to completion.
            self.rerun_current().await;
        }
    }

    async fn on_event(&mut self, event: Option<RuntimeEvent>) {
        let Some(event) = event else {
            // The supervisor gave up and closed the stream.
            if let Some(mut live) = self.live.take() {
                let shared = self.shared.clone();
                let _w = shared.write.lock().await;
                let r = status::session(&*self.shared.store.clone(), &mut live.row, SessionStatus::Dead).await;
                self.log("recording the session dead", r);
            }
            if self.current.is_some() {
                self.finish(TurnOutcome::Failed { message: "the agent process is gone".into() }).await;
            }
            return;
        };
        match event {
            RuntimeEvent::AgentText { text } => {
                if let Some(c) = &mut self.current {
                    c.text.push_str(&text);
                    c.unsaved.push_str(&text);
                }
            }
            RuntimeEvent::SessionReady { ref provider_session_id, .. } => {
                let id = provider_session_id.clone();
                let quiet = std::mem::take(&mut self.quiet_resume);
                let shared = self.shared.clone();
                let _w = shared.write.lock().await;
                let store = self.shared.store.clone();
                let result = async {
                    let tx = store.begin().await?;
                    if let Some(live) = &mut self.live {
                        live.row.provider_session_id = Some(id);
                        if live.row.status == SessionStatus::Starting {
                            live.row.status = SessionStatus::Ready;
                        }
                        live.row = tx.update_session(&live.row).await?;
                    }
                    self.event(&tx, EventKind::Runtime, to_body(&event)).await?;
                    if let Some(line) = summarize(&self.display, &event).filter(|_| !quiet) {
                        self.notify(&tx, None, &line, Vec::new(), Vec::new()).await?;
                    }
                    tx.commit().await
                }
                .await;
                self.log("recording the session ready", result);
            }
            RuntimeEvent::ApprovalRequested(request) => self.on_approval(request).await,
            RuntimeEvent::ApprovalResolved { ref request_id, decision } => {
                let known = self
                    .shared
                    .approvals
                    .lock()
                    .ok()
                    .and_then(|m| m.iter().find(|(_, (e, r))| *e == self.exec && r == request_id).map(|(a, _)| *a));
                let shared = self.shared.clone();
                let _w = shared.write.lock().await;
                let store = self.shared.store.clone();
                let result = async {
                    let tx = store.begin().await?;
                    if decision.is_none()
                        && let Some(id) = known
                    {
                        // Withdrawn by the agent: the button must stop working.
                        let mut approval = tx.approval(id).await?;
                        if approval.status.allows(ApprovalStatus::Expired) {
                            approval.status = ApprovalStatus::Expired;
                            tx.update_approval(&approval).await?;
                        }
                    }
                    self.event(&tx, EventKind::Approval, to_body(&event)).await?;
                    if let Some(line) = live::line(&self.display, &event) {
                        self.status(&tx, &line).await?;
                    }
                    tx.commit().await
                }
                .await;
                self.log("recording an approval resolution", result);
                if let Some(id) = known {
                    self.shared.approvals.lock().ok().map(|mut m| m.remove(&id));
                }
            }
            RuntimeEvent::Question { ref request_id, ref text } => {
                // Before the task shows waiting_input: an answer routed then must find it.
                if let Some(c) = &mut self.current {
                    c.question = Some(request_id.clone());
                }
                let line = one_line(&format!("{} asks: {text}", self.display), 300);
                self.persist(&event, EventKind::Runtime, Some(Line::Chat(line)), Some(TaskStatus::WaitingInput)).await;
            }
            RuntimeEvent::TurnFinished { outcome, .. } => self.finish(outcome).await,
            RuntimeEvent::Died { restarting, .. } => {
                // One line per crash: "restarting it" already says what comes next.
                self.quiet_resume = restarting;
                let line = summarize(&self.display, &event).map(Line::Chat);
                self.persist(&event, EventKind::Runtime, line, None).await;
                if !restarting && let Some(mut live) = self.live.take() {
                    let shared = self.shared.clone();
                    let _w = shared.write.lock().await;
                    let r = status::session(&*self.shared.store.clone(), &mut live.row, SessionStatus::Dead).await;
                    self.log("recording the session dead", r);
                    if self.current.is_some() {
                        drop(_w);
                        self.finish(TurnOutcome::Failed { message: "the agent process died".into() }).await;
                    }
                }
            }
            RuntimeEvent::CommandFinished { ref command, exit_code, .. } => {
                if let Some(c) = &mut self.current {
                    c.commands.push(json!({"command": command, "exit_code": exit_code}));
                }
                let line = live::line(&self.display, &event).map(Line::Live);
                self.persist(&event, EventKind::Command, line, None).await;
            }
            RuntimeEvent::FileChanged { ref changes, applied, .. } => {
                if applied && let Some(c) = &mut self.current {
                    c.files.extend(changes.iter().map(|f| f.path.clone()));
                }
                let line = live::line(&self.display, &event).map(Line::Live);
                self.persist(&event, EventKind::FileChange, line, None).await;
            }
            RuntimeEvent::CommandStarted { .. } => {
                let line = live::line(&self.display, &event).map(Line::Live);
                self.persist(&event, EventKind::Command, line, None).await;
            }
            RuntimeEvent::TurnStarted { .. } | RuntimeEvent::Plan { .. } => {
                let line = live::line(&self.display, &event).map(Line::Live);
                self.persist(&event, EventKind::Runtime, line, None).await;
            }
        }
    }

    /// One event on the timeline (after any streamed text before it), with an optional line
    /// for the chat and task status.
    async fn persist(
        &mut self,
        event: &RuntimeEvent,
        kind: EventKind,
        line: Option<Line>,
        task_to: Option<TaskStatus>,
    ) {
        let shared = self.shared.clone();
        let _w = shared.write.lock().await;
        let store = self.shared.store.clone();
        let result = async {
            let tx = store.begin().await?;
            self.flush_text(&tx).await?;
            self.event(&tx, kind, to_body(event)).await?;
            if let Some(to) = task_to {
                status::task(&tx, self.task, to).await?;
            }
            match &line {
                Some(Line::Chat(line)) => self.notify(&tx, None, line, Vec::new(), Vec::new()).await?,
                Some(Line::Live(line)) => self.status(&tx, line).await?,
                None => {}
            }
            tx.commit().await
        }
        .await;
        self.log("recording a runtime event", result);
    }

    async fn on_approval(&mut self, request: ApprovalRequest) {
        if let Some((action, decision, approval)) = self.auto_answer.take() {
            if action == request.action {
                let result = match &self.live {
                    Some(live) => live.session.decide(&request.request_id, decision).await,
                    None => Err(RuntimeError::Dead),
                };
                let body = json!({"type": "approval_requested", "request": request, "answered_by_approval": approval, "delivered": result.is_ok()});
                let shared = self.shared.clone();
                let _w = shared.write.lock().await;
                let store = self.shared.store.clone();
                let r = self.event(&*store, EventKind::Approval, body).await;
                self.log("recording a repeated approval answered", r);
                if result.is_ok() {
                    return;
                }
            } else {
                // The re-run asked for something else: that needs a person again.
                tracing::info!(execution = self.exec, "re-run asked for a different action; asking the person");
            }
        }
        let event = RuntimeEvent::ApprovalRequested(request.clone());
        let line =
            summarize(&self.display, &event).unwrap_or_else(|| format!("{} is waiting for approval", self.display));
        let shared = self.shared.clone();
        let _w = shared.write.lock().await;
        let store = self.shared.store.clone();
        let turn_id = self.current.as_ref().map(|c| c.turn.id);
        let result = async {
            let tx = store.begin().await?;
            self.flush_text(&tx).await?;
            let approval = tx
                .create_approval(NewApproval {
                    task_id: self.task,
                    turn_id,
                    request_id: request.request_id.clone(),
                    action: request.action.clone(),
                })
                .await?;
            if let Some(c) = &mut self.current {
                status::turn(&tx, &mut c.turn, TurnStatus::WaitingApproval, None).await?;
            }
            status::task(&tx, self.task, TaskStatus::WaitingApproval).await?;
            let mut body = to_body(&event);
            body["approval"] = json!(approval.id);
            self.event(&tx, EventKind::Approval, body).await?;
            let (buttons, options) = approval_buttons(approval.id);
            let mut payload_extra = Vec::new();
            if let Some(detail) = &request.detail {
                payload_extra.push(("detail", json!(detail)));
            }
            self.notify_with(&tx, Some(approval.id), &line, buttons, options, payload_extra).await?;
            // The status message says it too: it is where the phone looks for "what now".
            self.status(&tx, &line).await?;
            tx.commit().await?;
            Ok(approval.id)
        }
        .await;
        if let Some(id) = self.log("recording an approval request", result)
            && let Ok(mut m) = self.shared.approvals.lock()
        {
            m.insert(id, (self.exec, request.request_id));
        }
    }

    /// Ends the current turn: statuses by outcome, the sticky session back to ready, pending
    /// approvals of the turn expired, the summary line to the chat; then the next queued turn.
    async fn finish(&mut self, outcome: TurnOutcome) {
        let Some(mut current) = self.current.take() else {
            tracing::debug!(execution = self.exec, "a turn finished that this gateway did not start");
            return;
        };
        let (turn_to, exec_to, task_to) = match &outcome {
            TurnOutcome::Completed => (TurnStatus::Completed, ExecutionStatus::Idle, TaskStatus::Idle),
            TurnOutcome::Interrupted => (TurnStatus::Interrupted, ExecutionStatus::Idle, TaskStatus::Idle),
            TurnOutcome::TimedOut { .. } => (TurnStatus::Interrupted, ExecutionStatus::Idle, TaskStatus::Idle),
            TurnOutcome::Failed { .. } => (TurnStatus::Failed, ExecutionStatus::Failed, TaskStatus::Failed),
        };
        let status_line = live::finished(&self.display, self.role, &self.title, &outcome);
        let event = RuntimeEvent::TurnFinished { outcome, usage: None };
        let reply = last_line(&current.text);
        let summary = match &reply {
            Some(reply) => one_line(&format!("{status_line}: {reply}"), 300),
            None => status_line.clone(),
        };
        let others_busy = self.others_busy().await;
        let shared = self.shared.clone();
        let _w = shared.write.lock().await;
        let store = self.shared.store.clone();
        let result = async {
            let tx = store.begin().await?;
            if !current.unsaved.is_empty() {
                let text = std::mem::take(&mut current.unsaved);
                self.event(&tx, EventKind::Runtime, json!({"type": "agent_text", "text": text})).await?;
            }
            // Queued → Running first when the turn never got going (it ended before starting).
            if current.turn.status == TurnStatus::Queued {
                status::turn(&tx, &mut current.turn, TurnStatus::Running, None).await?;
            }
            status::turn(&tx, &mut current.turn, turn_to, Some(summary.clone())).await?;
            if let Some(live) = &mut self.live {
                status::session(&tx, &mut live.row, turn_to.session_after()).await?;
            }
            for mut approval in tx.pending_approvals(Some(self.task)).await? {
                if approval.turn_id == Some(current.turn.id) && approval.status.allows(ApprovalStatus::Expired) {
                    approval.status = ApprovalStatus::Expired;
                    tx.update_approval(&approval).await?;
                }
            }
            status::execution(&tx, self.exec, exec_to).await?;
            if !others_busy {
                status::task(&tx, self.task, task_to).await?;
            }
            let mut body = to_body(&event);
            body["turn"] = json!(current.turn.id);
            body["summary"] = json!(summary);
            // What restart-note entries cite as `turn:<id>`.
            let files: Vec<String> = current.files.iter().cloned().collect();
            body["evidence"] = crate::notes::turn_evidence(current.turn.id, &current.commands, &files);
            self.event(&tx, EventKind::Result, body).await?;
            // The status message shows the end; the summary is news of its own (it notifies).
            live_status(&tx, self.task, current.turn.id, &status_line).await?;
            self.notify(&tx, None, &summary, Vec::new(), Vec::new()).await?;
            tx.commit().await
        }
        .await;
        self.log("recording the end of a turn", result);
        drop(_w);
        self.shared.set_busy(self.exec, !self.queue.is_empty());
        self.start_next().await;
        // Idle now: a session waiting for a slot may have missed our earlier look.
        self.release_if_wanted().await;
    }

    /// Whether another execution of this task still works (the task stays running then).
    async fn others_busy(&self) -> bool {
        match self.shared.store.executions(self.task).await {
            Ok(execs) => execs.iter().any(|e| e.id != self.exec && self.shared.is_busy(e.id)),
            Err(_) => false,
        }
    }

    async fn flush_text(&mut self, tx: &dyn Store) -> StoreResult<()> {
        let text = match &mut self.current {
            Some(c) if !c.unsaved.is_empty() => std::mem::take(&mut c.unsaved),
            _ => return Ok(()),
        };
        self.event(tx, EventKind::Runtime, json!({"type": "agent_text", "text": text})).await
    }

    async fn event(&self, tx: &dyn Store, kind: EventKind, body: Value) -> StoreResult<()> {
        tx.append_event(NewEvent {
            task_id: self.task,
            execution_id: Some(self.exec),
            kind,
            channel: None,
            actor: Some(self.display.clone()),
            body,
        })
        .await
        .map(|_| ())
    }

    /// A timeline event plus a chat line, in one transaction.
    async fn announce(&self, line: &str, body: Value) {
        let shared = self.shared.clone();
        let _w = shared.write.lock().await;
        let store = self.shared.store.clone();
        let result = async {
            let tx = store.begin().await?;
            self.event(&tx, EventKind::Runtime, body).await?;
            self.notify(&tx, None, line, Vec::new(), Vec::new()).await?;
            tx.commit().await
        }
        .await;
        self.log("announcing", result);
    }

    /// A status update of the current turn, for its live message (nothing without a turn).
    async fn status(&self, tx: &dyn Store, line: &str) -> StoreResult<()> {
        match &self.current {
            Some(c) => live_status(tx, self.task, c.turn.id, line).await,
            None => Ok(()),
        }
    }

    async fn notify(
        &self,
        tx: &dyn Store,
        approval: Option<Id>,
        text: &str,
        buttons: Vec<Value>,
        options: Vec<Value>,
    ) -> StoreResult<()> {
        self.notify_with(tx, approval, text, buttons, options, Vec::new()).await
    }

    async fn notify_with(
        &self,
        tx: &dyn Store,
        approval: Option<Id>,
        text: &str,
        buttons: Vec<Value>,
        options: Vec<Value>,
        extra: Vec<(&str, Value)>,
    ) -> StoreResult<()> {
        notify(tx, self.task, approval, text, buttons, options, extra).await
    }
}

/// Enqueues a line about `task` to the chat that last heard about it (the web console's task
/// page when no chat has).
pub(super) async fn notify(
    tx: &dyn Store,
    task: Id,
    approval: Option<Id>,
    text: &str,
    buttons: Vec<Value>,
    options: Vec<Value>,
    extra: Vec<(&str, Value)>,
) -> StoreResult<()> {
    let (channel, chat_id, thread_id) = match tx.latest_outbound(task).await? {
        Some(o) => {
            let thread = o.payload.get("thread_id").cloned().unwrap_or(json!(""));
            (o.channel, o.chat_id, thread)
        }
        None => (Channel::Web, format!("task-{task}"), json!("")),
    };
    let mut payload = json!({"text": text, "buttons": buttons, "options": options, "thread_id": thread_id});
    for (key, value) in extra {
        payload[key] = value;
    }
    tx.outbox_enqueue(NewOutbound { channel, chat_id, task_id: Some(task), approval_id: approval, payload }).await?;
    Ok(())
}

/// A line for the chat: its own message, or an update of the turn's live status message.
enum Line {
    Chat(String),
    Live(String),
}

/// Enqueues `line` as a status update of `turn` (see [`live`]).
async fn live_status(tx: &dyn Store, task: Id, turn: Id, line: &str) -> StoreResult<()> {
    notify(tx, task, None, line, Vec::new(), Vec::new(), vec![(live::FIELD, json!(live::key(turn)))]).await
}

/// Approve / always / deny, each button's `choice` indexing what it means.
pub(super) fn approval_buttons(approval: Id) -> (Vec<Value>, Vec<Value>) {
    let id = approval.to_string();
    let buttons = vec![
        json!({"label": "Approve", "choice": 0}),
        json!({"label": "Always", "choice": 1}),
        json!({"label": "Deny", "choice": 2}),
    ];
    let options = vec![
        json!({"intent": "approve", "approval": id, "scope": "once"}),
        json!({"intent": "approve", "approval": id, "scope": "always"}),
        json!({"intent": "deny", "approval": id, "scope": null}),
    ];
    (buttons, options)
}

fn to_body(event: &RuntimeEvent) -> Value {
    serde_json::to_value(event).unwrap_or_else(|e| json!({"type": "unserializable", "error": e.to_string()}))
}

/// The agent's last non-empty line: what a phone shows as the result.
fn last_line(text: &str) -> Option<String> {
    text.lines().map(str::trim).rfind(|l| !l.is_empty()).map(|l| one_line(l, 200))
}

async fn slot_wanted(wanted: &mut Option<watch::Receiver<u64>>) -> Result<(), watch::error::RecvError> {
    match wanted {
        Some(wanted) => wanted.changed().await,
        None => std::future::pending().await,
    }
}

async fn next_event(live: &mut Option<Live>) -> Option<RuntimeEvent> {
    match live {
        Some(live) => live.session.next_event().await,
        None => std::future::pending().await,
    }
}
