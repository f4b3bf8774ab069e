//! `taskgate doctor`: one line per check, so a broken install says what is broken.
//!
//! `FAIL` is what stops `serve` from working (the exit status is non-zero), `WARN` is what
//! works but probably not as meant (a project that is not a git checkout, an agent that is not
//! logged in), `--` is not configured. Nothing here changes state except a probe file in the
//! data dir, removed at once; a missing database is reported, not created.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use secrecy::ExposeSecret;
use taskgate_core::runtime::AgentKind;

use crate::config::{AgentConfig, Config, FeishuMode, TelegramMode, redact_url};
use crate::startup::open_store;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Works, but probably not as intended; does not fail the command.
    Warn,
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
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "--  ",
        };
        write!(f, "{tag} {}: {}", self.name, self.detail)
    }
}

fn check(verdict: Verdict, name: impl Into<String>, detail: impl Into<String>) -> Check {
    Check { verdict, name: name.into(), detail: detail.into() }
}

/// How long an agent CLI may take to print its version or login status.
const PROBE_WAIT: Duration = Duration::from_secs(15);

/// Runs every check after the config parsed (a config that does not parse never gets here).
pub async fn run(config: &Config, source: &str) -> Vec<Check> {
    let mut checks = vec![check(Verdict::Ok, "config", format!("parsed ({source})"))];
    checks.push(data_dir(config));
    checks.push(database(config).await);
    checks.extend(projects(config).await);
    checks.extend(worktrees(config).await);
    if config.agents.is_empty() {
        checks.push(check(Verdict::Warn, "agents", "none configured in [agents]: no task can start"));
    }
    for (name, agent) in &config.agents {
        checks.extend(agent_checks(name, agent).await);
    }
    let telegram = telegram(config);
    let reach_telegram = telegram.verdict == Verdict::Ok;
    checks.push(telegram);
    if reach_telegram {
        checks.push(telegram_reach(config).await);
    }
    let feishu = feishu(config);
    let reach_feishu = feishu.verdict == Verdict::Ok;
    checks.push(feishu);
    if reach_feishu {
        checks.push(feishu_reach(config).await);
    }
    checks.push(web(config));
    checks
}

/// How long doctor waits for a chat platform's API.
const REACH_WAIT: Duration = Duration::from_secs(5);

/// A platform that does not answer is a warning, not a failure: `serve` starts anyway and
/// keeps retrying the channel in the background (`/readyz` shows how that goes).
fn reach(name: &str, answer: Result<Result<String, String>, tokio::time::error::Elapsed>) -> Check {
    match answer {
        Ok(Ok(who)) => check(Verdict::Ok, name, format!("reached; the bot is {who}")),
        Ok(Err(why)) => check(Verdict::Warn, name, format!("{why}; serve starts anyway and retries the channel")),
        Err(_) => check(
            Verdict::Warn,
            name,
            format!("no answer within {REACH_WAIT:?}; serve starts anyway and retries the channel"),
        ),
    }
}

/// `getMe` with the configured token: the token is valid and the API reachable.
async fn telegram_reach(config: &Config) -> Check {
    let Some(tg) = &config.telegram else { return check(Verdict::Skip, "telegram api", "not configured") };
    let answer = tokio::time::timeout(REACH_WAIT, async {
        let bot = taskgate_adapters::telegram::bot(tg.token.expose_secret(), &tg.api_url)?;
        let me = taskgate_adapters::telegram::identity(&bot).await?;
        Ok(format!("@{}", me.username))
    })
    .await;
    reach("telegram api", answer)
}

/// The tenant token and `bot/v3/info`: the app credentials are valid and the API reachable.
async fn feishu_reach(config: &Config) -> Check {
    let Some(fs) = &config.feishu else { return check(Verdict::Skip, "feishu api", "not configured") };
    let answer = tokio::time::timeout(REACH_WAIT, async {
        let api = taskgate_adapters::feishu::FeishuApi::new(&fs.api_url, &fs.app_id, fs.app_secret.clone())?;
        let me = api.bot_info().await.map_err(|e| format!("checking the app: {e}"))?;
        Ok(format!("\"{}\"", me.name))
    })
    .await;
    reach("feishu api", answer)
}

