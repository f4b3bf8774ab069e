//! Live status messages, for every channel: one message per key (the engine writes `"live":
//! "turn:<id>"` into the payload of every status update of a turn), sent once and then edited
//! in place (a Telegram edit, a Feishu card PATCH).
//!
//! Updates that queued up while the chat was paced are coalesced: the head row and every
//! unsent row behind it with the same key become one edit showing only the newest text (the
//! live message keeps its place in the chat, so the latest state wins and a status never moves
//! backwards). A status whose turn already has its final message queued, and that was never
//! shown, is not sent at all. Edits are paced per chat like sends, and more slowly (Telegram
//! counts edits against the chat's limit and its Throttle adaptor does not shape them; Feishu
//! allows 5 updates a second per message); every request also spends the bot's own budget,
//! and in groups a per-minute budget.
//!
//! Everything here is pure (no IO, the clock passed in) so the rules are unit tested. Message
//! ids are the channel's own type (`i32` on Telegram, `om_…` strings on Feishu).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::str::FromStr;
use std::time::{Duration, Instant};

use taskgate_core::model::Outbound;
use taskgate_core::reply::Reply;

/// Chats or keys remembered in memory before the maps are cleared (the store is the fallback).
const MAX_REMEMBERED: usize = 10_000;

/// The live-status key of a reply, if it is a status update.
pub fn key(reply: &Reply) -> Option<&str> {
    reply.live.as_deref().filter(|k| !k.is_empty())
}

/// The rows that `head` stands for: every unsent row behind it in `recent` (a chat's newest
/// rows, oldest first) that carries the same key. They update the one message the key shows,
/// so only the newest matters: a superseded state is never sent. Empty when `head` is not a
/// live row or is not in `recent`.
pub fn coalesced<'a>(head: &Outbound, recent: &'a [Outbound]) -> Vec<&'a Outbound> {
    let Some(head_key) = key(&head.payload) else { return Vec::new() };
    let Some(at) = recent.iter().position(|r| r.id == head.id) else { return Vec::new() };
    recent[at + 1..].iter().filter(|r| r.sent_at.is_none() && key(&r.payload) == Some(head_key)).collect()
}

/// Whether the turn behind `key` has its final message in `recent` (sent or queued): a status
/// of that key never shown so far is not worth a message any more.
pub fn closed(key_wanted: &str, recent: &[Outbound]) -> bool {
    // A turn's draft (`turn:<id>:draft`) ends with the turn too.
    let turn = key_wanted.strip_suffix(":draft").unwrap_or(key_wanted);
    recent.iter().any(|r| r.payload.closes.as_deref() == Some(turn))
}

/// The message the key's earlier updates produced: the newest sent row with that key and a
/// platform message id (one that parses as the channel's id type), in `recent` (oldest first).
pub fn message_of<M: FromStr>(key_wanted: &str, recent: &[Outbound]) -> Option<M> {
    recent
        .iter()
        .rev()
        .filter(|r| r.sent_at.is_some() && key(&r.payload) == Some(key_wanted))
        .find_map(|r| r.external_message_id.as_deref()?.parse().ok())
}

/// Which message each key shows in each chat, as sent this process (the store answers after
/// a restart).
#[derive(Debug)]
pub struct LiveMessages<M> {
    by_key: HashMap<(String, String), M>,
    /// Messages that can no longer be edited: the store still names them, so without this a
    /// key would try the same dead message forever.
    gone: HashSet<(String, M)>,
}

impl<M> Default for LiveMessages<M> {
    fn default() -> Self {
        Self { by_key: HashMap::new(), gone: HashSet::new() }
    }
}

impl<M: Clone + Eq + Hash> LiveMessages<M> {
    pub fn get(&self, chat: &str, key: &str) -> Option<M> {
        self.by_key.get(&(chat.to_owned(), key.to_owned())).cloned()
    }

    pub fn set(&mut self, chat: &str, key: &str, message_id: M) {
        if self.by_key.len() >= MAX_REMEMBERED {
            self.by_key.clear();
        }
        self.by_key.insert((chat.to_owned(), key.to_owned()), message_id);
    }

