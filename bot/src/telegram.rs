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
use taskgate_adapters::telegram::outbound::{self, OutboxOptions, OutboxSender};
use taskgate_adapters::telegram::polling::{self, PollOptions};
use taskgate_adapters::telegram::{self as tg, Bot, BotIdentity};
use taskgate_core::model::{Channel, NewOutbound};
use taskgate_core::reply::Reply;
use taskgate_core::store::{Store, StoreError};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::attachments::{self, Fetched, Offered, Stash};
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
}

impl Default for TelegramOptions {
    fn default() -> Self {
        Self { outbox: OutboxOptions::default(), poll: PollOptions::default(), inbox_interval: Duration::from_secs(1) }
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
    me: BotIdentity,
    webhook: Arc<Webhook>,
    workers: Vec<JoinHandle<()>>,
    /// The workers that take updates in (poller or long connection, inbox drain).
    intake: Vec<JoinHandle<()>>,
}

impl Telegram {
    /// Checks the token (`getMe`), then starts the inbox worker, the outbox sender and, in
    /// polling mode, the poller. In webhook mode, updates arrive through [`webhook`] (mount
    /// [`Telegram::webhook`] as an axum `Extension`); with a `public_url` the webhook is
    /// registered with Telegram.
    pub async fn start(
        engine: Arc<Engine>,
        config: &TelegramConfig,
        public_url: Option<&str>,
        options: TelegramOptions,
    ) -> anyhow::Result<Self> {
        let bot = tg::bot(config.token.expose_secret(), &config.api_url).map_err(anyhow::Error::msg)?;
        let me = tg::identity(&bot).await.map_err(anyhow::Error::msg)?;
        if config.allowed_users.is_empty() && config.allowed_chats.is_empty() {
            tracing::warn!("telegram: allowed_users and allowed_chats are empty; every sender will be refused");
        }
        let store: Arc<SeaStore> = engine.store().clone();
        let inbox = Arc::new(Notify::new());
        let outbox = Arc::new(Notify::new());
        let secret = match config.mode {
            TelegramMode::Webhook => Some(
                config
                    .webhook_secret
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("telegram webhook mode needs telegram.webhook_secret"))?,
            ),
            TelegramMode::Polling => None,
        };
        let (mut workers, mut intake_workers) = (Vec::new(), Vec::new());
        match config.mode {
            TelegramMode::Polling => {
                // getUpdates answers 409 while a webhook is set.
                tg::delete_webhook(&bot).await.map_err(anyhow::Error::msg)?;
                // Only one getUpdates consumer per token (else 409): the poller runs on the
                // replica holding this bot's lease.
                let lease = store.singleton(&format!("telegram-poller:{}", me.id), LeaseOptions::default());
                let (bot, store, inbox, poll) =
                    (bot.clone(), store.clone() as Arc<dyn Store>, inbox.clone(), options.poll.clone());
                intake_workers.push(tokio::spawn(
                    lease.run(move || polling::run(bot.clone(), store.clone(), inbox.clone(), poll.clone())),
                ));
            }
            TelegramMode::Webhook => match (public_url, &secret) {
                (Some(base), Some(secret)) => {
                    let url = format!("{}{WEBHOOK_PATH}", base.trim_end_matches('/'));
                    tg::set_webhook(&bot, &url, secret.expose_secret()).await.map_err(anyhow::Error::msg)?;
                }
                _ => tracing::warn!("telegram webhook mode without server.public_url: register the webhook yourself"),
            },
        }
        // The outbox sender and the inbox drain run on one replica each (the leases' holders),
        // so no row is sent or handled twice; the webhook route stays on every replica (it
        // only stores, deduplicated). Single-process: always granted.
        let sender_lease = store.singleton(&format!("outbox:{}", Channel::Telegram), LeaseOptions::default());
        let sending = (bot.clone(), store.clone() as Arc<dyn Store>, options.outbox.clone(), outbox.clone());
        workers.push(tokio::spawn(sender_lease.run(move || {
            let (bot, store, opts, wake) = sending.clone();
            OutboxSender::new(bot, store, opts).run(wake)
        })));
        let inbox_lease = store.singleton(&format!("inbox:{}", Channel::Telegram), LeaseOptions::default());
        let (drain_store, drain_me, drain_policy, wake, interval) =
            (store.clone(), me.clone(), policy(config), inbox.clone(), options.inbox_interval);
        let stash = Stash::new(engine.config());
        intake_workers.push(tokio::spawn(inbox_lease.run(move || {
            // A fresh worker per leadership term: its in-memory sets only guard one run.
            let worker = InboxWorker {
                engine: engine.clone(),
                store: drain_store.clone(),
                bot: bot.clone(),
                me: drain_me.clone(),
                policy: drain_policy.clone(),
                refused: HashSet::new(),
                chosen: HashSet::new(),
                stash: stash.clone(),
            };
            let drain = InboxDrain { store: drain_store.clone(), channel: Channel::Telegram, outbox: outbox.clone() };
            drain.run(worker, wake.clone(), interval)
        })));
        tracing::info!(bot = %me.username, mode = ?config.mode, "telegram channel started");
        let webhook = Arc::new(Webhook { store, secret, stored: inbox });
        Ok(Self { me, webhook, workers, intake: intake_workers })
    }