/// `path` as given, and absolute when it is relative (where a relative path lands depends on
/// the working directory, which is the usual surprise).
fn shown(path: &Path) -> String {
    if path.is_absolute() {
        return path.display().to_string();
    }
    match std::path::absolute(path) {
        Ok(abs) => format!("{} (= {}, relative to the working directory)", path.display(), abs.display()),
        Err(_) => path.display().to_string(),
    }
}

/// Who the checks run as, for messages about files and logins that depend on it.
fn whoami() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(user_from_uid)
        .unwrap_or_else(|| "this user".into());
    match std::env::var("HOME") {
        Ok(home) => format!("{user} (HOME={home})"),
        Err(_) => user,
    }
}

/// The name of this process's user from `/etc/passwd` (containers set no `USER`), else
/// `uid N`. Linux only: the owner of `/proc/self` is the process's user.
#[cfg(unix)]
fn user_from_uid() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    });
    Some(name.unwrap_or_else(|| format!("uid {uid}")))
}

#[cfg(not(unix))]
fn user_from_uid() -> Option<String> {
    None
}

/// SQLite's file and the single-process lock live in the data dir: it must be writable (or
/// creatable) by the user `serve` runs as.
fn data_dir(config: &Config) -> Check {
    let name = "data dir";
    if !config.uses_sqlite() {
        return check(Verdict::Skip, name, "not used with PostgreSQL");
    }
    let dir = &config.server.data_dir;
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => check(Verdict::Fail, name, format!("{} is not a directory", shown(dir))),
        Ok(_) => match probe_write(dir) {
            Ok(()) => check(Verdict::Ok, name, format!("{}: writable", shown(dir))),
            Err(e) => check(Verdict::Fail, name, format!("{}: not writable by {}: {e}", shown(dir), whoami())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // `serve` and `migrate` create it: the nearest existing ancestor must be writable.
            let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            match abs.ancestors().skip(1).find(|a| a.exists()) {
                Some(parent) => match probe_write(parent) {
                    Ok(()) => check(Verdict::Ok, name, format!("{}: not there yet; serve creates it", shown(dir))),
                    Err(e) => check(
                        Verdict::Fail,
                        name,
                        format!(
                            "{}: missing, and {} is not writable by {}: {e}",
                            shown(dir),
                            parent.display(),
                            whoami()
                        ),
                    ),
                },
                None => check(Verdict::Fail, name, format!("{}: no existing parent directory", shown(dir))),
            }
        }
        Err(e) => check(Verdict::Fail, name, format!("{}: {e}", shown(dir))),
    }
}

/// Creates and removes a file in `dir`: permission bits do not tell (ACLs, read-only mounts).
fn probe_write(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".taskgate-doctor-{}", std::process::id()));
    std::fs::OpenOptions::new().write(true).create_new(true).open(&probe)?;
    std::fs::remove_file(&probe)
}

async fn database(config: &Config) -> Check {
    let url = config.database_url();
    let shown_url = redact_url(&url);
    // Connecting would create an empty SQLite file; a missing one just means "not set up yet",
    // which `serve` (or `migrate`) fixes by itself.
    if config.uses_sqlite() && !config.sqlite_path().exists() {
        return check(
            Verdict::Warn,
            "database",
            format!("{shown_url}: no database yet; `taskgate migrate` or `taskgate serve` creates it"),
        );
    }
    let store = match open_store(config).await {
        Ok(store) => store,
        Err(e) => return check(Verdict::Fail, "database", format!("{e:#}")),
    };
    let result = match store.pending_migrations().await {
        Ok(pending) if pending.is_empty() => {
            check(Verdict::Ok, "database", format!("{shown_url}: reachable, schema up to date"))
        }
        Ok(pending) => check(
            Verdict::Warn,
            "database",
            format!(
                "{shown_url}: {} migration(s) pending; `taskgate serve` applies them (or run `taskgate migrate`)",
                pending.len()
            ),
        ),
        Err(e) => check(Verdict::Fail, "database", format!("{shown_url}: {e}")),
    };
    let _ = store.close().await;
    result
}

