//! The session handle shared by every protocol adapter, and the actor loop that owns the
//! process: it feeds stdout lines and caller commands to a protocol [`Driver`] one at a time.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use taskgate_core::runtime::{AgentSession, ApprovalDecision, RuntimeError, RuntimeEvent, SessionSpec};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::RuntimeOptions;
use super::process::{self, AgentProcess, Line};

pub(crate) type Reply = oneshot::Sender<Result<(), RuntimeError>>;

/// A caller's request, answered through `reply` when the driver knows the result.
pub(crate) enum Command {
    Turn { text: String, reply: Reply },
    Decide { request_id: String, decision: ApprovalDecision, reply: Reply },
    Answer { request_id: String, text: String, reply: Reply },
    Interrupt { reply: Reply },
}

pub(crate) enum Control {
    Command(Command),
    Shutdown(oneshot::Sender<()>),
}

/// What a driver may do besides writing to the agent: emit events and report readiness.
pub(crate) struct Io {
    pub agent: String,
    events: mpsc::UnboundedSender<RuntimeEvent>,
    provider_id: Arc<Mutex<Option<String>>>,
    ready: Option<oneshot::Sender<Result<(), RuntimeError>>>,
}

impl Io {
    pub fn emit(&self, event: RuntimeEvent) {
        let _ = self.events.send(event);
    }

    /// Records the provider session id and announces it (once per distinct id).
    pub fn session_ready(&mut self, id: String, resumed: bool) {
        let changed = match self.provider_id.lock() {
            Ok(mut slot) => {
                let changed = slot.as_deref() != Some(id.as_str());
                *slot = Some(id.clone());
                changed
            }
            Err(_) => true,
        };
        if changed || resumed {
            self.emit(RuntimeEvent::SessionReady { provider_session_id: id, resumed });
        }
    }

    /// The handshake finished; `start` returns the session.
    pub fn ready(&mut self) {
        if let Some(tx) = self.ready.take() {
            let _ = tx.send(Ok(()));
        }
    }

    /// The handshake failed; `start` returns this error.
    pub fn fail(&mut self, error: RuntimeError) {
        if let Some(tx) = self.ready.take() {
            let _ = tx.send(Err(error));
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.is_none()
    }
}

/// One protocol's state machine. Every method runs on the session's actor task; none blocks.
pub(crate) trait Driver: Send + 'static {
    /// Writes the handshake.
    fn begin(&mut self, io: &mut Io);
    /// Handles one stdout line (not blank).
    fn on_line(&mut self, line: &str, io: &mut Io);
    fn on_command(&mut self, command: Command, io: &mut Io);
    /// The process is gone or going: withdraw pending approvals, fail waiting replies.
    fn on_exit(&mut self, io: &mut Io);
}

/// Spawns the agent, runs `driver` on it and waits for its handshake.
pub(crate) async fn start<D: Driver>(
    spec: &SessionSpec,
    args: &[String],
    options: &RuntimeOptions,
    make_driver: impl FnOnce(mpsc::UnboundedSender<String>) -> D,
) -> Result<Box<dyn AgentSession>, RuntimeError> {
    let process = process::spawn(spec, args, options.max_line_bytes)?;
    let last_stderr = process.last_stderr.clone();
    let driver = make_driver(process.stdin.clone());
    let (ready_tx, ready_rx) = oneshot::channel();
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let provider_id = Arc::new(Mutex::new(None));
    let io =
        Io { agent: spec.agent.clone(), events: event_tx, provider_id: provider_id.clone(), ready: Some(ready_tx) };
    let task = tokio::spawn(run(driver, process, control_rx, io, options.clone()));
    let mut session = SessionHandle::new(control_tx, event_rx, provider_id, task);

    let outcome = tokio::time::timeout(options.handshake_timeout, ready_rx).await;
    let error = match outcome {
        Ok(Ok(Ok(()))) => return Ok(Box::new(session)),
        Ok(Ok(Err(e))) => e,
        Ok(Err(_)) => {
            let detail = last_stderr.lock().ok().and_then(|s| s.clone());
            RuntimeError::Handshake(match detail {
                Some(line) => format!("the agent exited during the handshake ({line})"),
                None => "the agent exited during the handshake".to_string(),
            })
        }
        Err(_) => RuntimeError::Handshake(format!("no answer within {:?}", options.handshake_timeout)),
    };
    session.shutdown().await;
    Err(error)
}

