//! The outbox, sent to Feishu: each chat's messages in order (the store hands out only a
//! chat's oldest unsent one), as text split under the size limit, questions with buttons as
//! interactive cards; rate limits honoured through the row's next attempt time; every send
//! carries a `uuid` derived from the row, so a retry never posts a part twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use taskgate_core::model::{Channel, Id, Outbound};
use taskgate_core::store::{Store, StoreResult};
use tokio::sync::Notify;

use super::api::{ApiError, FeishuApi};
use super::card;

/// A text message's content, JSON-encoded, stays under this (Feishu: 150 KB per request).
pub const MAX_TEXT_BYTES: usize = 100 * 1024;
/// A card's text, JSON-encoded, stays under this (Feishu: 30 KB per card, with its buttons).
pub const MAX_CARD_TEXT_BYTES: usize = 20 * 1024;

#[derive(Debug, Clone)]
pub struct OutboxOptions {
    pub poll_interval: Duration,
    /// At least this long between two messages to one chat (Feishu: 5 per second per chat).
    pub chat_interval: Duration,
    pub batch: u64,
    /// A row that failed this often for a reason other than rate limiting is dropped.
    pub max_attempts: i32,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(250),
            chat_interval: Duration::from_millis(250),
            batch: 500,
            max_attempts: 8,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent { message_id: String },
    Retry { after: Duration, error: String, rate_limited: bool },
    Dropped { error: String },
    Later,
}

/// One message of a rendered payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub msg_type: &'static str,
    /// The `content` object (sent JSON-encoded as a string).
    pub content: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub parts: Vec<Part>,
    /// The first part answers this message (a refusal quotes what it refuses).
    pub reply_to: Option<String>,
}

/// `{text, buttons, options, reply_to?}` (what the engine and the channel enqueue) → messages.
/// Buttons make the last part a card; earlier parts, and any payload without buttons, are
/// text.
pub fn render(payload: &Value) -> Rendered {
    let text = payload.get("text").and_then(Value::as_str).unwrap_or_default();
    let reply_to = payload.get("reply_to").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let buttons = card::buttons(payload);
    let mut chunks = split(text, MAX_TEXT_BYTES);
    let mut parts: Vec<Part> = Vec::new();
    if buttons.is_empty() {
        parts.extend(chunks.into_iter().map(text_part));
        return Rendered { parts, reply_to };
    }
    // The card carries the tail of the text, small enough for a card.
    let last = chunks.pop().unwrap_or_default();
    let mut tail = split(&last, MAX_CARD_TEXT_BYTES);
    let card_text = tail.pop().unwrap_or_else(|| "…".into());
    chunks.extend(tail);
    parts.extend(chunks.into_iter().map(text_part));
    parts.push(Part { msg_type: "interactive", content: card::with_buttons(&card_text, &buttons) });
    Rendered { parts, reply_to }
}

fn text_part(text: String) -> Part {
    Part { msg_type: "text", content: json!({"text": text}) }
}

/// Bytes `text` takes inside a JSON string.
fn encoded_len(text: &str) -> usize {
    serde_json::to_string(text).map_or(text.len() * 6, |s| s.len())
}

