//! Long polling: `getUpdates` → the inbox. An update is confirmed to Telegram (by asking for
//! `offset = last_update_id + 1`) only after the inbox stored it, so a crash in between means a
//! redelivery, which the inbox deduplicates on `update_id`.

use std::sync::Arc;
use std::time::Duration;

use taskgate_core::model::{Channel, InboxOutcome, NewInbound};
use taskgate_core::store::{Store, StoreError, StoreResult};
use teloxide::prelude::*;
use teloxide::types::{AllowedUpdate, Update};
use teloxide::{ApiError, RequestError};
use tokio::sync::Notify;

use super::outbound::describe;

#[derive(Debug, Clone)]
pub struct PollOptions {
    /// Long-poll timeout in seconds. teloxide's client gives up after 17 s, so this stays well
    /// under it, or every quiet poll would end in a network error.
    pub timeout_secs: u32,
    /// Longest pause after a failure.
    pub max_backoff: Duration,
}

impl Default for PollOptions {
    fn default() -> Self {
        Self { timeout_secs: 10, max_backoff: Duration::from_secs(30) }
    }
}

/// The updates the gateway handles; others are not even fetched.
pub fn allowed_updates() -> Vec<AllowedUpdate> {
    vec![AllowedUpdate::Message, AllowedUpdate::CallbackQuery, AllowedUpdate::MyChatMember]
}

/// Stores one update in the inbox (the dedupe key is `update_id`).
pub async fn store_update(store: &dyn Store, update_id: u32, payload: serde_json::Value) -> StoreResult<InboxOutcome> {
    store.inbox_accept(NewInbound { channel: Channel::Telegram, external_id: update_id.to_string(), payload }).await
}

/// Storing one update failing this often with the same permanent error skips it: one bad
/// update must not stop the channel for everyone behind it.
const MAX_STORE_ATTEMPTS: u32 = 3;

/// Polls forever (one poller per token: a second one gets 409 from Telegram). `stored` is
/// notified after each batch reached the inbox.
pub async fn run(bot: Bot, store: Arc<dyn Store>, stored: Arc<Notify>, options: PollOptions) {
    let mut offset: Option<i32> = None;
    let mut failures: u32 = 0;
    // The update that failed to store, and how often in a row.
    let mut stuck: Option<(u32, u32)> = None;
    loop {
        let mut request = bot.get_updates().timeout(options.timeout_secs).allowed_updates(allowed_updates());
        if let Some(offset) = offset {
            request = request.offset(offset);
        }
        let pause = match request.await {
            Ok(updates) => match store_all(store.as_ref(), &updates).await {
                Ok(next) => {
                    failures = 0;
                    if next.is_some() {
                        offset = next;
                        stored.notify_one();
                    }
                    None
                }
                Err((update_id, e)) => {
                    let attempts = match stuck {
                        Some((id, n)) if id == update_id => n + 1,
                        _ => 1,
                    };
                    stuck = Some((update_id, attempts));
                    // A busy or unreachable database is no fault of the update: keep trying.
                    if attempts >= MAX_STORE_ATTEMPTS && !matches!(e, StoreError::Busy(_)) {
                        tracing::error!(update_id, error = %e, "telegram polling: an update cannot be stored; skipped");
                        offset = Some(update_id as i32 + 1);
                        stuck = None;
                        None
                    } else {
                        // Not confirmed: Telegram sends the batch again.
                        tracing::warn!(update_id, attempts, error = %e, "telegram polling: storing an update failed");
                        Some(Duration::from_secs(1))
                    }
                }
            },
            Err(RequestError::RetryAfter(secs)) => Some(secs.duration()),
            Err(RequestError::Api(ApiError::TerminatedByOtherGetUpdates)) => {
                tracing::warn!("telegram polling: another process polls this bot token (only one may); retrying");
                Some(Duration::from_secs(5))
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %describe(&e, bot.token()), "telegram polling: getUpdates failed");
                Some(Duration::from_secs(1u64 << failures.min(5)).min(options.max_backoff))
            }
        };
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
    }
}

/// Stores a batch in order; the offset that confirms it, `None` for an empty batch. On a
/// failure, which update failed: the ones before it are stored and confirmed next time.
async fn store_all(store: &dyn Store, updates: &[Update]) -> Result<Option<i32>, (u32, StoreError)> {
    let mut next = None;
    for update in updates {
        let payload = serde_json::to_value(update)
            .unwrap_or_else(|e| serde_json::json!({"update_id": update.id.0, "unserializable": e.to_string()}));
        match store_update(store, update.id.0, payload).await {
            Ok(InboxOutcome::Duplicate(_)) => {
                tracing::debug!(update_id = update.id.0, "telegram polling: update already in the inbox");
            }
            Ok(InboxOutcome::Accepted(_)) => {}
            Err(e) => return Err((update.id.0, e)),
        }
        next = Some(update.id.as_offset());
    }
    Ok(next)
}
