//! The outbox, sent to Telegram: the Telegram [`Transport`] of the shared sender loop
//! ([`crate::outbox::Sender`]). Messages as HTML split at the length limit, approval requests
//! with their buttons, answers in groups replying (`reply_parameters`) to the message they
//! answer; live status messages sent silently and edited in place. Paced by Telegram's limits:
//! about one message a second per chat, 20 a minute per group, 30 a second per bot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use taskgate_core::model::{Channel, Id, Outbound};
use taskgate_core::reply::{Reply, ReplyKind};
use taskgate_core::store::Store;
use teloxide::ApiError;
use teloxide::RequestError;
use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup, MessageId, ParseMode, ReplyParameters, ThreadId};

use super::callback::ButtonData;
use super::html;
use super::live::GroupBudget;
use crate::outbox::{EditFailure, Failure, Sender, SenderOptions, Transport};

#[derive(Debug, Clone)]
pub struct OutboxOptions {
    /// How often the outbox is read when nothing wakes the sender.
    pub poll_interval: Duration,
    /// At least this long between two messages to one chat (Telegram: about one per second).
    pub chat_interval: Duration,
    /// At least this long between two edits of live status messages in one chat.
    pub edit_interval: Duration,
    /// At least this long between two requests of the bot (Telegram: 30 a second).
    pub bot_interval: Duration,
    /// Requests a minute to one group (Telegram: 20); 0 for no budget.
    pub group_per_minute: usize,
    /// A chat's newest rows read to coalesce live updates and find the message they edit.
    pub live_window: u64,
    /// Due rows read per pass.
    pub batch: u64,
    /// A row Telegram refused this often (a bad request; not a rate limit or an outage, which
    /// are waited out however long they last) is dropped and counted.
    pub max_attempts: i32,
    /// Stream the agent's text into private chats as a draft (`sendMessageDraft`).
    pub stream: bool,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(250),
            chat_interval: Duration::from_secs(1),
            edit_interval: Duration::from_secs(1),
            bot_interval: Duration::from_millis(34),
            group_per_minute: 20,
            live_window: 200,
            batch: 500,
            max_attempts: 8,
            stream: true,
        }
    }
}

impl From<OutboxOptions> for SenderOptions {
    fn from(o: OutboxOptions) -> Self {
        SenderOptions {
            poll_interval: o.poll_interval,
            chat_interval: o.chat_interval,
            edit_interval: o.edit_interval,
            bot_interval: o.bot_interval,
            group: Some(GroupBudget { per_minute: o.group_per_minute, is_group: is_group_chat }),
            live_window: o.live_window,
            batch: o.batch,
            max_attempts: o.max_attempts,
        }
    }
}

/// Group and channel chat ids are negative on Telegram.
fn is_group_chat(chat: &str) -> bool {
    chat.starts_with('-')
}

/// The Telegram outbox sender.
pub type OutboxSender = Sender<TelegramTransport>;

/// The sender loop over Telegram.
pub fn sender(bot: Bot, store: Arc<dyn Store>, options: OutboxOptions) -> OutboxSender {
    let stream = options.stream;
    Sender::new(TelegramTransport { stream, ..TelegramTransport::new(bot) }, store, options.into())
}

/// Sending, and editing, through one teloxide client.
pub struct TelegramTransport {
    bot: Bot,
    /// Parts of a split message already sent: a retry continues after them. In memory only:
    /// after a restart a split message may repeat its first parts, never lose its last.
    progress: HashMap<Id, (usize, i32)>,
    /// Drafts in private chats (`sendMessageDraft`); off when configured so or when the Bot
    /// API answering does not know the method.
    stream: bool,
}

impl TelegramTransport {
    pub fn new(bot: Bot) -> Self {
        Self { bot, progress: HashMap::new(), stream: true }
    }

