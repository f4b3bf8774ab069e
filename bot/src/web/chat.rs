//! Web chat: the console as a channel like Telegram and Feishu. A message is stored in the
//! inbox before the request is answered, and an inbox worker hands it to the engine; replies
//! are outbox rows for channel `web`, marked delivered when the drain pushes them to a
//! connected browser (rows wait while no browser is open, and show in the history either way).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use taskgate_core::model::{ApprovalStatus, Channel, Id, Inbound, InboxOutcome, NewInbound, Timestamp};
use taskgate_core::reply::{Action, Reply};
use taskgate_core::store::{Store, StoreError};

use super::sse::Hint;
use super::{ApiError, Console};
use crate::engine::{Chosen, IncomingMessage};
use crate::inbox::{InboxDrain, InboxHandler};

/// The console's one chat (one login, one person) and its sender id on channel `web`.
pub const CHAT_ID: &str = "console";
pub const SENDER_ID: &str = "console";

/// Longest message accepted (characters).
const MAX_TEXT: usize = 16_000;
/// Messages the history shows at most.
const HISTORY: u64 = 200;
/// How often the inbox and the outbox are looked at when nothing wakes them.
const INBOX_INTERVAL: Duration = Duration::from_secs(1);
const OUTBOX_INTERVAL: Duration = Duration::from_millis(300);

#[derive(Debug, Deserialize)]
pub struct NewMessage {
    text: String,
    /// The task the message is about (the page it was typed on, or the message it answers).
    task: Option<Id>,
    /// The browser's id for this message: sending it twice stores it once.
    client_id: Option<String>,
    /// Files uploaded first (`POST /api/files`), as that answered: `{sha256, name, mime}`.
    #[serde(default)]
    files: Vec<UploadedFile>,
}

/// A file a message sends: uploaded before, named by its content's hash.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct UploadedFile {
    sha256: String,
    name: String,
    mime: String,
}

/// Files one message may carry.
const MAX_FILES: usize = 10;

/// `POST /api/messages`: stored, then 202; the engine handles it right after.
#[derive(Debug, Deserialize)]
pub struct Choice {
    pub choice: usize,
}

/// A clarify button in web chat: applies the chosen reading to the message it asked about
/// (not the button's label as new text), once.
pub async fn choose(
    Extension(console): Extension<Arc<Console>>,
    Path(id): Path<String>,
    Json(choice): Json<Choice>,
) -> Result<Json<Value>, ApiError> {
    let outbound: Id = id
        .strip_prefix("out-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "not a message of taskgate's (out-<id>)"))?;
    let sender = console.user(None, "");
    match console.engine.choose(sender, outbound, choice.choice).await? {
        Chosen::Applied { label } => {
            console.hub.send(Hint::Chat { task: None });
            Ok(Json(json!({"chosen": label})))
        }
        Chosen::Unknown => Err(ApiError::new(StatusCode::CONFLICT, "this button is no longer active")),
    }
}

pub async fn send(
    Extension(console): Extension<Arc<Console>>,
    Json(message): Json<NewMessage>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let text = message.text.trim();
    if text.is_empty() && message.files.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "text is empty"));
    }
    if message.files.len() > MAX_FILES {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("at most {MAX_FILES} files per message")));
    }
    if let Some(missing) = message.files.iter().find(|f| console.stash.find(&f.sha256).is_none()) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("{} was not uploaded", missing.name)));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("text is longer than {MAX_TEXT} characters")));
    }
    let external_id = match message.client_id.filter(|c| !c.is_empty() && c.len() <= 100) {
        Some(id) => id,
        None => {
            super::auth::new_token().map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        }
    };
    let outcome = console
        .store
        .inbox_accept(NewInbound {
            channel: Channel::Web,
            external_id,
            payload: if message.files.is_empty() {
                json!({"text": text, "task": message.task})
            } else {
                json!({"text": text, "task": message.task, "files": message.files})
            },
        })
        .await?;
    console.inbox.notify_one();
    let (id, duplicate) = match outcome {
        InboxOutcome::Accepted(id) => (id, false),
        InboxOutcome::Duplicate(id) => (id, true),
    };
    console.hub.send(Hint::Chat { task: message.task });
    Ok((StatusCode::ACCEPTED, Json(json!({"id": id, "duplicate": duplicate}))))
}

