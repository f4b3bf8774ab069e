//! For the runtime tests: a temp workspace, session specs for the fake agent, and event
//! collection with timeouts so a hung agent fails the test instead of hanging CI.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use taskgate_adapters::runtime::RuntimeOptions;
use taskgate_core::runtime::{AgentKind, AgentSession, RuntimeEvent, SessionSpec};

pub const STEP: Duration = Duration::from_secs(15);

/// A temp dir the fake agent works in, keeps its state in and logs what it receives to.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub log: PathBuf,
    /// Every prompt the fake got, with the pid of the process that got it.
    pub prompts: PathBuf,
}

impl Default for Workspace {
    fn default() -> Self {
        Self::new()
    }
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join(".fake-state");
        let log = dir.path().join(".fake-log.jsonl");
        let prompts = dir.path().join(".fake-prompts.jsonl");
        Workspace { dir, state, log, prompts }
    }

    pub fn spec(&self, kind: AgentKind) -> SessionSpec {
        let mode = match kind {
            AgentKind::Codex => "codex",
            AgentKind::Claude => "claude",
            AgentKind::Acp => "acp",
        };
        let mut spec = SessionSpec::new(kind, crate::world::fake_agent(), self.dir.path());
        spec.args = vec![
            mode.to_string(),
            "--state-dir".into(),
            self.state.to_string_lossy().into_owned(),
            "--log".into(),
            self.log.to_string_lossy().into_owned(),
            "--prompts".into(),
            self.prompts.to_string_lossy().into_owned(),
        ];
        spec
    }

    /// The pid of the fake process that got each prompt (codex and ACP fakes), in order.
    pub fn prompt_pids(&self) -> Vec<(u32, String)> {
        std::fs::read_to_string(&self.prompts)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| (v["pid"].as_u64().unwrap_or_default() as u32, v["text"].as_str().unwrap_or_default().to_owned()))
            .collect()
    }

    /// The pid of the process that got the prompt `text` (the last one, if sent twice).
    pub fn pid_of(&self, text: &str) -> Option<u32> {
        self.prompt_pids().into_iter().rev().find(|(_, t)| t == text).map(|(pid, _)| pid)
    }

    /// [`Self::pid_of`] once the fake has logged the prompt: it may log after the events the
    /// test waited for (a busy machine).
    pub async fn pid_when_logged(&self, text: &str) -> u32 {
        crate::harness::eventually(&format!("the prompt {text:?} logged"), || async { self.pid_of(text) }).await
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Every JSON message the fake agent received, in order.
    pub fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

pub fn options() -> RuntimeOptions {
    RuntimeOptions {
        handshake_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(2),
        ..RuntimeOptions::default()
    }
}

pub async fn next(session: &mut Box<dyn AgentSession>) -> Option<RuntimeEvent> {
    tokio::time::timeout(STEP, session.next_event()).await.expect("timed out waiting for a runtime event")
}

/// Collects events up to and including the first that matches `stop`.
pub async fn until(session: &mut Box<dyn AgentSession>, stop: impl Fn(&RuntimeEvent) -> bool) -> Vec<RuntimeEvent> {
    let mut seen = Vec::new();
    loop {
        let event = next(session).await.unwrap_or_else(|| panic!("session ended; saw {seen:#?}"));
        let done = stop(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

pub async fn until_turn_finished(session: &mut Box<dyn AgentSession>) -> Vec<RuntimeEvent> {
    until(session, |e| matches!(e, RuntimeEvent::TurnFinished { .. })).await
}

pub fn text_of(events: &[RuntimeEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            RuntimeEvent::AgentText { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

pub fn last(events: &[RuntimeEvent]) -> &RuntimeEvent {
    events.last().expect("no events")
}
