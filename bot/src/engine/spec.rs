//! From config to what the runtime layer needs: the spec of one agent session and the
//! supervisor's limits. Pure, so the mapping is tested without starting a process.

use std::time::Duration;

use taskgate_adapters::runtime::SupervisorOptions;
use taskgate_core::runtime::SessionSpec;

use crate::config::Config;

/// The session spec for the configured agent `agent`, working in `cwd`. `Err` says, in words
/// for the chat, why the agent cannot start.
pub fn session_spec(
    config: &Config,
    agent: &str,
    display: &str,
    cwd: &str,
    resume: Option<String>,
) -> Result<SessionSpec, String> {
    let conf = config.agents.get(agent).ok_or_else(|| format!("no agent named `{agent}` is configured"))?;
    let argv = conf.argv().ok_or_else(|| format!("agent `{agent}` has no command"))?;
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let mut spec = SessionSpec::new(conf.kind, program.clone(), cwd);
    spec.agent = display.to_owned();
    spec.args = args.to_vec();
    spec.env = conf.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    spec.model = conf.model.clone();
    spec.resume = resume;
    // Always explicit, so codex never falls back to its own (possibly unattended) defaults;
    // the other adapters ignore both.
    spec.approval_policy = Some(conf.approval_policy.as_str().to_owned());
    spec.sandbox = Some(conf.sandbox.as_str().to_owned());
    spec.turn_timeout = Some(conf.turn_timeout(&config.runtime));
    spec.share_process = conf.shared_process;
    Ok(spec)
}

/// Supervisor limits from `[runtime]`.
pub fn supervisor_options(config: &Config) -> SupervisorOptions {
    let runtime = &config.runtime;
    SupervisorOptions {
        max_concurrent: runtime.max_processes.max(1),
        default_turn_timeout: Some(Duration::from_secs(runtime.turn_timeout_secs.max(1))),
        interrupt_grace: runtime.interrupt_grace(),
        ..SupervisorOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AgentConfig, AgentKind, ApprovalPolicy, Command, SandboxMode};

    fn config() -> Config {
        let mut config = Config::default();
        let mut codex = AgentConfig::new(AgentKind::Codex);
        codex.command = Some(Command::Line("codex app-server --listen stdio".into()));
        codex.approval_policy = ApprovalPolicy::OnFailure;
        codex.sandbox = SandboxMode::ReadOnly;
        codex.turn_timeout_secs = Some(5);
        codex.model = Some("gpt-5-codex".into());
        config.agents.insert("codex".into(), codex);
        config.agents.insert("cc".into(), AgentConfig::new(AgentKind::Claude));
        config.runtime.turn_timeout_secs = 120;
        config.runtime.max_processes = 2;
        config.runtime.interrupt_grace_secs = 1;
        config
    }

    #[test]
    fn the_spec_carries_policy_sandbox_and_time_limit() {
        let config = config();
        let spec = session_spec(&config, "codex", "Codex", "/srv/web", Some("thread-1".into())).unwrap();
        assert_eq!((spec.kind, spec.program.as_str()), (AgentKind::Codex, "codex"));
        assert_eq!(spec.args, ["app-server", "--listen", "stdio"]);
        assert_eq!(spec.cwd.to_str(), Some("/srv/web"));
        assert_eq!(spec.approval_policy.as_deref(), Some("on-failure"));
        assert_eq!(spec.sandbox.as_deref(), Some("read-only"));
        assert_eq!(spec.turn_timeout, Some(Duration::from_secs(5)));
        assert_eq!(spec.resume.as_deref(), Some("thread-1"));
        assert_eq!(spec.model.as_deref(), Some("gpt-5-codex"));

        // Defaults: a person approves, the workspace is writable, the runtime limit applies.
        let spec = session_spec(&config, "cc", "Cc", "/srv/web", None).unwrap();
        assert_eq!(spec.approval_policy.as_deref(), Some("untrusted"));
        assert_eq!(spec.sandbox.as_deref(), Some("workspace-write"));
        assert_eq!(spec.turn_timeout, Some(Duration::from_secs(120)));
    }

    #[test]
    fn an_unknown_agent_is_an_error_not_a_panic() {
        let err = session_spec(&config(), "gemini", "Gemini", "/", None).unwrap_err();
        assert_eq!(err, "no agent named `gemini` is configured");
    }

    #[test]
    fn supervisor_limits_come_from_runtime() {
        let options = supervisor_options(&config());
        assert_eq!(options.max_concurrent, 2);
        assert_eq!(options.default_turn_timeout, Some(Duration::from_secs(120)));
        assert_eq!(options.interrupt_grace, Duration::from_secs(1));
    }
}