/// One line of the web chat, from the person or from taskgate.
#[derive(Debug, Serialize)]
pub struct ChatMessage {
    /// `in-<inbox id>` or `out-<outbox id>`.
    id: String,
    /// `you` or `taskgate`.
    from: &'static str,
    text: String,
    /// Files the person sent with it: `[{sha256, name, mime}]` (`GET /api/files/{sha256}`).
    files: Value,
    task: Option<Id>,
    approval: Option<Id>,
    /// A clarify's choices: `[{label, choice}]`.
    buttons: Value,
    /// The approval it asks for, as it stands now (who decided, or the request in full while
    /// it waits), so the page shows buttons only while they can still act.
    #[serde(skip_serializing_if = "Option::is_none")]
    approval_state: Option<super::api::ApprovalView>,
    at: Timestamp,
    /// In: handled by the engine. Out: pushed to a browser.
    done: bool,
    /// A turn's live status line (shown only while it is the newest word on its task).
    #[serde(skip)]
    live_status: bool,
}

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    limit: Option<u64>,
}

/// `GET /api/messages`: the web chat, oldest first.
pub async fn history(
    Extension(console): Extension<Arc<Console>>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<Vec<ChatMessage>>, ApiError> {
    let limit = query.limit.unwrap_or(HISTORY).min(HISTORY);
    let store = console.store.as_ref();
    let mut lines: Vec<ChatMessage> = Vec::new();
    for row in store.inbox_recent(Channel::Web, limit).await? {
        lines.push(ChatMessage {
            id: format!("in-{}", row.id),
            from: "you",
            text: row.payload.get("text").and_then(Value::as_str).unwrap_or_default().to_owned(),
            files: row.payload.get("files").cloned().unwrap_or_else(|| json!([])),
            task: row.payload.get("task").and_then(Value::as_i64),
            approval: None,
            buttons: json!([]),
            approval_state: None,
            at: row.received_at,
            done: row.processed_at.is_some(),
            live_status: false,
        });
    }
    // Rows with one live key are one message, edited in place (as Telegram and Feishu show
    // them): an approval card and its edits are the card, where it was asked; a turn's status
    // line is its newest text, where that was written.
    let mut outs: Vec<Option<ChatMessage>> = Vec::new();
    let mut live: HashMap<String, usize> = HashMap::new();
    for row in store.outbox_recent(Channel::Web, CHAT_ID, limit).await? {
        let line = ChatMessage {
            id: format!("out-{}", row.id),
            from: "taskgate",
            text: row.payload.text.clone(),
            files: json!([]),
            task: row.task_id,
            approval: row.approval_id,
            buttons: choice_buttons(&row.payload),
            approval_state: None,
            at: row.created_at,
            done: row.sent_at.is_some(),
            live_status: false,
        };
        match row.payload.live.clone() {
            Some(key) if key.starts_with("approval:") => match live.get(&key).and_then(|&i| outs[i].as_mut()) {
                Some(card) => card.done = line.done,
                None => {
                    live.insert(key, outs.len());
                    outs.push(Some(line));
                }
            },
            Some(key) => {
                if let Some(&i) = live.get(&key) {
                    outs[i] = None;
                }
                live.insert(key, outs.len());
                outs.push(Some(ChatMessage { live_status: true, ..line }));
            }
            None => outs.push(Some(line)),
        }
    }
    let outs: Vec<ChatMessage> = outs.into_iter().flatten().collect();
    // A turn's status line says what the agent does now: shown only while nothing newer was
    // said about its task.
    let newest: HashMap<Option<Id>, usize> = outs.iter().enumerate().map(|(i, l)| (l.task, i)).collect();
    lines.extend(outs.into_iter().enumerate().filter(|(i, l)| !l.live_status || newest[&l.task] == *i).map(|(_, l)| l));
    lines.sort_by_key(|l| l.at);
    let skip = lines.len().saturating_sub(limit as usize);
    let mut lines: Vec<ChatMessage> = lines.into_iter().skip(skip).collect();
    let mut ids: Vec<Id> = lines.iter().filter_map(|l| l.approval).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut approvals = Vec::with_capacity(ids.len());
    for id in ids {
        match store.approval(id).await {
            Ok(a) => approvals.push(a),
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let views: HashMap<Id, super::api::ApprovalView> =
        super::api::approval_views(store, approvals).await?.into_iter().map(|v| (v.id(), v)).collect();
    for line in &mut lines {
        line.approval_state = line.approval.and_then(|id| views.get(&id).cloned());
    }
    // While an approval card waits, it says what the status line would.
    let waiting: Vec<Option<Id>> = lines
        .iter()
        .filter(|l| l.approval_state.as_ref().is_some_and(|a| a.status() == ApprovalStatus::Pending))
        .map(|l| l.task)
        .collect();
    lines.retain(|l| !(l.live_status && waiting.contains(&l.task)));
    Ok(Json(lines))
}

/// Hands stored web messages to the engine, oldest first, through the drain every channel
/// uses.
pub async fn inbox_worker(console: Arc<Console>) {
    // The console's user is the operator: no per-person limit.
    let drain = InboxDrain {
        store: console.store.clone(),
        channel: Channel::Web,
        outbox: console.outbox.clone(),
        limits: taskgate_core::fair::Limits { per_person_per_minute: 0, max_waiting: 0 },
    };
    let wake = console.inbox.clone();
    drain.run(WebInbox { console }, wake, INBOX_INTERVAL).await;
}

struct WebInbox {
    console: Arc<Console>,
}

#[async_trait::async_trait]
impl InboxHandler for WebInbox {
    async fn handle(&mut self, row: &Inbound) -> anyhow::Result<()> {
        let console = &self.console;
        let text = row.payload.get("text").and_then(Value::as_str).unwrap_or_default().to_owned();
        let task = row.payload.get("task").and_then(Value::as_i64);
        let message = IncomingMessage {
            message_id: Some(format!("in-{}", row.id)),
            inbound: Some(row.id),
            ..console.user(task, &text)
        };
        let files: Vec<UploadedFile> =
            row.payload.get("files").and_then(|f| serde_json::from_value(f.clone()).ok()).unwrap_or_default();
        if files.is_empty() {
            console.engine.handle(message).await?;
        } else {
            let found = files
                .iter()
                .map(|f| {
                    console
                        .stash
                        .restore(&f.name, &f.mime, &f.sha256)
                        .ok_or_else(|| format!("{} is gone from the store", f.name))
                })
                .collect();
            crate::attachments::deliver_stored(&console.engine, &console.stash, message, found).await?;
        }
        console.hub.send(Hint::Chat { task });
        Ok(())
    }
}

/// Pushes due web outbox rows to connected browsers (as hints; the page fetches the text) and
/// marks them delivered. With no browser open they wait.
pub async fn outbox_drain(console: Arc<Console>) {
    loop {
        if console.hub.watchers() > 0
            && let Err(e) = drain(&console).await
        {
            tracing::warn!(error = %e, "web chat: reading the outbox failed");
        }
        let _ = tokio::time::timeout(OUTBOX_INTERVAL, console.outbox.notified()).await;
    }
}

async fn drain(console: &Console) -> Result<(), StoreError> {
    let store = console.store.as_ref();
    loop {
        // Heads of each web chat's queue; marking one sent makes the next one the head.
        let due = store.outbox_due(Channel::Web, Utc::now(), 100).await?;
        if due.is_empty() {
            return Ok(());
        }
        for row in due {
            store.outbox_sent(row.id, Some(&format!("web-{}", row.id))).await?;
            console.hub.send(Hint::Chat { task: row.task_id });
            if let Some(task) = row.task_id {
                console.hub.send(Hint::Task { task });
            }
        }
    }
}

/// A clarify's buttons as the page shows them: `[{label, choice}]`.
fn choice_buttons(reply: &Reply) -> Value {
    reply
        .buttons
        .iter()
        .filter_map(|b| match &b.action {
            Action::Choose { choice, .. } => Some(json!({"label": b.label, "choice": choice})),
            _ => None,
        })
        .collect()
}
