//! The config every end-to-end test starts from: a project in a temp dir and two agents,
//! `codex` and `claude`, both played by the fake agent binary.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use taskgate::config::{AgentConfig, AgentKind, Command, Config, ProjectConfig};

/// `fake_agent` is the test's `env!("CARGO_BIN_EXE_fake-agent")` (only tests see that name).
/// `turn_timeout` bounds every turn, so no agent outlives the test's own wait.
pub fn fake_agents_config(dir: &Path, fake_agent: &str, turn_timeout: Duration) -> std::io::Result<Config> {
    let state = dir.join("fake-state").to_string_lossy().into_owned();
    let agent = |kind: AgentKind, mode: &str| AgentConfig {
        command: Some(Command::Argv(vec![fake_agent.into(), mode.into(), "--state-dir".into(), state.clone()])),
        ..AgentConfig::new(kind)
    };
    let mut agents = BTreeMap::new();
    agents.insert("codex".to_owned(), agent(AgentKind::Codex, "codex"));
    agents.insert("claude".to_owned(), agent(AgentKind::Claude, "claude"));
    let work = dir.join("work");
    std::fs::create_dir_all(&work)?;
    let mut config = Config {
        projects: vec![ProjectConfig {
            name: "demo".into(),
            path: work,
            default_agent: Some("codex".into()),
            busy_policy: Default::default(),
        }],
        agents,
        ..Config::default()
    };
    config.runtime.turn_timeout_secs = turn_timeout.as_secs();
    config.runtime.interrupt_grace_secs = 1;
    Ok(config)
}
