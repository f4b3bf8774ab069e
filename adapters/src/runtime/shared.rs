//! One agent process hosting several sessions: `codex app-server` serves many threads on one
//! connection, and an ACP connection can carry several sessions.
//!
//! Each session keeps its own protocol driver (the same as on a process of its own) and talks
//! to a *member* link; the host between the links and the process is a JSON-RPC multiplexer:
//!
//! - the driver's request ids are renumbered on the shared connection and its responses
//!   numbered back, so every driver keeps its own id space;
//! - `initialize` goes to the agent once; later members get the cached answer, and codex's
//!   `initialized` notification is passed on once;
//! - notifications and server requests go to the member that owns the thread (codex
//!   `threadId`) or session (ACP `sessionId`) they name; ownership is learnt from the answers
//!   to `thread/start` / `session/new` and from `thread/resume` / `session/load` requests.
//!   Anything naming no member's thread is dropped (a server request gets an error answer), and
//!   a member's answer to a server request reaches the agent only if that request was routed to
//!   that member: one session's approvals, interrupts and answers never reach another's thread;
//! - a member that leaves has its thread released (codex `thread/unsubscribe`; ACP
//!   `session/close` where the agent advertises it, else forgotten); its driver first stops its
//!   turn (see [`super::session::Driver::on_leave`]). With no member left the process lingers
//!   for [`super::RuntimeOptions::shared_linger`], then exits;
//! - when the process dies, every member's output ends after the exit reason is recorded, so
//!   each session reports `Died` on its own and its supervisor resumes it (on a fresh process,
//!   which the first resume starts and the others join).
//!
//! A pool keeps at most one live process per key (see `process_key` of the runtimes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use taskgate_core::runtime::{RuntimeError, SessionSpec};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::RuntimeOptions;
use super::jsonrpc::{METHOD_NOT_FOUND, id_text};
use super::process::{self, Line};
use super::session::{End, Lines, Link};

/// Which protocol a shared process speaks: where sessions are named in its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Codex,
    Acp,
}

impl Dialect {
    /// ACP is JSON-RPC 2.0; codex app-server leaves the `jsonrpc` field out.
    fn stamp(self, mut msg: Value) -> Value {
        if self == Dialect::Acp
            && let Value::Object(obj) = &mut msg
        {
            obj.insert("jsonrpc".into(), Value::from("2.0"));
        }
        msg
    }

    /// The thread or session a notification or server request belongs to.
    fn session_of(self, params: &Value) -> Option<String> {
        let id = match self {
            Dialect::Codex => {
                params.get("threadId").or_else(|| params.get("conversationId")).or_else(|| params.pointer("/thread/id"))
            }
            Dialect::Acp => params.get("sessionId"),
        };
        id.and_then(Value::as_str).map(str::to_owned)
    }

    /// The session a client request takes over before the agent answers (its notifications,
    /// e.g. ACP's history replay, may come first).
    fn session_named(self, method: &str, params: &Value) -> Option<String> {
        let field = match (self, method) {
            (Dialect::Codex, "thread/resume") => "threadId",
            (Dialect::Acp, "session/load" | "session/resume") => "sessionId",
            _ => return None,
        };
        params.get(field).and_then(Value::as_str).map(str::to_owned)
    }

    /// The session the answer to a client request created.
    fn session_created(self, method: &str, result: &Value) -> Option<String> {
        let id = match (self, method) {
            (Dialect::Codex, "thread/start" | "thread/resume" | "thread/fork") => result.pointer("/thread/id"),
            (Dialect::Acp, "session/new") => result.get("sessionId"),
            _ => None,
        };
        id.and_then(Value::as_str).map(str::to_owned)
    }

    /// The request that releases a session nobody on this connection uses any more, if the
    /// protocol (and, for ACP, the agent's `initialize` answer) has one.
    fn release(self, session: &str, init: Option<&Value>) -> Option<(&'static str, Value)> {
        match self {
            Dialect::Codex => Some(("thread/unsubscribe", json!({ "threadId": session }))),
            Dialect::Acp => {
                let closes = init.and_then(|i| i.pointer("/agentCapabilities/sessionCapabilities/close"));
                closes.is_some_and(|c| !c.is_null()).then(|| ("session/close", json!({ "sessionId": session })))
            }
        }
    }
}

