//! The engine: one chat message in → who sent it, what it means (classify), what to do about it
//! (route), done in one transaction (apply), then handed to the agents (runner). Agent events
//! come back through the runner onto the timeline and into the outbox.

mod apply;
mod choice;
mod context;
mod link;
mod live;
mod notes;
mod runner;
mod spec;
mod status;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use chrono::Utc;
use serde_json::json;
use taskgate_adapters::runtime::{Supervisor, SupervisorOptions};
use taskgate_adapters::store::SeaStore;
use taskgate_core::classify::{Chat, Classifier, Decision, Intent};
use taskgate_core::model::{ApprovalStatus, Channel, EventKind, Id, Identity, NewEvent, StateMachine, TurnStatus};
use taskgate_core::route::{self, ProjectInfo, Sender};
use taskgate_core::runtime::AgentRuntime;
use taskgate_core::store::{Store, StoreError};

pub use apply::Command;
pub use choice::Chosen;
pub use notes::{NoteError, NoteWrite};
pub use spec::{session_spec, supervisor_options};

use crate::config::Config;
use runner::{Msg, Runner, Shared};

/// One chat message, as a channel hands it over (after verifying and deduplicating it).
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingMessage {
    pub channel: Channel,
    pub chat_id: String,
    /// Topic or thread inside the chat; empty when the chat has none.
    pub thread_id: String,
    /// The sender's id on the channel.
    pub sender_id: String,
    pub sender_name: String,
    pub text: String,
    /// The task whose bot message this replies to (or whose button was pressed).
    pub reply_to_task: Option<Id>,
    pub chat: Chat,
    /// Group only: the bot was addressed.
    pub mentioned: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Decides whether a sender may use the bot. Channels install their allow-lists here; a refused
/// message is dropped before any row is written for its sender.
pub type AdmissionHook = Arc<dyn Fn(&IncomingMessage) -> bool + Send + Sync>;

/// What `recover` picked up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    pub executions: usize,
    pub turns: usize,
    /// Pending approvals announced again (their turn resumes).
    pub approvals: usize,
    /// Pending approvals whose turn had already ended: nothing can answer them any more.
    pub expired: usize,
}

pub struct Engine {
    shared: Arc<Shared>,
    runner: Runner,
    classifier: Classifier,
    /// One allow-list per channel, behind a lock so channels can install theirs on a shared
    /// engine. A channel without one admits everyone it delivers (the web console has its own
    /// login).
    admission: RwLock<HashMap<Channel, AdmissionHook>>,
    /// Resolving a person for a new sender: one at a time, so two first messages from the
    /// same sender do not create two people.
    people: tokio::sync::Mutex<()>,
    /// Clarify messages already answered by a press, so a second press (another button, or
    /// the same one from another tab or channel) does not act twice. In memory: after a
    /// restart an old clarify could be answered once more.
    chosen: Mutex<HashSet<Id>>,
}

impl Engine {
    /// An engine over `runtime` (usually `AgentRuntimes`) with the supervisor limits of
    /// `[runtime]` in `config`.
    pub fn new(store: Arc<SeaStore>, config: Arc<Config>, runtime: Arc<dyn AgentRuntime>) -> Self {
        let options: SupervisorOptions = supervisor_options(&config);
        Self::with_supervisor(store, config, Supervisor::new(runtime, options))
    }

