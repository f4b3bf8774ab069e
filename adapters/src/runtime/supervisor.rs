//! Keeps runtime sessions alive and bounded: replaces a crashed agent (resume by provider id,
//! else a fresh session seeded with the restart note and the last input), ends runaway turns
//! at a time limit (interrupt, then kill), and caps concurrent agent processes.
//!
//! The cap counts processes: sessions whose runtime gives them the same process key (codex
//! threads of one app-server) hold one slot between them, taken by the first and given back
//! when the last of them ends. (The process itself lingers for
//! [`super::RuntimeOptions::shared_linger`] after that, so for that long one process more than
//! the cap may run.) A session of a shared process that ends while starts wait gives nothing
//! back, so the owners of idle sessions are asked again (`slot_wanted` changes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use taskgate_core::runtime::{
    AgentRuntime, AgentSession, InputFile, RuntimeError, RuntimeEvent, SessionSpec, TurnInput, TurnOutcome,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, watch};
use tokio::time::Instant;

use super::session::{Command, Control, SessionHandle};

#[derive(Debug, Clone)]
pub struct SupervisorOptions {
    /// Agent processes allowed at once; further sessions wait in `start` (sessions sharing a
    /// process count once).
    pub max_concurrent: usize,
    /// Turn time limit for specs without their own.
    pub default_turn_timeout: Option<Duration>,
    /// After interrupting a turn at its limit, how long to wait before killing the process.
    pub interrupt_grace: Duration,
    /// Restarts allowed in a row without a finished turn; beyond that the session gives up.
    pub max_restarts: u32,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            max_concurrent: 4,
            default_turn_timeout: Some(Duration::from_secs(30 * 60)),
            interrupt_grace: Duration::from_secs(10),
            max_restarts: 2,
        }
    }
}

/// Starts supervised sessions on top of a protocol runtime (usually [`super::AgentRuntimes`]).
#[derive(Clone)]
pub struct Supervisor {
    runtime: Arc<dyn AgentRuntime>,
    permits: Arc<Semaphore>,
    options: SupervisorOptions,
    /// Starts blocked on a slot right now.
    waiting: Arc<AtomicUsize>,
    /// Bumped each time a start begins to wait, so owners of idle sessions can give theirs back
    /// (a session holds its slot for life; only its owner knows when it is idle).
    wanted: Arc<watch::Sender<u64>>,
    /// The slots of processes shared by several sessions, by process key.
    shared: Arc<Mutex<HashMap<String, Arc<SharedSlot>>>>,
}

/// One slot held by every session of a shared process.
#[derive(Default)]
struct SharedSlot {
    /// One start at a time waits for the key's slot; the others then join it.
    acquiring: tokio::sync::Mutex<()>,
    state: Mutex<SharedState>,
}

#[derive(Default)]
struct SharedState {
    permit: Option<OwnedSemaphorePermit>,
    users: usize,
}

impl SharedSlot {
    fn join(self: &Arc<Self>, supervisor: &Supervisor) -> Option<Slot> {
        let mut state = self.state.lock().ok()?;
        state.permit.as_ref()?;
        state.users += 1;
        Some(Slot::Shared {
            slot: self.clone(),
            waiting: supervisor.waiting.clone(),
            wanted: supervisor.wanted.clone(),
        })
    }
}

/// A session's claim on a process slot, given back when dropped.
enum Slot {
    Own(#[allow(dead_code, reason = "held, not read")] OwnedSemaphorePermit),
    Shared { slot: Arc<SharedSlot>, waiting: Arc<AtomicUsize>, wanted: Arc<watch::Sender<u64>> },
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Slot::Shared { slot, waiting, wanted } = self else { return };
        let Ok(mut state) = slot.state.lock() else { return };
        state.users = state.users.saturating_sub(1);
        if state.users == 0 {
            state.permit = None;
        } else if waiting.load(Ordering::SeqCst) > 0 {
            // This session gave nothing back: its process goes on for the others. Owners of
            // idle sessions are asked again, so one that does free a slot gets the chance.
            wanted.send_modify(|generation| *generation = generation.wrapping_add(1));
        }
    }
}

impl Supervisor {
    pub fn new(runtime: Arc<dyn AgentRuntime>, options: SupervisorOptions) -> Self {
        let permits = Arc::new(Semaphore::new(options.max_concurrent.max(1)));
        let (wanted, _) = watch::channel(0);
        Supervisor {
            runtime,
            permits,
            options,
            waiting: Arc::new(AtomicUsize::new(0)),
            wanted: Arc::new(wanted),
            shared: Arc::default(),
        }
    }

    /// Free process slots right now.
    pub fn available_slots(&self) -> usize {
        self.permits.available_permits()
    }

