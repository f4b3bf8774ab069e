//! Waking the outbox senders of this process when a committed plan queued a message, so an
//! answer leaves as soon as its transaction commits instead of at the sender's next poll. The
//! poll stays: it finds rows another replica wrote.

use std::sync::Arc;

use taskgate_core::model::Channel;
use taskgate_core::plan::Plan;
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct OutboxWake {
    telegram: Arc<Notify>,
    feishu: Arc<Notify>,
    web: Arc<Notify>,
}

impl OutboxWake {
    /// What `channel`'s sender waits on.
    pub fn of(&self, channel: Channel) -> Arc<Notify> {
        match channel {
            Channel::Telegram => self.telegram.clone(),
            Channel::Feishu => self.feishu.clone(),
            Channel::Web => self.web.clone(),
        }
    }

    /// After `plan` committed: wakes every sender when it may have queued a message (which
    /// chats it reached is the apply step's business; a sender woken for nothing reads an
    /// empty queue once).
    pub fn after(&self, plan: &Plan) {
        if plan.speaks() {
            for notify in [&self.telegram, &self.feishu, &self.web] {
                notify.notify_one();
            }
        }
    }
}
