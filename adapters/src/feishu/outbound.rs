//! The outbox, sent to Feishu: each chat's messages in order (the store hands out only a
//! chat's oldest unsent one), split under the size limits: one line as `text`, several as a
//! `post` (one paragraph per line), questions with buttons as interactive cards; rate limits
//! honoured through the row's next attempt time; every send carries a `uuid` derived from the
//! row, so a retry never posts a part twice. Live status updates (payload `live`) become one
//! shared card per key, updated in place: a turn's status as a CardKit streaming card
//! ([`cardkit`]), other live cards (and any where CardKit refuses) PATCHed. This is the Feishu
//! [`Transport`] of the shared sender loop ([`crate::outbox::Sender`]), paced by Feishu's
//! limits: 5 messages a second per chat (shared by the bots in a group), 5 updates a second per
//! message, 50 requests a second per app.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use taskgate_core::model::{Channel, Id, Outbound};
use taskgate_core::reply::{Reply, ReplyKind};
use taskgate_core::store::Store;

use super::api::{ApiError, FeishuApi};
use super::card;
use super::cardkit::{self, Step, Stream};
use super::token::INVALID_TOKEN_CODES;
use crate::outbox::{EditFailure, Failure, Sender, SenderOptions, Transport};

/// A text message's content, JSON-encoded, stays under this (Feishu: 150 KB per request).
pub const MAX_TEXT_BYTES: usize = 100 * 1024;
/// A card's text, JSON-encoded, stays under this (Feishu: 30 KB per card, with its buttons).
pub const MAX_CARD_TEXT_BYTES: usize = 20 * 1024;
/// A post's `content`, as it travels (a JSON string inside the request body), stays under
/// this: Feishu refuses post and card requests over 30 KB, and the body has a few more fields.
pub const MAX_POST_BYTES: usize = 24 * 1024;
/// A post carries its paragraphs once per locale: a client shows the one matching its
/// language, so both common ones are given the same text.
const POST_LOCALES: [&str; 2] = ["zh_cn", "en_us"];

#[derive(Debug, Clone)]
pub struct OutboxOptions {
    pub poll_interval: Duration,
    /// At least this long between two messages to one chat (Feishu: 5 per second per chat).
    pub chat_interval: Duration,
    /// At least this long between two updates of live status cards in one chat (Feishu: 5
    /// updates a second per message; a chat's cards share the budget here, to stay clear).
    pub edit_interval: Duration,
    /// At least this long between two requests of the app (Feishu: 50 a second).
    pub bot_interval: Duration,
    /// A chat's newest rows read to coalesce live updates and find the card they update.
    pub live_window: u64,
    pub batch: u64,
    /// A row Feishu refused this often (not a rate limit or an outage, which are waited out
    /// however long they last) is dropped and counted.
    pub max_attempts: i32,
    /// `feishu.stream`: a turn's live status is a CardKit streaming card (else, and where
    /// CardKit refuses, a card message PATCHed in place).
    pub stream: bool,
    /// A streaming card older than this moves to a new card entity (Feishu ends streaming
    /// after 10 minutes).
    pub rotate_after: Duration,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(250),
            chat_interval: Duration::from_millis(250),
            edit_interval: Duration::from_millis(250),
            bot_interval: Duration::from_millis(20),
            live_window: 200,
            batch: 500,
            max_attempts: 8,
            stream: true,
            rotate_after: cardkit::ROTATE_AFTER,
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
            // The per-chat interval already keeps a group within its limit.
            group: None,
            live_window: o.live_window,
            batch: o.batch,
            max_attempts: o.max_attempts,
        }
    }
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

