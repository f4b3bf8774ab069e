//! A fair inbox: inbound updates are handled round robin across the people who sent them, not
//! first come first served over everything, and each person is held to a rate
//! (`[limits] per_person_per_minute`). A person over the rate has their messages wait (at most
//! `max_waiting` of them; later ones are set aside, visible with their reason) and hears once
//! "slow down: N messages waiting". So one person's flood never delays another person's first
//! message by more than one round.
//!
//! Pure: the drain loop passes the pending updates (oldest first, each with its sender) and the
//! clock, and carries out the plan.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::model::Id;

/// The per-person limits (`[limits]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Messages of one person handled per minute; more wait. 0: no limit.
    pub per_person_per_minute: usize,
    /// A person's messages kept waiting beyond the rate; later ones are set aside.
    pub max_waiting: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { per_person_per_minute: 60, max_waiting: 100 }
    }
}

/// What to do in one round over the pending updates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round<K> {
    /// Handle these now, in this order: at most one per person, oldest person first.
    pub handle: Vec<Id>,
    /// Set these aside unhandled: their sender already has `max_waiting` messages waiting.
    pub set_aside: Vec<Id>,
    /// Tell these people to slow down (once per flood), naming how many of theirs wait, in
    /// answer to the update given.
    pub slow_down: Vec<SlowDown<K>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowDown<K> {
    pub sender: K,
    /// The update whose conversation hears it.
    pub update: Id,
    pub waiting: usize,
}

const MINUTE: Duration = Duration::from_secs(60);
/// People remembered before the memory is cleared (a forgotten person starts afresh).
const MAX_REMEMBERED: usize = 10_000;

/// The rate each person has used and who has been told to slow down.
#[derive(Debug)]
pub struct Fairness<K> {
    limits: Limits,
    handled: HashMap<K, VecDeque<Instant>>,
    told: HashSet<K>,
}

impl<K: Clone + Eq + Hash> Fairness<K> {
    pub fn new(limits: Limits) -> Self {
        Self { limits, handled: HashMap::new(), told: HashSet::new() }
    }

    /// Plans one round over `pending` (oldest first; a sender of `None` is nobody's, e.g. a
    /// membership change: never limited). `blocked` senders (their oldest update failed and
    /// is retried later) keep their place: nothing of theirs is handled this round.
    pub fn round(&mut self, pending: &[(Id, Option<K>)], blocked: &HashSet<K>, now: Instant) -> Round<K> {
        let mut round = Round { handle: Vec::new(), set_aside: Vec::new(), slow_down: Vec::new() };
        // Each sender's updates, senders in order of their oldest update.
        let mut order: Vec<&K> = Vec::new();
        let mut by_sender: HashMap<&K, Vec<Id>> = HashMap::new();
        for (id, sender) in pending {
            match sender {
                None => round.handle.push(*id),
                Some(k) => {
                    let queue = by_sender.entry(k).or_default();
                    if queue.is_empty() {
                        order.push(k);
                    }
                    queue.push(*id);
                }
            }
        }
        let mut seen = HashSet::new();
        for sender in order {
            seen.insert(sender.clone());
            let queue = &by_sender[sender];
            if blocked.contains(sender) {
                continue;
            }
            let free = self.free(sender, now);
            let (now_ids, waiting) = if free > 0 { (&queue[..1], &queue[1..]) } else { (&queue[..0], &queue[..]) };
            round.handle.extend_from_slice(now_ids);
            if self.limits.per_person_per_minute == 0 {
                continue;
            }
            // Beyond what the rate lets through within the next minute, updates only wait.
            let over_rate = waiting.len().saturating_sub(free.saturating_sub(1));
            if over_rate == 0 {
                self.told.remove(sender);
                continue;
            }
            let kept = waiting.len().min(free.saturating_sub(1) + self.limits.max_waiting);
            round.set_aside.extend_from_slice(&waiting[kept..]);
            if !self.told.contains(sender) {
                if self.told.len() >= MAX_REMEMBERED {
                    self.told.clear();
                }
                self.told.insert(sender.clone());
                round.slow_down.push(SlowDown { sender: sender.clone(), update: queue[0], waiting: kept });
            }
        }
        // Someone with nothing pending any more may be told again next time.
        self.told.retain(|k| seen.contains(k));
        round
    }

    /// An update of `sender` was handled at `now`: it counts against their rate.
    pub fn handled(&mut self, sender: &K, now: Instant) {
        if self.limits.per_person_per_minute == 0 {
            return;
        }
        if self.handled.len() >= MAX_REMEMBERED && !self.handled.contains_key(sender) {
            self.handled.clear();
        }
        let times = self.handled.entry(sender.clone()).or_default();
        times.push_back(now);
        while times.len() > self.limits.per_person_per_minute {
            times.pop_front();
        }
    }

    /// Updates `sender` may still have handled in the minute before `now`.
    fn free(&self, sender: &K, now: Instant) -> usize {
        let limit = self.limits.per_person_per_minute;
        if limit == 0 {
            return usize::MAX;
        }
        let used = self
            .handled
            .get(sender)
            .map_or(0, |times| times.iter().filter(|t| now.saturating_duration_since(**t) < MINUTE).count());
        limit.saturating_sub(used)
    }
}

/// At most once per `every` per key (a refusal to a stranger: one an hour, whatever they send).
#[derive(Debug)]
pub struct OncePer<K> {
    every: Duration,
    last: HashMap<K, Instant>,
}

