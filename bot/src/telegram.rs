//! The Telegram channel wired to the engine: updates reach the inbox (poller, or the webhook
//! route below), an inbox worker turns each into an engine message, a button press or a
//! refusal, and the outbox sender delivers what the engine enqueued.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use taskgate_adapters::store::{LeaseOptions, SeaStore};
use taskgate_adapters::telegram::callback::ButtonData;
use taskgate_adapters::telegram::inbound::{self, AccessPolicy, Inbound, Place, Press, Refusal, Text};
use taskgate_adapters::telegram::outbound::{self, OutboxOptions};
use taskgate_adapters::telegram::polling::{self, PollOptions};
use taskgate_adapters::telegram::{self as tg, Bot, BotIdentity};
use taskgate_core::fair::OncePer;
use taskgate_core::model::{Channel, Id, NewOutbound};
use taskgate_core::reply::{Reply, ReplyKind};
use taskgate_core::store::{Store, StoreError};
use tokio::sync::Notify;

use crate::attachments::{self, Fetched, Offered, Stash};
use crate::channel::{Backoff, Links, Started, Workers};
use crate::config::{TelegramConfig, TelegramMode};
use crate::engine::{AdmissionHook, Chosen, Engine, IncomingMessage, Pressed};
use crate::inbox::{InboxDrain, InboxHandler};

/// Where Telegram posts updates in webhook mode.
pub const WEBHOOK_PATH: &str = "/webhook/telegram";
const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

#[derive(Debug, Clone)]
pub struct TelegramOptions {
    pub outbox: OutboxOptions,
    pub poll: PollOptions,
    /// How often the inbox is read when nothing wakes the worker.
    pub inbox_interval: Duration,
    /// Where the channel reports its connection state (`/readyz`).
    pub links: Links,
    /// Between connection attempts while Telegram cannot be reached.
    pub connect: Backoff,
    /// Per-person fairness of the inbox (`[limits]`).
    pub limits: taskgate_core::fair::Limits,
}

impl Default for TelegramOptions {
    fn default() -> Self {
        Self {
            outbox: OutboxOptions::default(),
            poll: PollOptions::default(),
            inbox_interval: Duration::from_secs(1),
            links: Links::default(),
            connect: Backoff::default(),
            limits: taskgate_core::fair::Limits::default(),
        }
    }
}

/// The allow-lists as an engine admission hook: a second line of defence behind the inbound
/// check, so no Telegram path can reach the agents around it. Other channels pass.
pub fn admission(config: &TelegramConfig) -> AdmissionHook {
    let policy = policy(config);
    Arc::new(move |msg: &IncomingMessage| {
        let (Ok(user), Ok(chat)) = (msg.sender_id.parse::<u64>(), msg.chat_id.parse::<i64>()) else { return false };
        policy.admits(user, chat, msg.chat == taskgate_core::classify::Chat::Group)
    })
}

fn policy(config: &TelegramConfig) -> AccessPolicy {
    AccessPolicy { allowed_users: config.allowed_users.clone(), allowed_chats: config.allowed_chats.clone() }
}

/// A running Telegram channel; its workers stop when it is dropped.
pub struct Telegram {
    webhook: Arc<Webhook>,
    workers: Workers,
}