/// A reply as Feishu messages. Buttons make the last part a card; earlier parts, and any
/// reply without buttons, are text or posts (see [`message_parts`]).
pub fn render(reply: &Reply) -> Rendered {
    let mut text = reply.text.clone();
    if let Some(detail) = reply.detail.as_deref().filter(|d| !d.trim().is_empty()) {
        text.push_str("\n\n");
        text.push_str(detail);
    }
    let text = text.as_str();
    let reply_to = reply.reply_to.clone().filter(|s| !s.is_empty());
    let buttons = card::buttons(reply);
    if buttons.is_empty() {
        return Rendered { parts: message_parts(text), reply_to };
    }
    // The card carries the tail of the text, small enough for a card.
    let mut chunks = split(text, MAX_TEXT_BYTES);
    let last = chunks.pop().unwrap_or_default();
    let mut tail = split(&last, MAX_CARD_TEXT_BYTES);
    let card_text = tail.pop().unwrap_or_else(|| "…".into());
    chunks.extend(tail);
    let mut parts: Vec<Part> = chunks.iter().flat_map(|c| message_parts(c)).collect();
    parts.push(Part { msg_type: "interactive", content: card::with_buttons(&card_text, &buttons) });
    Rendered { parts, reply_to }
}

/// Plain text as messages: a single line as `text` (up to the text limit); several lines as
/// `post`s, which Feishu shows as paragraphs, each post within the smaller post limit.
pub fn message_parts(text: &str) -> Vec<Part> {
    if !text.trim_end().contains('\n') {
        return split(text, MAX_TEXT_BYTES).into_iter().map(text_part).collect();
    }
    post_chunks(text)
        .into_iter()
        .map(|chunk| if chunk.contains('\n') { post_part(&chunk) } else { text_part(chunk) })
        .collect()
}

fn text_part(text: String) -> Part {
    Part { msg_type: "text", content: json!({"text": text}) }
}

fn post_part(text: &str) -> Part {
    Part { msg_type: "post", content: post_content(text) }
}

/// One paragraph of a post: a line (a carriage return of a CRLF dropped).
fn paragraph(line: &str) -> Value {
    json!([{"tag": "text", "text": line.strip_suffix('\r').unwrap_or(line)}])
}

/// A post showing `text`, one paragraph per line, the same in every locale of [`POST_LOCALES`].
pub fn post_content(text: &str) -> Value {
    let body = json!({"title": "", "content": text.split('\n').map(paragraph).collect::<Vec<_>>()});
    Value::Object(POST_LOCALES.iter().map(|l| ((*l).to_owned(), body.clone())).collect())
}

/// Bytes a post's `content` takes in the request body: it is JSON sent as a JSON string, so
/// it is encoded twice.
fn post_len(content: &Value) -> usize {
    encoded_len(&content.to_string())
}

