//! Update → what it means for the gateway: a text for the engine, a button press, a refusal,
//! or nothing. Pure: the allow-lists and group rules are decided here, before anything is
//! written for the sender, so they can be tested without a network or a database.

use std::ops::Range;

use taskgate_core::classify::Chat;
use teloxide::types::{
    CallbackQuery, ChatMemberUpdated, MaybeInaccessibleMessage, Message, MessageEntityKind, Update, UpdateKind, User,
};

use super::callback::ButtonData;

/// The bot itself, from `getMe`: mentions and replies are recognised against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    pub id: u64,
    /// Without the `@`.
    pub username: String,
}

/// Who may talk to the agents.
///
/// A direct chat is admitted when the sender is in `allowed_users`. A group is admitted when it
/// is in `allowed_chats` (its members are then admitted: a team group is its own list), or, when
/// `allowed_chats` is empty, for senders in `allowed_users`. Both empty admit no one: a bot that
/// can run commands on the host must not be open to whoever finds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    pub allowed_users: Vec<i64>,
    pub allowed_chats: Vec<i64>,
}

impl AccessPolicy {
    pub fn admits(&self, user: u64, chat: i64, group: bool) -> bool {
        let user_listed = i64::try_from(user).is_ok_and(|u| self.allowed_users.contains(&u));
        if !group {
            return user_listed;
        }
        if self.allowed_chats.is_empty() { user_listed } else { self.allowed_chats.contains(&chat) }
    }
}

/// Where a message is, and where its answer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub chat_id: i64,
    /// A forum topic; `None` for every other chat (see [`topic`]).
    pub thread_id: Option<i32>,
}

impl Place {
    /// The conversation's thread key: a topic is its own conversation.
    pub fn thread_key(&self) -> String {
        self.thread_id.map(|t| t.to_string()).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: u64,
    pub name: String,
    pub username: Option<String>,
}

impl Person {
    fn of(user: &User) -> Self {
        Person { id: user.id.0, name: user.full_name(), username: user.username.clone() }
    }

    /// "@alice", or the name when there is no username.
    pub fn handle(&self) -> String {
        match &self.username {
            Some(u) => format!("@{u}"),
            None => self.name.clone(),
        }
    }
}

/// A text for the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Text {
    pub update_id: u32,
    pub place: Place,
    pub message_id: i32,
    pub from: Person,
    /// Commands without `@botname`, mentions of the bot removed.
    pub text: String,
    /// The bot's message this replies to: the wiring looks up its task.
    pub reply_to_message_id: Option<i32>,
    pub chat: Chat,
    /// Group only: a command, a mention of the bot, or a reply to it.
    pub mentioned: bool,
    /// Files that came with the message (the text is then its caption, possibly empty).
    pub files: Vec<FileRef>,
}

/// A file of a message, to fetch with `getFile`: the largest size of a photo, a document, a
/// voice note or an audio file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub file_id: String,
    /// The sender's file name, or one made up from the kind ("photo.jpg", "voice.ogg").
    pub name: String,
    pub mime: String,
    /// As Telegram reports it, so an oversized file is refused before it is downloaded.
    pub size: u64,
    pub voice: bool,
}

