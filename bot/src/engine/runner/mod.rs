//! The runtime side of the engine: which replica runs which execution, and the actors that do.
//!
//! Ownership lives in the database (see `taskgate_core::model::Lease`): an execution with
//! work (a queued turn, an order) is run by the replica holding its lease, and only that one
//! talks to its agent. This module is the replica's dispatcher:
//!
//! - `wake` after a local commit: the execution's actor here looks now, or this replica
//!   claims the execution when nobody holds it;
//! - a poll of the executions with work: new work for executions this replica owns wakes
//!   their actors (work that another replica accepted), and executions whose owner's lease
//!   expired (the owner died) are claimed and taken over;
//! - a heartbeat renews every lease this replica holds;
//! - `shutdown` stops claiming, lets running turns finish within the grace, hands the rest
//!   over (interrupted, queued again, leases released) so another replica continues at once.
//!
//! Startup recovery is not a separate path: a replica starts with no actors, and its first
//! poll claims what nobody holds, exactly like a takeover.

mod actor;
mod session;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use taskgate_adapters::runtime::Supervisor;
use taskgate_adapters::store::SeaStore;
use taskgate_core::model::{Id, Lease};
use taskgate_core::store::Store;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// How often a replica looks for work it should run (new work for its own executions that
/// another replica accepted, and executions whose owner died).
const POLL: Duration = Duration::from_millis(500);
/// Executions with work read per poll.
const POLL_BATCH: u64 = 1000;

/// What the engine and its runner share.
pub(super) struct Shared {
    pub store: Arc<SeaStore>,
    pub config: Arc<Config>,
    pub supervisor: Supervisor,
    /// Idle sessions shutting down right now to free a slot for a waiting start.
    pub releasing: Mutex<usize>,
    /// Restart notes: read for every new session's seed, written by agents over MCP.
    pub notes: Arc<crate::notes::Keeper>,
    /// This process's name as an owner of executions: unique per process start.
    pub replica: String,
    /// Cancelled when the runner is dropped without a shutdown: actors end their agents and
    /// stop at once, writing nothing (as if the process had died).
    pub dropped: CancellationToken,
    /// This process's outbox senders, woken when a committed plan queued a message.
    pub outbox: super::wake::OutboxWake,
}

impl Shared {
    pub fn lease_length(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config.runtime.lease()).unwrap_or(chrono::Duration::seconds(15))
    }

    /// Whether an idle session should give its process back: more starts wait than sessions
    /// already on their way out, so two idle sessions do not both go for one waiter.
    fn claim_release(&self) -> bool {
        let Ok(mut releasing) = self.releasing.lock() else { return false };
        if self.supervisor.waiting() > *releasing {
            *releasing += 1;
            true
        } else {
            false
        }
    }

    fn release_done(&self) {
        if let Ok(mut releasing) = self.releasing.lock() {
            *releasing = releasing.saturating_sub(1);
        }
    }
}

/// A message to an execution's actor.
#[derive(Debug)]
enum Msg {
    /// Work may have arrived: read the orders and turns.
    Wake,
    /// The gateway stops: finish or hand over by `deadline`, then give the execution up.
    Stop { deadline: Instant },
}

struct Handle {
    tx: mpsc::UnboundedSender<Msg>,
    /// The work sequence number this actor was last woken for by the poll.
    poked: i64,
    /// Tells this handle from a later actor of the same execution.
    generation: u64,
}

pub(super) struct Runner {
    shared: Arc<Shared>,
    actors: Mutex<HashMap<Id, Handle>>,
    /// Executions being claimed right now (one claim at a time per execution and process).
    claiming: Mutex<HashSet<Id>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    generation: std::sync::atomic::AtomicU64,
    /// Set when the gateway stops: nothing new is claimed.
    stopping: CancellationToken,
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stopping.cancel();
        self.shared.dropped.cancel();
    }
}

impl Runner {
    pub fn new(shared: Arc<Shared>) -> Arc<Self> {
        Arc::new(Runner {
            shared,
            actors: Mutex::new(HashMap::new()),
            claiming: Mutex::new(HashSet::new()),
            tasks: Mutex::new(Vec::new()),
            generation: Default::default(),
            stopping: CancellationToken::new(),
        })
    }

    /// Starts the poll and the heartbeat. Until then (tests that drive the engine alone) work
    /// runs only where `wake` is called.
    pub fn start(self: &Arc<Self>) {
        let runner = Arc::downgrade(self);
        let stopping = self.stopping.clone();
        let task = tokio::spawn(async move {
            let mut last_beat = Instant::now();
            loop {
                tokio::select! {
                    () = stopping.cancelled() => return,
                    () = tokio::time::sleep(POLL) => {}
                }
                let Some(runner) = runner.upgrade() else { return };
                let lease = runner.shared.config.runtime.lease();
                if last_beat.elapsed() >= lease / 3 {
                    runner.heartbeat().await;
                    last_beat = Instant::now();
                }
                runner.poll().await;
            }
        });
        self.track(task);
    }

