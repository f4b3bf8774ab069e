//! Live updates: the server pushes small hints ("task 7 changed", "new chat message") over SSE
//! and the page re-fetches what it shows. Hints come from a poll of the store's change feed
//! (new timeline events, task status moves) so they see work done by any replica, and from the
//! web outbox drain. A missed hint costs a stale view until the next one, never data.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Serialize;
use taskgate_core::model::{EventKind, Id, TaskStatus};
use taskgate_core::store::{Store, StoreResult};
use tokio::sync::broadcast;

use super::Console;

/// How often the change feed looks at the store while someone is watching.
const FEED_INTERVAL: Duration = Duration::from_millis(400);
/// Events read per look; a longer backlog is read in several.
const FEED_PAGE: u64 = 500;
/// Tasks whose status the feed compares between looks (the list's first page).
const WATCHED_TASKS: u64 = 100;

/// What changed, as the page needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Hint {
    /// A task's timeline, status, executions or approvals changed.
    Task { task: Id },
    /// Approvals were requested or decided somewhere.
    Approvals,
    /// The web chat has a new message (about `task`, if any).
    Chat { task: Option<Id> },
    /// Hints were dropped (a slow browser): re-fetch everything shown.
    Resync,
}

impl Hint {
    fn name(&self) -> &'static str {
        match self {
            Hint::Task { .. } => "task",
            Hint::Approvals => "approvals",
            Hint::Chat { .. } => "chat",
            Hint::Resync => "resync",
        }
    }
}

/// Fan-out of hints to every open stream.
pub struct Hub {
    tx: broadcast::Sender<Hint>,
}

impl Hub {
    pub fn new() -> Self {
        Self { tx: broadcast::channel(256).0 }
    }

    pub fn send(&self, hint: Hint) {
        // No receiver is fine: nobody is looking.
        let _ = self.tx.send(hint);
    }

    /// Browsers connected now.
    pub fn watchers(&self) -> usize {
        self.tx.receiver_count()
    }

    fn subscribe(&self) -> broadcast::Receiver<Hint> {
        self.tx.subscribe()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

/// `GET /api/stream`: `text/event-stream` of hints, each `event: <type>` with the hint as JSON.
pub async fn stream(Extension(console): Extension<Arc<Console>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = console.hub.subscribe();
    let hello = stream::once(async { Ok(Event::default().event("hello").data("{}")) });
    let hints = stream::unfold(rx, |mut rx| async move {
        let hint = match rx.recv().await {
            Ok(hint) => hint,
            Err(broadcast::error::RecvError::Lagged(_)) => Hint::Resync,
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        let data = serde_json::to_string(&hint).unwrap_or_else(|_| "{}".into());
        Some((Ok(Event::default().event(hint.name()).data(data)), rx))
    });
    // A stopping gateway ends every stream (the browser reconnects, to another replica): an
    // open stream must not hold the shutdown up.
    let closing = console.closing.clone().cancelled_owned();
    Sse::new(hello.chain(hints).take_until(closing)).keep_alive(KeepAlive::default())
}

/// Polls the store for changes while anyone watches and turns them into hints.
pub async fn change_feed(console: Arc<Console>) {
    let mut feed = Feed::default();
    loop {
        if console.hub.watchers() > 0 || !feed.started {
            match feed.look(console.store.as_ref()).await {
                Ok(hints) => hints.into_iter().for_each(|h| console.hub.send(h)),
                Err(e) => tracing::warn!(error = %e, "web console: reading changes failed"),
            }
        }
        tokio::time::sleep(FEED_INTERVAL).await;
    }
}

/// Where the change feed is: the last event seen and the watched tasks' statuses.
#[derive(Default)]
struct Feed {
    started: bool,
    last_event: Id,
    statuses: HashMap<Id, (i32, TaskStatus)>,
}

impl Feed {
    /// What changed since the last look. The first look only finds where "now" is.
    async fn look(&mut self, store: &dyn Store) -> StoreResult<Vec<Hint>> {
        let mut tasks = BTreeSet::new();
        let mut approvals = false;
        loop {
            let page = store.events_after(self.last_event, FEED_PAGE).await?;
            let full = page.len() as u64 == FEED_PAGE;
            for event in page {
                self.last_event = self.last_event.max(event.id);
                tasks.insert(event.task_id);
                approvals |= event.kind == EventKind::Approval;
            }
            if !full {
                break;
            }
        }
        let mut statuses = HashMap::new();
        for task in store.tasks(WATCHED_TASKS).await? {
            let now = (task.version, task.status);
            if self.statuses.get(&task.id) != Some(&now) {
                tasks.insert(task.id);
            }
            statuses.insert(task.id, now);
        }
        self.statuses = statuses;
        if !self.started {
            self.started = true;
            return Ok(Vec::new());
        }
        let mut hints: Vec<Hint> = tasks.into_iter().map(|task| Hint::Task { task }).collect();
        if approvals {
            hints.push(Hint::Approvals);
        }
        Ok(hints)
    }
}
