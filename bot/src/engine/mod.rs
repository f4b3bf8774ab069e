//! The engine: one chat message in → who sent it, what it means (classify), what to do about it
//! (route), done in one transaction (apply), then handed to the agents (runner). Agent events
//! come back through the runner onto the timeline and into the outbox.

mod apply;
mod approvers;
mod context;
mod link;
mod notes;
mod press;
mod rules;
mod runner;
mod spec;
mod status;
mod title;
mod wake;
mod worktree;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Utc;
use taskgate_adapters::runtime::{Supervisor, SupervisorOptions};
use taskgate_adapters::store::SeaStore;
use taskgate_core::attachment::{self, Attachment, AttachmentKind};
use taskgate_core::classify::{Chat, Classifier, Decision, Intent};
use taskgate_core::model::{Channel, Id, Identity, NewOutbound};
use taskgate_core::reply::Reply;
use taskgate_core::route::{self, ProjectInfo, Sender};
use taskgate_core::runtime::AgentRuntime;
use taskgate_core::store::{Store, StoreError};

pub use press::Pressed;
pub use spec::{session_spec, supervisor_options};
pub use worktree::ExecutionDiff;

use crate::config::Config;
use apply::Origin;
use runner::{Runner, Shared};

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
    /// The platform's id of the message, so answers in groups can be threaded to it.
    pub message_id: Option<String>,
    /// The inbox row the message was stored as. Its decision marks the row handled in the
    /// same transaction, so a message is decided once even when a drain leader dies between
    /// deciding and marking the row, or two leaders overlap. `None`: not from an inbox.
    pub inbound: Option<Id>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What became of a press on a clarify button (see [`Engine::choose`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chosen {
    /// The reading was applied to the original message; `label` is the button's.
    Applied { label: String },
    /// Not a clarify of this chat, or no such choice (an old keyboard, a forged press).
    Unknown,
}

/// Decides whether a sender may use the bot. Channels install their allow-lists here; a refused
/// message is dropped before any row is written for its sender.
pub type AdmissionHook = Arc<dyn Fn(&IncomingMessage) -> bool + Send + Sync>;

pub struct Engine {
    shared: Arc<Shared>,
    runner: Arc<Runner>,
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
    /// The configured project's row, read (or registered) once: every message needs it.
    project: tokio::sync::OnceCell<taskgate_core::model::Project>,
}

impl Engine {
    /// An engine over `runtime` (usually `AgentRuntimes`) with the supervisor limits of
    /// `[runtime]` in `config`. Agents run once [`Engine::start`] was called.
    pub fn new(store: Arc<SeaStore>, config: Arc<Config>, runtime: Arc<dyn AgentRuntime>) -> Self {
        let options: SupervisorOptions = supervisor_options(&config);
        Self::with_supervisor(store, config, Supervisor::new(runtime, options))
    }

    pub fn with_supervisor(store: Arc<SeaStore>, config: Arc<Config>, supervisor: Supervisor) -> Self {
        // Configured agent names classify as themselves, beside the contract's built-in aliases.
        let aliases: Vec<(String, String)> = config.agents.keys().map(|k| (k.clone(), k.clone())).collect();
        let shared = Arc::new(Shared {
            notes: Arc::new(
                crate::notes::Keeper::new(store.clone(), config.notes.export).with_seed_chars(config.notes.seed_chars),
            ),
            store,
            config,
            supervisor,
            releasing: Mutex::new(0),
            replica: replica_name(),
            dropped: Default::default(),
            outbox: Default::default(),
        });
        Engine {
            runner: Runner::new(shared.clone()),
            shared,
            classifier: Classifier::new(aliases),
            admission: RwLock::new(HashMap::new()),
            people: tokio::sync::Mutex::new(()),
            chosen: Mutex::new(HashSet::new()),
            project: tokio::sync::OnceCell::new(),
        }
    }

    /// Starts running agents: this replica renews its leases, takes over executions whose
    /// owner is gone (at a first start: what the last run left open), and runs the work it
    /// owns. Without it, work runs only for messages this engine handles itself.
    pub fn start(&self) {
        self.runner.start();
    }

    /// This process's name as an owner of executions.
    pub fn replica(&self) -> &str {
        &self.shared.replica
    }

    /// Executions this replica runs right now.
    pub fn running(&self) -> usize {
        self.runner.running()
    }

    /// Looks for work of execution `exec` now, as a commit or a poll does: its actor here looks,
    /// or this replica claims it when nobody holds it. Any number of calls, from anywhere, run
    /// its work once.
    pub fn wake(&self, exec: Id) {
        self.runner.wake(exec);
    }

    /// Installs `channel`'s allow-list check (see [`AdmissionHook`]).
    pub fn set_admission(&self, channel: Channel, hook: AdmissionHook) {
        if let Ok(mut admission) = self.admission.write() {
            admission.insert(channel, hook);
        }
    }

    /// Stops running agents: nothing new is taken, running turns get `grace` to finish, then
    /// they are interrupted and handed over (queued again with one line to the chat), and
    /// every execution is released so another replica, or the next start, continues at once.
    pub async fn shutdown(&self, grace: Duration) {
        self.runner.shutdown(grace).await;
    }

    pub fn store(&self) -> &Arc<SeaStore> {
        &self.shared.store
    }

    /// What `channel`'s outbox sender waits on: woken when this engine queued a message.
    pub fn outbox_wake(&self, channel: Channel) -> Arc<tokio::sync::Notify> {
        self.shared.outbox.of(channel)
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Restart notes: read, written, exported (also what the MCP route serves).
    pub fn notes(&self) -> &Arc<crate::notes::Keeper> {
        &self.shared.notes
    }

    /// Handles one message: classify, route, apply in one transaction, then wake the agents.
    pub async fn handle(&self, msg: IncomingMessage) -> Result<(), EngineError> {
        self.process(msg, None, &[]).await
    }

    /// Handles a message that came with files (already checked and stored; see
    /// `crate::attachments`). Each file is on the task's timeline; images and files go to the
    /// agent with the turn the message starts or queues. A message that is only files (no
    /// caption) continues the task it replies to, else the conversation's active task, else
    /// starts one.
    pub async fn handle_with_files(&self, mut msg: IncomingMessage, files: Vec<Attachment>) -> Result<(), EngineError> {
        if files.is_empty() {
            return self.process(msg, None, &[]).await;
        }
        if !msg.text.trim().is_empty() {
            return self.process(msg, None, &files).await;
        }
        msg.text = attachment::only_files_text(&files);
        let store: &SeaStore = &self.shared.store;
        let conversation = store.conversation(msg.channel, &msg.chat_id, &msg.thread_id).await?;
        let task = msg.reply_to_task.or(conversation.focused_task_id);
        let decision = Decision {
            intent: Intent::Continue,
            task: task.map(|t| t.to_string()),
            agent: None,
            role: None,
            approval: None,
            scope: None,
            confidence: 1.0,
            reason: "only files: they continue the active task".into(),
        };
        self.process(msg, Some(decision), &files).await
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
        let Some((decision, text, label)) = apply::reading(&row.payload, choice) else { return Ok(Chosen::Unknown) };
        let first = self.chosen.lock().map(|mut chosen| chosen.insert(outbound)).unwrap_or(false);
        if !first {
            return Ok(Chosen::Unknown);
        }
        let msg = IncomingMessage {
            text,
            reply_to_task: row.task_id.or(msg.reply_to_task),
            // Pressing the bot's own button addresses the bot, in a group too.
            mentioned: true,
            ..msg
        };
        self.process(msg, Some(decision), &[]).await?;
        Ok(Chosen::Applied { label })
    }

    /// Whether the channel's allow-list admits the sender.
    fn admitted(&self, msg: &IncomingMessage) -> bool {
        // A poisoned lock means a hook panicked mid-swap: refuse rather than admit everyone.
        self.admission.read().map(|hooks| hooks.get(&msg.channel).is_none_or(|hook| hook(msg))).unwrap_or(false)
    }

    /// `handle`, with the decision given (a clarify's chosen reading) or classified.
    async fn process(
        &self,
        msg: IncomingMessage,
        given: Option<Decision>,
        files: &[Attachment],
    ) -> Result<(), EngineError> {
        if !self.admitted(&msg) {
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
        // `/rules` lists and revokes standing approvals.
        if let Some(command) = rules::parse(&msg.text) {
            return self.rules_command(command, &msg, identity.person_id, &conversation).await;
        }
        // `/merge` and `/discard` hand an execution's worktree branch back (or drop it).
        if let Some(command) = taskgate_core::worktree::parse_command(&msg.text) {
            return self.branch_command(command, &msg, &conversation).await;
        }
        // `/title <name>` renames the task.
        if let Some(command) = title::parse(&msg.text) {
            return self.title_command(command, &msg, &sender.name, &conversation).await;
        }
        let Some(project) = self.project().await? else {
            store
                .outbox_enqueue(NewOutbound {
                    channel: msg.channel,
                    chat_id: msg.chat_id.clone(),
                    task_id: None,
                    approval_id: None,
                    payload: Reply::text("No project is configured yet: add a [[projects]] entry to taskgate.toml.")
                        .in_thread(conversation.thread_id.clone()),
                })
                .await?;
            return Ok(());
        };
        let agents: Vec<String> = self.shared.config.agents.keys().cloned().collect();
        let mut loaded = context::load(
            store,
            &conversation,
            project,
            agents,
            context::Addressing { chat: msg.chat, mentioned: msg.mentioned, reply_to: msg.reply_to_task },
        )
        .await?;
        let chosen = given.is_some();
        let mut decision = given.unwrap_or_else(|| self.classifier.classify(&msg.text, &loaded.context));
        if !files.is_empty() {
            decision = attachment::decision_with_files(decision, msg.reply_to_task.or(conversation.focused_task_id));
        }
        tracing::debug!(intent = %decision.intent, reason = %decision.reason, chosen, "decided");
        // A clarify shows the likeliest readings as buttons; pressing one acts on this message.
        // A chosen reading is never asked about again.
        let alternatives = match decision.intent {
            Intent::Clarify if !chosen => self.classifier.readings(&msg.text, &loaded.context),
            _ => Vec::new(),
        };
        let mut plan = route::route(&decision, &alternatives, &msg.text, &sender, &loaded.state);
        // A first prompt carries the task's restart note, which costs a whole timeline (and
        // git) to read: read only when a prompt needs it, then route again with it.
        if !plan.seeded.is_empty() {
            context::seed_notes(store, &mut loaded.state, &plan.seeded, self.shared.config.notes.seed_chars).await?;
            plan = route::route(&decision, &alternatives, &msg.text, &sender, &loaded.state);
        }
        let mut plan = self.guard_decisions(plan, msg.channel, &msg.sender_id, sender.person_id).await?;
        // Each file on the timeline; voice notes arrive as their transcript, not as a file.
        attachment::annotate(&mut plan, files);
        let turn_files: Vec<Attachment> = files.iter().filter(|f| f.kind != AttachmentKind::Voice).cloned().collect();
        let config = self.shared.config.clone();
        let model_of = move |agent: &str| config.agents.get(agent).and_then(|a| a.model.clone());
        let origin = Origin::Person {
            conversation: &conversation,
            sender: &sender,
            text: &msg.text,
            message_id: msg.message_id.as_deref(),
            model_of: &model_of,
            files: &turn_files,
            inbound: msg.inbound,
        };
        let applied = apply::commit(store, &plan, &origin, None).await?;
        if applied.decided_before {
            tracing::info!(inbound = ?msg.inbound, "message decided already (by an earlier drain leader); skipped");
            return Ok(());
        }
        self.shared.outbox.after(&plan);
        tracing::debug!(task = ?applied.task, wake = ?applied.wake, "plan applied");
        if let Some(task) = applied.task {
            // What the gateway captures for the restart note grew with this message.
            self.shared.notes.keep_current(task);
        }
        for exec in applied.wake {
            self.runner.wake(exec);
        }
        Ok(())
    }

    /// Runs a `/link` command in one transaction (code issued or redeemed, reply enqueued).
    async fn link(
        &self,
        command: link::LinkCommand,
        identity: &Identity,
        conversation: &taskgate_core::model::Conversation,
    ) -> Result<(), EngineError> {
        let store: &SeaStore = &self.shared.store;
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
        let project = self
            .project
            .get_or_try_init(|| async {
                match store.projects().await?.into_iter().find(|p| p.name == config.name) {
                    Some(p) => Ok::<_, StoreError>(p),
                    None => {
                        let path = config.path.to_string_lossy();
                        store.upsert_project(&config.name, &path, config.default_agent.as_deref()).await
                    }
                }
            })
            .await?
            .clone();
        let default_agent = project
            .default_agent
            .clone()
            .or_else(|| self.shared.config.agents.keys().next().cloned())
            .unwrap_or_else(|| "codex".to_owned());
        Ok(Some(ProjectInfo {
            id: project.id,
            name: project.name,
            default_agent,
            busy_policy: config.busy_policy,
            handoff: self.shared.config.notes.handoff,
        }))
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
    send(engine.handle_with_files(msg.clone(), Vec::new()));
    send(engine.choose(msg, 0, 0));
    send(engine.shutdown(Duration::ZERO));
}

/// A name for this process as an owner of executions, unique per start: host, pid and a
/// random part (pids repeat across restarts and hosts).
fn replica_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let host = if host.is_empty() { "host".to_owned() } else { host };
    format!("{host}:{}:{:08x}", std::process::id(), fastrand::u32(..))
}