/// A session's share of a process: what its actor needs besides its lines.
pub(crate) struct Member {
    id: u64,
    inbox: mpsc::UnboundedSender<HostMsg>,
    reason: Arc<Mutex<Option<String>>>,
    listing: Listing,
}

impl Member {
    /// Kills the whole process; every other session on it reports `Died`. The process leaves
    /// the pool at once, so a restart right after starts a new one.
    pub fn kill(&self) {
        self.listing.unlist();
        let _ = self.inbox.send(HostMsg::Kill { member: self.id });
    }

    /// Why the process ended (recorded before any member's output is closed).
    pub fn exit_reason(&self) -> String {
        self.reason.lock().ok().and_then(|r| r.clone()).unwrap_or_else(|| process::exit_reason(None))
    }
}

enum HostMsg {
    Join { member: u64, lines: mpsc::UnboundedSender<Line> },
    Line { member: u64, text: String },
    Leave { member: u64 },
    Kill { member: u64 },
}

/// Processes by key; at most one live process per key.
#[derive(Default)]
pub(crate) struct Pool {
    inner: Arc<Mutex<PoolInner>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let processes = self.inner.lock().map(|p| p.processes.len()).unwrap_or(0);
        f.debug_struct("Pool").field("processes", &processes).finish()
    }
}

#[derive(Default)]
struct PoolInner {
    processes: HashMap<String, Entry>,
    next_generation: u64,
    next_member: u64,
}

/// Where a process is listed in its pool.
#[derive(Clone)]
struct Listing {
    pool: Weak<Mutex<PoolInner>>,
    key: String,
    generation: u64,
}

impl Listing {
    /// Takes the process out of the pool, so new sessions start another.
    fn unlist(&self) {
        if let Some(pool) = self.pool.upgrade()
            && let Ok(mut pool) = pool.lock()
            && pool.processes.get(&self.key).is_some_and(|e| e.listing.generation == self.generation)
        {
            pool.processes.remove(&self.key);
        }
    }
}

struct Entry {
    listing: Listing,
    inbox: mpsc::UnboundedSender<HostMsg>,
    last_stderr: Arc<Mutex<Option<String>>>,
    reason: Arc<Mutex<Option<String>>>,
}

impl Pool {
    /// A member link on the live process for `key`, spawning it (from `spec` and `args`)
    /// when there is none.
    pub fn connect(
        &self,
        key: &str,
        dialect: Dialect,
        spec: &SessionSpec,
        args: &[String],
        options: &RuntimeOptions,
    ) -> Result<Link, RuntimeError> {
        let mut pool = self.inner.lock().map_err(|_| RuntimeError::Spawn("the process pool is poisoned".into()))?;
        pool.next_member += 1;
        let member = pool.next_member;
        let (lines_tx, lines_rx) = mpsc::unbounded_channel();
        // Joins are sent under the pool's lock, so a host that retires (also under the lock)
        // either sees this join or is no longer found here.
        let lines_tx = match pool.processes.get(key) {
            Some(entry) => match entry.inbox.send(HostMsg::Join { member, lines: lines_tx }) {
                Ok(()) => {
                    tracing::debug!(agent = %spec.agent, member, "joining a shared agent process");
                    return Ok(member_link(member, entry, lines_rx));
                }
                Err(mpsc::error::SendError(HostMsg::Join { lines, .. })) => lines,
                Err(_) => unreachable!("a join comes back as a join"),
            },
            None => lines_tx,
        };
        let process = process::spawn(spec, args, options.max_line_bytes)?;
        pool.next_generation += 1;
        let generation = pool.next_generation;
        let (inbox_tx, inbox_rx) = mpsc::unbounded_channel();
        let reason = Arc::new(Mutex::new(None));
        let listing = Listing { pool: Arc::downgrade(&self.inner), key: key.to_owned(), generation };
        let entry = Entry {
            listing: listing.clone(),
            inbox: inbox_tx,
            last_stderr: process.last_stderr.clone(),
            reason: reason.clone(),
        };
        let host = Host {
            dialect,
            agent: spec.agent.clone(),
            listing,
            stdin: process.stdin,
            lines: process.lines,
            child: process.child,
            inbox: inbox_rx,
            members: HashMap::new(),
            pending: HashMap::new(),
            next_id: 0,
            routes: HashMap::new(),
            server_requests: HashMap::new(),
            init: Init::Idle,
            initialized_sent: false,
            reason,
            linger: options.shared_linger,
            idle_since: None,
            options: options.clone(),
        };
        let _ = entry.inbox.send(HostMsg::Join { member, lines: lines_tx });
        let link = member_link(member, &entry, lines_rx);
        pool.processes.insert(key.to_owned(), entry);
        tokio::spawn(host.run());
        Ok(link)
    }
}