    pub fn with_supervisor(store: Arc<SeaStore>, config: Arc<Config>, supervisor: Supervisor) -> Self {
        // Configured agent names classify as themselves, beside the contract's built-in aliases.
        let aliases: Vec<(String, String)> = config.agents.keys().map(|k| (k.clone(), k.clone())).collect();
        let shared = Arc::new(Shared {
            store,
            config,
            supervisor,
            write: tokio::sync::Mutex::new(()),
            approvals: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashMap::new()),
            releasing: Mutex::new(0),
            mcp: Default::default(),
            export: tokio::sync::Mutex::new(()),
        });
        Engine {
            runner: Runner::new(shared.clone()),
            shared,
            classifier: Classifier::new(aliases),
            admission: RwLock::new(HashMap::new()),
            people: tokio::sync::Mutex::new(()),
            chosen: Mutex::new(HashSet::new()),
        }
    }

    /// Installs `channel`'s allow-list check (see [`AdmissionHook`]).
    pub fn set_admission(&self, channel: Channel, hook: AdmissionHook) {
        if let Ok(mut admission) = self.admission.write() {
            admission.insert(channel, hook);
        }
    }

    /// Stops the agent sessions cleanly (bounded): their processes shut down, and every turn
    /// in flight or queued stays open in the database for `recover` on the next start.
    /// Messages handled after this are stored but run only after that restart.
    pub async fn shutdown(&self) {
        self.runner.shutdown().await;
    }

    pub fn store(&self) -> &Arc<SeaStore> {
        &self.shared.store
    }

    /// Handles one message: classify, route, apply in one transaction, then dispatch.
    pub async fn handle(&self, msg: IncomingMessage) -> Result<(), EngineError> {
        self.process(msg, None).await
    }

    /// A press on a button of a clarify ("Did you mean: …"): completes the message the clarify
    /// answered with the reading the button stands for, as if it had been classified so.
    /// `msg` says who pressed where (its text is replaced by the original message); `outbound`
    /// is the outbox row the buttons belong to. A row of another chat, or a choice it does not
    /// have, is [`Chosen::Unknown`] and changes nothing.
    pub async fn choose(&self, msg: IncomingMessage, outbound: Id, choice: usize) -> Result<Chosen, EngineError> {
        let row = match self.shared.store.outbound(outbound).await {
            Ok(row) => row,
            Err(StoreError::NotFound { .. }) => return Ok(Chosen::Unknown),
            Err(e) => return Err(e.into()),
        };
        if row.channel != msg.channel || row.chat_id != msg.chat_id {
            tracing::warn!(outbound, chat = %msg.chat_id, "a button press named another chat's message; ignored");
            return Ok(Chosen::Unknown);
        }
        let Some(picked) = choice::picked(&row.payload, choice) else { return Ok(Chosen::Unknown) };
        let first = self.chosen.lock().map(|mut chosen| chosen.insert(outbound)).unwrap_or(false);
        if !first {
            return Ok(Chosen::Unknown);
        }
        let msg = IncomingMessage {
            text: picked.text,
            reply_to_task: row.task_id.or(msg.reply_to_task),
            // Pressing the bot's own button addresses the bot, in a group too.
            mentioned: true,
            ..msg
        };
        self.process(msg, Some(picked.decision)).await?;
        Ok(Chosen::Applied { label: picked.label })
    }

    /// `handle`, with the decision given (a clarify's chosen reading) or classified.
    async fn process(&self, msg: IncomingMessage, given: Option<Decision>) -> Result<(), EngineError> {
        // A poisoned lock means a hook panicked mid-swap: refuse rather than admit everyone.
        let admitted =
            self.admission.read().map(|hooks| hooks.get(&msg.channel).is_none_or(|hook| hook(&msg))).unwrap_or(false);
        if !admitted {
            tracing::info!(channel = %msg.channel, sender = %msg.sender_id, "message from a sender not admitted; dropped");
            return Ok(());
        }
        let store: &SeaStore = &self.shared.store;
        let identity = self.identity(&msg).await?;
        let person = store.person(identity.person_id).await?;
        let sender = Sender {
            person_id: person.id,
            name: identity.display_name.clone().unwrap_or(person.name),
            channel: msg.channel,
            at: Utc::now(),
        };
        let conversation = store.conversation(msg.channel, &msg.chat_id, &msg.thread_id).await?;
        // `/link` is about who is speaking, not about a task: it never reaches the classifier.
        if let Some(command) = link::parse(&msg.text) {
            return self.link(command, &identity, &conversation).await;
        }
        // `/note` reads or writes a task's restart note: a command, not a message to classify.
        if let Some(command) = taskgate_core::notes::parse_command(&msg.text) {
            return self.note_command(command, identity.person_id, &conversation, msg.reply_to_task).await;
        }
        let Some(project) = self.project().await? else {
            let _w = self.shared.write.lock().await;
            store
                .outbox_enqueue(taskgate_core::model::NewOutbound {
                    channel: msg.channel,
                    chat_id: msg.chat_id.clone(),
                    task_id: None,
                    approval_id: None,
                    payload: apply::reply_payload(
                        &conversation,
                        "No project is configured yet: add a [[projects]] entry to taskgate.toml.",
                        Vec::new(),
                        Vec::new(),
                    ),
                })
                .await?;
            return Ok(());
        };
        let agents: Vec<String> = self.shared.config.agents.keys().cloned().collect();
        let busy = |exec: Id| self.shared.is_busy(exec);
        let loaded = context::load(
            store,
            &conversation,
            project,
            agents,
            context::Addressing { chat: msg.chat, mentioned: msg.mentioned, reply_to: msg.reply_to_task },
            &busy,
        )
        .await?;
        let chosen = given.is_some();
        let decision = given.unwrap_or_else(|| self.classifier.classify(&msg.text, &loaded.context));
        tracing::debug!(intent = %decision.intent, reason = %decision.reason, chosen, "decided");
        // A clarify shows the likeliest readings as buttons; pressing one acts on this message.
        // A chosen reading is never asked about again.
        let alternatives = match decision.intent {
            Intent::Clarify if !chosen => self.classifier.readings(&msg.text, &loaded.context),
            _ => Vec::new(),
        };
        let plan = route::route(&decision, &alternatives, &msg.text, &sender, &loaded.state);
        let target = decision.task.as_deref().and_then(|t| t.parse::<Id>().ok());
        let config = self.shared.config.clone();
        let model_of = move |agent: &str| config.agents.get(agent).and_then(|a| a.model.clone());
        let origin =
            apply::Origin { conversation: &conversation, sender: &sender, text: &msg.text, model_of: &model_of };
        let applied = {
            let _w = self.shared.write.lock().await;
            let tx = store.begin().await?;
            let applied = apply::apply(&tx, &plan, &alternatives, target, &origin).await?;
            tx.commit().await?;
            applied
        };
        tracing::debug!(task = ?applied.task, commands = applied.commands.len(), "plan applied");
        for command in applied.commands {
            self.runner.dispatch(command);
        }
        Ok(())
    }

    /// At gateway start: every execution whose turn was in flight (running or waiting for
    /// approval) or queued is resumed with its stored provider session id, and its pending
    /// approvals are announced again. Nothing is dropped: a turn that cannot resume fails
    /// visibly, with a line to the chat.
    pub async fn recover(&self) -> Result<Recovered, EngineError> {
        let store: &SeaStore = &self.shared.store;
        let open = store.open_turns(None).await?;
        let mut report = Recovered { expired: self.expire_stale_approvals(&open).await?, ..Recovered::default() };
        let mut by_session: Vec<(Id, Vec<taskgate_core::model::Turn>)> = Vec::new();
        for turn in open {
            match by_session.iter_mut().find(|(s, _)| *s == turn.session_id) {
                Some((_, turns)) => turns.push(turn),
                None => by_session.push((turn.session_id, vec![turn])),
            }
        }
        for (session_id, turns) in by_session {
            let session = store.session(session_id).await?;
            let exec = store.execution(session.execution_id).await?;
            report.executions += 1;
            report.turns += turns.len();
            let (in_flight, queued): (Vec<_>, Vec<_>) = turns.into_iter().partition(|t| t.status != TurnStatus::Queued);
            let mut in_flight = in_flight.into_iter();
            let current = in_flight.next();
            // Turns beyond the first in flight cannot both be running; they run again in order.
            let queued: Vec<_> = in_flight.chain(queued).collect();
            if let Some(turn) = &current {
                let pending = store.pending_approvals(Some(exec.task_id)).await?;
                let _w = self.shared.write.lock().await;
                let tx = store.begin().await?;
                for approval in pending.iter().filter(|a| a.turn_id == Some(turn.id)) {
                    if let Ok(mut map) = self.shared.approvals.lock() {
                        map.insert(approval.id, (exec.id, approval.request_id.clone()));
                    }
                    let agent = display_agent(&exec.agent);
                    let text = format!("{agent} is waiting for approval: {} (asked before a restart)", approval.action);
                    let (buttons, options) = runner::approval_buttons(approval.id);
                    runner::notify(&tx, exec.task_id, Some(approval.id), &text, buttons, options, Vec::new()).await?;
                    report.approvals += 1;
                }
                tx.commit().await?;
            }
            self.runner.send(exec.id, Msg::Recover { session, in_flight: current, queued });
        }
        Ok(report)
    }

    /// Pending approvals whose turn is no longer open (it ended, or the approval never had one)
    /// wait for an answer nothing can deliver: expire them, each with a timeline event, so
    /// their buttons stop working and a late "ok" hears that it expired.
    async fn expire_stale_approvals(&self, open: &[taskgate_core::model::Turn]) -> Result<usize, EngineError> {
        let store: &SeaStore = &self.shared.store;
        let open: HashSet<Id> = open.iter().map(|t| t.id).collect();
        let stale: Vec<_> = store
            .pending_approvals(None)
            .await?
            .into_iter()
            .filter(|a| !a.turn_id.is_some_and(|turn| open.contains(&turn)))
            .collect();
        if stale.is_empty() {
            return Ok(0);
        }
        let _w = self.shared.write.lock().await;
        let tx = store.begin().await?;
        let mut expired = 0;
        for mut approval in stale {
            let Ok(next) = approval.status.transition(ApprovalStatus::Expired) else { continue };
            approval.status = next;
            match tx.update_approval(&approval).await {
                Ok(_) => {}
                // Another replica decided it meanwhile: theirs stands.
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            tx.append_event(NewEvent {
                task_id: approval.task_id,
                execution_id: None,
                kind: EventKind::Approval,
                channel: None,
                actor: None,
                body: json!({
                    "type": "approval_expired", "approval": approval.id, "action": approval.action,
                    "turn": approval.turn_id, "reason": "its turn ended before the gateway restarted",
                }),
            })
            .await?;
            expired += 1;
        }
        tx.commit().await?;
        Ok(expired)
    }

    /// Runs a `/link` command in one transaction (code issued or redeemed, reply enqueued).
    async fn link(
        &self,
        command: link::LinkCommand,
        identity: &Identity,
        conversation: &taskgate_core::model::Conversation,
    ) -> Result<(), EngineError> {
        let store: &SeaStore = &self.shared.store;
        let _w = self.shared.write.lock().await;
        let tx = store.begin().await?;
        let focused = link::run(&tx, command, identity, conversation).await?;
        tx.commit().await?;
        tracing::info!(channel = %identity.channel, person = identity.person_id, focused = ?focused, "link command handled");
        Ok(())
    }

    /// The sender's identity, created with a new person on first sight.
    async fn identity(&self, msg: &IncomingMessage) -> Result<Identity, EngineError> {
        let store: &SeaStore = &self.shared.store;
        if let Some(identity) = store.find_identity(msg.channel, &msg.sender_id).await? {
            return Ok(identity);
        }
        let _guard = self.people.lock().await;
        if let Some(identity) = store.find_identity(msg.channel, &msg.sender_id).await? {
            return Ok(identity);
        }
        let _w = self.shared.write.lock().await;
        let name = if msg.sender_name.trim().is_empty() { msg.sender_id.as_str() } else { msg.sender_name.as_str() };
        let person = store.create_person(name).await?;
        match store.link_identity(person.id, msg.channel, &msg.sender_id, Some(name)).await {
            Ok(identity) => Ok(identity),
            // Another replica linked it first: use theirs (our person row stays unused).
            Err(StoreError::AlreadyExists(_)) => {
                store.find_identity(msg.channel, &msg.sender_id).await?.ok_or_else(|| {
                    EngineError::Store(StoreError::NotFound { entity: "identity", id: msg.sender_id.clone() })
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The project new tasks go to: the first configured one (registered if missing).
    async fn project(&self) -> Result<Option<ProjectInfo>, EngineError> {
        let Some(config) = self.shared.config.projects.first() else { return Ok(None) };
        let store: &SeaStore = &self.shared.store;
        let existing = store.projects().await?.into_iter().find(|p| p.name == config.name);
        let project = match existing {
            Some(p) => p,
            None => {
                let _w = self.shared.write.lock().await;
                store
                    .upsert_project(&config.name, &config.path.to_string_lossy(), config.default_agent.as_deref())
                    .await?
            }
        };
        let default_agent = project
            .default_agent
            .clone()
            .or_else(|| self.shared.config.agents.keys().next().cloned())
            .unwrap_or_else(|| "codex".to_owned());
        Ok(Some(ProjectInfo { id: project.id, name: project.name, default_agent, busy_policy: config.busy_policy }))
    }
}

/// "codex" → "Codex": agents are proper names in chat lines (as the router writes them).
pub(crate) fn display_agent(agent: &str) -> String {
    let mut chars = agent.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Channels spawn `handle` (and the binary `recover`) on the multi-threaded runtime: a future
/// that stops being `Send` must fail here, in the engine, not in some channel's build.
#[allow(dead_code)]
fn futures_are_send(engine: &Engine, msg: IncomingMessage) {
    fn send<T: Send>(_: T) {}
    send(engine.handle(msg.clone()));
    send(engine.choose(msg, 0, 0));
    send(engine.recover());
    send(engine.shutdown());
}
