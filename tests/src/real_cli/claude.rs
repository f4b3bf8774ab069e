//! An offline home for Claude Code: HOME and CLAUDE_CONFIG_DIR in a temp dir, the API base URL
//! on the fake, and no non-essential traffic (telemetry, updates, error reports).

use std::io;
use std::path::{Path, PathBuf};

use taskgate_core::runtime::{AgentKind, SessionSpec};
use tempfile::TempDir;

use crate::fake_model::FakeModel;

/// Temp HOME, config dir and a git working directory, removed on drop.
pub struct ClaudeSandbox {
    _root: TempDir,
    pub home: PathBuf,
    pub config_dir: PathBuf,
    pub workdir: PathBuf,
    base_url: String,
}

impl ClaudeSandbox {
    pub fn new(base: &Path, fake: &FakeModel) -> io::Result<Self> {
        std::fs::create_dir_all(base)?;
        let root = tempfile::Builder::new().prefix("claude-").tempdir_in(base)?;
        let home = root.path().join("home");
        let config_dir = home.join(".claude");
        let workdir = root.path().join("work");
        std::fs::create_dir_all(&config_dir)?;
        super::git_workdir(&workdir)?;
        Ok(ClaudeSandbox { _root: root, home, config_dir, workdir, base_url: fake.origin() })
    }

    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = super::common_env(&self.home);
        env.extend(
            [
                ("CLAUDE_CONFIG_DIR", self.config_dir.to_string_lossy().as_ref()),
                ("ANTHROPIC_BASE_URL", self.base_url.as_str()),
                ("ANTHROPIC_API_KEY", "dummy"),
                ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
                ("DISABLE_AUTOUPDATER", "1"),
                // The child inherits the caller's environment: blank out what would send the
                // model calls elsewhere or authenticate differently. Claude reads "" as unset.
                ("ANTHROPIC_AUTH_TOKEN", ""),
                ("CLAUDE_CODE_USE_BEDROCK", ""),
                ("CLAUDE_CODE_USE_VERTEX", ""),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        env
    }

    /// A session spec for the claude adapter (which adds the stream-json and stdio permission
    /// flags itself).
    pub fn spec(&self, bin: &Path) -> SessionSpec {
        let mut spec = SessionSpec::new(AgentKind::Claude, bin.to_string_lossy(), &self.workdir);
        spec.env = self.env();
        spec
    }
}
