//! The Feishu/Lark channel wired to the engine: callbacks reach the inbox (the webhook route
//! below, or the long connection, through one [`Intake`]), an inbox worker turns each into an
//! engine message, a card press or a refusal, and the outbox sender delivers what the engine
//! enqueued. A card press is answered in its callback (toast and replaced card) when the
//! worker decides it in time, else the card is replaced through the API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use taskgate_adapters::feishu::FeishuApi;
use taskgate_adapters::feishu::api::ApiError;
use taskgate_adapters::feishu::card::{self, ButtonValue};
use taskgate_adapters::feishu::event::{self, CARD_ACTION, CallbackKeys, Envelope, Opened, Refused, SignatureHeaders};
use taskgate_adapters::feishu::inbound::{self, AccessPolicy, BotIdentity, Facts, Inbound, Press, Refusal, Text};
use taskgate_adapters::feishu::outbound::{self, OutboxOptions};
use taskgate_adapters::feishu::ws::{self, EventSink, WsOptions};
use taskgate_adapters::store::{LeaseOptions, SeaStore};
use taskgate_core::classify::Chat;
use taskgate_core::fair::OncePer;
use taskgate_core::model::{Channel, Id, InboxOutcome, NewInbound, NewOutbound};
use taskgate_core::reply::{Reply, ReplyKind};
use taskgate_core::store::{Store, StoreError};
use tokio::sync::{Notify, oneshot};

use crate::attachments::{self, Fetched, Offered, Stash};
use crate::channel::{Backoff, Links, Started, Workers};
use crate::config::{FeishuConfig, FeishuMode};
use crate::engine::{AdmissionHook, Chosen, Engine, IncomingMessage, Pressed};
use crate::inbox::{InboxDrain, InboxHandler};

/// Where Feishu posts callbacks in webhook mode.
pub const WEBHOOK_PATH: &str = "/webhook/feishu";

#[derive(Debug, Clone)]
pub struct FeishuOptions {
    pub outbox: OutboxOptions,
    pub ws: WsOptions,
    /// How often the inbox is read when nothing wakes the worker.
    pub inbox_interval: Duration,
    /// How long a card callback waits for the worker's decision before answering without it
    /// (Feishu wants an answer within 3 s).
    pub answer_wait: Duration,
    /// Where the channel reports its connection state (`/readyz`).
    pub links: Links,
    /// Between connection attempts while Feishu cannot be reached.
    pub connect: Backoff,
    /// Per-person fairness of the inbox (`[limits]`).
    pub limits: taskgate_core::fair::Limits,
}

impl Default for FeishuOptions {
    fn default() -> Self {
        Self {
            outbox: OutboxOptions::default(),
            ws: WsOptions::default(),
            inbox_interval: Duration::from_secs(1),
            answer_wait: Duration::from_millis(2000),
            links: Links::default(),
            connect: Backoff::default(),
            limits: taskgate_core::fair::Limits::default(),
        }
    }
}

/// The allow-lists as an engine admission hook: a second line of defence behind the inbound
/// check. Other channels pass.
pub fn admission(config: &FeishuConfig) -> AdmissionHook {
    let policy = policy(config);
    Arc::new(move |msg: &IncomingMessage| policy.admits(&msg.sender_id, &msg.chat_id, msg.chat == Chat::Group))
}

fn policy(config: &FeishuConfig) -> AccessPolicy {
    AccessPolicy { allowed_users: config.allowed_users.clone(), allowed_chats: config.allowed_chats.clone() }
}

/// A running Feishu channel; its workers stop when it is dropped.
pub struct Feishu {
    webhook: Arc<Webhook>,
    workers: Workers,
}

