//! The outbox, sent to Telegram: each chat's messages in order (the store hands out only a
//! chat's oldest unsent one), as HTML split at the length limit, approval requests with their
//! buttons; `retry_after` honoured through the row's next attempt time. Live status updates
//! (payload `live`) edit the message their key sent first (see [`super::live`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use taskgate_core::model::{Channel, Id, Outbound};
use taskgate_core::reply::{Reply, ReplyKind};
use taskgate_core::store::{Store, StoreResult};
use teloxide::ApiError;
use teloxide::RequestError;
use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup, MessageId, ParseMode, ThreadId};
use tokio::sync::Notify;

use super::callback::ButtonData;
use super::html;
use super::live::{self, LiveMessages, Pacer};
use crate::outbox::{self, Settle};

#[derive(Debug, Clone)]
pub struct OutboxOptions {
    /// How often the outbox is read when nothing wakes the sender.
    pub poll_interval: Duration,
    /// At least this long between two messages to one chat (Telegram: about one per second).
    pub chat_interval: Duration,
    /// At least this long between two edits of live status messages in one chat.
    pub edit_interval: Duration,
    /// A chat's newest rows read to coalesce live updates and find the message they edit.
    pub live_window: u64,
    /// Due rows read per pass.
    pub batch: u64,
    /// A row that failed this often for a reason other than rate limiting is dropped.
    pub max_attempts: i32,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(250),
            chat_interval: Duration::from_secs(1),
            edit_interval: Duration::from_secs(1),
            live_window: 200,
            // Wide: the store hands out every channel's heads, and rows for other channels wait here.
            batch: 500,
            max_attempts: 8,
        }
    }
}

/// What became of one outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent {
        message_id: i32,
    },
    /// Rate limited or failed for now; tried again at the row's next attempt time.
    Retry {
        after: Duration,
        error: String,
    },
    /// Cannot ever be sent (bad chat id, bot blocked, chat gone): marked done without a message.
    Dropped {
        error: String,
    },
    /// Not this chat's turn yet (pacing).
    Later,
}

pub struct OutboxSender {
    bot: Bot,
    store: Arc<dyn Store>,
    options: OutboxOptions,
    pacer: Pacer,
    live: LiveMessages<i32>,
    /// Parts of a split message already sent: a retry continues after them. In memory only:
    /// after a restart a split message may repeat its first parts, never lose its last.
    progress: HashMap<Id, (usize, i32)>,
}

impl OutboxSender {
    pub fn new(bot: Bot, store: Arc<dyn Store>, options: OutboxOptions) -> Self {
        let pacer = Pacer::new(options.chat_interval, options.edit_interval);
        Self { bot, store, options, pacer, live: LiveMessages::default(), progress: HashMap::new() }
    }