    /// `sendMessageDraft` (Bot API 9.3+, which teloxide 0.17 predates), raw through the bot's
    /// own HTTP client.
    async fn send_draft(&mut self, chat: i64, draft_id: i64, reply: &Reply) -> Result<bool, Failure> {
        let Some(text) = html::markdown_chunks(&reply.text, html::MAX_MESSAGE).pop() else { return Ok(false) };
        let mut body = serde_json::json!({"chat_id": chat, "draft_id": draft_id, "text": text, "parse_mode": "HTML"});
        if let Ok(thread) = reply.thread_id.parse::<i64>() {
            body["message_thread_id"] = thread.into();
        }
        let base = self.bot.api_url();
        let url = format!("{}/bot{}/sendMessageDraft", base.as_str().trim_end_matches('/'), self.bot.token());
        let answer = match self.bot.client().post(&url).json(&body).send().await {
            Ok(response) => response.json::<serde_json::Value>().await.unwrap_or_default(),
            Err(e) => {
                tracing::debug!(error = %network(&e), "telegram: a draft was not shown");
                return Ok(false);
            }
        };
        if answer["ok"] == true {
            return Ok(true);
        }
        if let Some(secs) = answer.pointer("/parameters/retry_after").and_then(serde_json::Value::as_u64) {
            return Err(Failure::RateLimited { after: Duration::from_secs(secs) });
        }
        let description = answer["description"].as_str().unwrap_or("no answer");
        if answer["error_code"] == 404 {
            tracing::info!(%description, "telegram: this Bot API has no drafts; streaming off");
            self.stream = false;
        } else {
            tracing::debug!(%description, "telegram: a draft was not shown");
        }
        Ok(false)
    }

    fn failure(&self, e: &RequestError) -> Failure {
        failure(e, self.bot.token())
    }
}

fn chat_of(row: &Outbound) -> Result<i64, Failure> {
    row.chat_id
        .parse::<i64>()
        .map_err(|_| Failure::Undeliverable { error: format!("not a Telegram chat id: {}", row.chat_id) })
}

/// The message a group answer replies to; sent anyway when that message is gone.
fn reply_parameters(reply: &Reply) -> Option<ReplyParameters> {
    let id = reply.reply_to.as_deref()?.parse::<i32>().ok()?;
    Some(ReplyParameters::new(MessageId(id)).allow_sending_without_reply())
}

#[async_trait]
impl Transport for TelegramTransport {
    type MessageId = i32;
    const CHANNEL: Channel = Channel::Telegram;

    async fn send(&mut self, row: &Outbound) -> Result<i32, Failure> {
        let chat = chat_of(row)?;
        let message = render(&row.payload);
        if message.parts.is_empty() {
            return Err(Failure::Undeliverable { error: "empty message".into() });
        }
        let (mut next, mut last_id) = self.progress.get(&row.id).copied().unwrap_or((0, 0));
        while next < message.parts.len() {
            let is_last = next + 1 == message.parts.len();
            let mut request =
                self.bot.send_message(ChatId(chat), message.parts[next].clone()).parse_mode(ParseMode::Html);
            if let Some(thread) = message.thread_id {
                request = request.message_thread_id(ThreadId(MessageId(thread)));
            }
            if next == 0
                && let Some(parameters) = reply_parameters(&row.payload)
            {
                request = request.reply_parameters(parameters);
            }
            if is_last && let Some(keyboard) = message.keyboard.clone() {
                request = request.reply_markup(keyboard);
            }
            match request.await {
                Ok(sent) => {
                    last_id = sent.id.0;
                    next += 1;
                    self.progress.insert(row.id, (next, last_id));
                }
                Err(e) => return Err(self.failure(&e)),
            }
        }
        Ok(last_id)
    }

    async fn send_live(&mut self, row: &Outbound, reply: &Reply) -> Result<i32, Failure> {
        let chat = chat_of(row)?;
        let rendered = render(reply);
        // Status lines are one line; a longer one shows its first part.
        let Some(text) = rendered.parts.first().cloned() else {
            return Err(Failure::Undeliverable { error: "empty message".into() });
        };
        // A status line is not news: it arrives silently; an approval card notifies.
        let silent = reply.kind == ReplyKind::Status;
        let mut request =
            self.bot.send_message(ChatId(chat), text).parse_mode(ParseMode::Html).disable_notification(silent);
        if let Some(thread) = rendered.thread_id {
            request = request.message_thread_id(ThreadId(MessageId(thread)));
        }
        if !silent && let Some(parameters) = reply_parameters(reply) {
            request = request.reply_parameters(parameters);
        }
        if let Some(keyboard) = rendered.keyboard {
            request = request.reply_markup(keyboard);
        }
        request.await.map(|sent| sent.id.0).map_err(|e| self.failure(&e))
    }