impl Feishu {
    /// Starts the channel: the webhook route (mount [`Feishu::webhook`] as an axum
    /// `Extension`) stores callbacks at once; in the background the app credentials are
    /// checked (tenant token, then `bot/v3/info`), retried with backoff while Feishu cannot be
    /// reached, and then the inbox worker, the outbox sender and, in websocket mode, the long
    /// connection start. Fails only on a config error.
    pub async fn start(engine: Arc<Engine>, config: &FeishuConfig, options: FeishuOptions) -> anyhow::Result<Self> {
        let api = Arc::new(
            FeishuApi::new(&config.api_url, &config.app_id, config.app_secret.clone()).map_err(anyhow::Error::msg)?,
        );
        if config.allowed_users.is_empty() && config.allowed_chats.is_empty() {
            tracing::warn!("feishu: allowed_users and allowed_chats are empty; every sender will be refused");
        }
        let secret =
            |s: &Option<SecretString>| s.as_ref().map(|s| s.expose_secret().to_owned()).filter(|s| !s.is_empty());
        let keys =
            Keys { encrypt_key: secret(&config.encrypt_key), verification_token: secret(&config.verification_token) };
        if config.mode == FeishuMode::Webhook && keys.verification_token.is_none() {
            anyhow::bail!("feishu webhook mode needs feishu.verification_token (and encrypt_key, to sign callbacks)");
        }
        if config.mode == FeishuMode::Webhook && keys.encrypt_key.is_none() {
            tracing::warn!(
                "feishu: no encrypt_key; callbacks are neither encrypted nor signed, only the token guards them"
            );
        }
        let store: Arc<SeaStore> = engine.store().clone();
        let inbox = Arc::new(Notify::new());
        let intake = Arc::new(Intake {
            store: store.clone(),
            stored: inbox.clone(),
            waiting: Mutex::new(HashMap::new()),
            answer_wait: options.answer_wait,
        });
        let connect = {
            let api = api.clone();
            move || {
                let api = api.clone();
                async move { api.bot_info().await.map_err(|e| format!("checking the app: {e}")) }
            }
        };
        let webhook = Arc::new(Webhook { intake: intake.clone(), keys, enabled: config.mode == FeishuMode::Webhook });
        let (links, backoff) = (options.links.clone(), options.connect);
        let plan = WorkersPlan {
            engine,
            store,
            api,
            mode: config.mode,
            ws_lease: format!("feishu-ws:{}", config.app_id),
            policy: policy(config),
            stream: config.stream,
            intake,
            inbox,
            options,
        };
        let workers = Workers::connect(Channel::Feishu, links, backoff, connect, move |me| plan.start(me));
        Ok(Self { webhook, workers })
    }

    /// The webhook route's state, for `router.layer(Extension(feishu.webhook()))`.
    pub fn webhook(&self) -> Arc<Webhook> {
        self.webhook.clone()
    }

    /// Stops taking updates in (the gateway stops); the outbox sender goes on until dropped.
    pub fn stop_intake(&mut self) {
        self.workers.stop_intake();
    }
}

/// What the channel's workers are started from once Feishu answered.
struct WorkersPlan {
    engine: Arc<Engine>,
    store: Arc<SeaStore>,
    api: Arc<FeishuApi>,
    mode: FeishuMode,
    ws_lease: String,
    policy: AccessPolicy,
    /// `feishu.stream`: a turn's live status streams on a CardKit card.
    stream: bool,
    intake: Arc<Intake>,
    inbox: Arc<Notify>,
    options: FeishuOptions,
}

impl WorkersPlan {
    fn start(self, me: BotIdentity) -> Started {
        let WorkersPlan { engine, store, api, mode, ws_lease, policy, stream, intake, inbox, options } = self;
        let outbox = engine.outbox_wake(Channel::Feishu);
        let mut started = Started::default();
        // The outbox sender, the inbox drain and the long connection run on one replica each
        // (the leases' holders), so nothing is sent or handled twice and Feishu sees one
        // connection per app; the webhook route stays on every replica (it only stores,
        // deduplicated). A card press stored by a replica that does not drain is answered
        // through the API once decided. Single-process: always granted.
        let sender_lease = store.singleton(&format!("outbox:{}", Channel::Feishu), LeaseOptions::default());
        let outbox_options = OutboxOptions { stream, ..options.outbox.clone() };
        let sending = (api.clone(), store.clone() as Arc<dyn Store>, outbox_options, outbox.clone());
        started.outbox.push(tokio::spawn(sender_lease.run(move || {
            let (api, store, opts, wake) = sending.clone();
            outbound::sender(api, store, opts).run(wake)
        })));
        if mode == FeishuMode::Websocket {
            let ws_lease = store.singleton(&ws_lease, LeaseOptions::default());
            let (api, sink, ws_options) = (api.clone(), intake.clone() as Arc<dyn EventSink>, options.ws.clone());
            started
                .intake
                .push(tokio::spawn(ws_lease.run(move || ws::run(api.clone(), sink.clone(), ws_options.clone()))));
        }
        let inbox_lease = store.singleton(&format!("inbox:{}", Channel::Feishu), LeaseOptions::default());
        let (drain_me, interval, limits) = (me.clone(), options.inbox_interval, options.limits);
        started.intake.push(tokio::spawn(inbox_lease.run(move || {
            let stash = Stash::new(engine.config());
            // A fresh worker per leadership term: its in-memory set only guards one run.
            let worker = InboxWorker {
                engine: engine.clone(),
                store: store.clone(),
                api: api.clone(),
                me: drain_me.clone(),
                policy: policy.clone(),
                intake: intake.clone(),
                refused: OncePer::new(REFUSAL_EVERY),
                stash: stash.clone(),
            };
            let drain = InboxDrain { store: store.clone(), channel: Channel::Feishu, outbox: outbox.clone(), limits };
            drain.run(worker, inbox.clone(), interval)
        })));
        tracing::info!(bot = %me.name, ?mode, "feishu channel started");
        started
    }
}