fn member_link(member: u64, entry: &Entry, lines: mpsc::UnboundedReceiver<Line>) -> Link {
    let (stdin_tx, mut stdin_rx) = mpsc::unbounded_channel::<String>();
    let inbox = entry.inbox.clone();
    // Tags the member's lines for the host; its end (stdin dropped) is the member leaving.
    tokio::spawn(async move {
        while let Some(text) = stdin_rx.recv().await {
            if inbox.send(HostMsg::Line { member, text }).is_err() {
                return;
            }
        }
        let _ = inbox.send(HostMsg::Leave { member });
    });
    Link {
        stdin: stdin_tx,
        lines: Lines::Shared(lines),
        last_stderr: entry.last_stderr.clone(),
        end: End::Shared(Member {
            id: member,
            inbox: entry.inbox.clone(),
            reason: entry.reason.clone(),
            listing: entry.listing.clone(),
        }),
    }
}

/// A request a member sent, under the id it has on the shared connection.
struct Pending {
    /// `None` for the host's own requests (releases of orphaned threads).
    member: Option<u64>,
    id: Value,
    method: String,
}

enum Init {
    Idle,
    /// The first member's `initialize` is with the agent; these members wait for its answer.
    Waiting {
        id: u64,
        waiters: Vec<(u64, Value)>,
    },
    /// The agent's answer: a result, or an error object.
    Done(Result<Value, Value>),
}

struct Host {
    dialect: Dialect,
    agent: String,
    listing: Listing,
    stdin: mpsc::UnboundedSender<String>,
    lines: mpsc::Receiver<Line>,
    child: Child,
    inbox: mpsc::UnboundedReceiver<HostMsg>,
    members: HashMap<u64, mpsc::UnboundedSender<Line>>,
    pending: HashMap<u64, Pending>,
    next_id: u64,
    /// Thread or session id → the member that owns it.
    routes: HashMap<String, u64>,
    /// Server request id (as text) → the member it was routed to, until it answers.
    server_requests: HashMap<String, u64>,
    init: Init,
    initialized_sent: bool,
    reason: Arc<Mutex<Option<String>>>,
    linger: Duration,
    idle_since: Option<Instant>,
    options: RuntimeOptions,
}

enum Stop {
    Died,
    Retired,
}

impl Host {
    async fn run(mut self) {
        tracing::info!(agent = %self.agent, pid = self.child.id(), "shared agent process started");
        let stop = loop {
            let linger_until = self.idle_since.map(|at| at + self.linger);
            tokio::select! {
                line = self.lines.recv() => match line {
                    Some(Line::Text(text)) if text.trim().is_empty() => {}
                    Some(Line::Text(text)) => self.on_agent_line(&text),
                    Some(Line::TooLong(len)) => {
                        tracing::warn!(agent = %self.agent, len, "skipping an oversized line from the agent");
                    }
                    None => break Stop::Died,
                },
                message = self.inbox.recv() => match message {
                    Some(message) => self.on_message(message),
                    // Unreachable while the pool entry holds a sender; stop anyway.
                    None => break Stop::Retired,
                },
                () = sleep_until(linger_until) => {
                    if self.retire() {
                        break Stop::Retired;
                    }
                }
            }
        };
        match stop {
            Stop::Retired => {
                let Host { stdin, mut child, agent, options, .. } = self;
                drop(stdin);
                let status = process::stop(&mut child, options.shutdown_grace).await;
                tracing::info!(agent = %agent, ?status, "shared agent process stopped: no session left");
            }
            Stop::Died => {
                self.unlist();
                let status = process::stop(&mut self.child, self.options.exit_wait).await;
                let reason = process::exit_reason(status);
                tracing::warn!(agent = %self.agent, sessions = self.members.len(), "shared agent process ended: {reason}");
                if let Ok(mut slot) = self.reason.lock() {
                    *slot = Some(reason);
                }
                // Closing every member's output is what tells each session its process died.
                self.members.clear();
            }
        }
    }

