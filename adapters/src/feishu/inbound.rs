//! An event envelope → what it means for the gateway: a text for the engine, a card button
//! press, a refusal, or nothing. Pure: the allow-lists and group rules are decided here,
//! before anything is written for the sender. What needs the store (is the replied-to message
//! ours?) or the API (is the pressed card's chat a group?) is looked up first by the caller
//! and passed in as [`Facts`].

use serde_json::Value;
use taskgate_core::classify::Chat;

use super::card::ButtonValue;
use super::event::{CARD_ACTION, MESSAGE_RECEIVED, str_at};

/// The bot itself, from `GET /open-apis/bot/v3/info`: mentions are recognised by its open_id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BotIdentity {
    pub open_id: String,
    pub name: String,
}

/// Who may talk to the agents; the same rules as Telegram's. A direct chat is admitted when
/// the sender's open_id is in `allowed_users`. A group is admitted when its chat_id is in
/// `allowed_chats`, or, when `allowed_chats` is empty, for senders in `allowed_users`. Both
/// empty admit no one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    pub allowed_users: Vec<String>,
    pub allowed_chats: Vec<String>,
}

impl AccessPolicy {
    pub fn admits(&self, open_id: &str, chat_id: &str, group: bool) -> bool {
        let user_listed = !open_id.is_empty() && self.allowed_users.iter().any(|u| u == open_id);
        if !group {
            return user_listed;
        }
        if self.allowed_chats.is_empty() { user_listed } else { self.allowed_chats.iter().any(|c| c == chat_id) }
    }
}

/// What the caller looked up before normalising.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// The message replies to (its `parent_id` or `root_id` is) a message the bot sent.
    pub replies_to_bot: bool,
    /// A card press: whether its chat is a group (Feishu's card callback does not say).
    pub press_in_group: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Text {
    pub message_id: String,
    pub chat_id: String,
    pub chat: Chat,
    pub sender_open_id: String,
    /// Mention placeholders resolved: the bot's removed, others as `@Name`.
    pub text: String,
    /// `parent_id`, then `root_id`: the wiring looks up the task of the bot message replied to.
    pub reply_to: Vec<String>,
    /// Group only: the bot was mentioned or replied to.
    pub mentioned: bool,
    /// Files of the message, to fetch through the message resources API.
    pub files: Vec<FileRef>,
}

/// A file of a message: an `image`, a `file`, an `audio` message, or an image inside a `post`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// `image_key` or `file_key`.
    pub key: String,
    /// The resource type the API wants: `image` or `file` (audio is a file).
    pub resource: &'static str,
    pub name: String,
    /// Known only for a `file` (from its name); the download's `Content-Type` decides the rest.
    pub mime: Option<String>,
    pub voice: bool,
}