impl Telegram {
    /// Starts the channel: the webhook route (mount [`Telegram::webhook`] as an axum
    /// `Extension`) stores updates at once; in the background the token is checked
    /// (`getMe`), the webhook registered (with a `public_url`) or removed (polling), retried
    /// with backoff while Telegram cannot be reached, and then the inbox worker, the outbox
    /// sender and, in polling mode, the poller start. Fails only on a config error.
    pub async fn start(
        engine: Arc<Engine>,
        config: &TelegramConfig,
        public_url: Option<&str>,
        options: TelegramOptions,
    ) -> anyhow::Result<Self> {
        let bot = tg::bot(config.token.expose_secret(), &config.api_url).map_err(anyhow::Error::msg)?;
        if config.allowed_users.is_empty() && config.allowed_chats.is_empty() {
            tracing::warn!("telegram: allowed_users and allowed_chats are empty; every sender will be refused");
        }
        let store: Arc<SeaStore> = engine.store().clone();
        let inbox = Arc::new(Notify::new());
        let secret = match config.mode {
            TelegramMode::Webhook => Some(
                config
                    .webhook_secret
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("telegram webhook mode needs telegram.webhook_secret"))?,
            ),
            TelegramMode::Polling => None,
        };
        let registration = match (config.mode, public_url, &secret) {
            // getUpdates answers 409 while a webhook is set.
            (TelegramMode::Polling, ..) => Registration::Remove,
            (TelegramMode::Webhook, Some(base), Some(secret)) => Registration::Set {
                url: format!("{}{WEBHOOK_PATH}", base.trim_end_matches('/')),
                secret: secret.clone(),
            },
            (TelegramMode::Webhook, ..) => {
                tracing::warn!("telegram webhook mode without server.public_url: register the webhook yourself");
                Registration::Leave
            }
        };
        let connect = {
            let bot = bot.clone();
            move || {
                let (bot, registration) = (bot.clone(), registration.clone());
                async move {
                    let me = tg::identity(&bot).await?;
                    match registration {
                        Registration::Remove => tg::delete_webhook(&bot).await?,
                        Registration::Set { url, secret } => {
                            tg::set_webhook(&bot, &url, secret.expose_secret()).await?
                        }
                        Registration::Leave => {}
                    }
                    Ok(me)
                }
            }
        };
        let webhook = Arc::new(Webhook { store: store.clone(), secret, stored: inbox.clone() });
        let (links, backoff) = (options.links.clone(), options.connect);
        let workers = WorkersPlan {
            engine,
            store,
            bot,
            mode: config.mode,
            stream: config.stream,
            policy: policy(config),
            inbox,
            options,
        };
        let workers = Workers::connect(Channel::Telegram, links, backoff, connect, move |me| workers.start(me));
        Ok(Self { webhook, workers })
    }

    /// The webhook route's state, for `router.layer(Extension(telegram.webhook()))`.
    pub fn webhook(&self) -> Arc<Webhook> {
        self.webhook.clone()
    }

    /// Stops taking updates in (the gateway stops); the outbox sender goes on until dropped.
    pub fn stop_intake(&mut self) {
        self.workers.stop_intake();
    }
}

/// What `connect` does about Telegram's webhook setting.
#[derive(Clone)]
enum Registration {
    /// Polling: getUpdates answers 409 while a webhook is set.
    Remove,
    Set {
        url: String,
        secret: SecretString,
    },
    /// Webhook mode without a public URL: the operator registers it.
    Leave,
}

/// What the channel's workers are started from once Telegram answered.
struct WorkersPlan {
    engine: Arc<Engine>,
    store: Arc<SeaStore>,
    bot: Bot,
    mode: TelegramMode,
    /// `telegram.stream`: private chats see the agent's text as a draft.
    stream: bool,
    policy: AccessPolicy,
    inbox: Arc<Notify>,
    options: TelegramOptions,
}

impl WorkersPlan {
    fn start(self, me: BotIdentity) -> Started {
        let WorkersPlan { engine, store, bot, mode, stream, policy, inbox, options } = self;
        let outbox = engine.outbox_wake(Channel::Telegram);
        let mut started = Started::default();
        if mode == TelegramMode::Polling {
            // Only one getUpdates consumer per token (else 409): the poller runs on the
            // replica holding this bot's lease.
            let lease = store.singleton(&format!("telegram-poller:{}", me.id), LeaseOptions::default());
            let (bot, store, inbox, poll) =
                (bot.clone(), store.clone() as Arc<dyn Store>, inbox.clone(), options.poll.clone());
            started.intake.push(tokio::spawn(
                lease.run(move || polling::run(bot.clone(), store.clone(), inbox.clone(), poll.clone())),
            ));
        }
        // The outbox sender and the inbox drain run on one replica each (the leases' holders),
        // so no row is sent or handled twice; the webhook route stays on every replica (it
        // only stores, deduplicated). Single-process: always granted.
        let sender_lease = store.singleton(&format!("outbox:{}", Channel::Telegram), LeaseOptions::default());
        let outbox_options = OutboxOptions { stream, ..options.outbox.clone() };
        let sending = (bot.clone(), store.clone() as Arc<dyn Store>, outbox_options, outbox.clone());
        started.outbox.push(tokio::spawn(sender_lease.run(move || {
            let (bot, store, opts, wake) = sending.clone();
            outbound::sender(bot, store, opts).run(wake)
        })));
        let inbox_lease = store.singleton(&format!("inbox:{}", Channel::Telegram), LeaseOptions::default());
        let (drain_me, interval, limits) = (me.clone(), options.inbox_interval, options.limits);
        let stash = Stash::new(engine.config());
        started.intake.push(tokio::spawn(inbox_lease.run(move || {
            // A fresh worker per leadership term: its in-memory sets only guard one run.
            let worker = InboxWorker {
                engine: engine.clone(),
                store: store.clone(),
                bot: bot.clone(),
                me: drain_me.clone(),
                policy: policy.clone(),
                refused: OncePer::new(REFUSAL_EVERY),
                chosen: HashSet::new(),
                stash: stash.clone(),
            };
            let drain = InboxDrain { store: store.clone(), channel: Channel::Telegram, outbox: outbox.clone(), limits };
            drain.run(worker, inbox.clone(), interval)
        })));
        tracing::info!(bot = %me.username, ?mode, "telegram channel started");
        started
    }
}