async fn run<D: Driver>(
    mut driver: D,
    mut process: AgentProcess,
    mut control: mpsc::UnboundedReceiver<Control>,
    mut io: Io,
    options: RuntimeOptions,
) {
    driver.begin(&mut io);
    let mut shutdown_reply = None;
    let requested = loop {
        tokio::select! {
            line = process.lines.recv() => match line {
                Some(Line::Text(text)) if text.trim().is_empty() => {}
                Some(Line::Text(text)) => driver.on_line(&text, &mut io),
                Some(Line::TooLong(len)) => {
                    tracing::warn!(agent = %io.agent, len, "skipping an oversized line from the agent");
                }
                None => break false,
            },
            message = control.recv() => match message {
                Some(Control::Command(command)) => driver.on_command(command, &mut io),
                Some(Control::Shutdown(reply)) => {
                    shutdown_reply = Some(reply);
                    break true;
                }
                // Every handle is gone: nobody listens, so stop.
                None => break true,
            },
        }
    };
    driver.on_exit(&mut io);
    drop(driver);
    let AgentProcess { mut child, stdin, last_stderr, .. } = process;
    // Closing stdin is the polite way to ask every one of these agents to exit.
    drop(stdin);
    let grace = if requested { options.shutdown_grace } else { options.exit_wait };
    let status = process::stop(&mut child, grace).await;
    if requested {
        tracing::info!(agent = %io.agent, ?status, "agent process stopped");
    } else {
        let reason = process::exit_reason(status);
        tracing::warn!(agent = %io.agent, "{reason}");
        if io.is_ready() {
            io.emit(RuntimeEvent::Died { reason, restarting: false });
        } else {
            let stderr = last_stderr.lock().ok().and_then(|s| s.clone());
            io.fail(RuntimeError::Handshake(match stderr {
                Some(line) => format!("{reason} during the handshake: {line}"),
                None => format!("{reason} during the handshake"),
            }));
        }
    }
    io.fail(RuntimeError::Dead);
    if let Some(reply) = shutdown_reply {
        let _ = reply.send(());
    }
}

/// The caller's end of a session actor (a driver task or a supervisor): commands go in over
/// `control`, events come out of `events`. Both kinds of session share it.
pub struct SessionHandle {
    control: mpsc::UnboundedSender<Control>,
    events: mpsc::UnboundedReceiver<RuntimeEvent>,
    provider_id: Arc<Mutex<Option<String>>>,
    task: Option<JoinHandle<()>>,
}

/// A live agent session backed by one child process.
pub type ProcessSession = SessionHandle;

impl SessionHandle {
    pub(crate) fn new(
        control: mpsc::UnboundedSender<Control>,
        events: mpsc::UnboundedReceiver<RuntimeEvent>,
        provider_id: Arc<Mutex<Option<String>>>,
        task: JoinHandle<()>,
    ) -> Self {
        Self { control, events, provider_id, task: Some(task) }
    }

    async fn call(&self, make: impl FnOnce(Reply) -> Command) -> Result<(), RuntimeError> {
        let (tx, rx) = oneshot::channel();
        self.control.send(Control::Command(make(tx))).map_err(|_| RuntimeError::Dead)?;
        rx.await.unwrap_or(Err(RuntimeError::Dead))
    }
}

#[async_trait]
impl AgentSession for SessionHandle {
    fn provider_session_id(&self) -> Option<String> {
        self.provider_id.lock().ok().and_then(|id| id.clone())
    }

    async fn send_turn(&self, text: &str) -> Result<(), RuntimeError> {
        let text = text.to_string();
        self.call(|reply| Command::Turn { text, reply }).await
    }

    async fn decide(&self, request_id: &str, decision: ApprovalDecision) -> Result<(), RuntimeError> {
        let request_id = request_id.to_string();
        self.call(|reply| Command::Decide { request_id, decision, reply }).await
    }

    async fn answer(&self, request_id: &str, text: &str) -> Result<(), RuntimeError> {
        let (request_id, text) = (request_id.to_string(), text.to_string());
        self.call(|reply| Command::Answer { request_id, text, reply }).await
    }

    async fn interrupt(&self) -> Result<(), RuntimeError> {
        self.call(|reply| Command::Interrupt { reply }).await
    }

    async fn next_event(&mut self) -> Option<RuntimeEvent> {
        self.events.recv().await
    }

    async fn shutdown(&mut self) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
