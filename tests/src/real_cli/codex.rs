//! An offline home for `codex app-server`: a `CODEX_HOME` whose config sends every model call to
//! the fake and turns off the features that reach other hosts.

use std::io;
use std::path::{Path, PathBuf};

use taskgate_core::runtime::{AgentKind, SessionSpec};
use tempfile::TempDir;

use crate::fake_model::FakeModel;

/// The key codex reads for the fake provider (`env_key`); the fake ignores its value.
const API_KEY_VAR: &str = "FAKE_API_KEY";

/// Temp HOME, CODEX_HOME and a git working directory, removed on drop.
pub struct CodexSandbox {
    root: TempDir,
    pub home: PathBuf,
    pub codex_home: PathBuf,
    pub workdir: PathBuf,
}

impl CodexSandbox {
    /// Creates the sandbox under `base`. Not under /tmp: codex refuses to install its helper
    /// binaries (PATH aliases) when CODEX_HOME is in a temporary directory, and warns.
    pub fn new(base: &Path, fake: &FakeModel) -> io::Result<Self> {
        std::fs::create_dir_all(base)?;
        let root = tempfile::Builder::new().prefix("codex-").tempdir_in(base)?;
        let home = root.path().join("home");
        let codex_home = root.path().join("codex-home");
        let workdir = root.path().join("work");
        std::fs::create_dir_all(&home)?;
        std::fs::create_dir_all(&codex_home)?;
        std::fs::write(codex_home.join("config.toml"), config_toml(&fake.origin()))?;
        super::git_workdir(&workdir)?;
        Ok(CodexSandbox { root, home, codex_home, workdir })
    }

    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = super::common_env(&self.home);
        env.push(("CODEX_HOME".into(), self.codex_home.to_string_lossy().into_owned()));
        env.push((API_KEY_VAR.into(), "dummy".into()));
        env
    }

    /// A session spec for the codex adapter: every non-trivial command needs approval.
    ///
    /// The sandbox is `danger-full-access` so an approved command runs even where bubblewrap
    /// cannot create namespaces (containers); the approval is the gate under test.
    pub fn spec(&self, bin: &Path) -> SessionSpec {
        let mut spec = SessionSpec::new(AgentKind::Codex, bin.to_string_lossy(), &self.workdir);
        spec.env = self.env();
        spec.approval_policy = Some("untrusted".into());
        spec.sandbox = Some("danger-full-access".into());
        spec
    }

    /// A spec like [`Self::spec`] working in another git directory of the sandbox, `work-<name>`:
    /// the same process configuration, so a thread of the same app-server.
    pub fn spec_in(&self, bin: &Path, name: &str) -> io::Result<SessionSpec> {
        let dir = self.root.path().join(format!("work-{name}"));
        super::git_workdir(&dir)?;
        let mut spec = self.spec(bin);
        spec.cwd = dir;
        Ok(spec)
    }
}

/// `model_provider = "fake"` with the Responses wire API and no retries (a failure shows at
/// once); update checks, analytics and plugin lookups would reach other hosts.
fn config_toml(origin: &str) -> String {
    format!(
        r#"model = "fake-model"
model_provider = "fake"
check_for_update_on_startup = false

[model_providers.fake]
name = "Fake local"
base_url = "{origin}/v1"
env_key = "{API_KEY_VAR}"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[features]
plugins = false
remote_plugin = false
"#
    )
}