/// Each project's path: a directory the agents can write in, and a git checkout (diffs,
/// reviews and restart-note staleness rely on git).
async fn projects(config: &Config) -> Vec<Check> {
    if config.projects.is_empty() {
        return vec![check(
            Verdict::Warn,
            "projects",
            "none configured: chat messages are answered \"No project is configured yet\"",
        )];
    }
    let mut checks = Vec::new();
    for project in &config.projects {
        let name = format!("project {}", project.name);
        let path = &project.path;
        if let Some(agent) = &project.default_agent
            && !config.agents.contains_key(agent)
        {
            checks.push(check(
                Verdict::Warn,
                name.clone(),
                format!("default_agent `{agent}` has no [agents.{agent}] block: its tasks cannot start"),
            ));
        }
        let check_path = match std::fs::metadata(path) {
            Err(e) => check(Verdict::Warn, name, format!("{}: {e}", shown(path))),
            Ok(meta) if !meta.is_dir() => check(Verdict::Warn, name, format!("{} is not a directory", shown(path))),
            Ok(_) => match probe_write(path) {
                Err(e) => check(
                    Verdict::Warn,
                    name,
                    format!("{}: not writable by {}: agents cannot change files there ({e})", shown(path), whoami()),
                ),
                Ok(()) => git_checkout(name, path).await,
            },
        };
        checks.push(check_path);
    }
    checks
}

/// Each git project's execution worktrees (`taskgate/…` branches): how many and their disk
/// use, and the stale ones by name: on disk but not recorded as in use (a crash between making
/// and recording one, or a record lost), recorded but gone from disk, or of a finished task.
async fn worktrees(config: &Config) -> Vec<Check> {
    use taskgate_adapters::worktree as git;
    use taskgate_core::model::TaskStatus;
    use taskgate_core::store::Store;
    use taskgate_core::worktree::WorktreeState;

    let store =
        if config.uses_sqlite() && !config.sqlite_path().exists() { None } else { open_store(config).await.ok() };
    let recorded = match &store {
        Some(store) => store.live_worktrees().await.unwrap_or_default(),
        None => Vec::new(),
    };
    let mut checks = Vec::new();
    for project in &config.projects {
        if !git::is_repository(&project.path).await {
            continue;
        }
        let Ok(on_disk) = git::list(&project.path).await else { continue };
        let mut stale = Vec::new();
        let mut bytes = 0;
        for (path, branch) in &on_disk {
            bytes += git::disk_use(Path::new(path));
            let record = recorded.iter().find(|w| same_path(&w.path, path) && w.state == WorktreeState::Active);
            let why = match record {
                None => Some("not recorded on any execution"),
                Some(w) => match &store {
                    Some(store) => match store.task(w.task).await.map(|t| t.status) {
                        Ok(TaskStatus::Completed | TaskStatus::Cancelled) => Some("its task is finished"),
                        _ => None,
                    },
                    None => None,
                },
            };
            if let Some(why) = why {
                stale.push(format!("{path} ({branch}: {why})"));
            }
        }
        let root = project.path.to_string_lossy();
        for w in recorded.iter().filter(|w| w.state == WorktreeState::Active && same_path(&w.project_dir, &root)) {
            if !on_disk.iter().any(|(p, _)| same_path(p, &w.path)) {
                stale.push(format!("{} ({}: recorded, but gone from disk)", w.path, w.branch));
            }
        }
        let name = format!("worktrees {}", project.name);
        let size = format!("{:.1} MB", bytes as f64 / 1_048_576.0);
        checks.push(if stale.is_empty() {
            check(Verdict::Ok, name, format!("{} in use, {size}", on_disk.len()))
        } else {
            check(
                Verdict::Warn,
                name,
                format!(
                    "{} stale of {} ({size}): {}; remove one with `git worktree remove --force <path>` (and `git branch -D <branch>`)",
                    stale.len(),
                    on_disk.len(),
                    stale.join("; ")
                ),
            )
        });
    }
    if let Some(store) = store {
        let _ = store.close().await;
    }
    checks
}