    async fn edit(&mut self, chat: &str, message: &i32, reply: &Reply) -> Result<(), EditFailure> {
        let Ok(chat) = chat.parse::<i64>() else {
            return Err(EditFailure::Failed(Failure::Undeliverable {
                error: format!("not a Telegram chat id: {chat}"),
            }));
        };
        let rendered = render(reply);
        let Some(text) = rendered.parts.first().cloned() else {
            return Err(EditFailure::Failed(Failure::Undeliverable { error: "empty message".into() }));
        };
        // An edit without a keyboard removes the buttons (a decided approval card).
        let mut edit = self.bot.edit_message_text(ChatId(chat), MessageId(*message), text).parse_mode(ParseMode::Html);
        if let Some(keyboard) = rendered.keyboard {
            edit = edit.reply_markup(keyboard);
        }
        match edit.await {
            // Identical text (a repeated status) is what the message already shows.
            Ok(_) | Err(RequestError::Api(ApiError::MessageNotModified)) => Ok(()),
            // Deleted, or too old to edit: the status goes on in a new message.
            Err(RequestError::Api(ApiError::MessageToEditNotFound | ApiError::MessageCantBeEdited)) => {
                Err(EditFailure::Gone)
            }
            Err(e) => Err(EditFailure::Failed(self.failure(&e))),
        }
    }

    async fn draft(&mut self, row: &Outbound, reply: &Reply) -> Result<bool, Failure> {
        // Drafts exist in private chats only (positive ids), keyed by a non-zero id: the turn's.
        let Ok(chat) = row.chat_id.parse::<i64>() else { return Ok(false) };
        let turn = reply.live.as_deref().and_then(|k| k.strip_prefix("turn:")?.strip_suffix(":draft")?.parse().ok());
        let Some(turn) = turn.filter(|t: &i64| *t != 0) else { return Ok(false) };
        if !self.stream || chat <= 0 {
            return Ok(false);
        }
        self.send_draft(chat, turn, reply).await
    }

    fn finished(&mut self, row: Id) {
        self.progress.remove(&row);
    }
}

/// A network error without its URL (which carries the token).
fn network(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}

/// What a failed request means for its row: a rate limit and an outage are waited out; a
/// blocked bot or a gone chat cannot be helped; anything else Telegram refused is retried a
/// few times.
fn failure(e: &RequestError, token: &str) -> Failure {
    match e {
        RequestError::RetryAfter(secs) => Failure::RateLimited { after: secs.duration() },
        RequestError::Api(
            ApiError::BotBlocked
            | ApiError::ChatNotFound
            | ApiError::UserDeactivated
            | ApiError::BotKicked
            | ApiError::BotKickedFromSupergroup
            | ApiError::BotKickedFromChannel
            | ApiError::CantInitiateConversation
            | ApiError::CantTalkWithBots
            | ApiError::GroupDeactivated,
        )
        | RequestError::MigrateToChatId(_) => Failure::Undeliverable { error: describe(e, token) },
        // The network, or an answer that is not the Bot API's (a proxy's error page): an outage.
        RequestError::Network(_) | RequestError::Io(_) | RequestError::InvalidJson { .. } => {
            Failure::Outage { error: describe(e, token) }
        }
        RequestError::Api(_) => Failure::Refused { error: describe(e, token) },
    }
}

/// 2, 4, 8 … seconds, at most five minutes.
#[cfg(test)]
fn backoff(attempts: i32) -> Duration {
    crate::outbox::backoff(attempts)
}