/// The files a message's content names.
pub fn files(message_type: &str, content: &Value, message_id: &str) -> Vec<FileRef> {
    let short: String = message_id.chars().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
    let image = |key: String, n: usize| FileRef {
        name: if n == 0 { format!("image-{short}.png") } else { format!("image-{short}-{n}.png") },
        key,
        resource: "image",
        mime: None,
        voice: false,
    };
    match message_type {
        "image" => vec![image(str_at(content, "image_key"), 0)].into_iter().filter(|f| !f.key.is_empty()).collect(),
        "file" => {
            let key = str_at(content, "file_key");
            let name = str_at(content, "file_name");
            let name = if name.is_empty() { format!("file-{short}") } else { name };
            if key.is_empty() {
                return Vec::new();
            }
            let mime = taskgate_core::attachment::mime_from_name(&name).to_owned();
            vec![FileRef { key, resource: "file", name, mime: Some(mime), voice: false }]
        }
        "audio" => {
            let key = str_at(content, "file_key");
            if key.is_empty() {
                return Vec::new();
            }
            vec![FileRef {
                key,
                resource: "file",
                name: format!("voice-{short}.opus"),
                mime: Some("audio/ogg".into()),
                voice: true,
            }]
        }
        "post" => {
            let post = post_body(content);
            let mut out = Vec::new();
            for paragraph in post.get("content").and_then(Value::as_array).into_iter().flatten() {
                for element in paragraph.as_array().into_iter().flatten() {
                    if element.get("tag").and_then(Value::as_str) == Some("img") {
                        let key = str_at(element, "image_key");
                        if !key.is_empty() {
                            out.push(image(key, out.len()));
                        }
                    }
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Press {
    pub operator_open_id: String,
    pub chat_id: String,
    pub chat: Chat,
    /// The card's message (`context.open_message_id`).
    pub message_id: String,
    /// `None`: not a button this gateway wrote.
    pub value: Option<ButtonValue>,
}

/// A sender outside the allow-lists: one short answer showing the ids to add.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub chat_id: String,
    pub open_id: String,
    /// The message refused, to answer in reply to it; `None` for a button press.
    pub message_id: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Text(Text),
    /// `/start` or `/help` from an admitted sender: answered by the channel, not the engine.
    Help {
        chat_id: String,
        message_id: String,
    },
    Press(Press),
    Refuse(Refusal),
    Ignore(&'static str),
}

/// `parent_id` and `root_id` of a message event (the caller checks whether one is the bot's).
pub fn reply_targets(event: &Value) -> Vec<String> {
    let message = event.pointer("/event/message").cloned().unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for key in ["parent_id", "root_id"] {
        let id = str_at(&message, key);
        if !id.is_empty() && !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// The chat of a card press, to look up whether it is a group.
pub fn press_chat(event: &Value) -> Option<String> {
    let chat = event.pointer("/event/context/open_chat_id").and_then(Value::as_str)?;
    (!chat.is_empty()).then(|| chat.to_owned())
}

/// What `event` (the envelope's JSON) means. Never fails: anything unexpected is `Ignore`.
pub fn normalise(event: &Value, bot: &BotIdentity, policy: &AccessPolicy, facts: Facts) -> Inbound {
    let event_type = event.pointer("/header/event_type").and_then(Value::as_str).unwrap_or_default();
    match event_type {
        MESSAGE_RECEIVED => message(event, bot, policy, facts),
        CARD_ACTION => press(event, policy, facts),
        _ => Inbound::Ignore("event type not handled"),
    }
}

fn message(event: &Value, bot: &BotIdentity, policy: &AccessPolicy, facts: Facts) -> Inbound {
    let Some(body) = event.get("event") else { return Inbound::Ignore("no event body") };
    let sender = body.get("sender").cloned().unwrap_or_default();
    if str_at(&sender, "sender_type") != "user" {
        return Inbound::Ignore("not from a user (a bot or an app)");
    }
    let open_id = sender.pointer("/sender_id/open_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    if open_id.is_empty() {
        return Inbound::Ignore("no sender open_id");
    }
    let message = body.get("message").cloned().unwrap_or_default();
    let (message_id, chat_id) = (str_at(&message, "message_id"), str_at(&message, "chat_id"));
    if message_id.is_empty() || chat_id.is_empty() {
        return Inbound::Ignore("no message or chat id");
    }
    let group = str_at(&message, "chat_type") != "p2p";
    let mentions = message.get("mentions").and_then(Value::as_array).cloned().unwrap_or_default();
    let content: Value = serde_json::from_str(&str_at(&message, "content")).unwrap_or_default();
    let message_type = str_at(&message, "message_type");
    let files = files(&message_type, &content, &message_id);
    let raw = match message_type.as_str() {
        "text" => str_at(&content, "text"),
        "post" => post_text(&content),
        "image" | "file" | "audio" if !files.is_empty() => String::new(),
        _ => return Inbound::Ignore("message type not handled"),
    };
    let (text, mentioned_bot) = resolve_mentions(&raw, &mentions, bot);
    let mentioned = mentioned_bot || facts.replies_to_bot;
    if group && !mentioned {
        return Inbound::Ignore("group message not addressed to the bot");
    }
    if !policy.admits(&open_id, &chat_id, group) {
        return Inbound::Refuse(refusal(&chat_id, &open_id, group, Some(message_id)));
    }
    let text = text.trim().to_owned();
    if text.is_empty() && files.is_empty() {
        return Inbound::Ignore("nothing but a mention");
    }
    let command = text.split_whitespace().next().unwrap_or_default().to_ascii_lowercase();
    if command == "/help" || command == "/start" {
        return Inbound::Help { chat_id, message_id };
    }
    Inbound::Text(Text {
        message_id,
        chat_id,
        chat: if group { Chat::Group } else { Chat::Direct },
        sender_open_id: open_id,
        text,
        reply_to: reply_targets(event),
        mentioned: group && mentioned,
        files,
    })
}

fn press(event: &Value, policy: &AccessPolicy, facts: Facts) -> Inbound {
    let Some(body) = event.get("event") else { return Inbound::Ignore("no event body") };
    let open_id = body.pointer("/operator/open_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let chat_id = press_chat(event).unwrap_or_default();
    let message_id = body.pointer("/context/open_message_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    if open_id.is_empty() || chat_id.is_empty() || message_id.is_empty() {
        return Inbound::Ignore("card action without operator, chat or message");
    }
    let group = facts.press_in_group;
    if !policy.admits(&open_id, &chat_id, group) {
        return Inbound::Refuse(refusal(&chat_id, &open_id, group, None));
    }
    Inbound::Press(Press {
        operator_open_id: open_id,
        chat_id,
        chat: if group { Chat::Group } else { Chat::Direct },
        message_id,
        value: body.pointer("/action/value").and_then(ButtonValue::decode),
    })
}

fn refusal(chat_id: &str, open_id: &str, group: bool, message_id: Option<String>) -> Refusal {
    let text = if group {
        format!(
            "Sorry, this bot is private. Your Feishu open_id is {open_id}; this chat's id is {chat_id}. Ask its admin to allow them."
        )
    } else {
        format!("Sorry, this bot is private. Your Feishu open_id is {open_id}; ask its admin to allow it.")
    };
    Refusal { chat_id: chat_id.to_owned(), open_id: open_id.to_owned(), message_id, text }
}

/// Replaces each mention placeholder (`@_user_1`) by `@Name`, or removes it when it is the
/// bot; says whether the bot was mentioned. Longer keys first, so `@_user_10` is not read as
/// `@_user_1` followed by `0`.
fn resolve_mentions(text: &str, mentions: &[Value], bot: &BotIdentity) -> (String, bool) {
    let mut mentions: Vec<&Value> = mentions.iter().collect();
    mentions.sort_by_key(|m| std::cmp::Reverse(str_at(m, "key").len()));
    let mut out = text.to_owned();
    let mut mentioned = false;
    for m in mentions {
        let key = str_at(m, "key");
        if key.is_empty() || !out.contains(&key) {
            continue;
        }
        let open_id = m.pointer("/id/open_id").and_then(Value::as_str).unwrap_or_default();
        let is_bot = !bot.open_id.is_empty() && open_id == bot.open_id;
        mentioned |= is_bot;
        let name = str_at(m, "name");
        let replacement = if is_bot { String::new() } else { format!("@{name}") };
        out = out.replace(&key, &replacement);
    }
    // Removing a mention leaves doubled spaces; tidy without touching line breaks.
    let tidy: Vec<String> =
        out.lines().map(|l| l.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")).collect();
    (tidy.join("\n"), mentioned)
}

/// A post's text: its title, then each paragraph's text runs, links and mentions as text.
/// Mentions stay as their placeholder keys (`@_user_1`) so they resolve like a text message's.
fn post_text(content: &Value) -> String {
    let post = post_body(content);
    let mut lines = Vec::new();
    let title = str_at(post, "title");
    if !title.is_empty() {
        lines.push(title);
    }
    for paragraph in post.get("content").and_then(Value::as_array).into_iter().flatten() {
        let mut line = String::new();
        for element in paragraph.as_array().into_iter().flatten() {
            match element.get("tag").and_then(Value::as_str).unwrap_or_default() {
                "text" | "a" | "code_block" | "md" => line.push_str(&str_at(element, "text")),
                "at" => {
                    let key = str_at(element, "user_id");
                    line.push_str(if key.is_empty() { "@" } else { &key });
                    if key.is_empty() {
                        line.push_str(&str_at(element, "user_name"));
                    }
                }
                _ => {}
            }
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// A post's `{title, content}`: events carry it so; some clients key it by language
/// (`{"zh_cn": …}`).
fn post_body(content: &Value) -> &Value {
    if content.get("content").is_some() {
        content
    } else {
        content.as_object().and_then(|o| o.values().find(|v| v.get("content").is_some())).unwrap_or(content)
    }
}

#[cfg(test)]
mod tests;