    /// The message is gone (deleted by someone, too old to edit): the next update sends anew.
    pub fn forget(&mut self, chat: &str, key: &str, message_id: M) {
        self.by_key.remove(&(chat.to_owned(), key.to_owned()));
        if self.gone.len() >= MAX_REMEMBERED {
            self.gone.clear();
        }
        self.gone.insert((chat.to_owned(), message_id));
    }

    /// The message to edit for `key`: the remembered one, else the one the store names
    /// (`stored`, see [`message_of`]) unless it is known to be gone.
    pub fn message(&self, chat: &str, key: &str, stored: Option<M>) -> Option<M> {
        self.get(chat, key).or_else(|| stored.filter(|id| !self.gone.contains(&(chat.to_owned(), id.clone()))))
    }
}

/// Pacing by the platform's limits: any message (send or edit) at least `send_interval` after
/// the chat's last, an edit also at least `edit_interval` after the chat's last edit, every
/// request at least `bot_interval` after the bot's last (Telegram: 30 a second per bot), and
/// in group chats at most `group_per_minute` requests a minute (Telegram: 20).
#[derive(Debug)]
pub struct Pacer {
    send_interval: Duration,
    edit_interval: Duration,
    bot_interval: Duration,
    group: Option<GroupBudget>,
    last_any: HashMap<String, Instant>,
    last_edit: HashMap<String, Instant>,
    last_bot: Option<Instant>,
    group_sent: HashMap<String, VecDeque<Instant>>,
}

/// Requests a minute in group chats; `is_group` tells a group's chat id.
#[derive(Debug, Clone, Copy)]
pub struct GroupBudget {
    pub per_minute: usize,
    pub is_group: fn(&str) -> bool,
}

const MINUTE: Duration = Duration::from_secs(60);

impl Pacer {
    pub fn new(send_interval: Duration, edit_interval: Duration) -> Self {
        Self {
            send_interval,
            edit_interval,
            bot_interval: Duration::ZERO,
            group: None,
            last_any: HashMap::new(),
            last_edit: HashMap::new(),
            last_bot: None,
            group_sent: HashMap::new(),
        }
    }

    /// Also at most one request every `interval` for the whole bot.
    pub fn with_bot_interval(mut self, interval: Duration) -> Self {
        self.bot_interval = interval;
        self
    }

    /// Also at most `budget.per_minute` requests a minute to each group chat (0: no budget).
    pub fn with_group_budget(mut self, budget: GroupBudget) -> Self {
        self.group = (budget.per_minute > 0).then_some(budget);
        self
    }

    pub fn may_send(&self, chat: &str, now: Instant) -> bool {
        let bot_ok = self.last_bot.is_none_or(|t| now.saturating_duration_since(t) >= self.bot_interval);
        bot_ok && since(&self.last_any, chat, now).is_none_or(|d| d >= self.send_interval) && self.group_ok(chat, now)
    }

    pub fn may_edit(&self, chat: &str, now: Instant) -> bool {
        self.may_send(chat, now) && since(&self.last_edit, chat, now).is_none_or(|d| d >= self.edit_interval)
    }

    /// How long the bot-wide budget holds every request back from `now` (none: free).
    pub fn bot_wait(&self, now: Instant) -> Option<Duration> {
        let since = now.saturating_duration_since(self.last_bot?);
        (since < self.bot_interval).then(|| self.bot_interval - since)
    }

    /// A request went to the chat (successful or not: a failure also counts against the limit).
    pub fn sent(&mut self, chat: &str, now: Instant) {
        remember(&mut self.last_any, chat, now);
        self.spend(chat, now);
    }

    pub fn edited(&mut self, chat: &str, now: Instant) {
        remember(&mut self.last_any, chat, now);
        remember(&mut self.last_edit, chat, now);
        self.spend(chat, now);
    }