impl<K: Clone + Eq + Hash> OncePer<K> {
    pub fn new(every: Duration) -> Self {
        Self { every, last: HashMap::new() }
    }

    /// Whether `key` may have it now (and, if so, it is spent).
    pub fn allow(&mut self, key: &K, now: Instant) -> bool {
        if self.last.get(key).is_some_and(|t| now.saturating_duration_since(*t) < self.every) {
            return false;
        }
        if self.last.len() >= MAX_REMEMBERED {
            let every = self.every;
            self.last.retain(|_, t| now.saturating_duration_since(*t) < every);
            if self.last.len() >= MAX_REMEMBERED {
                // Even the recent ones overflow: refusing the oldest first beats growing forever.
                self.last.clear();
            }
        }
        self.last.insert(key.clone(), now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(rows: &[(Id, &'static str)]) -> Vec<(Id, Option<&'static str>)> {
        rows.iter().map(|(id, k)| (*id, Some(*k))).collect()
    }

    #[test]
    fn one_update_per_person_per_round_oldest_person_first() {
        let mut fair = Fairness::new(Limits::default());
        let rows = pending(&[(1, "ann"), (2, "ann"), (3, "ann"), (4, "bob"), (5, "cat"), (6, "bob")]);
        let mut with_nobody = rows.clone();
        with_nobody.push((7, None));
        let round = fair.round(&with_nobody, &HashSet::new(), Instant::now());
        assert_eq!(round.handle, vec![7, 1, 4, 5], "nobody's updates go at once");
        assert!(round.set_aside.is_empty() && round.slow_down.is_empty());
    }

    #[test]
    fn a_blocked_person_keeps_their_place_and_others_go_on() {
        let mut fair = Fairness::new(Limits::default());
        let rows = pending(&[(1, "ann"), (2, "ann"), (3, "bob")]);
        let round = fair.round(&rows, &HashSet::from(["ann"]), Instant::now());
        assert_eq!(round.handle, vec![3]);
    }

    #[test]
    fn a_flood_waits_up_to_max_waiting_the_rest_is_set_aside_and_told_once() {
        let limits = Limits { per_person_per_minute: 2, max_waiting: 3 };
        let mut fair = Fairness::new(limits);
        let t0 = Instant::now();
        let flood: Vec<(Id, Option<&str>)> = (1..=10).map(|id| (id, Some("ann"))).collect();
        let round = fair.round(&flood, &HashSet::new(), t0);
        assert_eq!(round.handle, vec![1]);
        // One more fits this minute's rate, three wait beyond it: 2..=5 kept.
        assert_eq!(round.set_aside, vec![6, 7, 8, 9, 10]);
        assert_eq!(round.slow_down, vec![SlowDown { sender: "ann", update: 1, waiting: 4 }]);
        fair.handled(&"ann", t0);

        // Next round: Bob's first message goes; Ann has one left this minute; not told again.
        let mut rows: Vec<(Id, Option<&str>)> = (2..=5).map(|id| (id, Some("ann"))).collect();
        rows.push((11, Some("bob")));
        let round = fair.round(&rows, &HashSet::new(), t0);
        assert_eq!(round.handle, vec![2, 11]);
        assert!(round.slow_down.is_empty(), "told once");
        fair.handled(&"ann", t0);
        fair.handled(&"bob", t0);

        // Ann's rate is spent: her updates wait for the minute to pass.
        let rows: Vec<(Id, Option<&str>)> = (3..=5).map(|id| (id, Some("ann"))).collect();
        assert!(fair.round(&rows, &HashSet::new(), t0 + Duration::from_secs(30)).handle.is_empty());
        let later = fair.round(&rows, &HashSet::new(), t0 + Duration::from_secs(61));
        assert_eq!(later.handle, vec![3]);
        assert!(later.set_aside.is_empty());
    }

    #[test]
    fn someone_whose_queue_drained_is_told_again_next_flood() {
        let mut fair = Fairness::new(Limits { per_person_per_minute: 1, max_waiting: 10 });
        let t0 = Instant::now();
        let two = pending(&[(1, "ann"), (2, "ann")]);
        assert_eq!(fair.round(&two, &HashSet::new(), t0).slow_down.len(), 1);
        assert!(fair.round(&[], &HashSet::new(), t0).slow_down.is_empty());
        let again = pending(&[(3, "ann"), (4, "ann")]);
        assert_eq!(fair.round(&again, &HashSet::new(), t0).slow_down.len(), 1, "a new flood, a new notice");
    }

    #[test]
    fn once_per_hour_per_key() {
        let mut once = OncePer::new(Duration::from_secs(3600));
        let t0 = Instant::now();
        assert!(once.allow(&"mallory", t0));
        assert!(!once.allow(&"mallory", t0 + Duration::from_secs(60)));
        assert!(once.allow(&"eve", t0 + Duration::from_secs(60)), "per key");
        assert!(once.allow(&"mallory", t0 + Duration::from_secs(3600)), "an hour later, again");
    }

    #[test]
    fn no_limit_means_round_robin_only() {
        let mut fair = Fairness::new(Limits { per_person_per_minute: 0, max_waiting: 0 });
        let flood: Vec<(Id, Option<&str>)> = (1..=500).map(|id| (id, Some("ann"))).collect();
        let round = fair.round(&flood, &HashSet::new(), Instant::now());
        assert_eq!(round.handle, vec![1]);
        assert!(round.set_aside.is_empty() && round.slow_down.is_empty());
    }
}
