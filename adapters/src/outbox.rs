//! What a channel's outbox sender does with the result of one delivery attempt, the same for
//! every channel: a sent row (and the live updates it covered) is marked sent with the
//! platform's message id; a failure is retried at its next attempt time. Nothing is given up
//! silently: a rate limit or an outage (network, server errors) is retried for as long as it
//! lasts, with capped backoff; a request the platform refuses (a bad request) is given up
//! after `max_attempts`, and an undeliverable row (bot blocked, chat gone) at once, both marked
//! dropped (counted in `/metrics`). A row that no longer makes sense (a status the turn's
//! final message superseded) is marked done without a message, not counted.

//!
//! [`Sender`] is the one sender loop every channel runs, over a small [`Transport`] (send a
//! message, send a live message, edit one): the queue order and priority (the store's
//! `outbox_due`), pacing by the platform's limits ([`Pacer`]), live status messages edited in
//! place and coalesced ([`crate::live`]), 429 `retry_after` honoured, capped backoff, and
//! [`settle`] recording each attempt.

use std::fmt::Debug;
use std::hash::Hash;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use taskgate_core::model::{Channel, Id, Outbound};
use taskgate_core::reply::{Reply, ReplyKind};
use taskgate_core::store::{Store, StoreResult};
use tokio::sync::Notify;

use crate::live::{self, GroupBudget, LiveMessages, Pacer};

pub enum Settle<'a> {
    Sent {
        message_id: &'a str,
        covered: &'a [Id],
    },
    Retry {
        after: Duration,
        error: &'a str,
        /// A rate limit or an outage: retried until the platform is back, however long.
        transient: bool,
    },
    Dropped {
        error: &'a str,
    },
    /// No longer worth sending (superseded): done without a message, not a failure.
    Superseded {
        covered: &'a [Id],
    },
    /// Not attempted (paced): stays due.
    Later,
}

/// 2, 4, 8 … seconds after each failed attempt, at most five minutes: an outage of hours is
/// waited out with a try every five minutes.
pub fn backoff(attempts: i32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempts.clamp(0, 16) as u32 + 1).min(300))
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
        Settle::Retry { error, transient, .. } if row.attempts + 1 >= max_attempts && !transient => {
            tracing::warn!(%channel, outbox = row.id, chat = %row.chat_id, %error, "outbox: giving up on a message");
            store.outbox_dropped(row.id, error).await?;
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
            store.outbox_dropped(row.id, error).await?;
            Ok(true)
        }
        Settle::Superseded { covered } => {
            store.outbox_sent(row.id, None).await?;
            for id in covered {
                store.outbox_sent(*id, None).await?;
            }
            Ok(true)
        }
        Settle::Later => Ok(false),
    }
}

/// Why a request to the platform failed, as the sender loop treats it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Slow down: try again after `after` (a 429's `retry_after`). Never given up.
    RateLimited { after: Duration },
    /// The platform or the network is down (timeouts, 5xx): retried with capped backoff for
    /// as long as the outage lasts.
    Outage { error: String },
    /// The platform refused this request (a bad request): retried a few times, then dropped.
    Refused { error: String },
    /// It can never be delivered (bot blocked, chat gone, nothing to show): dropped at once.
    Undeliverable { error: String },
}

/// Why an edit of a live message failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditFailure {
    /// The message is gone or too old to edit: the live key goes on in a new message.
    Gone,
    Failed(Failure),
}

/// What one platform does for the sender loop: three requests, each returning the platform's
/// message id or why it failed. Pacing, order, coalescing and retries are the loop's.
#[async_trait]
pub trait Transport: Send {
    /// The platform's message id (`i32` on Telegram, `om_…` on Feishu).
    type MessageId: Clone + Eq + Hash + FromStr + ToString + Debug + Send + Sync;
    const CHANNEL: Channel;

    /// Sends `row`'s reply as a new message, in as many parts as the platform needs; the id
    /// of the last part. A retry after a failure continues after the parts already sent.
    async fn send(&mut self, row: &Outbound) -> Result<Self::MessageId, Failure>;
    /// Sends one message showing `reply` (the newest update of `row`'s live key), silently when
    /// it is only a status.
    async fn send_live(&mut self, row: &Outbound, reply: &Reply) -> Result<Self::MessageId, Failure>;
    /// Edits `message` to show `reply`. Showing what it already shows is a success.
    async fn edit(&mut self, chat: &str, message: &Self::MessageId, reply: &Reply) -> Result<(), EditFailure>;
    /// Shows `reply` (the newest of `row`'s turn's streamed text) as the chat's draft; whether
    /// it was shown. Drafts are ephemeral: where a chat has none, or showing one fails for any
    /// reason but a rate limit, it is skipped (the turn's final message carries the text).
    async fn draft(&mut self, _row: &Outbound, _reply: &Reply) -> Result<bool, Failure> {
        Ok(false)
    }
    /// `row` is finished (sent or dropped): forget what was kept about it.
    fn finished(&mut self, _row: Id) {}
}