    fn group_ok(&self, chat: &str, now: Instant) -> bool {
        let Some(budget) = self.group.filter(|g| (g.is_group)(chat)) else { return true };
        let Some(times) = self.group_sent.get(chat) else { return true };
        times.iter().filter(|t| now.saturating_duration_since(**t) < MINUTE).count() < budget.per_minute
    }

    fn spend(&mut self, chat: &str, now: Instant) {
        self.last_bot = Some(now);
        let Some(budget) = self.group.filter(|g| (g.is_group)(chat)) else { return };
        if self.group_sent.len() >= MAX_REMEMBERED && !self.group_sent.contains_key(chat) {
            self.group_sent.clear();
        }
        let times = self.group_sent.entry(chat.to_owned()).or_default();
        while times.front().is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE) {
            times.pop_front();
        }
        times.push_back(now);
        while times.len() > budget.per_minute {
            times.pop_front();
        }
    }
}

fn since(map: &HashMap<String, Instant>, chat: &str, now: Instant) -> Option<Duration> {
    map.get(chat).map(|t| now.saturating_duration_since(*t))
}

fn remember(map: &mut HashMap<String, Instant>, chat: &str, now: Instant) {
    if map.len() >= MAX_REMEMBERED && !map.contains_key(chat) {
        map.clear();
    }
    map.insert(chat.to_owned(), now);
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;
    use taskgate_core::model::Channel;

    use super::*;

    fn row(id: i64, payload: serde_json::Value, sent: Option<&str>) -> Outbound {
        Outbound {
            id,
            channel: Channel::Telegram,
            chat_id: "1".into(),
            task_id: Some(1),
            approval_id: None,
            payload: Reply::from_json(payload),
            attempts: 0,
            next_attempt_at: Utc::now(),
            last_error: None,
            external_message_id: sent.map(str::to_owned),
            sent_at: sent.map(|_| Utc::now()),
            created_at: Utc::now(),
        }
    }

    fn live(id: i64, key: &str, text: &str) -> Outbound {
        row(id, json!({"text": text, "live": key}), None)
    }

    #[test]
    fn every_unsent_row_of_the_key_is_coalesced_into_the_head() {
        let recent = vec![
            row(1, json!({"text": "hello"}), Some("500")),
            live(2, "turn:7", "Codex is working"),
            live(3, "turn:7", "Codex is running `npm test`"),
            live(4, "turn:7", "Codex ran `npm test`"),
            row(5, json!({"text": "Codex is waiting for approval", "buttons": []}), None),
            live(6, "turn:7", "Codex is waiting for approval"),
        ];
        let run: Vec<i64> = coalesced(&recent[1], &recent).iter().map(|r| r.id).collect();
        assert_eq!(run, vec![3, 4, 6], "the newest state wins, past the approval, which keeps its place");
        assert!(coalesced(&recent[5], &recent).is_empty(), "the last row stands alone");
        assert!(coalesced(&recent[0], &recent).is_empty(), "not a live row");
    }

    #[test]
    fn another_key_is_not_coalesced_and_a_head_outside_the_window_stands_alone() {
        let recent = vec![live(2, "turn:7", "a"), live(3, "turn:8", "b"), live(4, "turn:7", "c")];
        let run: Vec<i64> = coalesced(&recent[0], &recent).iter().map(|r| r.id).collect();
        assert_eq!(run, vec![4]);
        assert!(coalesced(&recent[1], &recent).is_empty());
        let outside = live(1, "turn:7", "old");
        assert!(coalesced(&outside, &recent).is_empty());
        assert_eq!(key(&Reply { live: Some(String::new()), ..Reply::default() }), None);
        assert_eq!(key(&Reply::from_json(json!({"text": "x", "live": 5}))), None, "a malformed key is no key");
    }

    #[test]
    fn the_live_message_is_the_newest_sent_row_of_the_key() {
        let recent = vec![
            row(1, json!({"text": "a", "live": "turn:7"}), Some("500")),
            row(2, json!({"text": "b", "live": "turn:8"}), Some("501")),
            row(3, json!({"text": "c", "live": "turn:7"}), Some("500")),
            // Given up on (no message id): does not hide the message.
            row(4, json!({"text": "d", "live": "turn:7"}), None),
            live(5, "turn:7", "e"),
        ];
        assert_eq!(message_of("turn:7", &recent), Some(500));
        assert_eq!(message_of("turn:8", &recent), Some(501));
        assert_eq!(message_of::<i32>("turn:9", &recent), None);
        assert_eq!(message_of::<String>("turn:7", &recent).as_deref(), Some("500"), "string ids (Feishu) too");
    }

    #[test]
    fn edits_wait_for_the_edit_interval_and_sends_for_the_send_interval() {
        let mut pacer = Pacer::new(Duration::ZERO, Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(pacer.may_edit("1", t0) && pacer.may_send("1", t0));
        pacer.edited("1", t0);
        assert!(!pacer.may_edit("1", t0 + Duration::from_millis(999)));
        assert!(pacer.may_send("1", t0 + Duration::from_millis(10)), "sends are not held by edits here");
        assert!(pacer.may_edit("2", t0), "per chat");
        assert!(pacer.may_edit("1", t0 + Duration::from_secs(1)));

        let mut strict = Pacer::new(Duration::from_secs(1), Duration::from_secs(1));
        strict.sent("1", t0);
        assert!(!strict.may_edit("1", t0 + Duration::from_millis(500)), "an edit also waits behind a send");
        assert!(strict.may_edit("1", t0 + Duration::from_secs(1)));
    }

    #[test]
    fn a_final_message_closes_its_turns_status() {
        let recent =
            vec![live(2, "turn:7", "Codex is working"), row(3, json!({"text": "done", "closes": "turn:7"}), None)];
        assert!(closed("turn:7", &recent));
        assert!(closed("turn:7:draft", &recent), "the turn's draft too");
        assert!(!closed("turn:8", &recent));
    }

    #[test]
    fn the_bot_and_group_budgets_hold_every_chat_back() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(Duration::ZERO, Duration::ZERO)
            .with_bot_interval(Duration::from_millis(100))
            .with_group_budget(GroupBudget { per_minute: 2, is_group: |c| c.starts_with('-') });
        pacer.sent("1", t0);
        assert!(!pacer.may_send("2", t0 + Duration::from_millis(50)), "the bot's budget is shared");
        assert_eq!(pacer.bot_wait(t0 + Duration::from_millis(50)), Some(Duration::from_millis(50)));
        assert_eq!(pacer.bot_wait(t0 + Duration::from_millis(100)), None);
        assert!(pacer.may_send("2", t0 + Duration::from_millis(100)));
        pacer.sent("-5", t0 + Duration::from_secs(1));
        pacer.edited("-5", t0 + Duration::from_secs(2));
        assert!(!pacer.may_send("-5", t0 + Duration::from_secs(30)), "two a minute in a group");
        assert!(pacer.may_send("5", t0 + Duration::from_secs(30)), "private chats have no minute budget");
        assert!(pacer.may_send("-5", t0 + Duration::from_secs(62)), "a minute later, again");
    }

    #[test]
    fn a_clock_going_backwards_does_not_panic() {
        let mut pacer = Pacer::new(Duration::from_secs(1), Duration::from_secs(1));
        let t0 = Instant::now() + Duration::from_secs(5);
        pacer.edited("1", t0);
        assert!(!pacer.may_edit("1", t0 - Duration::from_secs(1)));
    }

    #[test]
    fn live_messages_are_remembered_per_chat_and_key() {
        let mut live = LiveMessages::<i32>::default();
        live.set("1", "turn:7", 500);
        assert_eq!(live.get("1", "turn:7"), Some(500));
        assert_eq!(live.get("2", "turn:7"), None);
        assert_eq!(live.message("1", "turn:7", Some(400)), Some(500), "memory first");
        live.forget("1", "turn:7", 500);
        assert_eq!(live.get("1", "turn:7"), None);
        assert_eq!(live.message("1", "turn:7", Some(500)), None, "a gone message is not edited again");
        assert_eq!(live.message("2", "turn:7", Some(500)), Some(500), "per chat");
    }
}