/// An error for logs and the outbox row. reqwest errors carry the request URL, and teloxide's
/// URLs carry the token: the token is cut out of anything said about a request.
pub fn describe(e: &RequestError, token: &str) -> String {
    let text = match e {
        RequestError::Network(n) => {
            let kind = if n.is_timeout() {
                "timeout"
            } else if n.is_connect() {
                "connection failed"
            } else {
                "request failed"
            };
            format!("network error: {kind}")
        }
        other => other.to_string(),
    };
    redact(&text, token)
}

/// `text` without the bot token.
pub fn redact(text: &str, token: &str) -> String {
    if token.is_empty() { text.to_owned() } else { text.replace(token, "<token>") }
}

/// An outbox payload as Telegram will show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// HTML, each within the length limit.
    pub parts: Vec<String>,
    /// On the last part.
    pub keyboard: Option<InlineKeyboardMarkup>,
    pub thread_id: Option<i32>,
}

/// A reply as Telegram shows it.
pub fn render(reply: &Reply) -> Rendered {
    let thread_id = reply.thread_id.parse().ok();
    let keyboard = keyboard(reply);
    let mut text = reply.text.clone();
    if let Some(detail) = reply.detail.as_deref().filter(|d| !d.trim().is_empty()) {
        text.push_str("\n\n");
        text.push_str(detail);
    }
    // The agent's own words are Markdown; the gateway's lines use backticks for commands only.
    let mut parts = match reply.kind {
        ReplyKind::Final | ReplyKind::Question => html::markdown_chunks(&text, html::MAX_MESSAGE),
        _ => html::chunks(&text, html::MAX_MESSAGE),
    };
    if parts.is_empty() && keyboard.is_some() {
        // Buttons need a message to hang on.
        parts.push("…".into());
    }
    Rendered { parts, keyboard, thread_id }
}

/// Approval buttons side by side, other buttons one per row.
fn keyboard(reply: &Reply) -> Option<InlineKeyboardMarkup> {
    let mut approval_row = Vec::new();
    let mut rows = Vec::new();
    for b in &reply.buttons {
        let data = ButtonData::from(&b.action);
        let button = InlineKeyboardButton::callback(b.label.clone(), data.encode());
        match data {
            ButtonData::Approval { .. } => approval_row.push(button),
            ButtonData::Choice(_) | ButtonData::Stop(_) => rows.push(vec![button]),
            // Merge and Discard of one branch side by side, under anything else.
            ButtonData::Merge(_) | ButtonData::Discard(_) => match rows.last_mut() {
                Some(row) if row.len() == 1 && row[0].text == "Merge" => row.push(button),
                _ => rows.push(vec![button]),
            },
        }
    }
    if !approval_row.is_empty() {
        rows.insert(0, approval_row);
    }
    (!rows.is_empty()).then(|| InlineKeyboardMarkup::new(rows))
}

/// Answers a button press (Telegram shows a spinner until then). Failures are logged only: the
/// press itself was handled.
pub async fn answer_press(bot: &Bot, query_id: &str, text: Option<&str>) {
    let mut request = bot.answer_callback_query(teloxide::types::CallbackQueryId(query_id.to_owned()));
    if let Some(text) = text {
        request = request.text(text);
    }
    if let Err(e) = request.await {
        tracing::warn!(error = %describe(&e, bot.token()), "telegram: answering a button press failed");
    }
}