    /// Sends what is due, forever; `wake` shortens the wait after an enqueue.
    pub async fn run(mut self, wake: Arc<Notify>) {
        loop {
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "telegram outbox: reading the outbox failed");
            }
            let _ = tokio::time::timeout(self.options.poll_interval, wake.notified()).await;
        }
    }

    /// One pass over the due rows. Returns what happened to each Telegram row it looked at.
    pub async fn pass(&mut self) -> StoreResult<Vec<(Id, Delivery)>> {
        let due = self.store.outbox_due(Channel::Telegram, Utc::now(), self.options.batch).await?;
        let mut done = Vec::new();
        for row in due {
            let (delivery, covered) = match live::key(&row.payload) {
                Some(key) => {
                    let key = key.to_owned();
                    self.deliver_live(&row, &key).await
                }
                None => (self.deliver(&row).await, Vec::new()),
            };
            let sent_id = match &delivery {
                Delivery::Sent { message_id } => message_id.to_string(),
                _ => String::new(),
            };
            let result = match &delivery {
                Delivery::Sent { .. } => Settle::Sent { message_id: &sent_id, covered: &covered },
                Delivery::Retry { after, error } => {
                    Settle::Retry { after: *after, error, rate_limited: error.starts_with("rate limited") }
                }
                Delivery::Dropped { error } => Settle::Dropped { error },
                Delivery::Later => Settle::Later,
            };
            if outbox::settle(self.store.as_ref(), &row, result, self.options.max_attempts).await? {
                self.progress.remove(&row.id);
            }
            done.push((row.id, delivery));
        }
        Ok(done)
    }

    async fn deliver(&mut self, row: &Outbound) -> Delivery {
        let Ok(chat) = row.chat_id.parse::<i64>() else {
            return Delivery::Dropped { error: format!("not a Telegram chat id: {}", row.chat_id) };
        };
        if !self.pacer.may_send(&row.chat_id, Instant::now()) {
            return Delivery::Later;
        }
        let message = render(&row.payload);
        if message.parts.is_empty() {
            return Delivery::Dropped { error: "empty message".into() };
        }
        let (mut next, mut last_id) = self.progress.get(&row.id).copied().unwrap_or((0, 0));
        while next < message.parts.len() {
            let is_last = next + 1 == message.parts.len();
            let mut request =
                self.bot.send_message(ChatId(chat), message.parts[next].clone()).parse_mode(ParseMode::Html);
            if let Some(thread) = message.thread_id {
                request = request.message_thread_id(ThreadId(MessageId(thread)));
            }
            if is_last && let Some(keyboard) = message.keyboard.clone() {
                request = request.reply_markup(keyboard);
            }
            let result = request.await;
            self.pacer.sent(&row.chat_id, Instant::now());
            match result {
                Ok(sent) => {
                    last_id = sent.id.0;
                    next += 1;
                    self.progress.insert(row.id, (next, last_id));
                }
                Err(e) => return failure(&e, row.attempts, self.bot.token()),
            }
        }
        Delivery::Sent { message_id: last_id }
    }

    /// A live status update: the newest of the updates queued behind it (same key) is shown,
    /// by editing the key's message, or by sending it when the key has none yet in this chat.
    /// Returns the rows besides `row` that the delivery covers.
    async fn deliver_live(&mut self, row: &Outbound, key: &str) -> (Delivery, Vec<Id>) {
        let Ok(chat) = row.chat_id.parse::<i64>() else {
            return (Delivery::Dropped { error: format!("not a Telegram chat id: {}", row.chat_id) }, Vec::new());
        };
        let known = self.live.get(&row.chat_id, key);
        // Paced before reading the store: a throttled chat costs no query per pass.
        let now = Instant::now();
        let paced = match known {
            Some(_) => self.pacer.may_edit(&row.chat_id, now),
            None => self.pacer.may_send(&row.chat_id, now),
        };
        if !paced {
            return (Delivery::Later, Vec::new());
        }
        let recent = match self.store.outbox_recent(Channel::Telegram, &row.chat_id, self.options.live_window).await {
            Ok(recent) => recent,
            Err(e) => {
                // Without the queue, this row alone; without the history, the memory alone.
                tracing::warn!(outbox = row.id, error = %e, "telegram outbox: reading a chat's recent messages failed");
                Vec::new()
            }
        };
        let run = live::coalesced(row, &recent);
        let newest = run.last().copied().unwrap_or(row);
        let covered: Vec<Id> = run.iter().map(|r| r.id).collect();
        let existing = self.live.message(&row.chat_id, key, live::message_of(key, &recent));
        let rendered = render(&newest.payload);
        // Status lines are one line; a longer one shows its first part.
        let Some(text) = rendered.parts.first().cloned() else {
            return (Delivery::Dropped { error: "empty message".into() }, Vec::new());
        };
        if let Some(message_id) = existing {
            if known.is_none() && !self.pacer.may_edit(&row.chat_id, now) {
                return (Delivery::Later, Vec::new());
            }
            // An edit without a keyboard removes the buttons (a decided approval card).
            let mut edit = self
                .bot
                .edit_message_text(ChatId(chat), MessageId(message_id), text.clone())
                .parse_mode(ParseMode::Html);
            if let Some(keyboard) = rendered.keyboard.clone() {
                edit = edit.reply_markup(keyboard);
            }
            let result = edit.await;
            self.pacer.edited(&row.chat_id, Instant::now());
            match result {
                // Identical text (a repeated status) is what the message already shows.
                Ok(_) | Err(RequestError::Api(ApiError::MessageNotModified)) => {
                    self.live.set(&row.chat_id, key, message_id);
                    return (Delivery::Sent { message_id }, covered);
                }
                // Deleted, or too old to edit: the status goes on in a new message.
                Err(RequestError::Api(ApiError::MessageToEditNotFound | ApiError::MessageCantBeEdited)) => {
                    self.live.forget(&row.chat_id, key, message_id);
                }
                Err(e) => return (failure(&e, row.attempts, self.bot.token()), Vec::new()),
            }
            if !self.pacer.may_send(&row.chat_id, Instant::now()) {
                return (Delivery::Later, Vec::new());
            }
        }
        let thread_id = rendered.thread_id;
        // A status line is not news: it arrives silently; an approval card notifies.
        let silent = newest.payload.kind == ReplyKind::Status;
        let mut request =
            self.bot.send_message(ChatId(chat), text).parse_mode(ParseMode::Html).disable_notification(silent);
        if let Some(thread) = thread_id {
            request = request.message_thread_id(ThreadId(MessageId(thread)));
        }
        if let Some(keyboard) = rendered.keyboard {
            request = request.reply_markup(keyboard);
        }
        let result = request.await;
        self.pacer.sent(&row.chat_id, Instant::now());
        match result {
            Ok(sent) => {
                self.live.set(&row.chat_id, key, sent.id.0);
                (Delivery::Sent { message_id: sent.id.0 }, covered)
            }
            Err(e) => (failure(&e, row.attempts, self.bot.token()), Vec::new()),
        }
    }
}

fn failure(e: &RequestError, attempts: i32, token: &str) -> Delivery {
    match e {
        RequestError::RetryAfter(secs) => {
            Delivery::Retry { after: secs.duration(), error: format!("rate limited: retry after {}s", secs.seconds()) }
        }
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
        | RequestError::MigrateToChatId(_) => Delivery::Dropped { error: describe(e, token) },
        // Bad requests and network trouble: back off, then give up after `max_attempts`.
        _ => Delivery::Retry { after: backoff(attempts), error: describe(e, token) },
    }
}

/// 2, 4, 8 … seconds, at most five minutes.
fn backoff(attempts: i32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempts.clamp(0, 16) as u32 + 1).min(300))
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
    let mut parts = html::chunks(&text, html::MAX_MESSAGE);
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