    /// Starts waiting for a slot right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Changes whenever a start begins to wait for a slot. A watch, not a notification: an
    /// owner that was busy when it changed still sees it once it looks.
    pub fn slot_wanted(&self) -> watch::Receiver<u64> {
        self.wanted.subscribe()
    }

    async fn acquire(&self) -> Result<OwnedSemaphorePermit, RuntimeError> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => return Ok(permit),
            Err(TryAcquireError::Closed) => return Err(RuntimeError::Dead),
            Err(TryAcquireError::NoPermits) => {}
        }
        let _waiting = Waiting::new(&self.waiting);
        self.wanted.send_modify(|generation| *generation = generation.wrapping_add(1));
        self.permits.clone().acquire_owned().await.map_err(|_| RuntimeError::Dead)
    }

    /// The slot for `spec`'s process: its own, or a share of its process key's.
    async fn slot(&self, spec: &SessionSpec) -> Result<Slot, RuntimeError> {
        let Some(key) = self.runtime.process_key(spec) else {
            return Ok(Slot::Own(self.acquire().await?));
        };
        let shared = {
            let mut slots = self.shared.lock().map_err(|_| RuntimeError::Dead)?;
            slots.entry(key).or_default().clone()
        };
        if let Some(slot) = shared.join(self) {
            return Ok(slot);
        }
        let _first = shared.acquiring.lock().await;
        if let Some(slot) = shared.join(self) {
            return Ok(slot);
        }
        let permit = self.acquire().await?;
        let mut state = shared.state.lock().map_err(|_| RuntimeError::Dead)?;
        state.permit = Some(permit);
        state.users += 1;
        Ok(Slot::Shared { slot: shared.clone(), waiting: self.waiting.clone(), wanted: self.wanted.clone() })
    }

    /// Waits for a process slot, then starts the agent. `restart_note` seeds a fresh session
    /// if the agent later dies and cannot be resumed (it can be updated with
    /// [`SupervisedSession::set_restart_note`]).
    pub async fn start_supervised(
        &self,
        spec: SessionSpec,
        restart_note: Option<String>,
    ) -> Result<SupervisedSession, RuntimeError> {
        let slot = self.slot(&spec).await?;
        let inner = self.runtime.start(spec.clone()).await?;
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let provider_id = Arc::new(Mutex::new(inner.provider_session_id()));
        let note = Arc::new(Mutex::new(restart_note));
        let turn_timeout = spec.turn_timeout.or(self.options.default_turn_timeout);
        let actor = Actor {
            runtime: self.runtime.clone(),
            spec,
            options: self.options.clone(),
            turn_timeout,
            inner: Some(inner),
            _slot: slot,
            events: event_tx,
            provider_id: provider_id.clone(),
            note: note.clone(),
            last_input: None,
            turn_running: false,
            deadline: None,
            interrupted_at_limit: false,
            preamble: None,
            restarts: 0,
        };
        let task = tokio::spawn(actor.run(control_rx));
        Ok(SupervisedSession { handle: SessionHandle::new(control_tx, event_rx, provider_id, task), note })
    }
}

/// Counts one start as waiting until dropped (also when the start is abandoned).
struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl AgentRuntime for Supervisor {
    async fn start(&self, spec: SessionSpec) -> Result<Box<dyn AgentSession>, RuntimeError> {
        Ok(Box::new(self.start_supervised(spec, None).await?.into_handle()))
    }

    fn process_key(&self, spec: &SessionSpec) -> Option<String> {
        self.runtime.process_key(spec)
    }
}

/// A runtime session that survives its process: the same handle as a process session (it
/// derefs to one, so every `AgentSession` method works on it), plus the restart note.
pub struct SupervisedSession {
    handle: SessionHandle,
    note: Arc<Mutex<Option<String>>>,
}

impl SupervisedSession {
    /// The text a fresh replacement session starts from (the task's restart note).
    pub fn set_restart_note(&self, note: impl Into<String>) {
        if let Ok(mut slot) = self.note.lock() {
            *slot = Some(note.into());
        }
    }

    /// A handle that updates the restart note from elsewhere: a note written mid-turn must
    /// reach a replacement that starts before the turn ends.
    pub fn restart_note_slot(&self) -> RestartNoteSlot {
        RestartNoteSlot(self.note.clone())
    }

    /// The plain session handle, for callers that hold sessions as `dyn AgentSession`.
    pub fn into_handle(self) -> SessionHandle {
        self.handle
    }
}

/// See [`SupervisedSession::restart_note_slot`].
#[derive(Clone)]
pub struct RestartNoteSlot(Arc<Mutex<Option<String>>>);

impl RestartNoteSlot {
    pub fn set(&self, note: impl Into<String>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(note.into());
        }
    }
}

impl std::ops::Deref for SupervisedSession {
    type Target = SessionHandle;

    fn deref(&self) -> &SessionHandle {
        &self.handle
    }
}