    fn on_message(&mut self, message: HostMsg) {
        match message {
            HostMsg::Join { member, lines } => {
                self.members.insert(member, lines);
                self.idle_since = None;
            }
            HostMsg::Line { member, text } => self.on_member_line(member, &text),
            HostMsg::Leave { member } => self.leave(member),
            HostMsg::Kill { member } => {
                tracing::warn!(agent = %self.agent, member, "killing the shared agent process");
                self.members.remove(&member);
                let _ = self.child.start_kill();
            }
        }
    }

    fn send(&self, msg: Value) {
        let _ = self.stdin.send(self.dialect.stamp(msg).to_string());
    }

    fn to_member(&self, member: u64, text: String) {
        if let Some(lines) = self.members.get(&member) {
            let _ = lines.send(Line::Text(text));
        }
    }

    fn on_member_line(&mut self, member: u64, text: &str) {
        if !self.members.contains_key(&member) {
            return;
        }
        let Ok(Value::Object(mut msg)) = serde_json::from_str::<Value>(text) else {
            tracing::warn!(agent = %self.agent, "a driver wrote a line that is not a JSON object");
            return;
        };
        let method = msg.get("method").and_then(Value::as_str).map(str::to_owned);
        let id = msg.get("id").filter(|id| !id.is_null()).cloned();
        match (method, id) {
            (Some(method), Some(id)) if method == "initialize" => match &mut self.init {
                Init::Done(outcome) => {
                    let reply = answer(&id, outcome);
                    self.to_member(member, self.dialect.stamp(reply).to_string());
                }
                Init::Waiting { waiters, .. } => waiters.push((member, id)),
                Init::Idle => {
                    let ours = self.next_id();
                    msg.insert("id".into(), json!(ours));
                    self.init = Init::Waiting { id: ours, waiters: vec![(member, id)] };
                    let _ = self.stdin.send(Value::Object(msg).to_string());
                }
            },
            (Some(method), Some(id)) => {
                let params = msg.get("params").cloned().unwrap_or(Value::Null);
                if let Some(session) = self.dialect.session_named(&method, &params) {
                    self.take_route(session, member);
                }
                let ours = self.next_id();
                self.pending.insert(ours, Pending { member: Some(member), id, method });
                msg.insert("id".into(), json!(ours));
                let _ = self.stdin.send(Value::Object(msg).to_string());
            }
            (Some(method), None) => {
                // Codex wants `initialized` once per connection.
                if method == "initialized" && std::mem::replace(&mut self.initialized_sent, true) {
                    return;
                }
                let _ = self.stdin.send(text.to_owned());
            }
            (None, Some(id)) => {
                // An answer to a server request: only from the member it was routed to.
                let key = id_text(&id);
                if self.server_requests.get(&key) == Some(&member) {
                    self.server_requests.remove(&key);
                    let _ = self.stdin.send(text.to_owned());
                } else {
                    tracing::warn!(agent = %self.agent, member, "dropping an answer to a request this session was not asked");
                }
            }
            (None, None) => tracing::warn!(agent = %self.agent, "a driver wrote a message without method or id"),
        }
    }

    fn on_agent_line(&mut self, text: &str) {
        let Ok(Value::Object(msg)) = serde_json::from_str::<Value>(text) else {
            tracing::warn!(agent = %self.agent, len = text.len(), "skipping a line from the agent that is not a JSON object");
            return;
        };
        let method = msg.get("method").and_then(Value::as_str).map(str::to_owned);
        let id = msg.get("id").filter(|id| !id.is_null()).cloned();
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        match (method, id) {
            (None, Some(id)) => self.on_response(id, msg),
            (Some(method), Some(id)) => {
                let owner = self.dialect.session_of(&params).and_then(|s| self.routes.get(&s).copied());
                match owner.filter(|m| self.members.contains_key(m)) {
                    Some(member) => {
                        self.server_requests.insert(id_text(&id), member);
                        self.to_member(member, text.to_owned());
                    }
                    None => {
                        tracing::warn!(agent = %self.agent, method, "refusing a request for no session of this connection");
                        self.send(json!({ "id": id, "error": { "code": METHOD_NOT_FOUND, "message": "no session of this client asked for this" } }));
                    }
                }
            }
            (Some(method), None) => {
                let owner = self.dialect.session_of(&params).and_then(|s| self.routes.get(&s).copied());
                match owner {
                    Some(member) => self.to_member(member, text.to_owned()),
                    None => tracing::trace!(agent = %self.agent, method, "dropping a notification for no session"),
                }
            }
            (None, None) => {
                tracing::warn!(agent = %self.agent, "skipping a message from the agent without method or id");
            }
        }
    }