/// How the sender loop paces and retries (each channel's options convert into this).
#[derive(Debug, Clone)]
pub struct SenderOptions {
    /// How often the outbox is read when nothing wakes the sender.
    pub poll_interval: Duration,
    /// At least this long between two messages to one chat.
    pub chat_interval: Duration,
    /// At least this long between two edits of live messages in one chat.
    pub edit_interval: Duration,
    /// At least this long between two requests of the whole bot.
    pub bot_interval: Duration,
    /// Requests a minute in group chats, and how to tell a group.
    pub group: Option<GroupBudget>,
    /// A chat's newest rows read to coalesce live updates and find the message they edit.
    pub live_window: u64,
    /// Due rows read per pass.
    pub batch: u64,
    /// A row the platform refused this often (not rate limits, not outages) is dropped.
    pub max_attempts: i32,
}

/// What became of one outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery<M> {
    Sent {
        message_id: M,
    },
    /// Rate limited or failed for now; tried again at the row's next attempt time.
    Retry {
        after: Duration,
        error: String,
        transient: bool,
    },
    /// Cannot ever be sent: marked done and dropped (counted).
    Dropped {
        error: String,
    },
    /// No longer worth sending (a status its turn's final message closed before it was shown).
    Superseded,
    /// A draft was shown (never kept as a message), or skipped where there are no drafts.
    Drafted {
        shown: bool,
    },
    /// Not this chat's turn yet (pacing).
    Later,
}

impl<M> Delivery<M> {
    fn failed(failure: Failure, attempts: i32) -> Self {
        match failure {
            Failure::RateLimited { after } => Delivery::Retry {
                after,
                error: format!("rate limited: retry after {}s", after.as_secs()),
                transient: true,
            },
            Failure::Outage { error } => Delivery::Retry { after: backoff(attempts), error, transient: true },
            Failure::Refused { error } => Delivery::Retry { after: backoff(attempts), error, transient: false },
            Failure::Undeliverable { error } => Delivery::Dropped { error },
        }
    }
}

/// The sender loop of one channel.
pub struct Sender<T: Transport> {
    transport: T,
    store: Arc<dyn Store>,
    options: SenderOptions,
    pacer: Pacer,
    live: LiveMessages<T::MessageId>,
}

impl<T: Transport> Sender<T> {
    pub fn new(transport: T, store: Arc<dyn Store>, options: SenderOptions) -> Self {
        let mut pacer =
            Pacer::new(options.chat_interval, options.edit_interval).with_bot_interval(options.bot_interval);
        if let Some(group) = options.group {
            pacer = pacer.with_group_budget(group);
        }
        Self { transport, store, options, pacer, live: LiveMessages::default() }
    }

    /// Sends what is due, forever; `wake` shortens the wait after an enqueue.
    pub async fn run(mut self, wake: Arc<Notify>) {
        loop {
            if let Err(e) = self.pass().await {
                tracing::warn!(channel = %T::CHANNEL, error = %e, "outbox: reading the outbox failed");
            }
            let _ = tokio::time::timeout(self.options.poll_interval, wake.notified()).await;
        }
    }

