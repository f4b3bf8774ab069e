//! The session handle shared by every protocol adapter, and the actor loop that owns the
//! process: it feeds stdout lines and caller commands to a protocol [`Driver`] one at a time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use taskgate_core::runtime::{
    AgentSession, ApprovalDecision, InputFile, RuntimeError, RuntimeEvent, SessionSpec, TurnInput,
};
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::RuntimeOptions;
use super::process::{self, AgentProcess, Line};
use super::shared::Member;

pub(crate) type Reply = oneshot::Sender<Result<(), RuntimeError>>;

/// A caller's request, answered through `reply` when the driver knows the result.
pub(crate) enum Command {
    /// `files`: images and other files that go with the text (see [`TurnInput`]).
    Turn {
        text: String,
        files: Vec<InputFile>,
        reply: Reply,
    },
    Decide {
        request_id: String,
        decision: ApprovalDecision,
        reply: Reply,
    },
    Answer {
        request_id: String,
        text: String,
        reply: Reply,
    },
    Interrupt {
        reply: Reply,
    },
}

pub(crate) enum Control {
    Command(Command),
    Shutdown(oneshot::Sender<()>),
    Kill(oneshot::Sender<()>),
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
    /// The session leaves a process that goes on hosting others: stop its running turn and
    /// answer what the agent waits for, so nothing of it runs on unattended.
    fn on_leave(&mut self, _io: &mut Io) {}
    /// The process is gone or going: withdraw pending approvals, fail waiting replies.
    fn on_exit(&mut self, io: &mut Io);
}

/// Where a session's lines come from and go to: a child process of its own, or its share of
/// a process hosting several sessions (see [`super::shared`]).
pub(crate) struct Link {
    pub stdin: mpsc::UnboundedSender<String>,
    pub lines: Lines,
    /// The process's last stderr line, for handshake errors.
    pub last_stderr: Arc<Mutex<Option<String>>>,
    pub end: End,
}

pub(crate) enum Lines {
    Own(mpsc::Receiver<Line>),
    Shared(mpsc::UnboundedReceiver<Line>),
}

impl Lines {
    async fn recv(&mut self) -> Option<Line> {
        match self {
            Lines::Own(rx) => rx.recv().await,
            Lines::Shared(rx) => rx.recv().await,
        }
    }
}

pub(crate) enum End {
    Own(Child),
    Shared(Member),
}

impl Link {
    pub fn own(process: AgentProcess) -> Self {
        let AgentProcess { child, stdin, lines, last_stderr } = process;
        Link { stdin, lines: Lines::Own(lines), last_stderr, end: End::Own(child) }
    }
}

/// How a session actor's loop ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Asked to shut down (or every handle is gone).
    Shutdown,
    /// Asked to kill the process.
    Kill,
    /// The agent's output ended: the process died.
    Exited,
}

/// Spawns the agent, runs `driver` on it and waits for its handshake.
pub(crate) async fn start<D: Driver>(
    spec: &SessionSpec,
    args: &[String],
    options: &RuntimeOptions,
    make_driver: impl FnOnce(mpsc::UnboundedSender<String>) -> D,
) -> Result<Box<dyn AgentSession>, RuntimeError> {
    let process = process::spawn(spec, args, options.max_line_bytes)?;
    start_on(Link::own(process), &spec.agent, options, make_driver).await
}

/// Runs `driver` on `link` and waits for its handshake.
pub(crate) async fn start_on<D: Driver>(
    link: Link,
    agent: &str,
    options: &RuntimeOptions,
    make_driver: impl FnOnce(mpsc::UnboundedSender<String>) -> D,
) -> Result<Box<dyn AgentSession>, RuntimeError> {
    let last_stderr = link.last_stderr.clone();
    let driver = make_driver(link.stdin.clone());
    let (ready_tx, ready_rx) = oneshot::channel();
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let provider_id = Arc::new(Mutex::new(None));
    let io = Io { agent: agent.to_string(), events: event_tx, provider_id: provider_id.clone(), ready: Some(ready_tx) };
    let task = tokio::spawn(run(driver, link, control_rx, io, options.clone()));
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
    link: Link,
    mut control: mpsc::UnboundedReceiver<Control>,
    mut io: Io,
    options: RuntimeOptions,
) {
    let Link { stdin, mut lines, last_stderr, end } = link;
    driver.begin(&mut io);
    let mut reply = None;
    let ending = loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(Line::Text(text)) if text.trim().is_empty() => {}
                Some(Line::Text(text)) => driver.on_line(&text, &mut io),
                Some(Line::TooLong(len)) => {
                    tracing::warn!(agent = %io.agent, len, "skipping an oversized line from the agent");
                }
                None => break Ending::Exited,
            },
            message = control.recv() => match message {
                Some(Control::Command(command)) => driver.on_command(command, &mut io),
                Some(Control::Shutdown(tx)) => {
                    reply = Some(tx);
                    break Ending::Shutdown;
                }
                Some(Control::Kill(tx)) => {
                    reply = Some(tx);
                    break Ending::Kill;
                }
                // Every handle is gone: nobody listens, so stop.
                None => break Ending::Shutdown,
            },
        }
    };
    if ending == Ending::Shutdown && matches!(end, End::Shared(_)) {
        driver.on_leave(&mut io);
    }
    driver.on_exit(&mut io);
    drop(driver);
    // Closing stdin is the polite way to ask every one of these agents to exit; on a shared
    // process it tells the host this session left (after what `on_leave` wrote).
    drop(stdin);
    drop(lines);
    let died = match end {
        End::Own(mut child) => {
            let grace = match ending {
                Ending::Shutdown => options.shutdown_grace,
                Ending::Kill => Duration::ZERO,
                Ending::Exited => options.exit_wait,
            };
            let status = process::stop(&mut child, grace).await;
            if ending == Ending::Exited {
                Some(process::exit_reason(status))
            } else {
                tracing::info!(agent = %io.agent, ?status, "agent process stopped");
                None
            }
        }
        End::Shared(member) => match ending {
            Ending::Shutdown => {
                tracing::debug!(agent = %io.agent, "session left its shared agent process");
                None
            }
            Ending::Kill => {
                tracing::warn!(agent = %io.agent, "killing a shared agent process");
                member.kill();
                None
            }
            Ending::Exited => Some(member.exit_reason()),
        },
    };
    if let Some(reason) = died {
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
    if let Some(reply) = reply {
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

/// A live agent session backed by an agent process (its own or a shared one).
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

    async fn stop(&mut self, make: impl FnOnce(oneshot::Sender<()>) -> Control) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(make(tx)).is_ok() {
            let _ = rx.await;
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
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
        self.send_input(&TurnInput::text(text)).await
    }

    async fn send_input(&self, input: &TurnInput) -> Result<(), RuntimeError> {
        let (text, files) = (input.text.clone(), input.files.clone());
        self.call(|reply| Command::Turn { text, files, reply }).await
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
        self.stop(Control::Shutdown).await;
    }

    async fn kill(&mut self) {
        self.stop(Control::Kill).await;
    }
}