impl std::ops::DerefMut for SupervisedSession {
    fn deref_mut(&mut self) -> &mut SessionHandle {
        &mut self.handle
    }
}

struct Actor {
    runtime: Arc<dyn AgentRuntime>,
    spec: SessionSpec,
    options: SupervisorOptions,
    turn_timeout: Option<Duration>,
    /// `None` after the process was killed at a time limit: restarted on the next turn.
    inner: Option<Box<dyn AgentSession>>,
    /// The process slot, held for the session's life so restarts never queue behind others.
    _slot: Slot,
    events: mpsc::UnboundedSender<RuntimeEvent>,
    provider_id: Arc<Mutex<Option<String>>>,
    note: Arc<Mutex<Option<String>>>,
    last_input: Option<TurnInput>,
    turn_running: bool,
    deadline: Option<Instant>,
    interrupted_at_limit: bool,
    /// Restart note to put before the next input, after a fresh (not resumed) replacement.
    preamble: Option<String>,
    restarts: u32,
}

enum Step {
    Continue,
    Stop,
}

impl Actor {
    async fn run(mut self, mut control: mpsc::UnboundedReceiver<Control>) {
        loop {
            let deadline = self.deadline;
            let step = tokio::select! {
                event = next_of(&mut self.inner) => self.on_event(event).await,
                message = control.recv() => match message {
                    Some(Control::Command(command)) => {
                        self.on_command(command).await;
                        Step::Continue
                    }
                    Some(Control::Shutdown(reply)) => {
                        self.stop_inner().await;
                        let _ = reply.send(());
                        Step::Stop
                    }
                    Some(Control::Kill(reply)) => {
                        self.kill_inner().await;
                        let _ = reply.send(());
                        Step::Stop
                    }
                    None => {
                        self.stop_inner().await;
                        Step::Stop
                    }
                },
                () = sleep_until(deadline) => {
                    self.on_deadline().await;
                    Step::Continue
                }
            };
            if let Step::Stop = step {
                return;
            }
        }
    }

    fn emit(&self, event: RuntimeEvent) {
        let _ = self.events.send(event);
    }

    async fn on_event(&mut self, event: Option<RuntimeEvent>) -> Step {
        match event {
            Some(RuntimeEvent::SessionReady { provider_session_id, resumed }) => {
                if let Ok(mut slot) = self.provider_id.lock() {
                    *slot = Some(provider_session_id.clone());
                }
                self.emit(RuntimeEvent::SessionReady { provider_session_id, resumed });
            }
            Some(RuntimeEvent::TurnFinished { outcome, usage }) => {
                self.turn_running = false;
                self.deadline = None;
                self.restarts = 0;
                let outcome = match (std::mem::take(&mut self.interrupted_at_limit), outcome) {
                    (true, TurnOutcome::Interrupted) => TurnOutcome::TimedOut { limit_secs: self.limit_secs() },
                    (_, outcome) => outcome,
                };
                self.emit(RuntimeEvent::TurnFinished { outcome, usage });
            }
            Some(RuntimeEvent::Died { reason, .. }) => return self.on_died(reason).await,
            Some(event) => self.emit(event),
            // The inner session closed without a Died: treat it as one.
            None => return self.on_died("the agent session closed".to_string()).await,
        }
        Step::Continue
    }

    async fn on_died(&mut self, reason: String) -> Step {
        if let Some(mut inner) = self.inner.take() {
            inner.shutdown().await;
        }
        self.deadline = None;
        self.interrupted_at_limit = false;
        let turn_was_running = std::mem::take(&mut self.turn_running);
        if self.restarts >= self.options.max_restarts {
            tracing::warn!(agent = %self.spec.agent, "giving up after {} restarts: {reason}", self.restarts);
            return self.give_up(reason, turn_was_running);
        }
        self.restarts += 1;
        self.emit(RuntimeEvent::Died { reason: reason.clone(), restarting: true });
        match self.restart().await {
            Ok(()) => {
                // The interrupted work is re-sent so the turn the person asked for completes.
                if turn_was_running && let Some(input) = self.last_input.clone() {
                    let text = self.with_preamble(&input.text);
                    if let Err(e) = self.send(&text, input.files).await {
                        tracing::warn!(agent = %self.spec.agent, error = %e, "could not re-send the last turn");
                        self.emit(RuntimeEvent::TurnFinished {
                            outcome: TurnOutcome::Failed { message: e.to_string() },
                            usage: None,
                        });
                    }
                }
                Step::Continue
            }
            Err(e) => self.give_up(format!("could not restart ({e})"), turn_was_running),
        }
    }

    fn give_up(&mut self, reason: String, turn_was_running: bool) -> Step {
        if turn_was_running {
            self.emit(RuntimeEvent::TurnFinished {
                outcome: TurnOutcome::Failed { message: "the agent process died".to_string() },
                usage: None,
            });
        }
        self.emit(RuntimeEvent::Died { reason, restarting: false });
        Step::Stop
    }

