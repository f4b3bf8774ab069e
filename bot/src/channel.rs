//! A chat channel's link to its platform. A platform that is unreachable at boot (a network
//! blip, an API outage, a proxy not up yet) must take down only itself: the gateway starts,
//! the web console and the other channels serve, and the channel connects in the background
//! with capped exponential backoff. Its state is what `/readyz` reports per channel.
//!
//! Updates that arrive through a webhook meanwhile are stored as usual (the route needs no
//! platform call); they are handled once the channel's workers run.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use taskgate_core::model::Channel;
use tokio::task::JoinHandle;

/// Where a channel's connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// The first attempt is under way.
    Connecting,
    Connected,
    /// The last attempt failed (why, in words an operator can act on); another follows.
    Retrying {
        why: String,
        attempt: u32,
    },
}

impl std::fmt::Display for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Link::Connecting => f.write_str("connecting"),
            Link::Connected => f.write_str("connected"),
            Link::Retrying { why, attempt } => write!(f, "retrying (attempt {attempt}): {why}"),
        }
    }
}

/// Every configured channel's [`Link`], shared by the channels (writers) and the HTTP routes.
#[derive(Debug, Clone, Default)]
pub struct Links(Arc<Mutex<BTreeMap<String, Link>>>);

impl Links {
    fn set(&self, channel: Channel, link: Link) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(channel.to_string(), link);
    }

    /// `(channel, state)` for each configured channel, by name.
    pub fn snapshot(&self) -> Vec<(String, Link)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// How long to wait between connection attempts: doubling from `first`, capped at `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { first: Duration::from_secs(1), max: Duration::from_secs(60) }
    }
}

/// The workers a connected channel runs.
#[derive(Default)]
pub struct Started {
    /// Sending what the engine enqueued.
    pub outbox: Vec<JoinHandle<()>>,
    /// Taking updates in (poller or long connection, inbox drain).
    pub intake: Vec<JoinHandle<()>>,
}

/// A channel's background work: the connection attempts, then the workers. Stops when
/// dropped.
pub struct Workers(Arc<Mutex<Running>>);

#[derive(Default)]
struct Running {
    connecting: Option<JoinHandle<()>>,
    started: Started,
    /// Set by [`Workers::stop_intake`]: intake that starts afterwards is stopped at once.
    intake_stopped: bool,
}

impl Workers {
    /// Connects with `connect` (retried with `backoff` until it succeeds, each failure
    /// reported in `links` and the log), then starts the channel's workers with `start`.
    pub fn connect<C, F, T, S>(channel: Channel, links: Links, backoff: Backoff, mut connect: C, start: S) -> Self
    where
        C: FnMut() -> F + Send + 'static,
        F: Future<Output = Result<T, String>> + Send,
        T: Send + 'static,
        S: FnOnce(T) -> Started + Send + 'static,
    {
        let running = Arc::new(Mutex::new(Running::default()));
        links.set(channel, Link::Connecting);
        let shared = running.clone();
        let task = tokio::spawn(async move {
            let (mut delay, mut attempt) = (backoff.first, 0u32);
            let connected = loop {
                attempt += 1;
                match connect().await {
                    Ok(connected) => break connected,
                    Err(why) => {
                        tracing::warn!(%channel, attempt, retry_in = ?delay, "{channel}: cannot connect: {why}");
                        links.set(channel, Link::Retrying { why, attempt });
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(backoff.max);
                    }
                }
            };
            if attempt > 1 {
                tracing::info!(%channel, attempt, "{channel}: connected after retrying");
            }
            links.set(channel, Link::Connected);
            let started = start(connected);
            let mut running = shared.lock().unwrap_or_else(PoisonError::into_inner);
            if running.intake_stopped {
                started.intake.iter().for_each(JoinHandle::abort);
            }
            running.started = started;
        });
        running.lock().unwrap_or_else(PoisonError::into_inner).connecting = Some(task);
        Self(running)
    }

    /// Stops taking updates in (the gateway stops), and stops connecting if still trying;
    /// the outbox sender goes on until dropped.
    pub fn stop_intake(&self) {
        let mut running = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        running.intake_stopped = true;
        if let Some(task) = running.connecting.take() {
            // Aborting a finished task is a no-op; an unfinished one never starts workers.
            task.abort();
        }
        running.started.intake.drain(..).for_each(|w| w.abort());
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        let mut running = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = running.connecting.take() {
            task.abort();
        }
        let Started { outbox, intake } = std::mem::take(&mut running.started);
        outbox.iter().chain(&intake).for_each(JoinHandle::abort);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn quick() -> Backoff {
        Backoff { first: Duration::from_millis(1), max: Duration::from_millis(4) }
    }

    async fn until(links: &Links, want: impl Fn(&Link) -> bool) {
        while !links.snapshot().iter().any(|(_, l)| want(l)) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn failures_are_reported_and_retried_until_the_channel_connects() {
        let (links, tries) = (Links::default(), Arc::new(AtomicU32::new(0)));
        let counted = tries.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _workers = Workers::connect(
            Channel::Telegram,
            links.clone(),
            quick(),
            move || {
                let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
                async move { if n < 4 { Err(format!("refused {n}")) } else { Ok(n) } }
            },
            move |n| {
                tx.send(n).unwrap();
                Started::default()
            },
        );
        assert_eq!(rx.await.unwrap(), 4, "started with what the fourth attempt returned");
        assert_eq!(links.snapshot(), vec![("telegram".to_owned(), Link::Connected)]);
        assert_eq!(tries.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn stopping_intake_while_connecting_abandons_the_attempt() {
        let (guard, abandoned) = tokio::sync::oneshot::channel::<()>();
        let guard = Arc::new(Mutex::new(Some(guard)));
        let workers = Workers::connect(
            Channel::Feishu,
            Links::default(),
            quick(),
            move || {
                // Held by the pending attempt: dropped when the attempt is abandoned.
                let guard = guard.lock().unwrap().take();
                async move {
                    let _guard = guard;
                    std::future::pending::<Result<(), String>>().await
                }
            },
            |()| Started::default(),
        );
        workers.stop_intake();
        assert!(abandoned.await.is_err(), "the attempt's future was dropped");
    }

    #[tokio::test]
    async fn stopping_intake_stops_the_intake_workers_and_keeps_the_outbox() {
        let links = Links::default();
        let (tx, started) = tokio::sync::oneshot::channel();
        let workers = Workers::connect(
            Channel::Telegram,
            links.clone(),
            quick(),
            || async { Ok::<_, String>(()) },
            move |()| {
                let (intake, outbox) =
                    (tokio::spawn(std::future::pending::<()>()), tokio::spawn(std::future::pending::<()>()));
                tx.send((intake.abort_handle(), outbox.abort_handle())).unwrap();
                Started { outbox: vec![outbox], intake: vec![intake] }
            },
        );
        let (intake, outbox) = started.await.unwrap();
        until(&links, |l| *l == Link::Connected).await;
        workers.stop_intake();
        while !intake.is_finished() {
            tokio::task::yield_now().await;
        }
        assert!(!outbox.is_finished(), "the outbox sender goes on after intake stopped");
        drop(workers);
        while !outbox.is_finished() {
            tokio::task::yield_now().await;
        }
    }
}