/// `text` in pieces whose JSON encoding stays within `limit` bytes: at line breaks where it
/// can, inside a line (at a character boundary) where a line alone is too long.
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let text = text.trim_end();
    if text.trim().is_empty() {
        return Vec::new();
    }
    let limit = limit.max(16);
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.split('\n') {
        let candidate_len = encoded_len(&current) + encoded_len(line) - 2 + usize::from(!current.is_empty()) * 2;
        if !current.is_empty() && candidate_len > limit {
            out.push(std::mem::take(&mut current));
        }
        if encoded_len(line) > limit {
            for c in line.chars() {
                let mut buf = [0u8; 4];
                if encoded_len(&current) + encoded_len(c.encode_utf8(&mut buf)) - 2 > limit {
                    out.push(std::mem::take(&mut current));
                }
                current.push(c);
            }
            continue;
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(line);
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// The idempotency key of part `part` of an outbox row: a UUID derived from the row's id and
/// creation time (a rebuilt database reusing ids does not collide with old keys).
pub fn send_uuid(row: &Outbound, part: usize) -> String {
    let digest = Sha256::digest(format!("taskgate-feishu:{}:{}:{part}", row.id, row.created_at.timestamp_micros()));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Uuid::new_v8(bytes).to_string()
}

pub struct OutboxSender {
    api: Arc<FeishuApi>,
    store: Arc<dyn Store>,
    options: OutboxOptions,
    last_sent: HashMap<String, Instant>,
    /// Parts of a split message already sent: a retry continues after them (and the uuid of
    /// each part makes a repeat after a restart harmless).
    progress: HashMap<Id, (usize, String)>,
}

impl OutboxSender {
    pub fn new(api: Arc<FeishuApi>, store: Arc<dyn Store>, options: OutboxOptions) -> Self {
        Self { api, store, options, last_sent: HashMap::new(), progress: HashMap::new() }
    }

    pub async fn run(mut self, wake: Arc<Notify>) {
        loop {
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "feishu outbox: reading the outbox failed");
            }
            let _ = tokio::time::timeout(self.options.poll_interval, wake.notified()).await;
        }
    }

    pub async fn pass(&mut self) -> StoreResult<Vec<(Id, Delivery)>> {
        let due = self.store.outbox_due(Channel::Feishu, Utc::now(), self.options.batch).await?;
        let mut done = Vec::new();
        for row in due.into_iter().filter(|r| r.channel == Channel::Feishu) {
            let delivery = self.deliver(&row).await;
            match &delivery {
                Delivery::Sent { message_id } => {
                    self.progress.remove(&row.id);
                    self.store.outbox_sent(row.id, Some(message_id)).await?;
                }
                Delivery::Retry { after, error, rate_limited } => {
                    if row.attempts + 1 >= self.options.max_attempts && !rate_limited {
                        tracing::warn!(outbox = row.id, chat = %row.chat_id, %error, "feishu outbox: giving up on a message");
                        self.progress.remove(&row.id);
                        self.store.outbox_sent(row.id, None).await?;
                    } else {
                        tracing::info!(outbox = row.id, chat = %row.chat_id, %error, retry_in = ?after, "feishu outbox: will retry");
                        let next =
                            Utc::now() + chrono::Duration::from_std(*after).unwrap_or(chrono::Duration::seconds(60));
                        self.store.outbox_retry(row.id, next, error).await?;
                    }
                }
                Delivery::Dropped { error } => {
                    tracing::warn!(outbox = row.id, chat = %row.chat_id, %error, "feishu outbox: message dropped");
                    self.progress.remove(&row.id);
                    self.store.outbox_sent(row.id, None).await?;
                }
                Delivery::Later => {}
            }
            done.push((row.id, delivery));
        }
        Ok(done)
    }

    async fn deliver(&mut self, row: &Outbound) -> Delivery {
        if let Some(last) = self.last_sent.get(&row.chat_id)
            && last.elapsed() < self.options.chat_interval
        {
            return Delivery::Later;
        }
        let rendered = render(&row.payload);
        if rendered.parts.is_empty() {
            return Delivery::Dropped { error: "empty message".into() };
        }
        let (mut next, mut last_id) = self.progress.get(&row.id).cloned().unwrap_or_default();
        while next < rendered.parts.len() {
            let part = &rendered.parts[next];
            let uuid = send_uuid(row, next);
            let result = match (&rendered.reply_to, next) {
                (Some(to), 0) => self.api.reply(to, part.msg_type, &part.content, &uuid).await,
                _ => self.api.send(&row.chat_id, part.msg_type, &part.content, &uuid).await,
            };
            self.last_sent.insert(row.chat_id.clone(), Instant::now());
            match result {
                Ok(sent) => {
                    last_id = sent.message_id;
                    next += 1;
                    self.progress.insert(row.id, (next, last_id.clone()));
                }
                Err(ApiError::RateLimited { after }) => {
                    return Delivery::Retry {
                        after,
                        error: format!("rate limited: retry after {}s", after.as_secs()),
                        rate_limited: true,
                    };
                }
                Err(e) if e.is_permanent() => return Delivery::Dropped { error: e.to_string() },
                Err(e) => {
                    return Delivery::Retry { after: backoff(row.attempts), error: e.to_string(), rate_limited: false };
                }
            }
        }
        Delivery::Sent { message_id: last_id }
    }
}