    /// Starts a replacement: resumed by provider id when there is one, else fresh with the
    /// restart note waiting to precede the next input.
    async fn restart(&mut self) -> Result<(), RuntimeError> {
        let provider_id = self.provider_id.lock().ok().and_then(|id| id.clone());
        if let Some(id) = provider_id {
            let mut spec = self.spec.clone();
            spec.resume = Some(id);
            match self.runtime.start(spec).await {
                Ok(inner) => {
                    self.inner = Some(inner);
                    return Ok(());
                }
                Err(e) => tracing::warn!(agent = %self.spec.agent, error = %e, "resume failed; starting fresh"),
            }
        }
        let mut spec = self.spec.clone();
        spec.resume = None;
        let inner = self.runtime.start(spec).await?;
        if let Ok(mut slot) = self.provider_id.lock() {
            *slot = inner.provider_session_id();
        }
        self.inner = Some(inner);
        self.preamble = self.note.lock().ok().and_then(|n| n.clone()).or_else(|| Some(String::new()));
        Ok(())
    }

    fn with_preamble(&mut self, input: &str) -> String {
        match self.preamble.take() {
            Some(note) if !note.trim().is_empty() => format!(
                "{note}\n\n(The previous agent session was lost; the notes above say where the work stands.)\n\n{input}"
            ),
            _ => input.to_string(),
        }
    }

    async fn send(&mut self, text: &str, files: Vec<InputFile>) -> Result<(), RuntimeError> {
        let inner = self.inner.as_ref().ok_or(RuntimeError::Dead)?;
        inner.send_input(&TurnInput { text: text.to_owned(), files }).await?;
        self.turn_running = true;
        self.deadline = self.turn_timeout.map(|t| Instant::now() + t);
        Ok(())
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Turn { text, files, reply } => {
                if self.turn_running {
                    let _ = reply.send(Err(RuntimeError::Busy));
                    return;
                }
                if self.inner.is_none()
                    && let Err(e) = self.restart().await
                {
                    let _ = reply.send(Err(e));
                    return;
                }
                self.last_input = Some(TurnInput { text: text.clone(), files: files.clone() });
                let full = self.with_preamble(&text);
                let _ = reply.send(self.send(&full, files).await);
            }
            Command::Decide { request_id, decision, reply } => {
                let result = match &self.inner {
                    Some(inner) => inner.decide(&request_id, decision).await,
                    None => Err(RuntimeError::UnknownRequest(request_id)),
                };
                let _ = reply.send(result);
            }
            Command::Answer { request_id, text, reply } => {
                let result = match &self.inner {
                    Some(inner) => inner.answer(&request_id, &text).await,
                    None => Err(RuntimeError::UnknownRequest(request_id)),
                };
                let _ = reply.send(result);
            }
            Command::Interrupt { reply } => {
                let result = match &self.inner {
                    Some(inner) if self.turn_running => inner.interrupt().await,
                    _ => Err(RuntimeError::NoTurn),
                };
                let _ = reply.send(result);
            }
        }
    }

    /// First the polite interrupt; if the turn still runs after the grace period, kill.
    async fn on_deadline(&mut self) {
        if !self.interrupted_at_limit {
            tracing::warn!(agent = %self.spec.agent, "turn hit its time limit; interrupting");
            self.interrupted_at_limit = true;
            self.deadline = Some(Instant::now() + self.options.interrupt_grace);
            if let Some(inner) = &self.inner
                && let Err(e) = inner.interrupt().await
            {
                tracing::warn!(agent = %self.spec.agent, error = %e, "interrupt at the time limit failed");
            }
            return;
        }
        // Kills the process even when other sessions share it: they report `Died` and resume.
        tracing::warn!(agent = %self.spec.agent, "turn ignored the interrupt; killing the agent");
        self.kill_inner().await;
        self.deadline = None;
        self.interrupted_at_limit = false;
        self.turn_running = false;
        self.emit(RuntimeEvent::TurnFinished {
            outcome: TurnOutcome::TimedOut { limit_secs: self.limit_secs() },
            usage: None,
        });
    }

    async fn stop_inner(&mut self) {
        if let Some(mut inner) = self.inner.take() {
            inner.shutdown().await;
        }
    }

    async fn kill_inner(&mut self) {
        if let Some(mut inner) = self.inner.take() {
            inner.kill().await;
        }
    }

    fn limit_secs(&self) -> u64 {
        self.turn_timeout.map_or(0, |t| t.as_secs().max(1))
    }
}

async fn next_of(inner: &mut Option<Box<dyn AgentSession>>) -> Option<RuntimeEvent> {
    match inner {
        Some(inner) => inner.next_event().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
