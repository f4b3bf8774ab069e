//! What a channel's outbox sender does with the result of one delivery attempt, the same for
//! every channel: a sent row (and the live updates it covered) is marked sent with the
//! platform's message id; a failure is retried at its next attempt time, or given up after
//! `max_attempts` unless the platform only asked us to slow down; an undeliverable row is
//! marked done without a message.

use std::time::Duration;

use chrono::Utc;
use taskgate_core::model::{Id, Outbound};
use taskgate_core::store::{Store, StoreResult};

pub enum Settle<'a> {
    Sent {
        message_id: &'a str,
        covered: &'a [Id],
    },
    Retry {
        after: Duration,
        error: &'a str,
        rate_limited: bool,
    },
    Dropped {
        error: &'a str,
    },
    /// Not attempted (paced): stays due.
    Later,
}

/// Records the attempt on `row`. Returns whether the row is finished (sent, dropped or given
/// up), so a sender can forget what it kept about the row (e.g. parts of a split message).
pub async fn settle(store: &dyn Store, row: &Outbound, result: Settle<'_>, max_attempts: i32) -> StoreResult<bool> {
    let channel = row.channel;
    match result {
        Settle::Sent { message_id, covered } => {
            store.outbox_sent(row.id, Some(message_id)).await?;
            // Coalesced live updates are shown by the same message: they are done too.
            for id in covered {
                store.outbox_sent(*id, Some(message_id)).await?;
            }
            Ok(true)
        }
        Settle::Retry { error, rate_limited, .. } if row.attempts + 1 >= max_attempts && !rate_limited => {
            tracing::warn!(%channel, outbox = row.id, chat = %row.chat_id, %error, "outbox: giving up on a message");
            store.outbox_sent(row.id, None).await?;
            Ok(true)
        }
        Settle::Retry { after, error, .. } => {
            tracing::info!(%channel, outbox = row.id, chat = %row.chat_id, %error, retry_in = ?after, "outbox: will retry");
            let next = Utc::now() + chrono::Duration::from_std(after).unwrap_or(chrono::Duration::seconds(60));
            store.outbox_retry(row.id, next, error).await?;
            Ok(false)
        }
        Settle::Dropped { error } => {
            tracing::warn!(%channel, outbox = row.id, chat = %row.chat_id, %error, "outbox: message dropped");
            store.outbox_sent(row.id, None).await?;
            Ok(true)
        }
        Settle::Later => Ok(false),
    }
}