/// 2, 4, 8 … seconds, at most five minutes.
fn backoff(attempts: i32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempts.clamp(0, 16) as u32 + 1).min(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_one_text_message() {
        let r = render(&json!({"text": "Codex finished: ok", "buttons": [], "options": [], "thread_id": ""}));
        assert_eq!(r.parts, vec![Part { msg_type: "text", content: json!({"text": "Codex finished: ok"}) }]);
        assert_eq!(r.reply_to, None);
        assert!(render(&json!({})).parts.is_empty(), "a malformed payload renders nothing rather than failing");
        assert_eq!(render(&json!({"text": "no", "reply_to": "om_9"})).reply_to.as_deref(), Some("om_9"));
    }

    #[test]
    fn buttons_make_the_last_part_a_card() {
        let long = vec!["a line of agent output with \"quotes\" and ünïcode"; 5000].join("\n");
        let payload = json!({"text": long, "buttons": [{"label": "Approve", "choice": 0}],
            "options": [{"intent": "approve", "approval": "5", "scope": "once"}]});
        let r = render(&payload);
        assert!(r.parts.len() > 2);
        let (last, rest) = r.parts.split_last().unwrap();
        assert_eq!(last.msg_type, "interactive");
        assert!(last.content.to_string().len() < 30 * 1024, "a card stays under 30 KB");
        assert!(rest.iter().all(|p| p.msg_type == "text" && p.content.to_string().len() < 150 * 1024));
        let rejoined: Vec<String> = rest
            .iter()
            .map(|p| p.content["text"].as_str().unwrap().to_owned())
            .chain(card::shown_text(&last.content))
            .collect();
        assert_eq!(rejoined.join("\n"), long, "nothing lost in the split");
    }

    #[test]
    fn split_respects_the_encoded_limit_even_inside_a_line() {
        let line = "\u{1}\"é".repeat(1000);
        let parts = split(&line, 100);
        assert!(parts.iter().all(|p| encoded_len(p) <= 100), "{:?}", parts.iter().map(|p| encoded_len(p)).max());
        assert_eq!(parts.concat(), line);
        assert_eq!(split("a\nb", 100), vec!["a\nb".to_owned()]);
        assert!(split("  \n ", 100).is_empty());
    }

    #[test]
    fn the_uuid_is_stable_per_row_and_part() {
        let row = Outbound {
            id: 7,
            channel: Channel::Feishu,
            chat_id: "oc_1".into(),
            task_id: None,
            approval_id: None,
            payload: json!({}),
            attempts: 0,
            next_attempt_at: Utc::now(),
            last_error: None,
            external_message_id: None,
            sent_at: None,
            created_at: Utc::now(),
        };
        assert_eq!(send_uuid(&row, 0), send_uuid(&Outbound { attempts: 3, ..row.clone() }, 0));
        assert_ne!(send_uuid(&row, 0), send_uuid(&row, 1));
        assert_ne!(send_uuid(&row, 0), send_uuid(&Outbound { id: 8, ..row.clone() }, 0));
        assert_eq!(send_uuid(&row, 0).len(), 36);
    }
}