    pub fn identity(&self) -> &BotIdentity {
        &self.me
    }

    /// The webhook route's state, for `router.layer(Extension(telegram.webhook()))`.
    pub fn webhook(&self) -> Arc<Webhook> {
        self.webhook.clone()
    }
}

impl Telegram {
    /// Stops taking updates in (the gateway stops); the outbox sender goes on until dropped.
    pub fn stop_intake(&mut self) {
        for worker in self.intake.drain(..) {
            worker.abort();
        }
    }
}

impl Drop for Telegram {
    fn drop(&mut self) {
        for worker in self.workers.iter().chain(&self.intake) {
            worker.abort();
        }
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
/cc, /codex <text> — ask a specific agent";

/// Strangers remembered so that each gets one refusal, not one per message.
const MAX_REFUSED: usize = 10_000;
/// Answered clarify messages remembered (a forgotten one is still safe: its buttons are gone).
const MAX_CHOSEN: usize = 10_000;

struct InboxWorker {
    engine: Arc<Engine>,
    store: Arc<SeaStore>,
    bot: Bot,
    me: BotIdentity,
    policy: AccessPolicy,
    refused: HashSet<(i64, u64)>,
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
            Ok(update) => self.handle_update(inbound::normalise(&update, &self.me, &self.policy)).await,
            Err(e) => {
                tracing::warn!(inbox = row.id, error = %e, "telegram inbox: not an update; skipped");
                Ok(())
            }
        }
    }
}

impl InboxWorker {
    async fn handle_update(&mut self, inbound: Inbound) -> anyhow::Result<()> {
        match inbound {
            Inbound::Text(text) => self.text(text).await,
            Inbound::Press(press) => self.press(press).await,
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

    async fn text(&self, mut text: Text) -> anyhow::Result<()> {
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

    async fn press(&mut self, press: Press) -> anyhow::Result<()> {
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
        };
        let pressed = match press.data.clone() {
            Some(ButtonData::Approval { approval, nonce, answer }) => {
                self.engine.decide(&by(), approval, Some(&nonce), answer).await?
            }
            Some(ButtonData::Stop(task)) => self.engine.stop(&by(), task).await?,
            Some(ButtonData::Choice(choice)) => return self.choice_press(&press, place, message_id, choice).await,
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
        if self.refused.len() >= MAX_REFUSED {
            self.refused.clear();
        }
        if self.refused.insert((place.chat_id, refusal.user_id)) {
            self.reply(place, &refusal.text).await?;
        }
        Ok(())
    }

    /// A message from the channel itself (help, refusals), through the outbox like any other.
    async fn reply(&self, place: Place, text: &str) -> anyhow::Result<()> {
        self.store
            .outbox_enqueue(NewOutbound {
                channel: Channel::Telegram,
                chat_id: place.chat_id.to_string(),
                task_id: None,
                approval_id: None,
                payload: Reply::text(text).in_thread(place.thread_key()),
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
