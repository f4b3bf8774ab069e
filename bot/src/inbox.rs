//! Draining one channel's inbox, the same way for every channel, fairly: round robin across the
//! people who sent the updates (one update per person per round, oldest person first), each
//! person held to `[limits] per_person_per_minute` (see [`taskgate_core::fair`]): over it their
//! updates wait, at most `max_waiting` of them, the rest are set aside unanswered (visible with
//! the reason), and they hear once "slow down: N messages waiting". A person's own updates are
//! handled in order. An update whose handling fails is retried on later passes (holding back
//! that person's later ones, so a chat keeps its order) and set aside with its error after
//! `MAX_ATTEMPTS` (visible in the console and `/metrics`), so one poison update cannot stall
//! the channel. Attempts are counted on the row: a new drain leader continues the count.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use taskgate_adapters::store::SeaStore;
use taskgate_core::fair::{Fairness, Limits};
use taskgate_core::model::{Channel, Id, Inbound};
use taskgate_core::store::{Store, StoreError};
use taskgate_core::wording;
use tokio::sync::Notify;

const MAX_ATTEMPTS: i32 = 3;
/// Pending updates read per round: past a flood's set-aside tail to the next person's.
const WINDOW: u64 = 1000;
/// Why a flood's tail is set aside.
const SET_ASIDE: &str = "set aside unanswered: the sender had too many messages waiting ([limits] max_waiting)";

/// What a channel does with one stored update.
#[async_trait]
pub trait InboxHandler: Send {
    async fn handle(&mut self, row: &Inbound) -> anyhow::Result<()>;

    /// Who sent the update, as a key per person (`None`: nobody's, e.g. a membership change;
    /// never limited). Read from the stored payload, without handling it.
    fn sender(&self, _row: &Inbound) -> Option<String> {
        None
    }

    /// Tells whoever sent `row`, where they sent it, `text` (a "slow down").
    async fn notify(&mut self, _row: &Inbound, _text: &str) -> anyhow::Result<()> {
        Ok(())
    }
}

pub struct InboxDrain {
    pub store: Arc<SeaStore>,
    pub channel: Channel,
    /// Woken after each pass: handling usually queued replies.
    pub outbox: Arc<Notify>,
    pub limits: Limits,
}

impl InboxDrain {
    /// Drains on every `wake` (the webhook or poller stored something) and every `interval`.
    pub async fn run(self, mut handler: impl InboxHandler, wake: Arc<Notify>, interval: Duration) {
        let mut fairness = Fairness::new(self.limits);
        loop {
            if let Err(e) = self.pass(&mut handler, &mut fairness).await {
                tracing::warn!(channel = %self.channel, error = %e, "inbox: reading the inbox failed");
            }
            let _ = tokio::time::timeout(interval, wake.notified()).await;
        }
    }

    async fn pass(&self, handler: &mut impl InboxHandler, fairness: &mut Fairness<String>) -> Result<(), StoreError> {
        // Failed this pass: retried on a later pass, their senders' later updates behind them.
        let mut failed: HashSet<Id> = HashSet::new();
        let mut blocked: HashSet<String> = HashSet::new();
        loop {
            let pending = self.store.inbox_pending(self.channel, WINDOW).await?;
            let pending: Vec<Inbound> = pending.into_iter().filter(|r| !failed.contains(&r.id)).collect();
            if pending.is_empty() {
                return Ok(());
            }
            let keyed: Vec<(Id, Option<String>)> = pending.iter().map(|r| (r.id, handler.sender(r))).collect();
            let senders: HashMap<Id, Option<String>> = keyed.iter().cloned().collect();
            let by_id: HashMap<Id, &Inbound> = pending.iter().map(|r| (r.id, r)).collect();
            let round = fairness.round(&keyed, &blocked, Instant::now());
            for notice in &round.slow_down {
                tracing::info!(channel = %self.channel, sender = %notice.sender, waiting = notice.waiting, "inbox: a sender is over their rate");
                let text = wording::slow_down(notice.waiting, &self.limits);
                if let Some(row) = by_id.get(&notice.update)
                    && let Err(e) = handler.notify(row, &text).await
                {
                    tracing::warn!(channel = %self.channel, error = %format!("{e:#}"), "inbox: telling a sender to slow down failed");
                }
            }
            if !round.set_aside.is_empty() {
                tracing::warn!(channel = %self.channel, count = round.set_aside.len(), "inbox: a flood's tail set aside");
                self.store.inbox_set_aside_many(&round.set_aside, SET_ASIDE).await?;
            }
            if round.handle.is_empty() {
                if !round.set_aside.is_empty() {
                    continue;
                }
                // Everyone left is waiting for their rate (or blocked): a later pass.
                return Ok(());
            }
            for id in round.handle {
                let Some(row) = by_id.get(&id) else { continue };
                let sender = senders.get(&id).cloned().flatten();
                match handler.handle(row).await {
                    Ok(()) => {
                        self.store.inbox_done(row.id).await?;
                        if let Some(sender) = &sender {
                            fairness.handled(sender, Instant::now());
                        }
                    }
                    Err(e) => {
                        let attempt = row.attempts + 1;
                        let set_aside = attempt >= MAX_ATTEMPTS;
                        let error = format!("{e:#}");
                        tracing::warn!(channel = %self.channel, inbox = row.id, attempt, set_aside, error = %error, "inbox: handling an update failed");
                        self.store.inbox_failed(row.id, &error, set_aside).await?;
                        if !set_aside {
                            // Try again on a later pass, keeping this person's order behind it.
                            failed.insert(row.id);
                            if let Some(sender) = sender {
                                blocked.insert(sender);
                            }
                        }
                    }
                }
            }
            self.outbox.notify_one();
        }
    }
}