/// Whether two paths name one directory (symlinks resolved where they exist).
fn same_path(a: &str, b: &str) -> bool {
    let real = |p: &str| Path::new(p).canonicalize().unwrap_or_else(|_| PathBuf::from(p));
    a == b || real(a) == real(b)
}

async fn git_checkout(name: String, path: &Path) -> Check {
    let out = tokio::time::timeout(
        PROBE_WAIT,
        tokio::process::Command::new("git")
            .arg("-C")
            .arg(path)
            .args(["rev-parse", "--show-toplevel"])
            .kill_on_drop(true)
            .output(),
    )
    .await;
    match out {
        Ok(Ok(out)) if out.status.success() => {
            check(Verdict::Ok, name, format!("{}: a git checkout, writable", path.display()))
        }
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("dubious ownership") {
                check(
                    Verdict::Warn,
                    name,
                    format!(
                        "{0}: git refuses it (owned by another user); as {1} run `git config --global --add safe.directory {0}`",
                        path.display(),
                        whoami()
                    ),
                )
            } else {
                check(
                    Verdict::Warn,
                    name,
                    format!(
                        "{}: not a git repository (agents work, but diffs and note staleness need git)",
                        path.display()
                    ),
                )
            }
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => check(
            Verdict::Warn,
            name,
            format!("{}: git is not installed (agents and notes rely on it)", path.display()),
        ),
        Ok(Err(e)) => check(Verdict::Warn, name, format!("{}: running git: {e}", path.display())),
        Err(_) => check(Verdict::Warn, name, format!("{}: git did not answer in time", path.display())),
    }
}

/// The agent's program (found, runs, its version) and, for the CLIs that can tell, whether
/// it is logged in.
async fn agent_checks(name: &str, agent: &AgentConfig) -> Vec<Check> {
    let label = format!("agent {name}");
    let Some(argv) = agent.argv() else {
        return vec![check(Verdict::Fail, label, "no command configured")];
    };
    let program = match locate(&argv[0], agent_path(agent).as_deref()) {
        Ok(program) => program,
        Err(why) => return vec![check(Verdict::Fail, label, why)],
    };
    let version = match probe(&program, &["--version"], agent).await {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("").to_owned();
            check(Verdict::Ok, label, format!("{} ({line})", program.display()))
        }
        Ok(out) => {
            return vec![check(
                Verdict::Fail,
                label,
                format!("{} --version exited with {}", program.display(), out.status),
            )];
        }
        Err(why) => return vec![check(Verdict::Fail, label, format!("{}: {why}", program.display()))],
    };
    let mut checks = vec![version];
    if let Some(login) = login(name, agent, &program).await {
        checks.push(login);
    }
    checks
}

