//! `taskgate doctor`: one line per check, so a broken install says what is broken.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Config, redact_url};
use crate::startup::open_store;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Fail,
    /// Not configured: nothing to check, nothing wrong.
    Skip,
}

#[derive(Debug)]
pub struct Check {
    pub verdict: Verdict,
    pub name: String,
    pub detail: String,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = match self.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "--  ",
        };
        write!(f, "{tag} {}: {}", self.name, self.detail)
    }
}

fn check(verdict: Verdict, name: impl Into<String>, detail: impl Into<String>) -> Check {
    Check { verdict, name: name.into(), detail: detail.into() }
}

/// Runs every check after the config parsed (a config that does not parse never gets here).
pub async fn run(config: &Config, source: &str) -> Vec<Check> {
    let mut checks = vec![check(Verdict::Ok, "config", format!("parsed ({source})"))];
    checks.push(database(config).await);
    for (name, agent) in &config.agents {
        checks.push(match agent.argv() {
            Some(argv) => agent_command(name, &argv).await,
            None => check(Verdict::Fail, format!("agent {name}"), "no command configured"),
        });
    }
    checks.push(match &config.telegram {
        None => check(Verdict::Skip, "telegram", "not configured"),
        Some(_) => check(Verdict::Ok, "telegram", "token present"),
    });
    checks.push(match &config.feishu {
        None => check(Verdict::Skip, "feishu", "not configured"),
        Some(f) if f.app_id.trim().is_empty() => check(Verdict::Fail, "feishu", "app_id is empty"),
        Some(_) => check(Verdict::Ok, "feishu", "app_id and app_secret present"),
    });
    checks
}

async fn database(config: &Config) -> Check {
    let url = config.database_url();
    let shown = redact_url(&url);
    // Connecting would create an empty SQLite file; a missing one just means "not set up yet".
    if config.uses_sqlite() && !config.sqlite_path().exists() {
        return check(
            Verdict::Fail,
            "database",
            format!("{shown}: no database yet (run `taskgate migrate` or `taskgate serve`)"),
        );
    }
    let store = match open_store(config).await {
        Ok(store) => store,
        Err(e) => return check(Verdict::Fail, "database", format!("{e:#}")),
    };
    let result = match store.pending_migrations().await {
        Ok(pending) if pending.is_empty() => {
            check(Verdict::Ok, "database", format!("{shown}: reachable, schema up to date"))
        }
        Ok(pending) => check(
            Verdict::Fail,
            "database",
            format!("{shown}: {} migration(s) pending (run `taskgate migrate`)", pending.len()),
        ),
        Err(e) => check(Verdict::Fail, "database", format!("{shown}: {e}")),
    };
    let _ = store.close().await;
    result
}

async fn agent_command(name: &str, argv: &[String]) -> Check {
    let label = format!("agent {name}");
    let Some(program) = find_program(&argv[0]) else {
        return check(Verdict::Fail, label, format!("command `{}` not found on PATH", argv[0]));
    };
    let version = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(&program).arg("--version").kill_on_drop(true).output(),
    )
    .await;
    match version {
        Ok(Ok(out)) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.lines().next().unwrap_or("").trim();
            check(Verdict::Ok, label, format!("{} ({line})", program.display()))
        }
        Ok(Ok(out)) => {
            check(Verdict::Fail, label, format!("{} --version exited with {}", program.display(), out.status))
        }
        Ok(Err(e)) => check(Verdict::Fail, label, format!("{}: {e}", program.display())),
        Err(_) => check(Verdict::Fail, label, format!("{} --version timed out", program.display())),
    }
}

/// `program` itself when it names a path, else its first match on PATH.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let is_file = |p: &Path| p.is_file();
    if program.contains('/') {
        let path = PathBuf::from(program);
        return is_file(&path).then_some(path);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(program)).find(|p| is_file(p))
}