/// What the webhook route needs: where to store, the secret to check, whom to wake.
pub struct Webhook {
    store: Arc<SeaStore>,
    /// `None` outside webhook mode: the route then refuses everything.
    secret: Option<SecretString>,
    stored: Arc<Notify>,
}

/// `POST /webhook/telegram`: the secret header is checked in constant time, the update stored
/// in the inbox, and only then acknowledged. Wrong secret → 401 and nothing stored; a store
/// failure → 500, so Telegram delivers it again.
pub async fn webhook(hook: Option<Extension<Arc<Webhook>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Some(Extension(hook)) = hook else { return StatusCode::NOT_FOUND };
    let Some(secret) = &hook.secret else { return StatusCode::NOT_FOUND };
    let given = headers.get(SECRET_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    if !constant_time_eq(given, secret.expose_secret().as_bytes()) {
        tracing::warn!("telegram webhook: wrong or missing secret token; refused");
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let Some(update_id) =
        payload.get("update_id").and_then(serde_json::Value::as_u64).and_then(|id| u32::try_from(id).ok())
    else {
        return StatusCode::BAD_REQUEST;
    };
    match polling::store_update(hook.store.as_ref(), update_id, payload).await {
        Ok(_) => {
            hook.stored.notify_one();
            StatusCode::OK
        }
        // A database that stays busy past the store's retries: Telegram delivers it again.
        Err(e @ StoreError::Busy(_)) => {
            tracing::warn!(error = %e, "telegram webhook: the database is busy; asking for a redelivery");
            StatusCode::SERVICE_UNAVAILABLE
        }
        Err(e) => {
            tracing::error!(error = %e, "telegram webhook: storing the update failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// Equal in time independent of where the first difference is (the length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

const HELP: &str = "I hand your requests to coding agents and keep track of them as tasks.\n\
Just write what you want done. Reply to one of my messages to continue that task.\n\
/new <goal> — start a new task (bare /new: fresh session)\n\
/status — where things stand\n\
/cancel — stop the current turn\n\
/approve, /deny — answer a waiting approval\n\
/review — have another agent review the work\n\
/title <name> — rename the task\n\
/cc, /codex <text> — ask a specific agent";

/// A stranger hears at most one refusal an hour, however much they send.
const REFUSAL_EVERY: Duration = Duration::from_secs(3600);
/// Answered clarify messages remembered (a forgotten one is still safe: its buttons are gone).
const MAX_CHOSEN: usize = 10_000;

struct InboxWorker {
    engine: Arc<Engine>,
    store: Arc<SeaStore>,
    bot: Bot,
    me: BotIdentity,
    policy: AccessPolicy,
    refused: OncePer<u64>,
    /// Clarify messages (chat, message id) already answered by a press: a quick second press,
    /// read before the buttons were removed, must not act twice (e.g. start two tasks).
    chosen: HashSet<(i64, i32)>,
    /// Where the files people send are checked and stored.
    stash: Stash,
}

#[async_trait::async_trait]
impl InboxHandler for InboxWorker {
    async fn handle(&mut self, row: &taskgate_core::model::Inbound) -> anyhow::Result<()> {
        match inbound::parse_update(&row.payload) {
            Ok(update) => self.handle_update(row.id, inbound::normalise(&update, &self.me, &self.policy)).await,
            Err(e) => {
                tracing::warn!(inbox = row.id, error = %e, "telegram inbox: not an update; skipped");
                Ok(())
            }
        }
    }

    /// The person who sent a message or pressed a button.
    fn sender(&self, row: &taskgate_core::model::Inbound) -> Option<String> {
        ["/message/from/id", "/edited_message/from/id", "/callback_query/from/id"]
            .iter()
            .find_map(|p| row.payload.pointer(p).and_then(serde_json::Value::as_u64))
            .map(|id| format!("telegram:{id}"))
    }

    /// In the chat (and topic) of the update, replying to it in groups.
    async fn notify(&mut self, row: &taskgate_core::model::Inbound, text: &str) -> anyhow::Result<()> {
        let Ok(update) = inbound::parse_update(&row.payload) else { return Ok(()) };
        let Inbound::Text(message) = inbound::normalise(&update, &self.me, &self.policy) else { return Ok(()) };
        let mut reply = Reply::text(text).in_thread(message.place.thread_key());
        if message.chat == taskgate_core::classify::Chat::Group {
            reply.reply_to = Some(message.message_id.to_string());
        }
        self.enqueue(message.place, reply).await
    }
}

impl InboxWorker {
    /// `row`: the inbox row the update was stored as (see `IncomingMessage::inbound`).
    async fn handle_update(&mut self, row: Id, inbound: Inbound) -> anyhow::Result<()> {
        match inbound {
            Inbound::Text(text) => self.text(row, text).await,
            Inbound::Press(press) => self.press(row, press).await,
            Inbound::Help(place) => self.reply(place, HELP).await,
            Inbound::Refuse(refusal) => self.refuse(refusal).await,
            Inbound::Membership { chat_id, member } => {
                tracing::info!(chat = chat_id, member, "telegram: the bot's membership in a chat changed");
                Ok(())
            }
            Inbound::Ignore(reason) => {
                tracing::debug!(reason, "telegram: update ignored");
                Ok(())
            }
        }
    }

    async fn text(&self, row: Id, mut text: Text) -> anyhow::Result<()> {
        let reply_to_task = match text.reply_to_message_id {
            Some(id) => self
                .store
                .outbound_by_external_id(Channel::Telegram, &text.place.chat_id.to_string(), &id.to_string())
                .await?
                .and_then(|o| o.task_id),
            None => None,
        };
        let files = std::mem::take(&mut text.files);
        let msg = IncomingMessage {
            channel: Channel::Telegram,
            chat_id: text.place.chat_id.to_string(),
            thread_id: text.place.thread_key(),
            sender_id: text.from.id.to_string(),
            sender_name: text.from.name,
            text: text.text,
            reply_to_task,
            chat: text.chat,
            mentioned: text.mentioned,
            // Answers in groups reply to what they answer; a private chat needs no thread.
            message_id: (text.chat == taskgate_core::classify::Chat::Group).then(|| text.message_id.to_string()),
            inbound: Some(row),
        };
        if files.is_empty() {
            self.engine.handle(msg).await?;
            return Ok(());
        }
        let chat = format!("telegram:{}", msg.chat_id);
        let mut fetched = Vec::with_capacity(files.len());
        for file in files {
            let offered =
                Offered { name: file.name.clone(), mime: file.mime.clone(), size: Some(file.size), voice: file.voice };
            if let Err(line) = self.stash.admit(&offered, &chat) {
                fetched.push(Err(line));
                continue;
            }
            fetched.push(match tg::files::download(&self.bot, &file.file_id, self.stash.max_bytes()).await {
                Ok(bytes) => Ok(Fetched { name: file.name, mime: file.mime, voice: file.voice, bytes }),
                Err(tg::files::DownloadError::TooBig(line)) => Err(line),
                Err(tg::files::DownloadError::Failed(e)) => {
                    tracing::warn!(error = %e, "telegram: a file could not be downloaded");
                    Err(format!("I could not download {} from Telegram; please send it again.", file.name))
                }
            });
        }
        attachments::deliver(&self.engine, &self.stash, msg, fetched).await?;
        Ok(())
    }

    async fn press(&mut self, row: Id, press: Press) -> anyhow::Result<()> {
        let (Some(place), Some(message_id)) = (press.place, press.message_id) else {
            outbound::answer_press(&self.bot, &press.query_id, Some("This button is no longer active.")).await;
            return Ok(());
        };
        let by = || IncomingMessage {
            channel: Channel::Telegram,
            chat_id: place.chat_id.to_string(),
            thread_id: place.thread_key(),
            sender_id: press.from.id.to_string(),
            sender_name: press.from.name.clone(),
            text: String::new(),
            reply_to_task: None,
            chat: press.chat,
            mentioned: true,
            message_id: None,
            inbound: Some(row),
        };
        let pressed = match press.data.clone() {
            Some(ButtonData::Approval { approval, nonce, answer }) => {
                self.engine.decide(&by(), approval, Some(&nonce), answer).await?
            }
            Some(ButtonData::Stop(task)) => self.engine.stop(&by(), task).await?,
            Some(ButtonData::Merge(execution)) => self.engine.merge_press(&by(), execution, true).await?,
            Some(ButtonData::Discard(execution)) => self.engine.merge_press(&by(), execution, false).await?,
            Some(ButtonData::Choice(choice)) => return self.choice_press(row, &press, place, message_id, choice).await,
            None => Pressed::Refused("This button is no longer active.".into()),
        };
        match pressed {
            // The card itself (every copy of it) is edited by the outbox, like any decision.
            Pressed::Done(line) => outbound::answer_press(&self.bot, &press.query_id, Some(&line)).await,
            Pressed::Refused(why) => outbound::answer_press(&self.bot, &press.query_id, Some(&why)).await,
        }
        Ok(())
    }

    /// Any other button (a clarify's reading): the engine completes the message the clarify
    /// asked about with the chosen reading; the buttons give way to who chose what.
    async fn choice_press(
        &mut self,
        row: Id,
        press: &Press,
        place: Place,
        message_id: i32,
        choice: usize,
    ) -> anyhow::Result<()> {
        if self.chosen.contains(&(place.chat_id, message_id)) {
            outbound::answer_press(&self.bot, &press.query_id, Some("Already chosen.")).await;
            return Ok(());
        }
        let chat = place.chat_id.to_string();
        let message = self.store.outbound_by_external_id(Channel::Telegram, &chat, &message_id.to_string()).await?;
        let Some(message) = message else {
            outbound::answer_press(&self.bot, &press.query_id, Some("This button is no longer active.")).await;
            return Ok(());
        };
        let sender = IncomingMessage {
            channel: Channel::Telegram,
            chat_id: chat,
            thread_id: place.thread_key(),
            sender_id: press.from.id.to_string(),
            sender_name: press.from.name.clone(),
            text: String::new(),
            reply_to_task: message.task_id,
            chat: press.chat,
            mentioned: true,
            message_id: None,
            inbound: Some(row),
        };
        match self.engine.choose(sender, message.id, choice).await? {
            Chosen::Applied { label } => {
                if self.chosen.len() >= MAX_CHOSEN {
                    self.chosen.clear();
                }
                self.chosen.insert((place.chat_id, message_id));
                outbound::answer_press(&self.bot, &press.query_id, None).await;
                let line = format!("{} chose: {label}", press.from.handle());
                outbound::show_decision(&self.bot, place.chat_id, message_id, press.message_text.as_deref(), &line)
                    .await;
            }
            Chosen::Unknown => {
                outbound::answer_press(&self.bot, &press.query_id, Some("This button is no longer active.")).await;
            }
        }
        Ok(())
    }

    async fn refuse(&mut self, refusal: Refusal) -> anyhow::Result<()> {
        tracing::info!(user = refusal.user_id, chat = ?refusal.place.map(|p| p.chat_id), "telegram: sender not allowed; refused");
        if let Some(query) = &refusal.callback_query_id {
            outbound::answer_press(&self.bot, query, Some(&refusal.text)).await;
            return Ok(());
        }
        let Some(place) = refusal.place else { return Ok(()) };
        // Sent after everything else (its kind), and at most once an hour per stranger.
        if self.refused.allow(&refusal.user_id, std::time::Instant::now()) {
            let reply = Reply::text(&refusal.text).kind(ReplyKind::Refusal).in_thread(place.thread_key());
            self.enqueue(place, reply).await?;
        }
        Ok(())
    }

    /// A message from the channel itself (help, refusals), through the outbox like any other.
    async fn reply(&self, place: Place, text: &str) -> anyhow::Result<()> {
        self.enqueue(place, Reply::text(text).in_thread(place.thread_key())).await
    }

    async fn enqueue(&self, place: Place, payload: Reply) -> anyhow::Result<()> {
        self.store
            .outbox_enqueue(NewOutbound {
                channel: Channel::Telegram,
                chat_id: place.chat_id.to_string(),
                task_id: None,
                approval_id: None,
                payload,
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