/// The files of `message`.
pub fn files(message: &Message) -> Vec<FileRef> {
    let mut out = Vec::new();
    if let Some(photo) =
        message.photo().and_then(|sizes| sizes.iter().max_by_key(|p| (p.width * p.height, p.file.size)))
    {
        out.push(FileRef {
            file_id: photo.file.id.0.clone(),
            name: format!("photo-{}.jpg", message.id.0),
            mime: "image/jpeg".into(),
            size: u64::from(photo.file.size),
            voice: false,
        });
    }
    if let Some(doc) = message.document() {
        let name = doc.file_name.clone().unwrap_or_else(|| format!("document-{}", message.id.0));
        let mime = doc
            .mime_type
            .as_ref()
            .map(|m| m.essence_str().to_owned())
            .unwrap_or_else(|| taskgate_core::attachment::mime_from_name(&name).to_owned());
        out.push(FileRef { file_id: doc.file.id.0.clone(), name, mime, size: u64::from(doc.file.size), voice: false });
    }
    if let Some(voice) = message.voice() {
        out.push(FileRef {
            file_id: voice.file.id.0.clone(),
            name: format!("voice-{}.ogg", message.id.0),
            mime: voice.mime_type.as_ref().map_or("audio/ogg".to_owned(), |m| m.essence_str().to_owned()),
            size: u64::from(voice.file.size),
            voice: true,
        });
    }
    if let Some(audio) = message.audio() {
        let name = audio.file_name.clone().unwrap_or_else(|| format!("audio-{}.mp3", message.id.0));
        let mime = audio.mime_type.as_ref().map_or("audio/mpeg".to_owned(), |m| m.essence_str().to_owned());
        out.push(FileRef {
            file_id: audio.file.id.0.clone(),
            name,
            mime,
            size: u64::from(audio.file.size),
            voice: true,
        });
    }
    out
}

/// An inline button pressed.
#[derive(Debug, Clone, PartialEq)]
pub struct Press {
    pub query_id: String,
    pub place: Option<Place>,
    /// The message carrying the keyboard.
    pub message_id: Option<i32>,
    /// Its text as shown, to edit the decision in below it.
    pub message_text: Option<String>,
    pub from: Person,
    pub chat: Chat,
    /// `None`: not a button this gateway wrote.
    pub data: Option<ButtonData>,
}

/// A sender (or chat) outside the allow-lists: one short answer showing the ids to add.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub place: Option<Place>,
    pub user_id: u64,
    /// A pressed button is refused in its callback answer instead of a message.
    pub callback_query_id: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Text(Text),
    /// `/start` or `/help` from an admitted sender: answered by the channel, not the engine.
    Help(Place),
    Press(Press),
    Refuse(Refusal),
    /// The bot was added to (or removed from) a chat.
    Membership {
        chat_id: i64,
        member: bool,
    },
    Ignore(&'static str),
}

/// An update as stored in the inbox. Parsed from text: teloxide's `UpdateKind` reads its key as
/// a borrowed `&str`, which `serde_json::from_value` cannot lend, and then silently yields
/// `UpdateKind::Error` for every update.
pub fn parse_update(payload: &serde_json::Value) -> Result<Update, serde_json::Error> {
    serde_json::from_str(&payload.to_string())
}

/// What `update` means. Never fails: anything unexpected is `Ignore` with the reason.
pub fn normalise(update: &Update, bot: &BotIdentity, policy: &AccessPolicy) -> Inbound {
    match &update.kind {
        UpdateKind::Message(message) => message_in(update.id.0, message, bot, policy),
        UpdateKind::CallbackQuery(query) => press(query, policy),
        UpdateKind::MyChatMember(change) => membership(change),
        UpdateKind::EditedMessage(_) => Inbound::Ignore("edited message (the original was handled)"),
        UpdateKind::Error(_) => Inbound::Ignore("update of an unknown shape"),
        _ => Inbound::Ignore("update kind not handled"),
    }
}

/// The forum topic of a message: only a topic message in a forum has one. Other supergroup
/// messages may carry a `message_thread_id` (reply threads) that is not a conversation.
pub fn topic(message: &Message) -> Option<i32> {
    let forum = matches!(
        &message.chat.kind,
        teloxide::types::ChatKind::Public(teloxide::types::ChatPublic {
            kind: teloxide::types::PublicChatKind::Supergroup(s),
            ..
        }) if s.is_forum
    );
    if forum && message.is_topic_message { message.thread_id.map(|t| t.0.0) } else { None }
}