/// Replaces a message's buttons by a line saying how it was decided ("Approved by @alice"),
/// below the message's own text. Editing to the same content is a success.
pub async fn show_decision(bot: &Bot, chat_id: i64, message_id: i32, shown: Option<&str>, line: &str) {
    let mut text: String = shown.unwrap_or_default().lines().map(html::escape).collect::<Vec<_>>().join("\n");
    if !text.is_empty() {
        text.push_str("\n\n");
    }
    text.push_str(&format!("<b>{}</b>", html::escape(line)));
    let edit = bot.edit_message_text(ChatId(chat_id), MessageId(message_id), text).parse_mode(ParseMode::Html).await;
    match edit {
        Ok(_) | Err(RequestError::Api(ApiError::MessageNotModified)) => {}
        Err(e) => {
            tracing::warn!(error = %describe(&e, bot.token()), "telegram: editing the decided message failed; removing its buttons");
            let markup = bot
                .edit_message_reply_markup(ChatId(chat_id), MessageId(message_id))
                .reply_markup(InlineKeyboardMarkup::default())
                .await;
            if let Err(e) = markup
                && !matches!(e, RequestError::Api(ApiError::MessageNotModified))
            {
                tracing::warn!(error = %describe(&e, bot.token()), "telegram: removing the buttons failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use taskgate_core::classify::Intent;
    use taskgate_core::model::{Answer, Scope};
    use taskgate_core::reply::{Action, Button};

    use super::*;

    fn callback_data(k: &InlineKeyboardMarkup) -> Vec<Vec<String>> {
        k.inline_keyboard
            .iter()
            .map(|row| {
                row.iter()
                    .map(|b| match &b.kind {
                        teloxide::types::InlineKeyboardButtonKind::CallbackData(d) => d.clone(),
                        other => format!("{other:?}"),
                    })
                    .collect()
            })
            .collect()
    }

    fn button(label: &str, action: Action) -> Button {
        Button { label: label.into(), action }
    }

    #[test]
    fn an_approval_renders_three_buttons_naming_it_and_its_nonce() {
        let decide = |answer| Action::Decide { approval: 42, nonce: "n0nce".into(), answer };
        let reply = Reply {
            text: "Codex is waiting for approval: run `rm -rf <dir>`".into(),
            buttons: vec![
                button("Approve", decide(Answer::Approve(Scope::Once))),
                button("Always", decide(Answer::Approve(Scope::Always))),
                button("Deny", decide(Answer::Deny)),
            ],
            ..Reply::default()
        };
        let r = render(&reply);
        assert_eq!(r.parts, vec!["Codex is waiting for approval: run <code>rm -rf &lt;dir&gt;</code>".to_owned()]);
        assert_eq!(r.thread_id, None);
        let k = r.keyboard.expect("keyboard");
        assert_eq!(callback_data(&k), vec![vec!["a:42:n0nce:o", "a:42:n0nce:a", "a:42:n0nce:d"]]);
        assert_eq!(k.inline_keyboard[0][0].text, "Approve");
    }

    #[test]
    fn choices_and_stop_go_one_per_row() {
        let reading = |intent| taskgate_core::classify::Decision {
            intent,
            task: Some("3".into()),
            agent: None,
            role: None,
            approval: None,
            scope: None,
            confidence: 0.5,
            reason: "r".into(),
        };
        let reply = Reply {
            text: "Which one?".into(),
            buttons: vec![
                button("Continue 'notes'", Action::Choose { choice: 0, reading: reading(Intent::Continue) }),
                button("New task", Action::Choose { choice: 1, reading: reading(Intent::NewTask) }),
                button("Stop", Action::Stop { task: 3 }),
            ],
            thread_id: "17".into(),
            ..Reply::default()
        };
        let r = render(&reply);
        assert_eq!(r.thread_id, Some(17));
        assert_eq!(callback_data(&r.keyboard.unwrap()), vec![vec!["c:0"], vec!["c:1"], vec!["s:3"]]);
    }

    #[test]
    fn plain_text_has_no_keyboard_and_long_text_is_split() {
        let long = vec!["line of text"; 1000].join("\n");
        let r = render(&Reply::text(long));
        assert!(r.keyboard.is_none());
        assert!(r.parts.len() > 1);
        assert!(r.parts.iter().all(|p| p.encode_utf16().count() <= html::MAX_MESSAGE));
        assert!(render(&Reply::text("")).parts.is_empty());
        assert!(render(&Reply::from_json(json!({}))).parts.is_empty(), "a malformed payload renders nothing");
    }

    #[test]
    fn the_token_never_appears_in_a_description() {
        let token = "123456:SECRET-token";
        assert_eq!(
            redact(&format!("error sending request for url (http://x/bot{token}/SendMessage)"), token),
            "error sending request for url (http://x/bot<token>/SendMessage)"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(8));
        assert_eq!(backoff(100), Duration::from_secs(300));
    }
}
