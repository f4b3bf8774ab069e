//! The pinned CLI versions (`tests/agent-clis.toml`, also read by `.ci/agent-clis`) and the
//! environment variables naming the installed binaries.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The pins file, compiled in so a bump rebuilds the tests.
const PINS: &str = include_str!("../../agent-clis.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cli {
    Codex,
    Claude,
}

impl Cli {
    pub fn name(self) -> &'static str {
        match self {
            Cli::Codex => "codex",
            Cli::Claude => "claude",
        }
    }

    /// The variable `.ci/run` exports with the binary's path.
    pub fn bin_var(self) -> &'static str {
        match self {
            Cli::Codex => "TASKGATE_CODEX_BIN",
            Cli::Claude => "TASKGATE_CLAUDE_BIN",
        }
    }

    /// The installed binary, when its variable is set and not empty.
    pub fn bin(self) -> Option<PathBuf> {
        std::env::var_os(self.bin_var()).filter(|v| !v.is_empty()).map(PathBuf::from)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub package: String,
    pub version: String,
}

/// The pin of one CLI. Panics on a malformed pins file: that is a bug in the repository.
pub fn pin(cli: Cli) -> Pin {
    let table: toml::Table = PINS.parse().expect("tests/agent-clis.toml is not valid TOML");
    let section = table.get(cli.name()).and_then(|s| s.as_table());
    let field = |key: &str| -> String {
        section
            .and_then(|s| s.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("tests/agent-clis.toml lacks [{}] {key}", cli.name()))
            .to_owned()
    };
    Pin { package: field("package"), version: field("version") }
}

/// The version `bin --version` reports: its first word that starts with a digit
/// (`codex-cli 0.169.0`, `2.1.197 (Claude Code)`).
pub async fn installed_version(bin: &Path, env: &[(String, String)]) -> Result<String, String> {
    let run = tokio::process::Command::new(bin).arg("--version").envs(env.iter().cloned()).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .map_err(|_| format!("{} --version took longer than 30 s", bin.display()))?
        .map_err(|e| format!("{} --version: {e}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{} --version failed ({}): {}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_version(&stdout).map(str::to_owned).ok_or_else(|| format!("no version in {stdout:?}"))
}

fn parse_version(output: &str) -> Option<&str> {
    output.split_whitespace().find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse() {
        assert_eq!(pin(Cli::Codex).package, "@openai/codex");
        assert_eq!(pin(Cli::Claude).package, "@anthropic-ai/claude-code");
    }

    #[test]
    fn versions_parse_from_both_formats() {
        assert_eq!(parse_version("codex-cli 0.169.0\n"), Some("0.169.0"));
        assert_eq!(parse_version("2.1.197 (Claude Code)\n"), Some("2.1.197"));
        assert_eq!(parse_version("oops"), None);
    }
}