/// The callback secrets. Deliberately without `Debug`, so they cannot end up in a log line.
struct Keys {
    encrypt_key: Option<String>,
    verification_token: Option<String>,
}

/// Where callbacks go, from the webhook or the long connection: persisted to the inbox, the
/// worker woken; a card press waits (bounded) for the worker's answer.
pub struct Intake {
    store: Arc<SeaStore>,
    stored: Arc<Notify>,
    /// Card presses whose callback is waiting for its answer, by inbox key.
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    answer_wait: Duration,
}

impl Intake {
    /// Stores `envelope`, then returns what to answer with (`None`: a plain success).
    async fn accept(&self, envelope: Envelope) -> Result<Option<Value>, StoreError> {
        let key = envelope.dedupe_key();
        let card = envelope.event_type == CARD_ACTION;
        // Registered before the row exists, so a fast worker cannot answer into the void.
        let answer = if card { self.wait_for(&key) } else { None };
        let outcome = self
            .store
            .inbox_accept(NewInbound { channel: Channel::Feishu, external_id: key.clone(), payload: envelope.value })
            .await;
        match outcome {
            Ok(InboxOutcome::Accepted(_)) => {
                self.stored.notify_one();
                let Some(answer) = answer else { return Ok(None) };
                match tokio::time::timeout(self.answer_wait, answer).await {
                    Ok(Ok(value)) => Ok(Some(value)),
                    // Too slow: the worker replaces the card through the API instead.
                    _ => {
                        self.forget(&key);
                        Ok(Some(card::callback_answer(false, "Received; working on it.", None)))
                    }
                }
            }
            Ok(InboxOutcome::Duplicate(_)) => {
                tracing::debug!(key, "feishu: callback already in the inbox");
                if answer.is_some() {
                    self.forget(&key);
                }
                Ok(card.then(|| card::callback_answer(false, "Already received.", None)))
            }
            Err(e) => {
                if answer.is_some() {
                    self.forget(&key);
                }
                Err(e)
            }
        }
    }

    /// A receiver for the answer to `key`; `None` when a callback for it already waits.
    fn wait_for(&self, key: &str) -> Option<oneshot::Receiver<Value>> {
        let mut waiting = self.waiting.lock().ok()?;
        if waiting.contains_key(key) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        waiting.insert(key.to_owned(), tx);
        Some(rx)
    }

    fn forget(&self, key: &str) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(key);
        }
    }

    /// Hands the answer to the callback waiting for `key`; false when none waits any more.
    fn answer(&self, key: &str, answer: Value) -> bool {
        let tx = self.waiting.lock().ok().and_then(|mut w| w.remove(key));
        tx.is_some_and(|tx| tx.send(answer).is_ok())
    }
}

#[async_trait::async_trait]
impl EventSink for Intake {
    async fn deliver(&self, event: Value) -> Result<Option<Value>, String> {
        let Some(envelope) = Envelope::from_value(event) else {
            tracing::warn!("feishu long connection: not an event envelope; dropped");
            return Ok(None);
        };
        self.accept(envelope).await.map_err(|e| e.to_string())
    }
}

/// What the webhook route needs.
pub struct Webhook {
    intake: Arc<Intake>,
    keys: Keys,
    /// False in websocket mode: the route then answers 404.
    enabled: bool,
}