/// `text` in pieces that each fit one post ([`MAX_POST_BYTES`]), at line breaks. A line too
/// long for a post on its own becomes pieces of its own (sent as text).
pub fn post_chunks(text: &str) -> Vec<String> {
    let text = text.trim_end();
    if text.trim().is_empty() {
        return Vec::new();
    }
    let budget = MAX_POST_BYTES.saturating_sub(post_len(&post_content("")));
    let mut out = Vec::new();
    let mut current = String::new();
    let mut lines = 0usize;
    let mut used = 0usize;
    // Blank runs (only empty lines) between pieces are not worth a message.
    fn flush(current: &mut String, lines: &mut usize, used: &mut usize, out: &mut Vec<String>) {
        let chunk = std::mem::take(current);
        if !chunk.trim().is_empty() {
            out.push(chunk);
        }
        (*lines, *used) = (0, 0);
    }
    for line in text.split('\n') {
        // Each paragraph once per locale, with its separating comma (escaped or not, one byte).
        let cost = (encoded_len(&paragraph(line).to_string()) - 2 + 1) * POST_LOCALES.len();
        if cost > budget {
            flush(&mut current, &mut lines, &mut used, &mut out);
            // Encoding twice at most doubles a piece, once per locale.
            out.extend(split(line, (budget / (2 * POST_LOCALES.len())).saturating_sub(64)));
            continue;
        }
        if lines > 0 && used + cost > budget {
            flush(&mut current, &mut lines, &mut used, &mut out);
        }
        if lines > 0 {
            current.push('\n');
        }
        current.push_str(line);
        lines += 1;
        used += cost;
    }
    flush(&mut current, &mut lines, &mut used, &mut out);
    out
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
    // Lengths without the quotes, kept as a running sum: JSON escapes each character on its
    // own, so they add up (measuring the whole piece per line or character is quadratic).
    let budget = limit.max(16) - 2;
    let mut out = Vec::new();
    let mut current = String::new();
    let mut used = 0usize;
    for line in text.split('\n') {
        let line_len = encoded_len(line) - 2;
        if !current.is_empty() && used + 2 + line_len > budget {
            out.push(std::mem::take(&mut current));
            used = 0;
        }
        if line_len > budget {
            for c in line.chars() {
                let mut buf = [0u8; 4];
                let c_len = encoded_len(c.encode_utf8(&mut buf)) - 2;
                if used + c_len > budget {
                    out.push(std::mem::take(&mut current));
                    used = 0;
                }
                current.push(c);
                used += c_len;
            }
            continue;
        }
        if !current.is_empty() {
            current.push('\n');
            used += 2;
        }
        current.push_str(line);
        used += line_len;
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

/// The Feishu outbox sender.
pub type OutboxSender = Sender<FeishuTransport>;

/// The sender loop over Feishu.
pub fn sender(api: Arc<FeishuApi>, store: Arc<dyn Store>, options: OutboxOptions) -> OutboxSender {
    let transport =
        FeishuTransport { stream: options.stream, rotate_after: options.rotate_after, ..FeishuTransport::new(api) };
    Sender::new(transport, store, options.into())
}

/// Sending, replying and updating cards through the open platform's API.
pub struct FeishuTransport {
    api: Arc<FeishuApi>,
    /// Parts of a split message already sent: a retry continues after them (and the uuid of
    /// each part makes a repeat after a restart harmless).
    progress: HashMap<Id, (usize, String)>,
    /// Turn statuses go on CardKit streaming cards.
    stream: bool,
    rotate_after: Duration,
    /// The card entity created for a live row whose message is not sent yet: a retry sends
    /// the same card rather than creating another.
    created: HashMap<Id, String>,
    /// Live messages showing a card entity, by message id.
    streams: HashMap<String, Stream>,
    /// CardKit refused once already (said in the log once, not per turn).
    refused: bool,
}

impl FeishuTransport {
    pub fn new(api: Arc<FeishuApi>) -> Self {
        Self {
            api,
            progress: HashMap::new(),
            stream: true,
            rotate_after: cardkit::ROTATE_AFTER,
            created: HashMap::new(),
            streams: HashMap::new(),
            refused: false,
        }
    }

    /// A CardKit call was refused: this live message goes on as a card edited by message PATCH.
    fn fall_back(&mut self, e: &ApiError) {
        if !std::mem::replace(&mut self.refused, true) {
            tracing::warn!(error = %e, "feishu: CardKit refused a streaming card; live status falls back to message edits (cardkit:card:write permission?)");
        } else {
            tracing::debug!(error = %e, "feishu: CardKit refused; message edit instead");
        }
    }

    /// Sends a turn's live status as a streaming card entity. `Ok(None)`: CardKit refused, send
    /// the plain card instead.
    async fn send_streaming(&mut self, row: &Outbound, reply: &Reply) -> Result<Option<String>, Failure> {
        let Some(text) = card_text(reply) else { return Ok(None) };
        let buttons = card::buttons(reply);
        let card_id = match self.created.get(&row.id) {
            Some(id) => id.clone(),
            None => match self.api.create_card(&card::streaming(&text, &buttons, true)).await {
                Ok(id) => {
                    self.created.insert(row.id, id.clone());
                    id
                }
                Err(e) if cannot_update(&e) => {
                    self.fall_back(&e);
                    return Ok(None);
                }
                Err(e) => return Err(failure(e)),
            },
        };
        // The head row's uuid: a retry after a lost answer finds the message already sent.
        let sent = self.api.send(&row.chat_id, "interactive", &card::entity(&card_id), &send_uuid(row, 0)).await;
        let message_id = sent.map_err(failure)?.message_id;
        self.created.remove(&row.id);
        if self.streams.len() > 10_000 {
            // Forgotten cards are edited by message PATCH: slower, never wrong.
            self.streams.clear();
        }
        self.streams.insert(message_id.clone(), Stream::new(card_id, &text, &buttons, Instant::now()));
        Ok(Some(message_id))
    }

    /// Shows `reply` on the card entity behind `message`. `Ok(false)`: CardKit refused; the
    /// message is to be edited by PATCH from now on.
    async fn edit_streaming(&mut self, message: &str, reply: &Reply) -> Result<bool, Failure> {
        let Some(mut stream) = self.streams.remove(message) else { return Ok(false) };
        let text = card_text(reply).unwrap_or_default();
        let buttons = card::buttons(reply);
        let result = self.stream_to(message, &mut stream, &text, &buttons).await;
        match result {
            Ok(()) => {
                self.streams.insert(message.to_owned(), stream);
                Ok(true)
            }
            Err(e) if cannot_update(&e) => {
                self.fall_back(&e);
                Ok(false)
            }
            Err(e) => {
                // What was done is remembered: the retry goes on from there.
                self.streams.insert(message.to_owned(), stream);
                Err(failure(e))
            }
        }
    }

    /// The requests that bring `stream`'s card to `text` and `buttons`, rotating it to a new
    /// card entity (the message PATCHed to show it) when its streaming is about to run out.
    async fn stream_to(
        &self,
        message: &str,
        stream: &mut Stream,
        text: &str,
        buttons: &[card::Button],
    ) -> Result<(), ApiError> {
        let now = Instant::now();
        if stream.due_for_rotation(buttons, now, self.rotate_after) {
            let card_id = self.api.create_card(&card::streaming(text, buttons, true)).await?;
            self.api.update_card(message, &card::entity(&card_id)).await?;
            let mut old = std::mem::replace(stream, Stream::new(card_id, text, buttons, now));
            let sequence = old.next_sequence();
            if let Err(e) = self.api.stop_streaming(&old.card_id, sequence).await {
                // The platform ends it within minutes anyway.
                tracing::debug!(error = %e, card = %old.card_id, "feishu: a rotated card's streaming was not turned off");
            }
            return Ok(());
        }
        while let Some(step) = stream.step(text, buttons) {
            let sequence = stream.next_sequence();
            match &step {
                Step::Text(t) => self.api.stream_text(&stream.card_id, card::STATUS_ELEMENT, t, sequence).await?,
                Step::Replace(c) => self.api.replace_card(&stream.card_id, c, sequence).await?,
                Step::StopStreaming => self.api.stop_streaming(&stream.card_id, sequence).await?,
            }
            stream.done(&step, text, buttons);
        }
        Ok(())
    }
}

/// A turn's status line (`turn:<id>`): the live messages that stream on a card entity. Approval
/// cards and their decided form stay card messages (their press answers redraw them).
fn streams(reply: &Reply) -> bool {
    reply.kind == ReplyKind::Status
        && reply.live.as_deref().is_some_and(|k| k.starts_with("turn:") && !k.ends_with(":draft"))
}

#[async_trait]
impl Transport for FeishuTransport {
    type MessageId = String;
    const CHANNEL: Channel = Channel::Feishu;

    async fn send(&mut self, row: &Outbound) -> Result<String, Failure> {
        let rendered = render(&row.payload);
        if rendered.parts.is_empty() {
            return Err(Failure::Undeliverable { error: "empty message".into() });
        }
        let (mut next, mut last_id) = self.progress.get(&row.id).cloned().unwrap_or_default();
        while next < rendered.parts.len() {
            let part = &rendered.parts[next];
            let uuid = send_uuid(row, next);
            let result = match (&rendered.reply_to, next) {
                (Some(to), 0) => self.api.reply(to, part.msg_type, &part.content, &uuid).await,
                _ => self.api.send(&row.chat_id, part.msg_type, &part.content, &uuid).await,
            };
            match result {
                Ok(sent) => {
                    last_id = sent.message_id;
                    next += 1;
                    self.progress.insert(row.id, (next, last_id.clone()));
                }
                Err(e) => return Err(failure(e)),
            }
        }
        Ok(last_id)
    }

    async fn send_live(&mut self, row: &Outbound, reply: &Reply) -> Result<String, Failure> {
        if self.stream
            && streams(reply)
            && let Some(message_id) = self.send_streaming(row, reply).await?
        {
            return Ok(message_id);
        }
        let Some(card) = status_card(reply) else {
            return Err(Failure::Undeliverable { error: "empty message".into() });
        };
        // The head row's uuid: a retry after a lost answer finds the card already sent.
        let uuid = send_uuid(row, 0);
        let result = match reply.reply_to.as_deref().filter(|to| !to.is_empty() && reply.kind != ReplyKind::Status) {
            Some(to) => self.api.reply(to, "interactive", &card, &uuid).await,
            None => self.api.send(&row.chat_id, "interactive", &card, &uuid).await,
        };
        result.map(|sent| sent.message_id).map_err(failure)
    }

    async fn edit(&mut self, _chat: &str, message: &String, reply: &Reply) -> Result<(), EditFailure> {
        if self.streams.contains_key(message) {
            match self.edit_streaming(message, reply).await {
                Ok(true) => return Ok(()),
                // Refused: the message itself is PATCHed to the plain card, below.
                Ok(false) => {}
                Err(failure) => return Err(EditFailure::Failed(failure)),
            }
        }
        let Some(card) = status_card(reply) else {
            return Err(EditFailure::Failed(Failure::Undeliverable { error: "empty message".into() }));
        };
        match self.api.update_card(message, &card).await {
            Ok(()) => Ok(()),
            // Recalled, deleted, older than 14 days: the status goes on in a new card.
            Err(e) if cannot_update(&e) => Err(EditFailure::Gone),
            Err(e) => Err(EditFailure::Failed(failure(e))),
        }
    }

    fn finished(&mut self, row: Id) {
        self.progress.remove(&row);
        self.created.remove(&row);
    }
}

/// The card a live message shows (a status line, or an approval card and its decided form): its
/// text on a shared card, with its buttons while it has any.
pub fn status_card(reply: &Reply) -> Option<Value> {
    card_text(reply).map(|t| card::with_buttons(&t, &card::buttons(reply)))
}

/// The text a live card shows: the reply's text and detail, cut to what fits a card.
fn card_text(reply: &Reply) -> Option<String> {
    let mut text = reply.text.clone();
    if let Some(detail) = reply.detail.as_deref().filter(|d| !d.trim().is_empty()) {
        text.push_str("\n\n");
        text.push_str(detail);
    }
    split(&text, MAX_CARD_TEXT_BYTES).into_iter().next()
}

/// A PATCH the card will never accept, whatever the wait: a client error other than the
/// rate limit (which [`ApiError::RateLimited`] carries) or a refused token (refreshed in
/// the API client). Feishu names several codes (recalled, deleted, too old to edit); they
/// all mean the same here.
fn cannot_update(e: &ApiError) -> bool {
    matches!(e, ApiError::Api { status, code, .. }
        if (400..500).contains(status) && *code != 0 && !INVALID_TOKEN_CODES.contains(code))
}

/// What a failed request makes of its row: a rate limit and an outage (network, server
/// errors, a refused token being refreshed) are waited out; a permanent refusal drops it;
/// other client errors are retried a few times.
fn failure(e: ApiError) -> Failure {
    match e {
        ApiError::RateLimited { after } => Failure::RateLimited { after },
        e @ ApiError::Api { .. } if e.is_permanent() => Failure::Undeliverable { error: e.to_string() },
        ApiError::Network { .. } => Failure::Outage { error: e.to_string() },
        ApiError::Api { status, code, .. } if status >= 500 || INVALID_TOKEN_CODES.contains(&code) => {
            Failure::Outage { error: e.to_string() }
        }
        e @ ApiError::Api { .. } => Failure::Refused { error: e.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply from its JSON form (as the outbox stores it).
    fn reply(value: Value) -> Reply {
        Reply::from_json(value)
    }

    #[test]
    fn plain_text_is_one_text_message() {
        let r = render(&reply(json!({"text": "Codex finished: ok", "buttons": [], "options": [], "thread_id": ""})));
        assert_eq!(r.parts, vec![Part { msg_type: "text", content: json!({"text": "Codex finished: ok"}) }]);
        assert_eq!(r.reply_to, None);
        assert!(render(&reply(json!({}))).parts.is_empty(), "a malformed payload renders nothing rather than failing");
        assert_eq!(render(&reply(json!({"text": "no", "reply_to": "om_9"}))).reply_to.as_deref(), Some("om_9"));
    }

    #[test]
    fn buttons_make_the_last_part_a_card() {
        let long = vec!["a line of agent output with \"quotes\" and ünïcode"; 5000].join("\n");
        let payload = reply(json!({"text": long, "buttons": [{"label": "Approve",
            "action": {"do": "decide", "approval": 5, "nonce": "n", "answer": {"Approve": "once"}}}]}));
        assert_eq!(payload.buttons.len(), 1);
        let r = render(&payload);
        assert!(r.parts.len() > 2);
        let (last, rest) = r.parts.split_last().unwrap();
        assert_eq!(last.msg_type, "interactive");
        assert!(last.content.to_string().len() < 30 * 1024, "a card stays under 30 KB");
        assert!(rest.iter().all(|p| p.msg_type == "post" && post_len(&p.content) <= MAX_POST_BYTES));
        let rejoined: Vec<String> = rest.iter().map(shown).chain(card::shown_text(&last.content)).collect();
        assert_eq!(rejoined.join("\n"), long, "nothing lost in the split");
    }

    /// The text a part shows: a text's text, a post's paragraphs (first locale) one a line.
    fn shown(part: &Part) -> String {
        match part.msg_type {
            "post" => {
                let locale = &part.content[POST_LOCALES[0]];
                let lines: Vec<String> = locale["content"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_array().unwrap().iter().map(|e| e["text"].as_str().unwrap()).collect())
                    .collect();
                lines.join("\n")
            }
            _ => part.content["text"].as_str().unwrap().to_owned(),
        }
    }

    #[test]
    fn several_lines_are_a_post_with_a_paragraph_per_line_in_each_locale() {
        let r = render(&reply(json!({"text": "Codex finished\n\nchanged: `a.rs`\r\n", "buttons": []})));
        assert_eq!(r.parts.len(), 1);
        let post = &r.parts[0];
        assert_eq!(post.msg_type, "post");
        let paragraphs = json!([
            [{"tag": "text", "text": "Codex finished"}],
            [{"tag": "text", "text": ""}],
            [{"tag": "text", "text": "changed: `a.rs`"}]
        ]);
        for locale in ["zh_cn", "en_us"] {
            assert_eq!(post.content[locale]["content"], paragraphs, "{locale}: {}", post.content);
        }
        let single = render(&reply(json!({"text": "one line\n\n"})));
        assert_eq!(single.parts, vec![Part { msg_type: "text", content: json!({"text": "one line"}) }]);
    }

    #[test]
    fn long_multi_line_text_is_split_into_posts_under_the_limit() {
        // Quotes and backslashes cost double once the content is a string in the body.
        let line = "a \"quoted\" C:\\path ünïcode line of output";
        let long = vec![line; 3000].join("\n");
        let parts = message_parts(&long);
        assert!(parts.len() > 2, "{}", parts.len());
        for p in &parts {
            assert_eq!(p.msg_type, "post");
            assert!(post_len(&p.content) <= MAX_POST_BYTES, "{}", post_len(&p.content));
        }
        assert_eq!(parts.iter().map(shown).collect::<Vec<_>>().join("\n"), long, "nothing lost");

        // Many empty lines cost their paragraphs, not their characters.
        let sparse = format!("top{}bottom", "\n".repeat(5000));
        assert!(message_parts(&sparse).iter().all(|p| post_len(&p.content) <= MAX_POST_BYTES));

        // A line too long for any post goes as text pieces between the posts around it.
        let huge = "\"".repeat(20_000);
        let mixed = format!("before\nstill before\n{huge}\nafter\nthe end");
        let parts = message_parts(&mixed);
        let kinds: Vec<&str> = parts.iter().map(|p| p.msg_type).collect();
        assert_eq!(kinds.first(), Some(&"post"));
        assert_eq!(kinds.last(), Some(&"post"));
        assert!(kinds[1..kinds.len() - 1].iter().all(|k| *k == "text"), "{kinds:?}");
        let texts: String = parts[1..parts.len() - 1].iter().map(shown).collect();
        assert_eq!(texts, huge);
        assert!(parts.iter().all(|p| p.msg_type != "text" || encoded_len(&p.content.to_string()) <= MAX_POST_BYTES));
        assert!(message_parts("\n \n").is_empty());
    }

    #[test]
    fn a_status_card_shows_the_first_piece_of_its_text() {
        let card = status_card(&reply(json!({"text": "Codex is running `npm test`", "live": "turn:1"}))).unwrap();
        assert_eq!(card["config"]["update_multi"], true);
        assert_eq!(card::shown_text(&card).as_deref(), Some("Codex is running `npm test`"));
        assert!(status_card(&reply(json!({"live": "turn:1"}))).is_none(), "nothing to show");
        let long = status_card(&reply(json!({"text": "x".repeat(100_000)}))).unwrap();
        assert!(long.to_string().len() < 30 * 1024);
    }

    #[test]
    fn only_client_errors_retire_a_status_card() {
        let api = |status, code| ApiError::Api { what: "update card", status, code, msg: String::new() };
        assert!(cannot_update(&api(400, 230011)));
        assert!(cannot_update(&api(400, 230110)));
        assert!(!cannot_update(&api(500, 230011)), "a server error is retried");
        assert!(!cannot_update(&api(400, 99991663)), "a token problem is not the card's");
        assert!(!cannot_update(&ApiError::RateLimited { after: Duration::from_secs(1) }));
        assert!(!cannot_update(&ApiError::Network { what: "update card", detail: "timeout".into() }));
        assert_eq!(
            failure(ApiError::RateLimited { after: Duration::from_secs(3) }),
            Failure::RateLimited { after: Duration::from_secs(3) }
        );
        assert!(matches!(failure(api(503, 0)), Failure::Outage { .. }), "a server error is an outage");
        assert!(matches!(failure(api(400, 230002)), Failure::Undeliverable { .. }));
        assert!(matches!(failure(api(400, 1)), Failure::Refused { .. }));
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
            payload: Reply::default(),
            attempts: 0,
            next_attempt_at: chrono::Utc::now(),
            last_error: None,
            external_message_id: None,
            sent_at: None,
            created_at: chrono::Utc::now(),
        };
        assert_eq!(send_uuid(&row, 0), send_uuid(&Outbound { attempts: 3, ..row.clone() }, 0));
        assert_ne!(send_uuid(&row, 0), send_uuid(&row, 1));
        assert_ne!(send_uuid(&row, 0), send_uuid(&Outbound { id: 8, ..row.clone() }, 0));
        assert_eq!(send_uuid(&row, 0).len(), 36);
    }
}