fn message_in(update_id: u32, message: &Message, bot: &BotIdentity, policy: &AccessPolicy) -> Inbound {
    let Some(from) = message.from.as_ref() else {
        return Inbound::Ignore("no sender (channel post or anonymous admin)");
    };
    if from.is_bot {
        return Inbound::Ignore("from a bot");
    }
    if message.chat.is_channel() {
        return Inbound::Ignore("channel");
    }
    let files = files(message);
    let Some(raw) = message.text().or_else(|| message.caption()).or_else(|| (!files.is_empty()).then_some("")) else {
        return Inbound::Ignore("no text");
    };
    let group = !message.chat.is_private();
    let place = Place { chat_id: message.chat.id.0, thread_id: topic(message) };

    let command = match command(raw, &bot.username) {
        Ok(c) => c,
        Err(ForOtherBot) => return Inbound::Ignore("command addressed to another bot"),
    };
    let entities = message.entities().or_else(|| message.caption_entities()).unwrap_or_default();
    let (text, mention) =
        strip_mentions(command.as_ref().map_or(raw, |c| c.text.as_str()), entities, bot, command.is_some());
    let reply_to_bot =
        message.reply_to_message().filter(|r| r.from.as_ref().is_some_and(|u| u.id.0 == bot.id)).map(|r| r.id.0);
    // In a private chat a file alone is addressed to the bot; in a group it needs a mention
    // or a reply like any message.
    let mentioned = command.is_some() || mention || reply_to_bot.is_some();
    if group && !mentioned {
        return Inbound::Ignore("group message not addressed to the bot");
    }
    if !policy.admits(from.id.0, place.chat_id, group) {
        return Inbound::Refuse(refusal(Some(place), from.id.0, group, None));
    }
    let text = match command.as_ref().map(|c| c.name.as_str()) {
        Some("start" | "help") => return Inbound::Help(place),
        // `/task <goal>` opens a task; a bare `/task` asks where things stand.
        Some("task") => {
            let goal = text.trim_start().strip_prefix("/task").unwrap_or_default().trim();
            if goal.is_empty() { "/status".to_owned() } else { format!("/new {goal}") }
        }
        _ => text,
    };
    if text.trim().is_empty() && files.is_empty() {
        return Inbound::Ignore("nothing but a mention");
    }
    Inbound::Text(Text {
        update_id,
        place,
        message_id: message.id.0,
        from: Person::of(from),
        text,
        reply_to_message_id: reply_to_bot,
        chat: if group { Chat::Group } else { Chat::Direct },
        mentioned: group && mentioned,
        files,
    })
}

fn press(query: &CallbackQuery, policy: &AccessPolicy) -> Inbound {
    let message = query.message.as_ref();
    let chat = message.map(MaybeInaccessibleMessage::chat);
    let regular = match message {
        Some(MaybeInaccessibleMessage::Regular(m)) => Some(m.as_ref()),
        _ => None,
    };
    let place = chat.map(|c| Place { chat_id: c.id.0, thread_id: regular.and_then(topic) });
    let group = chat.is_some_and(|c| !c.is_private());
    // A press on an inline-mode message has no chat: only the sender can be checked.
    let chat_id = place.map_or(0, |p| p.chat_id);
    if !policy.admits(query.from.id.0, chat_id, group) {
        return Inbound::Refuse(refusal(place, query.from.id.0, group, Some(query.id.0.clone())));
    }
    Inbound::Press(Press {
        query_id: query.id.0.clone(),
        place,
        message_id: message.map(|m| m.id().0),
        message_text: regular.and_then(|m| m.text().map(str::to_owned)),
        from: Person::of(&query.from),
        chat: if group { Chat::Group } else { Chat::Direct },
        data: query.data.as_deref().and_then(ButtonData::decode),
    })
}

fn membership(change: &ChatMemberUpdated) -> Inbound {
    Inbound::Membership { chat_id: change.chat.id.0, member: change.new_chat_member.is_present() }
}