/// Whether the CLI is logged in, as `codex login status` and `claude auth status` say.
/// `None` for agents that cannot tell (ACP, or a wrapper command that is not the CLI itself).
async fn login(name: &str, agent: &AgentConfig, program: &Path) -> Option<Check> {
    let label = format!("agent {name} login");
    let file = program.file_name().and_then(OsStr::to_str).unwrap_or_default();
    let (cli, args): (&str, &[&str]) = match agent.kind {
        AgentKind::Codex if file.starts_with("codex") => ("codex", &["login", "status"]),
        AgentKind::Claude if file.starts_with("claude") => ("claude", &["auth", "status"]),
        AgentKind::Codex | AgentKind::Claude => {
            return Some(check(Verdict::Skip, label, format!("not checked: `{file}` is not the CLI itself")));
        }
        AgentKind::Acp => return None,
    };
    let login_hint = match agent.kind {
        AgentKind::Codex => "run `codex login --device-auth` (or `--with-api-key`)",
        _ => "run `claude auth login`, or set ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN",
    };
    let out = match probe(program, args, agent).await {
        Ok(out) => out,
        Err(why) => return Some(check(Verdict::Warn, label, format!("`{cli} {}`: {why}", args.join(" ")))),
    };
    let status = match agent.kind {
        AgentKind::Codex => codex_login(&out),
        _ => claude_login(&out),
    };
    Some(match status {
        Login::In(how) => check(Verdict::Ok, label, format!("logged in {how} as {}", whoami())),
        Login::Out => check(
            Verdict::Warn,
            label,
            format!(
                "not logged in as {}: {login_hint} as that user (fine if its env points it at another model provider)",
                whoami()
            ),
        ),
        Login::Unknown => check(
            Verdict::Warn,
            label,
            format!("`{cli} {}` did not say (exit {})", args.join(" "), out.status.code().unwrap_or(-1)),
        ),
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Login {
    /// Logged in; how, in a few words (never the CLI's own text: it quotes key fragments).
    In(&'static str),
    Out,
    Unknown,
}

/// `codex login status`: exit 0 and "Logged in using ChatGPT" / "API key configured - sk-…",
/// or exit 1 and "Not logged in" (on stderr or stdout, depending on the version).
fn codex_login(out: &Output) -> Login {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if text.contains("Not logged in") {
        return Login::Out;
    }
    if !out.status.success() {
        return Login::Unknown;
    }
    if text.contains("ChatGPT") {
        Login::In("with a ChatGPT account")
    } else if text.contains("API key") {
        Login::In("with an API key")
    } else if text.contains("access token") {
        Login::In("with an access token")
    } else if text.contains("Logged in") {
        Login::In("")
    } else {
        Login::Unknown
    }
}

/// `claude auth status`: JSON `{"loggedIn": bool, "authMethod": "...", ...}`.
fn claude_login(out: &Output) -> Login {
    let Ok(status) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else { return Login::Unknown };
    match status.get("loggedIn").and_then(serde_json::Value::as_bool) {
        Some(true) => Login::In(match status.get("authMethod").and_then(serde_json::Value::as_str) {
            Some("api_key") => "with an API key",
            Some("oauth_token") => "with an OAuth token",
            Some("claude.ai") => "with a Claude account",
            _ => "",
        }),
        Some(false) => Login::Out,
        None => Login::Unknown,
    }
}

/// Runs `program args…` with the agent's environment, bounded in time.
async fn probe(program: &Path, args: &[&str], agent: &AgentConfig) -> Result<Output, String> {
    let run = tokio::process::Command::new(program)
        .args(args)
        .envs(&agent.env)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(PROBE_WAIT, run).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", PROBE_WAIT.as_secs())),
    }
}

/// The PATH the agent's program is looked up in: its own `env.PATH` when set (the child's
/// PATH decides the lookup), else the gateway's.
fn agent_path(agent: &AgentConfig) -> Option<OsString> {
    agent.env.get("PATH").map(OsString::from).or_else(|| std::env::var_os("PATH"))
}

/// `program` itself when it names a path, else its first executable match on `path_var`;
/// `Err` says why not in words that fit the case (a path that is missing is not "not on PATH").
pub fn locate(program: &str, path_var: Option<&OsStr>) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!("`{program}` does not exist")),
            Err(e) => Err(format!("`{program}`: {e}")),
            Ok(meta) if meta.is_dir() => Err(format!("`{program}` is a directory, not a program")),
            Ok(_) if !is_executable(&path) => Err(format!("`{program}` is not executable")),
            Ok(_) => Ok(path),
        };
    }
    let search = path_var.map(std::env::split_paths).into_iter().flatten();
    let mut found_not_executable = None;
    for candidate in search.map(|dir| dir.join(program)) {
        if candidate.is_file() {
            if is_executable(&candidate) {
                return Ok(candidate);
            }
            found_not_executable.get_or_insert(candidate);
        }
    }
    match found_not_executable {
        Some(path) => Err(format!("`{}` is not executable", path.display())),
        None => Err(format!(
            "command `{program}` not found on PATH ({})",
            path_var.map_or_else(|| "unset".into(), |p| p.to_string_lossy().into_owned())
        )),
    }
}