/// `POST /webhook/feishu`: opened (decrypted, signature and token checked over the raw
/// body), answered at once for `url_verification`, else stored in the inbox and only then
/// acknowledged. A refused callback gets 401/400 and nothing is stored; a store failure is
/// 500, so Feishu delivers it again.
pub async fn webhook(hook: Option<Extension<Arc<Webhook>>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(Extension(hook)) = hook else { return StatusCode::NOT_FOUND.into_response() };
    if !hook.enabled {
        return StatusCode::NOT_FOUND.into_response();
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = SignatureHeaders {
        timestamp: header("x-lark-request-timestamp"),
        nonce: header("x-lark-request-nonce"),
        signature: header("x-lark-signature"),
    };
    let keys = CallbackKeys {
        encrypt_key: hook.keys.encrypt_key.as_deref(),
        verification_token: hook.keys.verification_token.as_deref(),
    };
    match event::open(&body, signature, keys) {
        Err(refused) => {
            tracing::warn!(reason = %refused, "feishu webhook: callback refused");
            let status = match refused {
                Refused::Signature | Refused::Token => StatusCode::UNAUTHORIZED,
                _ => StatusCode::BAD_REQUEST,
            };
            (status, axum::Json(json!({"msg": refused.to_string()}))).into_response()
        }
        Ok(Opened::Challenge(challenge)) => axum::Json(json!({"challenge": challenge})).into_response(),
        Ok(Opened::Event(envelope)) => match hook.intake.accept(envelope).await {
            Ok(Some(answer)) => axum::Json(answer).into_response(),
            Ok(None) => axum::Json(json!({"msg": "success"})).into_response(),
            // A database that stays busy past the store's retries: Feishu delivers it again.
            Err(e @ StoreError::Busy(_)) => {
                tracing::warn!(error = %e, "feishu webhook: the database is busy; asking for a redelivery");
                StatusCode::SERVICE_UNAVAILABLE.into_response()
            }
            Err(e) => {
                tracing::error!(error = %e, "feishu webhook: storing the callback failed");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        },
    }
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

struct InboxWorker {
    engine: Arc<Engine>,
    store: Arc<SeaStore>,
    api: Arc<FeishuApi>,
    me: BotIdentity,
    policy: AccessPolicy,
    intake: Arc<Intake>,
    refused: OncePer<String>,
    /// Where the files people send are checked and stored.
    stash: Stash,
}

/// A card press decided: the toast, and the card that replaces the pressed one.
struct Answer {
    success: bool,
    toast: String,
    card: Option<Value>,
}

#[async_trait::async_trait]
impl InboxHandler for InboxWorker {
    async fn handle(&mut self, row: &taskgate_core::model::Inbound) -> anyhow::Result<()> {
        self.handle_event(row.id, &row.external_id, &row.payload).await
    }

    /// The person who sent a message or pressed a card's button.
    fn sender(&self, row: &taskgate_core::model::Inbound) -> Option<String> {
        ["/event/sender/sender_id/open_id", "/event/operator/open_id"]
            .iter()
            .find_map(|p| row.payload.pointer(p).and_then(Value::as_str))
            .filter(|id| !id.is_empty())
            .map(|id| format!("feishu:{id}"))
    }

    /// In the chat of the message, replying to it.
    async fn notify(&mut self, row: &taskgate_core::model::Inbound, text: &str) -> anyhow::Result<()> {
        let Some(message) = row.payload.pointer("/event/message") else { return Ok(()) };
        let chat = message.get("chat_id").and_then(Value::as_str).unwrap_or_default();
        let id = message.get("message_id").and_then(Value::as_str).filter(|id| !id.is_empty());
        if chat.is_empty() {
            return Ok(());
        }
        self.reply(chat, id, text).await
    }
}

impl InboxWorker {
    /// `row`: the inbox row the event was stored as (see `IncomingMessage::inbound`).
    async fn handle_event(&mut self, row: Id, key: &str, event: &Value) -> anyhow::Result<()> {
        let mut facts = Facts::default();
        let mut replied_task = None;
        if let Some(message) = event.pointer("/event/message") {
            let chat = message.get("chat_id").and_then(Value::as_str).unwrap_or_default();
            if !chat.is_empty() {
                self.api.remember_chat(chat, message.get("chat_type").and_then(Value::as_str) != Some("p2p"));
            }
            for target in inbound::reply_targets(event) {
                if let Some(o) = self.store.outbound_by_external_id(Channel::Feishu, chat, &target).await? {
                    facts.replies_to_bot = true;
                    replied_task = o.task_id;
                    break;
                }
            }
        }
        if let Some(chat) = inbound::press_chat(event) {
            facts.press_in_group = self.api.is_group(&chat).await;
        }
        match inbound::normalise(event, &self.me, &self.policy, facts) {
            Inbound::Text(text) => self.text(row, text, replied_task).await,
            Inbound::Help { chat_id, message_id } => self.reply(&chat_id, Some(&message_id), HELP).await,
            Inbound::Press(press) => {
                let answer = self.press(row, &press).await?;
                self.answer(key, &press.message_id, answer).await;
                Ok(())
            }
            Inbound::Refuse(refusal) => self.refuse(key, refusal).await,
            Inbound::Ignore(reason) => {
                tracing::debug!(reason, "feishu: callback ignored");
                Ok(())
            }
        }
    }

    /// A display name for `open_id`: the contact API's, else what the gateway knows, else the id.
    async fn name_of(&self, open_id: &str) -> String {
        if let Some(name) = self.api.user_name(open_id).await {
            return name;
        }
        match self.store.find_identity(Channel::Feishu, open_id).await {
            Ok(Some(identity)) => identity.display_name.unwrap_or_else(|| open_id.to_owned()),
            _ => open_id.to_owned(),
        }
    }

    async fn text(&self, row: Id, mut text: Text, reply_to_task: Option<Id>) -> anyhow::Result<()> {
        let sender_name = self.name_of(&text.sender_open_id).await;
        let files = std::mem::take(&mut text.files);
        let source = text.message_id.clone();
        let msg = IncomingMessage {
            channel: Channel::Feishu,
            chat_id: text.chat_id,
            thread_id: String::new(),
            sender_id: text.sender_open_id,
            sender_name,
            text: text.text,
            reply_to_task,
            chat: text.chat,
            mentioned: text.mentioned,
            // Answers in groups reply to what they answer; a private chat needs no thread.
            message_id: (text.chat == Chat::Group).then(|| text.message_id.clone()),
            inbound: Some(row),
        };
        if files.is_empty() {
            self.engine.handle(msg).await?;
            return Ok(());
        }
        let chat = format!("feishu:{}", msg.chat_id);
        let mut fetched = Vec::with_capacity(files.len());
        for file in files {
            let offered = Offered {
                name: file.name.clone(),
                // An image's exact type comes with its bytes; it is a picture either way.
                mime: file.mime.clone().unwrap_or_else(|| "image/png".into()),
                size: None,
                voice: file.voice,
            };
            if let Err(line) = self.stash.admit(&offered, &chat) {
                fetched.push(Err(line));
                continue;
            }
            let max = self.stash.max_bytes();
            fetched.push(match self.api.message_resource(&source, &file.key, file.resource, max).await {
                Ok((bytes, content_type)) => {
                    // The platform's type for images (PNG, JPEG, …); the name's for files,
                    // whose downloads are often `application/octet-stream`.
                    let mime = match (&file.mime, content_type) {
                        (Some(m), _) => m.clone(),
                        (None, Some(t)) if t.starts_with("image/") => t,
                        (None, _) => offered.mime.clone(),
                    };
                    let name = match (file.resource, taskgate_core::attachment::extension_for(&mime, "")) {
                        ("image", ext) if ext != "bin" => file.name.replace(".png", &format!(".{ext}")),
                        _ => file.name,
                    };
                    Ok(Fetched { name, mime, voice: file.voice, bytes })
                }
                Err(ApiError::Api { code: taskgate_adapters::feishu::api::TOO_BIG, msg, .. }) => {
                    Err(taskgate_core::attachment::too_big(max, msg.parse().unwrap_or(max + 1)))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "feishu: a file could not be downloaded");
                    Err(format!("I could not download {} from Feishu; please send it again.", file.name))
                }
            });
        }
        attachments::deliver(&self.engine, &self.stash, msg, fetched).await?;
        Ok(())
    }

    /// The text the pressed card shows, from the stored outbound message it is.
    async fn card_text(&self, press: &Press) -> anyhow::Result<(String, Option<taskgate_core::model::Outbound>)> {
        let message = self.store.outbound_by_external_id(Channel::Feishu, &press.chat_id, &press.message_id).await?;
        let text = message
            .as_ref()
            .and_then(|m| outbound::render(&m.payload).parts.last().and_then(|p| card::shown_text(&p.content)))
            .unwrap_or_default();
        Ok((text, message))
    }

    async fn press(&self, row: Id, press: &Press) -> anyhow::Result<Answer> {
        let inactive = || Answer { success: false, toast: "This button is no longer active.".into(), card: None };
        let name = self.name_of(&press.operator_open_id).await;
        let by = IncomingMessage {
            channel: Channel::Feishu,
            chat_id: press.chat_id.clone(),
            thread_id: String::new(),
            sender_id: press.operator_open_id.clone(),
            sender_name: name.clone(),
            text: String::new(),
            reply_to_task: None,
            chat: press.chat,
            mentioned: true,
            message_id: None,
            inbound: Some(row),
        };
        let (shown, message) = self.card_text(press).await?;
        let pressed = match press.value.clone() {
            Some(ButtonValue::Approval { approval, nonce, answer }) => {
                self.engine.decide(&by, approval, Some(&nonce), answer).await?
            }
            Some(ButtonValue::Stop(task)) => self.engine.stop(&by, task).await?,
            Some(ButtonValue::Merge(execution)) => self.engine.merge_press(&by, execution, true).await?,
            Some(ButtonValue::Discard(execution)) => self.engine.merge_press(&by, execution, false).await?,
            Some(ButtonValue::Choice(choice)) => {
                // The reading applies to the original message (Engine::choose), not to the
                // button's label as new text.
                let Some(message) = message else { return Ok(inactive()) };
                let sender = IncomingMessage { reply_to_task: message.task_id, ..by };
                return match self.engine.choose(sender, message.id, choice).await? {
                    Chosen::Applied { label } => {
                        let line = format!("{name} chose: {label}");
                        Ok(Answer { success: true, toast: line.clone(), card: Some(card::decided(&shown, &line)) })
                    }
                    Chosen::Unknown => Ok(inactive()),
                };
            }
            None => return Ok(inactive()),
        };
        Ok(match pressed {
            Pressed::Done(line) if matches!(press.value, Some(ButtonValue::Approval { .. })) => {
                Answer { success: true, toast: line.clone(), card: Some(card::decided(&shown, &line)) }
            }
            Pressed::Done(line) => Answer { success: true, toast: line, card: None },
            Pressed::Refused(why) => Answer { success: false, toast: why, card: None },
        })
    }

    /// Into the waiting callback when it still waits; else the card is replaced through the
    /// API (the toast is lost: the callback was already answered).
    async fn answer(&self, key: &str, message_id: &str, answer: Answer) {
        let value = card::callback_answer(answer.success, &answer.toast, answer.card.clone());
        if self.intake.answer(key, value) {
            return;
        }
        if let Some(card) = answer.card
            && let Err(e) = self.api.update_card(message_id, &card).await
        {
            tracing::warn!(error = %e, "feishu: replacing the answered card failed");
        }
    }

    async fn refuse(&mut self, key: &str, refusal: Refusal) -> anyhow::Result<()> {
        tracing::info!(user = %refusal.open_id, chat = %refusal.chat_id, "feishu: sender not allowed; refused");
        let Some(message_id) = refusal.message_id.as_deref() else {
            // A button press: told in its toast.
            let _ = self.intake.answer(key, card::callback_answer(false, &refusal.text, None));
            return Ok(());
        };
        // Sent after everything else (its kind), and at most once an hour per stranger.
        if self.refused.allow(&refusal.open_id, std::time::Instant::now()) {
            self.store
                .outbox_enqueue(NewOutbound {
                    channel: Channel::Feishu,
                    chat_id: refusal.chat_id.clone(),
                    task_id: None,
                    approval_id: None,
                    payload: Reply { reply_to: Some(message_id.to_owned()), ..Reply::text(&refusal.text) }
                        .kind(ReplyKind::Refusal),
                })
                .await?;
        }
        Ok(())
    }

    /// A message from the channel itself (help, refusals), through the outbox like any other,
    /// in reply to the message it answers.
    async fn reply(&self, chat_id: &str, reply_to: Option<&str>, text: &str) -> anyhow::Result<()> {
        self.store
            .outbox_enqueue(NewOutbound {
                channel: Channel::Feishu,
                chat_id: chat_id.to_owned(),
                task_id: None,
                approval_id: None,
                payload: Reply { reply_to: reply_to.map(str::to_owned), ..Reply::text(text) },
            })
            .await?;
        Ok(())
    }
}