    /// Executions this process runs right now.
    pub fn running(&self) -> usize {
        self.actors.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// Work for `exec` was committed here: its actor looks now, or this replica claims it.
    pub fn wake(self: &Arc<Self>, exec: Id) {
        if self.stopping.is_cancelled() {
            tracing::info!(
                execution = exec,
                "the gateway is stopping; the work waits for another replica or the next start"
            );
            return;
        }
        if let Ok(actors) = self.actors.lock()
            && let Some(handle) = actors.get(&exec)
            && handle.tx.send(Msg::Wake).is_ok()
        {
            return;
        }
        let runner = self.clone();
        self.track(tokio::spawn(async move { runner.claim(exec).await }));
    }

    /// Renews every lease this replica holds. A replica that cannot reach the database loses
    /// its executions after the lease: its actors find out at their next write.
    async fn heartbeat(&self) {
        let until = Utc::now() + self.shared.lease_length();
        if let Err(e) = self.shared.store.renew_leases(&self.shared.replica, until).await {
            tracing::warn!(error = %e, "runner: renewing leases failed");
        }
    }

    async fn poll(self: &Arc<Self>) {
        let work = match self.shared.store.work(POLL_BATCH).await {
            Ok(work) => work,
            Err(e) => {
                tracing::warn!(error = %e, "runner: reading the work failed");
                return;
            }
        };
        let now = Utc::now();
        for w in work {
            match w.owner.as_deref() {
                Some(owner) if owner == self.shared.replica => {
                    let poked = self.actors.lock().ok().and_then(|mut actors| {
                        let handle = actors.get_mut(&w.execution)?;
                        if w.seq > handle.poked {
                            handle.poked = w.seq;
                            let _ = handle.tx.send(Msg::Wake);
                        }
                        Some(())
                    });
                    if poked.is_none() {
                        self.wake(w.execution);
                    }
                }
                Some(_) if w.lease_expires_at.is_some_and(|until| until > now) => {}
                _ => self.wake(w.execution),
            }
        }
    }

    /// Takes `exec` over when nobody (alive) holds it, and starts its actor.
    async fn claim(self: Arc<Self>, exec: Id) {
        if !self.claiming.lock().is_ok_and(|mut c| c.insert(exec)) {
            return;
        }
        // Looked again now that no other claim of `exec` runs here: a claim that won just before
        // this one started an actor. Claiming anyway would renew the lease under a new fence
        // and so fence that live actor out mid-turn (its agent stopped, the turn run again).
        let here =
            self.actors.lock().is_ok_and(|actors| actors.get(&exec).is_some_and(|h| h.tx.send(Msg::Wake).is_ok()));
        let now = Utc::now();
        let claimed = if here {
            Ok(None)
        } else {
            self.shared.store.claim(exec, &self.shared.replica, now, now + self.shared.lease_length()).await
        };
        let started = match claimed {
            Ok(Some(lease)) => self.spawn(lease),
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(execution = exec, error = %e, "runner: claiming an execution failed");
                false
            }
        };
        if let Ok(mut claiming) = self.claiming.lock() {
            claiming.remove(&exec);
        }
        if started {
            tracing::debug!(execution = exec, "runner: running an execution");
        }
    }

    fn spawn(self: &Arc<Self>, lease: Lease) -> bool {
        if self.stopping.is_cancelled() {
            // Claimed while stopping: give it straight back.
            let store = self.shared.store.clone();
            self.track(tokio::spawn(async move {
                let _ = store.release(&lease).await;
            }));
            return false;
        }
        let Ok(mut actors) = self.actors.lock() else { return false };
        // `claim` looked for a live actor under its claim, so one here is on its way out (its
        // inbox closed): the new actor takes its place (the old one's removal checks the
        // generation).
        if let Some(handle) = actors.get(&lease.execution)
            && handle.tx.send(Msg::Wake).is_ok()
        {
            tracing::error!(execution = lease.execution, "runner: claimed an execution an actor here runs");
            return false;
        }
        let exec = lease.execution;
        let generation = self.generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        actors.insert(exec, Handle { tx, poked: 0, generation });
        drop(actors);
        let runner = Arc::downgrade(self);
        let actor = actor::Actor::new(self.shared.clone(), lease);
        self.track(tokio::spawn(async move {
            actor.run(rx).await;
            if let Some(runner) = runner.upgrade()
                && let Ok(mut actors) = runner.actors.lock()
                && actors.get(&exec).is_some_and(|h| h.generation == generation)
            {
                actors.remove(&exec);
            }
        }));
        true
    }

    fn track(&self, task: JoinHandle<()>) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.retain(|t| !t.is_finished());
            tasks.push(task);
        }
    }

    /// Stops claiming, gives running turns until `grace` to finish, hands the rest over, and
    /// waits (bounded) for every actor to give its execution up.
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping.cancel();
        let deadline = Instant::now() + grace;
        if let Ok(actors) = self.actors.lock() {
            for handle in actors.values() {
                let _ = handle.tx.send(Msg::Stop { deadline });
            }
        }
        let tasks: Vec<JoinHandle<()>> = match self.tasks.lock() {
            Ok(mut tasks) => tasks.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        // The handover itself (an interrupt, its answer, the lease released) takes seconds.
        let bound = deadline + actor::HANDOVER;
        for mut task in tasks {
            if tokio::time::timeout_at(bound, &mut task).await.is_err() {
                tracing::warn!("runner: an execution did not stop in time; abandoning it");
                task.abort();
            }
        }
    }
}