/// `program` itself when it names a path, else its first executable match on PATH.
pub fn find_program(program: &str) -> Option<PathBuf> {
    locate(program, std::env::var_os("PATH").as_deref()).ok()
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// For `serve` at start-up: one warning per agent program that cannot be found, naming the
/// agents that use it, so a missing CLI shows in the log before the first task fails on it.
/// Returns the programs warned about. Cheap (file lookups only; nothing is run).
pub fn warn_missing_agent_programs(config: &Config) -> Vec<String> {
    let mut missing: BTreeMap<String, (String, Vec<&str>)> = BTreeMap::new();
    for (name, agent) in &config.agents {
        let Some(argv) = agent.argv() else { continue };
        if let Err(why) = locate(&argv[0], agent_path(agent).as_deref()) {
            missing.entry(argv[0].clone()).or_insert_with(|| (why, Vec::new())).1.push(name);
        }
    }
    for (program, (why, agents)) in &missing {
        tracing::warn!(
            program = %program,
            agents = %agents.join(", "),
            "agent program unavailable: {why}; tasks for these agents fail until it is installed (`taskgate doctor` checks it)"
        );
    }
    missing.into_keys().collect()
}

fn telegram(config: &Config) -> Check {
    let Some(tg) = &config.telegram else { return check(Verdict::Skip, "telegram", "not configured") };
    let token = tg.token.expose_secret();
    // `<bot id>:<secret>`, as @BotFather hands it out.
    let shaped = token
        .split_once(':')
        .is_some_and(|(id, rest)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty());
    if !shaped {
        return check(Verdict::Warn, "telegram", "token does not look like @BotFather's `123456:ABC...`");
    }
    if tg.allowed_users.is_empty() && tg.allowed_chats.is_empty() {
        return check(
            Verdict::Warn,
            "telegram",
            "allowed_users and allowed_chats are empty: every sender is refused (the refusal tells them their id)",
        );
    }
    match tg.mode {
        TelegramMode::Polling => check(Verdict::Ok, "telegram", "token present; polling"),
        TelegramMode::Webhook if tg.webhook_secret.is_none() => {
            check(Verdict::Fail, "telegram", "webhook mode needs telegram.webhook_secret; serve refuses to start")
        }
        TelegramMode::Webhook => match config.server.public_url.as_deref() {
            Some(url) if url.starts_with("https://") => check(
                Verdict::Ok,
                "telegram",
                format!("token present; webhook at {}{}", url.trim_end_matches('/'), crate::telegram::WEBHOOK_PATH),
            ),
            Some(url) => check(
                Verdict::Warn,
                "telegram",
                format!("webhook mode: Telegram only calls https URLs, and server.public_url is {url}"),
            ),
            None => check(
                Verdict::Warn,
                "telegram",
                "webhook mode without server.public_url: the webhook is not registered; register it yourself",
            ),
        },
    }
}

fn feishu(config: &Config) -> Check {
    let Some(fs) = &config.feishu else { return check(Verdict::Skip, "feishu", "not configured") };
    if fs.allowed_users.is_empty() && fs.allowed_chats.is_empty() {
        return check(
            Verdict::Warn,
            "feishu",
            "allowed_users and allowed_chats are empty: every sender is refused (the refusal tells them their open_id)",
        );
    }
    match fs.mode {
        FeishuMode::Websocket => check(Verdict::Ok, "feishu", "app_id and app_secret present; long connection"),
        FeishuMode::Webhook if fs.verification_token.is_none() => {
            check(Verdict::Fail, "feishu", "webhook mode needs feishu.verification_token; serve refuses to start")
        }
        FeishuMode::Webhook if fs.encrypt_key.is_none() => check(
            Verdict::Warn,
            "feishu",
            "webhook mode without encrypt_key: callbacks are not signed, only the verification token guards them",
        ),
        FeishuMode::Webhook => match config.server.public_url.as_deref() {
            Some(url) => check(
                Verdict::Ok,
                "feishu",
                format!(
                    "credentials present; callbacks at {}{}",
                    url.trim_end_matches('/'),
                    crate::feishu::WEBHOOK_PATH
                ),
            ),
            None => check(
                Verdict::Ok,
                "feishu",
                format!("credentials present; Feishu must reach <public URL>{}", crate::feishu::WEBHOOK_PATH),
            ),
        },
    }
}

/// The console's login token travels in a cookie: off loopback it wants TLS in front.
fn web(config: &Config) -> Check {
    if !config.web.enabled {
        return check(Verdict::Skip, "web console", "disabled");
    }
    let listen = config.server.listen;
    let https = config.server.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    if !listen.ip().is_loopback() && !https {
        return check(
            Verdict::Warn,
            "web console",
            format!(
                "listening on {listen} without an https server.public_url: let only a TLS proxy or a loopback port mapping reach it, or the login token crosses the network in clear (docs/tls.md)"
            ),
        );
    }
    check(Verdict::Ok, "web console", format!("http://{}/", config.server.local_addr()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    fn output(code: i32, stdout: &str, stderr: &str) -> Output {
        Output {
            status: std::process::ExitStatus::from_raw(code << 8),
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    /// What the real CLIs print (Codex CLI 0.169.0, Claude Code 2.1.197), run with an empty
    /// HOME / CODEX_HOME, then after `codex login --with-api-key` and with ANTHROPIC_API_KEY.
    #[test]
    fn login_status_is_read_from_what_the_clis_print() {
        assert_eq!(codex_login(&output(1, "", "Not logged in\n")), Login::Out);
        assert_eq!(
            codex_login(&output(
                0,
                "",
                "API key configured - sk-test-***56789\nAuthentication is checked when you send a request.\n"
            )),
            Login::In("with an API key")
        );
        assert_eq!(codex_login(&output(0, "Logged in using ChatGPT\n", "")), Login::In("with a ChatGPT account"));
        assert_eq!(codex_login(&output(2, "", "error: unrecognized subcommand 'login'\n")), Login::Unknown);
        let out = r#"{"loggedIn": false, "authMethod": "none", "apiProvider": "firstParty"}"#;
        assert_eq!(claude_login(&output(1, out, "")), Login::Out);
        let out = r#"{"loggedIn": true, "authMethod": "api_key", "apiProvider": "firstParty", "apiKeySource": "ANTHROPIC_API_KEY"}"#;
        assert_eq!(claude_login(&output(0, out, "")), Login::In("with an API key"));
        assert_eq!(claude_login(&output(0, "Logged in\n", "")), Login::Unknown);
    }

    #[test]
    fn a_missing_program_is_described_by_how_it_was_named() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        let path = Some(dir.path().as_os_str());
        assert_eq!(
            locate("/nonexistent/codex", path).unwrap_err(),
            "`/nonexistent/codex` does not exist",
            "an absolute path is not looked up on PATH"
        );
        assert!(locate(plain.to_str().unwrap(), path).unwrap_err().ends_with("is not executable"));
        assert!(locate(dir.path().to_str().unwrap(), path).unwrap_err().ends_with("is a directory, not a program"));
        let err = locate("no-such-cli", path).unwrap_err();
        assert_eq!(err, format!("command `no-such-cli` not found on PATH ({})", dir.path().display()));
        assert!(locate("plain", path).unwrap_err().ends_with("/plain` is not executable"));
        assert!(locate("sh", Some(OsStr::new("/bin:/usr/bin"))).is_ok());
    }

    #[test]
    fn serve_warns_once_per_missing_program() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            f.path(),
            "[agents.a]\nkind = \"codex\"\ncommand = \"no-such-codex app-server\"\n\
             [agents.b]\nkind = \"codex\"\ncommand = [\"no-such-codex\", \"app-server\"]\n\
             [agents.c]\nkind = \"acp\"\ncommand = \"/nonexistent/agent --acp\"\n\
             [agents.d]\nkind = \"acp\"\ncommand = \"sh -c true\"\nenv = { PATH = \"/bin:/usr/bin\" }\n",
        )
        .unwrap();
        let config = Config::load_from(Some(f.path()), std::iter::empty()).unwrap();
        assert_eq!(warn_missing_agent_programs(&config), ["/nonexistent/agent", "no-such-codex"]);
    }
}