fn refusal(place: Option<Place>, user: u64, group: bool, callback: Option<String>) -> Refusal {
    let text = match (group, place) {
        (true, Some(p)) => format!(
            "Sorry, this bot is private. Your Telegram user id is {user}; this chat's id is {}. Ask its admin to allow them.",
            p.chat_id
        ),
        _ => format!("Sorry, this bot is private. Your Telegram user id is {user}; ask its admin to allow it."),
    };
    Refusal { place, user_id: user, callback_query_id: callback, text }
}

struct ForOtherBot;

#[derive(Debug)]
struct Command {
    /// Lowercase, without `/` or `@bot`.
    name: String,
    /// The message with `@bot` removed from the command.
    text: String,
}

/// A leading `/name[@bot]`. `/api/v2 is down` is a path, not a command.
fn command(text: &str, bot: &str) -> Result<Option<Command>, ForOtherBot> {
    let lead = text.len() - text.trim_start().len();
    let Some(body) = text[lead..].strip_prefix('/') else { return Ok(None) };
    let token_len = body.find(char::is_whitespace).unwrap_or(body.len());
    let (token, rest) = body.split_at(token_len);
    let (name, addressee) = match token.split_once('@') {
        Some((n, b)) => (n, Some(b)),
        None => (token, None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Ok(None);
    }
    if let Some(b) = addressee
        && !b.eq_ignore_ascii_case(bot)
    {
        return Err(ForOtherBot);
    }
    Ok(Some(Command { name: name.to_ascii_lowercase(), text: format!("/{name}{rest}") }))
}

/// Removes mentions of the bot from `text` and says whether there was one. `@bot` is found as a
/// word (robust to missing entities); a `text_mention` entity (a user without a username) by its
/// user id. `entities` are ignored when the command rewrite shifted the offsets.
fn strip_mentions(
    text: &str,
    entities: &[teloxide::types::MessageEntity],
    bot: &BotIdentity,
    rewritten: bool,
) -> (String, bool) {
    let mut cut: Vec<Range<usize>> = Vec::new();
    if !rewritten {
        for e in entities {
            if let MessageEntityKind::TextMention { user } = &e.kind
                && user.id.0 == bot.id
                && let Some(r) = utf16_range(text, e.offset, e.length)
            {
                cut.push(r);
            }
        }
    }
    // `@bot` as a word: after a start or whitespace, before an end, whitespace or punctuation.
    let at = format!("@{}", bot.username);
    if !bot.username.is_empty() {
        for (i, _) in text.match_indices('@') {
            let before_ok = text[..i].chars().next_back().is_none_or(char::is_whitespace);
            let end = i + at.len();
            let word_ok = text.get(i..end).is_some_and(|w| w.eq_ignore_ascii_case(&at));
            let after_ok = word_ok && text[end..].chars().next().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            if before_ok && after_ok {
                cut.push(i..end);
            }
        }
    }
    if cut.is_empty() {
        return (text.to_owned(), false);
    }
    cut.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in cut {
        if r.start >= at {
            out.push_str(&text[at..r.start]);
            at = r.end;
        }
    }
    out.push_str(&text[at..]);
    (out.trim().to_owned(), true)
}

/// An entity's UTF-16 offset and length as a byte range of `text`; `None` when they do not
/// fall on character boundaries inside it (teloxide's own conversion panics then).
fn utf16_range(text: &str, offset: usize, length: usize) -> Option<Range<usize>> {
    let end16 = offset.checked_add(length)?;
    let (mut start, mut end) = (None, None);
    let mut units = 0;
    for (byte, c) in text.char_indices().chain(std::iter::once((text.len(), '\0'))) {
        if units == offset {
            start = Some(byte);
        }
        if units == end16 {
            end = Some(byte);
            break;
        }
        if units > end16 {
            break;
        }
        units += c.len_utf16();
    }
    Some(start?..end?)
}

#[cfg(test)]
mod tests;