    /// One pass over the due rows (urgent first). Returns what happened to each row it looked at.
    pub async fn pass(&mut self) -> StoreResult<Vec<(Id, Delivery<T::MessageId>)>> {
        let due = self.store.outbox_due(T::CHANNEL, Utc::now(), self.options.batch).await?;
        let mut done = Vec::new();
        for row in due {
            // The bot's own budget is shared by every chat: wait for it rather than skip.
            if let Some(wait) = self.pacer.bot_wait(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
            let (delivery, covered) = match live::key(&row.payload) {
                Some(key) if row.payload.kind == ReplyKind::Draft => {
                    let key = key.to_owned();
                    self.deliver_draft(&row, &key).await
                }
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
                Delivery::Retry { after, error, transient } => {
                    Settle::Retry { after: *after, error, transient: *transient }
                }
                Delivery::Dropped { error } => Settle::Dropped { error },
                Delivery::Superseded | Delivery::Drafted { .. } => Settle::Superseded { covered: &covered },
                Delivery::Later => Settle::Later,
            };
            if settle(self.store.as_ref(), &row, result, self.options.max_attempts).await? {
                self.transport.finished(row.id);
            }
            done.push((row.id, delivery));
        }
        Ok(done)
    }

    async fn deliver(&mut self, row: &Outbound) -> Delivery<T::MessageId> {
        if !self.pacer.may_send(&row.chat_id, Instant::now()) {
            return Delivery::Later;
        }
        let result = self.transport.send(row).await;
        self.pacer.sent(&row.chat_id, Instant::now());
        match result {
            Ok(message_id) => Delivery::Sent { message_id },
            Err(failure) => Delivery::failed(failure, row.attempts),
        }
    }

    /// A streamed draft: the newest of the turn's drafts queued is shown (paced like an edit),
    /// unless the turn already has its final message.
    async fn deliver_draft(&mut self, row: &Outbound, key: &str) -> (Delivery<T::MessageId>, Vec<Id>) {
        let chat = row.chat_id.as_str();
        if !self.pacer.may_edit(chat, Instant::now()) {
            return (Delivery::Later, Vec::new());
        }
        let recent = self.store.outbox_recent(T::CHANNEL, chat, self.options.live_window).await.unwrap_or_default();
        let run = live::coalesced(row, &recent);
        let newest = run.last().copied().unwrap_or(row);
        let covered: Vec<Id> = run.iter().map(|r| r.id).collect();
        if live::closed(key, &recent) {
            return (Delivery::Superseded, covered);
        }
        match self.transport.draft(row, &newest.payload).await {
            Ok(shown) => {
                if shown {
                    self.pacer.edited(chat, Instant::now());
                }
                (Delivery::Drafted { shown }, covered)
            }
            Err(failure) => {
                self.pacer.edited(chat, Instant::now());
                (Delivery::failed(failure, row.attempts), Vec::new())
            }
        }
    }

    /// A live update: the newest of the updates queued behind it (same key) is shown, by
    /// editing the key's message, or by sending it when the key has none yet in this chat (or
    /// not at all when the turn's final message already closed the key). Returns the rows
    /// besides `row` that the delivery covers.
    async fn deliver_live(&mut self, row: &Outbound, key: &str) -> (Delivery<T::MessageId>, Vec<Id>) {
        let chat = row.chat_id.as_str();
        let known = self.live.get(chat, key);
        // Paced before reading the store: a throttled chat costs no query per pass.
        let now = Instant::now();
        let paced = match known {
            Some(_) => self.pacer.may_edit(chat, now),
            None => self.pacer.may_send(chat, now),
        };
        if !paced {
            return (Delivery::Later, Vec::new());
        }
        let recent = match self.store.outbox_recent(T::CHANNEL, chat, self.options.live_window).await {
            Ok(recent) => recent,
            Err(e) => {
                // Without the queue, this row alone; without the history, the memory alone.
                tracing::warn!(channel = %T::CHANNEL, outbox = row.id, error = %e, "outbox: reading a chat's recent messages failed");
                Vec::new()
            }
        };
        let run = live::coalesced(row, &recent);
        let newest = run.last().copied().unwrap_or(row);
        let covered: Vec<Id> = run.iter().map(|r| r.id).collect();
        let closed = live::closed(key, &recent);
        let existing = self.live.message(chat, key, live::message_of(key, &recent));
        if let Some(message_id) = existing {
            if known.is_none() && !self.pacer.may_edit(chat, now) {
                return (Delivery::Later, Vec::new());
            }
            let result = self.transport.edit(chat, &message_id, &newest.payload).await;
            self.pacer.edited(chat, Instant::now());
            match result {
                Ok(()) => {
                    self.live.set(chat, key, message_id.clone());
                    return (Delivery::Sent { message_id }, covered);
                }
                Err(EditFailure::Gone) => {
                    tracing::info!(channel = %T::CHANNEL, outbox = row.id, %chat, "outbox: live message gone; sending a new one");
                    self.live.forget(chat, key, message_id);
                }
                Err(EditFailure::Failed(failure)) => return (Delivery::failed(failure, row.attempts), Vec::new()),
            }
            if !self.pacer.may_send(chat, Instant::now()) {
                return (Delivery::Later, Vec::new());
            }
        }
        if closed {
            // The turn ended and said so in its final message: a status nobody saw is moot.
            return (Delivery::Superseded, covered);
        }
        let result = self.transport.send_live(row, &newest.payload).await;
        self.pacer.sent(chat, Instant::now());
        match result {
            Ok(message_id) => {
                self.live.set(chat, key, message_id.clone());
                (Delivery::Sent { message_id }, covered)
            }
            Err(failure) => (Delivery::failed(failure, row.attempts), Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_and_rate_limits_are_waited_out_refusals_are_counted() {
        let limited = Delivery::<i32>::failed(Failure::RateLimited { after: Duration::from_secs(7) }, 3);
        assert_eq!(
            limited,
            Delivery::Retry {
                after: Duration::from_secs(7),
                error: "rate limited: retry after 7s".into(),
                transient: true
            }
        );
        let down = Delivery::<i32>::failed(Failure::Outage { error: "network error: timeout".into() }, 40);
        assert_eq!(
            down,
            Delivery::Retry {
                after: Duration::from_secs(300),
                error: "network error: timeout".into(),
                transient: true
            },
            "hours of outage: a try every five minutes, never given up"
        );
        let refused = Delivery::<i32>::failed(Failure::Refused { error: "Bad Request".into() }, 0);
        assert!(matches!(refused, Delivery::Retry { transient: false, .. }));
        let gone = Delivery::<i32>::failed(Failure::Undeliverable { error: "blocked".into() }, 0);
        assert_eq!(gone, Delivery::Dropped { error: "blocked".into() });
        assert_eq!(backoff(0), Duration::from_secs(2));
        assert_eq!(backoff(i32::MAX), Duration::from_secs(300));
    }
}