    fn on_response(&mut self, id: Value, mut msg: serde_json::Map<String, Value>) {
        let Some(ours) = id.as_u64() else {
            tracing::warn!(agent = %self.agent, %id, "skipping a response to an unknown request id");
            return;
        };
        if let Init::Waiting { id: init_id, .. } = &self.init
            && *init_id == ours
        {
            let outcome = match msg.remove("error") {
                Some(error) => Err(error),
                None => Ok(msg.remove("result").unwrap_or(Value::Null)),
            };
            let Init::Waiting { waiters, .. } = std::mem::replace(&mut self.init, Init::Done(outcome)) else {
                return;
            };
            let Init::Done(outcome) = &self.init else { return };
            if outcome.is_err() {
                // A process that cannot initialize takes no new sessions.
                self.unlist();
            }
            for (member, their) in waiters {
                let reply = self.dialect.stamp(answer(&their, outcome)).to_string();
                self.to_member(member, reply);
            }
            return;
        }
        let Some(pending) = self.pending.remove(&ours) else {
            tracing::warn!(agent = %self.agent, %id, "skipping a response to an unknown request id");
            return;
        };
        let created = msg.get("result").and_then(|r| self.dialect.session_created(&pending.method, r));
        let member = pending.member.filter(|m| self.members.contains_key(m));
        match (member, created) {
            (Some(member), Some(session)) => self.take_route(session, member),
            // A thread created for a session that has left meanwhile (its start timed out).
            (None, Some(session)) if pending.member.is_some() => self.release(&session),
            _ => {}
        }
        if let Some(member) = member {
            msg.insert("id".into(), pending.id);
            self.to_member(member, Value::Object(msg).to_string());
        }
    }

    fn take_route(&mut self, session: String, member: u64) {
        if let Some(previous) = self.routes.insert(session, member)
            && previous != member
        {
            tracing::warn!(agent = %self.agent, member, previous, "a session took over a thread another one held");
        }
    }

    fn leave(&mut self, member: u64) {
        self.members.remove(&member);
        let sessions: Vec<String> = self.routes.iter().filter(|(_, m)| **m == member).map(|(s, _)| s.clone()).collect();
        for session in sessions {
            self.routes.remove(&session);
            self.release(&session);
        }
        // What the agent still waits for from this member gets an answer, so no thread hangs.
        let orphans: Vec<String> =
            self.server_requests.iter().filter(|(_, m)| **m == member).map(|(r, _)| r.clone()).collect();
        for request in orphans {
            self.server_requests.remove(&request);
            let id = serde_json::from_str::<Value>(&request).unwrap_or(Value::String(request));
            self.send(json!({ "id": id, "error": { "code": -32000, "message": "the session left" } }));
        }
        if self.members.is_empty() {
            self.idle_since = Some(Instant::now());
        }
    }

    fn release(&mut self, session: &str) {
        let init = match &self.init {
            Init::Done(Ok(result)) => Some(result),
            _ => None,
        };
        if let Some((method, params)) = self.dialect.release(session, init) {
            let ours = self.next_id();
            self.pending.insert(ours, Pending { member: None, id: Value::Null, method: method.to_owned() });
            self.send(json!({ "id": ours, "method": method, "params": params }));
        }
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// With no member left after the linger, leaves the pool; `false` when a member joined
    /// meanwhile. Under the pool's lock, so no join can slip in between.
    fn retire(&mut self) -> bool {
        let pool = self.listing.pool.upgrade();
        let mut guard = pool.as_ref().and_then(|p| p.lock().ok());
        while let Ok(message) = self.inbox.try_recv() {
            self.on_message(message);
        }
        if !self.members.is_empty() {
            return false;
        }
        let listing = &self.listing;
        if let Some(pool) = guard.as_mut()
            && pool.processes.get(&listing.key).is_some_and(|e| e.listing.generation == listing.generation)
        {
            pool.processes.remove(&listing.key);
        }
        true
    }

    fn unlist(&self) {
        self.listing.unlist();
    }
}

fn answer(id: &Value, outcome: &Result<Value, Value>) -> Value {
    match outcome {
        Ok(result) => json!({ "id": id, "result": result }),
        Err(error) => json!({ "id": id, "error": error }),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
