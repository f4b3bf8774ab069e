//! Draining one channel's inbox, the same way for every channel: oldest first, each update
//! handled once and then marked done. An update whose handling fails is retried on later passes
//! (holding back the ones behind it, so a chat keeps its order) and set aside with its error
//! after `MAX_ATTEMPTS` (visible in the console and `/metrics`), so one poison update cannot
//! stall the channel. Attempts are counted on the row: a new drain leader continues the count.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use taskgate_adapters::store::SeaStore;
use taskgate_core::model::{Channel, Inbound};
use taskgate_core::store::{Store, StoreError};
use tokio::sync::Notify;

const MAX_ATTEMPTS: i32 = 3;

/// What a channel does with one stored update.
#[async_trait]
pub trait InboxHandler: Send {
    async fn handle(&mut self, row: &Inbound) -> anyhow::Result<()>;
}

pub struct InboxDrain {
    pub store: Arc<SeaStore>,
    pub channel: Channel,
    /// Woken after each pass: handling usually queued replies.
    pub outbox: Arc<Notify>,
}

impl InboxDrain {
    /// Drains on every `wake` (the webhook or poller stored something) and every `interval`.
    pub async fn run(self, mut handler: impl InboxHandler, wake: Arc<Notify>, interval: Duration) {
        loop {
            if let Err(e) = self.pass(&mut handler).await {
                tracing::warn!(channel = %self.channel, error = %e, "inbox: reading the inbox failed");
            }
            let _ = tokio::time::timeout(interval, wake.notified()).await;
        }
    }

    async fn pass(&self, handler: &mut impl InboxHandler) -> Result<(), StoreError> {
        loop {
            let pending = self.store.inbox_pending(self.channel, 100).await?;
            if pending.is_empty() {
                return Ok(());
            }
            let mut progressed = false;
            for row in pending {
                match handler.handle(&row).await {
                    Ok(()) => self.store.inbox_done(row.id).await?,
                    Err(e) => {
                        let attempt = row.attempts + 1;
                        let set_aside = attempt >= MAX_ATTEMPTS;
                        let error = format!("{e:#}");
                        tracing::warn!(channel = %self.channel, inbox = row.id, attempt, set_aside, error = %error, "inbox: handling an update failed");
                        self.store.inbox_failed(row.id, &error, set_aside).await?;
                        if !set_aside {
                            // Try again on a later pass, keeping this chat's order behind it.
                            break;
                        }
                    }
                }
                progressed = true;
            }
            self.outbox.notify_one();
            if !progressed {
                return Ok(());
            }
        }
    }
}
