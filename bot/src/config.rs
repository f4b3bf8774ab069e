//! `taskgate.toml`, overridden by `TASKGATE_<SECTION>__<KEY>` environment variables.
//!
//! Every section has defaults good enough to run with no file at all. Unknown keys are errors
//! (a typo must not silently fall back to a default), and every error names the key. Secrets
//! are `SecretString`s: their `Debug` prints `[REDACTED]`, so a config dump never leaks them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

pub use taskgate_core::route::BusyPolicy;
pub use taskgate_core::runtime::AgentKind;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub projects: Vec<ProjectConfig>,
    pub agents: BTreeMap<String, AgentConfig>,
    pub runtime: RuntimeConfig,
    pub telegram: Option<TelegramConfig>,
    pub feishu: Option<FeishuConfig>,
    pub web: WebConfig,
    pub notes: NotesConfig,
    pub limits: LimitsConfig,
    pub attachments: AttachmentsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// An IP address and port; host names are refused with a message saying so.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Where the outside world reaches this server (webhooks, links in messages).
    pub public_url: Option<String>,
    /// HTTP connections open at once; beyond it new connections wait in the listen backlog.
    pub max_connections: usize,
    /// A client must send a request's headers within this; also how long an idle keep-alive
    /// connection is kept.
    pub header_timeout_secs: u64,
    /// A connection on which no byte moves either way for this long is closed (a stalled
    /// body upload, a client that stopped reading).
    pub idle_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8700)),
            data_dir: PathBuf::from("./data"),
            public_url: None,
            max_connections: 512,
            header_timeout_secs: 10,
            idle_timeout_secs: 120,
        }
    }
}

impl ServerConfig {
    /// Where a process on this machine reaches the server: `listen`, with an unspecified
    /// address (`0.0.0.0`, `::`) replaced by loopback.
    pub fn local_addr(&self) -> SocketAddr {
        let ip = match self.listen.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => std::net::IpAddr::from([127, 0, 0, 1]),
            ip if ip.is_unspecified() => std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(ip, self.listen.port())
    }
}

/// `server.listen`: `SocketAddr`'s own message ("invalid socket address syntax") does not say
/// what is expected, and `localhost:8700` is the usual first try.
fn socket_addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.trim().parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "`{text}` is not an IP address and port: write e.g. 127.0.0.1:8700 (0.0.0.0:8700 for every \
             interface); host names such as localhost are not accepted"
        ))
    })
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// A PostgreSQL URL may carry a password, so it is a secret. Unset: SQLite in `data_dir`.
    pub url: Option<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    pub name: String,
    pub path: PathBuf,
    pub default_agent: Option<String>,
    /// What a follow-up does while the agent is busy: `queue` (default), `steer` (into the
    /// running turn, where the agent supports it) or `interrupt`.
    #[serde(default)]
    pub busy_policy: BusyPolicy,
    /// Who may decide this project's approvals: channel user ids (Telegram user ids, Feishu
    /// open_ids). Empty: the channels' `allowed_users`. The person who started a task may
    /// always decide its approvals, and the web console's user may decide any. Admitting a
    /// chat (`allowed_chats`) lets its members talk to the bot, not approve commands.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// How the executions of one task are kept apart: `spawned` (a task's first editor works
    /// in `path`, every other editor or tester in a git worktree of its own, reviewers
    /// read-only where the work they review lives), `worktree` (every editor and tester in a
    /// worktree) or `shared` (everyone in `path`, as without git). Unset: `spawned` when `path`
    /// is a git repository, else `shared`. Worktrees live under `<data_dir>/worktrees`.
    #[serde(default)]
    pub isolation: Option<taskgate_core::worktree::Isolation>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub kind: AgentKind,
    /// Program and arguments, as an array or one whitespace-separated string. Unset: the
    /// kind's usual command (`codex app-server`, `claude`).
    #[serde(default)]
    pub command: Option<Command>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub model: Option<String>,
    /// When codex asks before acting. The default asks a person for every non-trivial command,
    /// which is the point of driving agents from chat. Codex only: Claude and ACP agents ask
    /// through their own permission requests.
    #[serde(default)]
    pub approval_policy: ApprovalPolicy,
    /// What codex's commands may touch. Codex only, like `approval_policy`.
    #[serde(default)]
    pub sandbox: SandboxMode,
    /// This agent's per-turn time limit; unset: `runtime.turn_timeout_secs`.
    #[serde(default)]
    pub turn_timeout_secs: Option<u64>,
    /// Whether this agent's sessions share one process. Unset: codex shares (one app-server
    /// runs many threads), Claude and ACP agents do not (ACP has no capability saying an agent
    /// copes with several sessions, so `true` is the operator's promise that it does).
    #[serde(default)]
    pub shared_process: Option<bool>,
}

/// Codex's `approvalPolicy`, spelled as codex spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalPolicy {
    #[default]
    Untrusted,
    OnRequest,
    OnFailure,
    Never,
}

impl ApprovalPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalPolicy::Untrusted => "untrusted",
            ApprovalPolicy::OnRequest => "on-request",
            ApprovalPolicy::OnFailure => "on-failure",
            ApprovalPolicy::Never => "never",
        }
    }
}

/// Codex's `sandbox` mode, spelled as codex spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    ReadOnly,
    #[default]
    WorkspaceWrite,
    DangerFullAccess,
}

impl SandboxMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxMode::ReadOnly => "read-only",
            SandboxMode::WorkspaceWrite => "workspace-write",
            SandboxMode::DangerFullAccess => "danger-full-access",
        }
    }
}

/// Limits on the agent processes the gateway runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Per-turn time limit for agents without their own (`agents.<name>.turn_timeout_secs`).
    pub turn_timeout_secs: u64,
    /// Agent processes at once; further sessions wait for an idle one to be released.
    pub max_processes: usize,
    /// After interrupting a turn at its limit, how long before the process is killed.
    pub interrupt_grace_secs: u64,
    /// How long a replica's hold on an execution lasts without a renewal: when a replica dies,
    /// another takes its executions over within this time.
    pub lease_secs: u64,
    /// On SIGTERM, how long running turns may go on before they are interrupted and handed
    /// to another replica (or the next start).
    pub shutdown_grace_secs: u64,
    /// An idle agent process (no turn, nothing queued) is shut down after this long; its
    /// session resumes by provider id on the next message.
    pub idle_secs: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            turn_timeout_secs: 30 * 60,
            max_processes: 4,
            interrupt_grace_secs: 10,
            lease_secs: 15,
            shutdown_grace_secs: 20,
            idle_secs: 300,
        }
    }
}

impl RuntimeConfig {
    pub fn interrupt_grace(&self) -> Duration {
        Duration::from_secs(self.interrupt_grace_secs)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs.max(2))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn idle(&self) -> Duration {
        Duration::from_secs(self.idle_secs)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Command {
    Argv(Vec<String>),
    Line(String),
}

impl AgentConfig {
    /// An agent of `kind` with its usual command and every other key at its default.
    pub fn new(kind: AgentKind) -> Self {
        AgentConfig {
            kind,
            command: None,
            env: BTreeMap::new(),
            model: None,
            approval_policy: ApprovalPolicy::default(),
            sandbox: SandboxMode::default(),
            turn_timeout_secs: None,
            shared_process: None,
        }
    }

    /// The turn time limit for this agent: its own, else the runtime default.
    pub fn turn_timeout(&self, runtime: &RuntimeConfig) -> Duration {
        Duration::from_secs(self.turn_timeout_secs.unwrap_or(runtime.turn_timeout_secs))
    }

    /// The program and its arguments; `None` when neither config nor the kind give one (ACP
    /// agents have no usual command).
    pub fn argv(&self) -> Option<Vec<String>> {
        let argv = match &self.command {
            Some(Command::Argv(argv)) => argv.clone(),
            Some(Command::Line(line)) => line.split_whitespace().map(str::to_owned).collect(),
            None => match self.kind {
                AgentKind::Codex => vec!["codex".into(), "app-server".into()],
                AgentKind::Claude => vec!["claude".into()],
                AgentKind::Acp => return None,
            },
        };
        (!argv.is_empty()).then_some(argv)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    pub token: SecretString,
    #[serde(default = "TelegramConfig::default_api_url")]
    pub api_url: String,
    #[serde(default)]
    pub mode: TelegramMode,
    pub webhook_secret: Option<SecretString>,
    #[serde(default)]
    pub allowed_users: Vec<i64>,
    #[serde(default)]
    pub allowed_chats: Vec<i64>,
    /// Stream the agent's text into private chats as a draft (`sendMessageDraft`), finished by
    /// one real message.
    #[serde(default = "TelegramConfig::default_stream")]
    pub stream: bool,
}

impl TelegramConfig {
    fn default_api_url() -> String {
        "https://api.telegram.org".into()
    }

    fn default_stream() -> bool {
        true
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TelegramMode {
    #[default]
    Polling,
    Webhook,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuConfig {
    pub app_id: String,
    pub app_secret: SecretString,
    pub verification_token: Option<SecretString>,
    pub encrypt_key: Option<SecretString>,
    #[serde(default = "FeishuConfig::default_api_url")]
    pub api_url: String,
    #[serde(default)]
    pub mode: FeishuMode,
    #[serde(default)]
    pub allowed_users: Vec<String>,
    #[serde(default)]
    pub allowed_chats: Vec<String>,
    /// Show a turn's live status as a CardKit streaming card (updated without the "edited"
    /// badge or message PATCH's rate limit), falling back to PATCHing a card message where
    /// CardKit is refused.
    #[serde(default = "FeishuConfig::default_stream")]
    pub stream: bool,
}

impl FeishuConfig {
    fn default_api_url() -> String {
        "https://open.feishu.cn".into()
    }

    fn default_stream() -> bool {
        true
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeishuMode {
    #[default]
    Webhook,
    Websocket,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Serve the web console and its API.
    pub enabled: bool,
    /// The name the console's user goes by on task timelines until `/link` joins them to
    /// their chat identities.
    pub display_name: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self { enabled: true, display_name: "Web console".to_owned() }
    }
}

/// Fairness to every person writing to the bot (Telegram, Feishu): inbound messages are handled
/// round robin across people, each held to a rate.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Messages of one person handled per minute; more wait their turn. 0: no limit.
    pub per_person_per_minute: usize,
    /// Messages of one person kept waiting beyond that rate; newer ones are set aside
    /// unanswered (visible in the console), and the person is told once to slow down.
    pub max_waiting: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let limits = taskgate_core::fair::Limits::default();
        Self { per_person_per_minute: limits.per_person_per_minute, max_waiting: limits.max_waiting }
    }
}

impl LimitsConfig {
    pub fn inbox(&self) -> taskgate_core::fair::Limits {
        taskgate_core::fair::Limits { per_person_per_minute: self.per_person_per_minute, max_waiting: self.max_waiting }
    }
}

/// Restart notes: the durable progress of a task that every new session starts from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotesConfig {
    /// Write each task's note as Markdown to `<project>/.taskgate/tasks/<task-id>.md` when it
    /// changes.
    pub export: bool,
    /// Offer agents the `taskgate` MCP server (read the note, record entries, set the next
    /// action), one token per runtime session.
    pub mcp: bool,
    /// Where agents reach that server. Unset: `http://<server.listen>/mcp` (loopback when
    /// listening on all addresses).
    pub mcp_url: Option<String>,
    /// Longest restart note a fresh session is seeded with, in characters: newest and
    /// agent-verified entries first, older captured evidence one line each (the whole note is
    /// in the export and the console).
    pub seed_chars: usize,
    /// `/new` first asks the old session (when it is still usable) for a short handoff turn
    /// recording its findings through the note tools; `/new!` skips it.
    pub handoff: bool,
    /// How long that handoff turn may take, in seconds, before it is stopped.
    pub handoff_secs: u64,
}

impl Default for NotesConfig {
    fn default() -> Self {
        Self { export: true, mcp: true, mcp_url: None, seed_chars: 4000, handoff: true, handoff_secs: 120 }
    }
}

impl NotesConfig {
    /// The MCP endpoint agents are given.
    pub fn mcp_url(&self, listen: SocketAddr) -> String {
        if let Some(url) = &self.mcp_url {
            return url.clone();
        }
        let local = ServerConfig { listen, ..ServerConfig::default() }.local_addr();
        format!("http://{local}/mcp")
    }
}

/// Files people send (screenshots, documents, voice notes): what is taken and how voice is
/// heard. Stored content-addressed under `<server.data_dir>/attachments`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttachmentsConfig {
    /// Larger files are refused with one line saying the limit.
    pub max_bytes: u64,
    /// MIME patterns taken: `image/*`, `application/pdf`, `*` for anything.
    pub allowed: Vec<String>,
    /// A command printing the text of a voice note, as argv (no shell); `{file}` is replaced
    /// by the stored file's path. Empty: voice notes are not transcribed.
    pub transcribe: Vec<String>,
    /// How long the transcriber may run.
    pub transcribe_timeout_secs: u64,
}

impl Default for AttachmentsConfig {
    fn default() -> Self {
        Self {
            max_bytes: taskgate_core::attachment::DEFAULT_MAX_BYTES,
            allowed: taskgate_core::attachment::default_allowed(),
            transcribe: Vec::new(),
            transcribe_timeout_secs: 120,
        }
    }
}

impl AttachmentsConfig {
    pub fn limits(&self) -> taskgate_core::attachment::Limits {
        taskgate_core::attachment::Limits { max_bytes: self.max_bytes, allowed: self.allowed.clone() }
    }
}

/// Keys whose environment values are comma-separated lists.
const LIST_KEYS: [&str; 5] = [
    "telegram.allowed_users",
    "telegram.allowed_chats",
    "feishu.allowed_users",
    "feishu.allowed_chats",
    "attachments.allowed",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config: {0}")]
    Parse(String),
    #[error("config key `{key}`: {message}")]
    Key { key: String, message: String },
}

impl Config {
    /// Loads `path` (if any) and then the environment. With no path, `./taskgate.toml` is read
    /// when it exists; otherwise the defaults stand.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let local = Path::new("taskgate.toml");
        let path = path.or_else(|| local.exists().then_some(local));
        Self::load_from(path, std::env::vars())
    }

    /// Loads exactly `path` (if any) and the environment given, so tests need not touch the
    /// process's own environment or working directory.
    pub fn load_from(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            // Read it ourselves: the config crate's "not found" hides permission errors.
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
            builder = builder.add_source(File::from_str(&text, FileFormat::Toml));
        }
        // Only `TASKGATE_<SECTION>__<KEY>` are settings; `TASKGATE_CONFIG` and other
        // single-underscore names belong to the command line and the tests.
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.strip_prefix("TASKGATE_").is_some_and(|rest| rest.contains("__")))
            .collect();
        let mut environment = Environment::with_prefix("TASKGATE")
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .source(Some(env));
        for key in LIST_KEYS {
            environment = environment.with_list_parse_key(key);
        }
        let raw = builder.add_source(environment).build().map_err(|e| ConfigError::Parse(one_line(&e.to_string())))?;
        let config: Config = serde_path_to_error::deserialize(raw).map_err(|e| {
            let key = e.path().to_string();
            let message = e.into_inner().to_string();
            // The config crate appends the key itself; we already lead with it.
            let message = message.split(" for key `").next().unwrap_or_default();
            ConfigError::Key { key, message: readable(message) }
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let key_err = |key: String, message: &str| ConfigError::Key { key, message: message.into() };
        self.validate_secrets()?;
        let server = &self.server;
        for (key, value) in [
            ("server.max_connections", server.max_connections as u64),
            ("server.header_timeout_secs", server.header_timeout_secs),
            ("server.idle_timeout_secs", server.idle_timeout_secs),
        ] {
            if value == 0 {
                return Err(key_err(key.into(), "must be at least 1"));
            }
        }
        for (i, project) in self.projects.iter().enumerate() {
            if let Some(agent) = &project.default_agent
                && !self.agents.contains_key(agent)
                && !matches!(agent.as_str(), "codex" | "claude")
            {
                return Err(key_err(
                    format!("projects[{i}].default_agent"),
                    &format!("no agent `{agent}` is configured in [agents]"),
                ));
            }
        }
        for (name, agent) in &self.agents {
            if agent.argv().is_none() {
                return Err(key_err(format!("agents.{name}.command"), "an acp agent needs a command"));
            }
            // Zero would end every turn the moment it starts.
            if agent.turn_timeout_secs == Some(0) {
                return Err(key_err(format!("agents.{name}.turn_timeout_secs"), "must be at least 1"));
            }
        }
        if self.runtime.turn_timeout_secs == 0 {
            return Err(key_err("runtime.turn_timeout_secs".into(), "must be at least 1"));
        }
        if self.runtime.max_processes == 0 {
            return Err(key_err("runtime.max_processes".into(), "must be at least 1"));
        }
        Ok(())
    }

    /// An empty secret is a mistake (an unset variable in a template, a key left blank), never
    /// a setting: it would fail later, at the platform, with a message that does not name it.
    fn validate_secrets(&self) -> Result<(), ConfigError> {
        let blank = |s: &SecretString| s.expose_secret().trim().is_empty();
        let empty = |key: &str, hint: &str| ConfigError::Key { key: key.into(), message: format!("is empty; {hint}") };
        let remove = "set it or remove the key";
        if self.database.url.as_ref().is_some_and(blank) {
            return Err(empty(
                "database.url",
                "set a postgres:// URL, or remove the key for SQLite in server.data_dir",
            ));
        }
        if let Some(tg) = &self.telegram {
            if blank(&tg.token) {
                return Err(empty("telegram.token", "put the token @BotFather gave you here"));
            }
            if let Some(secret) = &tg.webhook_secret {
                let secret = secret.expose_secret();
                if secret.trim().is_empty() {
                    return Err(empty("telegram.webhook_secret", remove));
                }
                // Telegram refuses any other `secret_token` when the webhook is set.
                let valid =
                    secret.len() <= 256 && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !valid {
                    return Err(ConfigError::Key {
                        key: "telegram.webhook_secret".into(),
                        message: "must be 1 to 256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)".into(),
                    });
                }
            }
        }
        if let Some(fs) = &self.feishu {
            if fs.app_id.trim().is_empty() {
                return Err(empty("feishu.app_id", "copy the App ID (cli_...) from the app's Credentials page"));
            }
            if blank(&fs.app_secret) {
                return Err(empty("feishu.app_secret", "copy the App Secret from the app's Credentials page"));
            }
            for (key, value) in
                [("feishu.verification_token", &fs.verification_token), ("feishu.encrypt_key", &fs.encrypt_key)]
            {
                if value.as_ref().is_some_and(blank) {
                    return Err(empty(key, remove));
                }
            }
        }
        Ok(())
    }

    /// The database URL: the configured one, else SQLite in `data_dir`.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.expose_secret().to_owned(),
            None => format!("sqlite://{}?mode=rwc", self.sqlite_path().display()),
        }
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.server.data_dir.join("taskgate.db")
    }

    pub fn uses_sqlite(&self) -> bool {
        self.database_url().starts_with("sqlite:")
    }
}

/// The deserializer's message in the words of someone editing the file: the config crate
/// says "enum AgentKind does not have variant constructor codexx"; this says which values are
/// accepted.
fn readable(message: &str) -> String {
    let bad_variant =
        message.strip_prefix("enum ").and_then(|rest| rest.split_once(" does not have variant constructor "));
    if let Some((name, value)) = bad_variant {
        return match enum_variants(name) {
            Some(variants) => format!("unknown value `{value}`; expected one of: {}", variants.join(", ")),
            None => format!("unknown value `{value}`"),
        };
    }
    let wrong_shape = message
        .strip_prefix("value of enum ")
        .and_then(|rest| rest.split_once(' '))
        .and_then(|(name, _)| enum_variants(name));
    if let Some(variants) = wrong_shape {
        return format!("expected one of: {} (as a string)", variants.join(", "));
    }
    message.to_owned()
}

/// The accepted spellings of each enum in the config, by the Rust name serde reports.
fn enum_variants(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "AgentKind" => variants::<AgentKind>(),
        "BusyPolicy" => variants::<BusyPolicy>(),
        "ApprovalPolicy" => variants::<ApprovalPolicy>(),
        "SandboxMode" => variants::<SandboxMode>(),
        "TelegramMode" => variants::<TelegramMode>(),
        "FeishuMode" => variants::<FeishuMode>(),
        _ => return None,
    })
}

/// The variant names `T`'s `Deserialize` accepts, as serde hands them to the deserializer
/// (after `rename_all`), so the list in a message cannot drift from the enum.
fn variants<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not an enum"))
        }
        fn deserialize_enum<V: serde::de::Visitor<'de>>(
            self,
            _name: &'static str,
            variants: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = variants;
            Err(serde::de::Error::custom("probed"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
        }
    }
    let mut found: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut found));
    found
}

/// The parser's multi-line report (with a source excerpt and a caret) as one line: its first
/// line says where, its last says what.
fn one_line(report: &str) -> String {
    let lines: Vec<&str> = report.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    match (lines.first(), lines.last()) {
        (Some(first), Some(last)) if first != last => format!("{first}: {last}"),
        _ => lines.join(" "),
    }
}

/// A URL with its password replaced, for logs and `doctor`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn file(toml: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), toml).unwrap();
        f
    }

    #[test]
    fn defaults_run_with_no_file_at_all() {
        let config = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8700");
        assert_eq!(config.server.data_dir, PathBuf::from("./data"));
        assert_eq!(config.database_url(), "sqlite://./data/taskgate.db?mode=rwc");
        assert!(config.telegram.is_none() && config.feishu.is_none());
        assert!(config.web.enabled);
    }

    #[test]
    fn environment_overrides_the_file_and_lists_split_on_commas() {
        let f = file("[server]\nlisten = \"127.0.0.1:1\"\n[telegram]\ntoken = \"t\"\nallowed_users = [1]\n");
        let config = Config::load_from(
            Some(f.path()),
            env(&[
                ("TASKGATE_SERVER__LISTEN", "0.0.0.0:9000"),
                ("TASKGATE_TELEGRAM__ALLOWED_USERS", "111,222"),
                ("TASKGATE_DATABASE__URL", "postgres://u:pw@db/taskgate"),
                // Not settings: no section separator.
                ("TASKGATE_CONFIG", "/elsewhere.toml"),
                ("TASKGATE_TEST_DATABASE_URL", "postgres://x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:9000");
        let telegram = config.telegram.as_ref().unwrap();
        assert_eq!(telegram.allowed_users, vec![111, 222]);
        assert_eq!(telegram.mode, TelegramMode::Polling);
        assert_eq!(telegram.api_url, "https://api.telegram.org");
        assert_eq!(config.database_url(), "postgres://u:pw@db/taskgate");
        assert!(!config.uses_sqlite());
    }

    #[test]
    fn attachments_have_defaults_a_transcriber_argv_and_env_lists() {
        let defaults = Config::load_from(None, env(&[])).unwrap().attachments;
        assert_eq!(defaults.max_bytes, 20 * 1024 * 1024);
        assert!(defaults.transcribe.is_empty());
        assert!(defaults.limits().allows("image/png") && !defaults.limits().allows("video/mp4"));
        let f = file("[attachments]\nmax_bytes = 1048576\ntranscribe = [\"whisper-cli\", \"-f\", \"{file}\"]\n");
        let config =
            Config::load_from(Some(f.path()), env(&[("TASKGATE_ATTACHMENTS__ALLOWED", "image/*,application/pdf")]))
                .unwrap()
                .attachments;
        assert_eq!(config.max_bytes, 1_048_576);
        assert_eq!(config.transcribe, vec!["whisper-cli", "-f", "{file}"]);
        assert_eq!(config.allowed, vec!["image/*", "application/pdf"]);
        let typo = file("[attachments]\nmax_byte = 1\n");
        assert!(Config::load_from(Some(typo.path()), env(&[])).is_err(), "unknown keys are errors");
    }

    #[test]
    fn feishu_streams_its_status_unless_told_not_to() {
        let base = "[feishu]\napp_id = \"cli_1\"\napp_secret = \"s\"\nmode = \"websocket\"\n";
        let feishu = |toml: &str| Config::load_from(Some(file(toml).path()), env(&[])).unwrap().feishu.unwrap();
        assert!(feishu(base).stream, "CardKit streaming cards by default");
        assert!(!feishu(&format!("{base}stream = false\n")).stream);
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let f = file(
            "[database]\nurl = \"postgres://u:DBPASS@db/x\"\n\
             [telegram]\ntoken = \"123:TGTOKEN\"\nwebhook_secret = \"HOOKSECRET\"\n\
             [feishu]\napp_id = \"cli_1\"\napp_secret = \"APPSECRET\"\nencrypt_key = \"ENCKEY\"\nverification_token = \"VTOKEN\"\n",
        );
        let config = Config::load_from(Some(f.path()), env(&[])).unwrap();
        let debug = format!("{config:?}");
        for secret in ["DBPASS", "TGTOKEN", "HOOKSECRET", "APPSECRET", "ENCKEY", "VTOKEN"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        assert!(debug.contains("cli_1"), "non-secrets stay visible");
        assert_eq!(redact_url(&config.database_url()), "postgres://u:***@db/x");
    }

    #[test]
    fn projects_choose_what_a_follow_up_does_while_the_agent_is_busy() {
        let f = file(
            "[[projects]]\nname = \"a\"\npath = \"/a\"\n[[projects]]\nname = \"b\"\npath = \"/b\"\nbusy_policy = \"interrupt\"\n",
        );
        let config = Config::load_from(Some(f.path()), env(&[])).unwrap();
        assert_eq!(config.projects[0].busy_policy, BusyPolicy::Queue);
        assert_eq!(config.projects[1].busy_policy, BusyPolicy::Interrupt);
        let f = file("[[projects]]\nname = \"a\"\npath = \"/a\"\nbusy_policy = \"wait\"\n");
        let err = Config::load_from(Some(f.path()), env(&[])).unwrap_err().to_string();
        assert!(err.starts_with("config key `projects[0].busy_policy`"), "{err}");
    }

    #[test]
    fn agent_commands_accept_an_array_a_line_or_the_kind_default() {
        let f = file(
            "[agents.codex]\nkind = \"codex\"\n\
             [agents.cc]\nkind = \"claude\"\ncommand = \"claude --model opus\"\n\
             [agents.gemini]\nkind = \"acp\"\ncommand = [\"gemini\", \"--experimental-acp\"]\nenv = { GEMINI_API_KEY = \"k\" }\n",
        );
        let config = Config::load_from(Some(f.path()), env(&[])).unwrap();
        let argv = |name: &str| config.agents[name].argv().unwrap();
        assert_eq!(argv("codex"), ["codex", "app-server"]);
        assert_eq!(argv("cc"), ["claude", "--model", "opus"]);
        assert_eq!(argv("gemini"), ["gemini", "--experimental-acp"]);
        assert_eq!(config.agents["gemini"].kind, AgentKind::Acp);

        let f = file("[agents.x]\nkind = \"acp\"\n");
        let err = Config::load_from(Some(f.path()), env(&[])).unwrap_err();
        assert_eq!(err.to_string(), "config key `agents.x.command`: an acp agent needs a command");
    }

    #[test]
    fn runtime_limits_and_codex_policies_have_safe_defaults() {
        let config = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(config.runtime.turn_timeout_secs, 1800);
        assert_eq!(config.runtime.max_processes, 4);
        assert_eq!(config.runtime.interrupt_grace_secs, 10);
        let agent = AgentConfig::new(AgentKind::Codex);
        assert_eq!(agent.approval_policy, ApprovalPolicy::Untrusted, "a person approves commands by default");
        assert_eq!(agent.sandbox, SandboxMode::WorkspaceWrite);
        assert_eq!(agent.turn_timeout(&config.runtime), Duration::from_secs(1800));
    }

    #[test]
    fn agent_policies_and_runtime_limits_come_from_file_and_environment() {
        let f = file(
            "[runtime]\nturn_timeout_secs = 600\nmax_processes = 2\n\
             [agents.codex]\nkind = \"codex\"\napproval_policy = \"on-request\"\nsandbox = \"read-only\"\nturn_timeout_secs = 90\n\
             [agents.cc]\nkind = \"claude\"\n",
        );
        let config = Config::load_from(
            Some(f.path()),
            env(&[
                ("TASKGATE_RUNTIME__INTERRUPT_GRACE_SECS", "3"),
                ("TASKGATE_AGENTS__CC__SANDBOX", "danger-full-access"),
            ]),
        )
        .unwrap();
        assert_eq!((config.runtime.turn_timeout_secs, config.runtime.max_processes), (600, 2));
        assert_eq!(config.runtime.interrupt_grace(), Duration::from_secs(3));
        let codex = &config.agents["codex"];
        assert_eq!((codex.approval_policy.as_str(), codex.sandbox.as_str()), ("on-request", "read-only"));
        assert_eq!(codex.turn_timeout(&config.runtime), Duration::from_secs(90));
        let cc = &config.agents["cc"];
        assert_eq!(cc.sandbox, SandboxMode::DangerFullAccess);
        assert_eq!(cc.approval_policy, ApprovalPolicy::Untrusted);
        assert_eq!(cc.turn_timeout(&config.runtime), Duration::from_secs(600));
    }

    #[test]
    fn bad_policies_and_limits_name_their_key() {
        let cases = [
            ("[agents.codex]\nkind = \"codex\"\napproval_policy = \"always\"\n", "agents.codex.approval_policy"),
            ("[agents.codex]\nkind = \"codex\"\nsandbox = \"none\"\n", "agents.codex.sandbox"),
            ("[agents.codex]\nkind = \"codex\"\nturn_timeout_secs = 0\n", "agents.codex.turn_timeout_secs"),
            ("[runtime]\nmax_processes = 0\n", "runtime.max_processes"),
            ("[runtime]\nturn_timeout_secs = 0\n", "runtime.turn_timeout_secs"),
            ("[runtime]\nmax_process = 2\n", "runtime.max_process"),
        ];
        for (toml, key) in cases {
            let f = file(toml);
            let err = Config::load_from(Some(f.path()), env(&[])).unwrap_err();
            assert!(err.to_string().starts_with(&format!("config key `{key}`")), "{toml}: {err}");
        }
    }

    #[test]
    fn a_bad_enum_value_lists_the_values_accepted() {
        let cases = [
            (
                "[agents.x]\nkind = \"codexx\"\n",
                "agents.x.kind",
                "unknown value `codexx`; expected one of: codex, claude, acp",
            ),
            (
                "[[projects]]\nname = \"a\"\npath = \"/a\"\nbusy_policy = \"wait\"\n",
                "projects[0].busy_policy",
                "expected one of: queue, steer, interrupt",
            ),
            (
                "[agents.x]\nkind = \"codex\"\napproval_policy = \"always\"\n",
                "agents.x.approval_policy",
                "expected one of: untrusted, on-request, on-failure, never",
            ),
            (
                "[agents.x]\nkind = \"codex\"\nsandbox = \"none\"\n",
                "agents.x.sandbox",
                "expected one of: read-only, workspace-write, danger-full-access",
            ),
            ("[telegram]\ntoken = \"1:a\"\nmode = \"push\"\n", "telegram.mode", "expected one of: polling, webhook"),
            (
                "[feishu]\napp_id = \"cli_1\"\napp_secret = \"s\"\nmode = \"ws\"\n",
                "feishu.mode",
                "expected one of: webhook, websocket",
            ),
            ("[agents.x]\nkind = 5\n", "agents.x.kind", "expected one of: codex, claude, acp"),
        ];
        for (toml, key, expected) in cases {
            let f = file(toml);
            let err = Config::load_from(Some(f.path()), env(&[])).unwrap_err().to_string();
            assert!(err.starts_with(&format!("config key `{key}`: ")), "{toml}: {err}");
            assert!(err.contains(expected), "{toml}: {err}");
            assert!(!err.contains("variant constructor"), "{err}");
        }
    }

    #[test]
    fn listen_wants_an_ip_and_port_and_says_so() {
        for bad in ["localhost:8700", "8700", "0.0.0.0"] {
            let err = Config::load_from(None, env(&[("TASKGATE_SERVER__LISTEN", bad)])).unwrap_err().to_string();
            assert!(err.starts_with("config key `server.listen`: "), "{err}");
            assert!(err.contains(&format!("`{bad}` is not an IP address and port")), "{err}");
            assert!(err.contains("e.g. 127.0.0.1:8700"), "{err}");
        }
        let f = file("[server]\nlisten = \"[::1]:9000\"\n");
        let config = Config::load_from(Some(f.path()), env(&[])).unwrap();
        assert_eq!(config.server.listen.to_string(), "[::1]:9000");
        let any = Config::load_from(None, env(&[("TASKGATE_SERVER__LISTEN", "0.0.0.0:9")])).unwrap();
        assert_eq!(any.server.local_addr().to_string(), "127.0.0.1:9");
        assert_eq!(any.notes.mcp_url(any.server.listen), "http://127.0.0.1:9/mcp");
    }

    #[test]
    fn empty_secrets_are_refused_naming_the_key() {
        let cases = [
            ("[telegram]\ntoken = \"\"\n", "telegram.token"),
            ("[telegram]\ntoken = \"  \"\n", "telegram.token"),
            ("[telegram]\ntoken = \"1:a\"\nwebhook_secret = \"\"\n", "telegram.webhook_secret"),
            ("[feishu]\napp_id = \"\"\napp_secret = \"s\"\n", "feishu.app_id"),
            ("[feishu]\napp_id = \"cli_1\"\napp_secret = \"\"\n", "feishu.app_secret"),
            (
                "[feishu]\napp_id = \"cli_1\"\napp_secret = \"s\"\nverification_token = \"\"\n",
                "feishu.verification_token",
            ),
            ("[feishu]\napp_id = \"cli_1\"\napp_secret = \"s\"\nencrypt_key = \"\"\n", "feishu.encrypt_key"),
            ("[database]\nurl = \"\"\n", "database.url"),
        ];
        for (toml, key) in cases {
            let f = file(toml);
            let err = Config::load_from(Some(f.path()), env(&[])).unwrap_err().to_string();
            assert!(err.starts_with(&format!("config key `{key}`: is empty")), "{toml}: {err}");
        }
        // From the environment too: an unset variable in a template is the usual way in.
        let f = file("[telegram]\ntoken = \"1:a\"\n");
        let err = Config::load_from(Some(f.path()), env(&[("TASKGATE_TELEGRAM__TOKEN", "")])).unwrap_err();
        assert!(err.to_string().starts_with("config key `telegram.token`: is empty"), "{err}");
        // Telegram's own rule for the webhook secret.
        let f = file("[telegram]\ntoken = \"1:a\"\nwebhook_secret = \"has space\"\n");
        let err = Config::load_from(Some(f.path()), env(&[])).unwrap_err().to_string();
        assert!(err.contains("A-Z, a-z, 0-9, _ and -"), "{err}");
    }

    #[test]
    fn http_limits_have_defaults_and_refuse_zero() {
        let config = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(
            (config.server.max_connections, config.server.header_timeout_secs, config.server.idle_timeout_secs),
            (512, 10, 120)
        );
        for key in ["MAX_CONNECTIONS", "HEADER_TIMEOUT_SECS", "IDLE_TIMEOUT_SECS"] {
            let err = Config::load_from(None, env(&[(&format!("TASKGATE_SERVER__{key}"), "0")])).unwrap_err();
            assert_eq!(err.to_string(), format!("config key `server.{}`: must be at least 1", key.to_lowercase()));
        }
    }

    /// Every `# key = value` line of the example, uncommented, is a key in the right section:
    /// a commented key that would be refused once uncommented misleads whoever follows it.
    #[test]
    fn the_example_config_parses_with_every_commented_key_uncommented() {
        let example =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/taskgate.toml")).unwrap();
        let key_line = |line: &str| {
            let first = line.split_whitespace().next().unwrap_or_default();
            let is_key = first.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') && !first.is_empty();
            (is_key && line.contains(" = ")) || line.starts_with('[')
        };
        let mut uncommented = 0;
        let text: String = example
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if key_line(rest) => {
                    uncommented += 1;
                    format!("{rest}\n")
                }
                _ => format!("{line}\n"),
            })
            .collect();
        assert!(uncommented > 20, "the example's commented keys were found: {uncommented}");
        let f = file(&text);
        let config = Config::load_from(Some(f.path()), env(&[])).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(config.telegram.is_some() && config.feishu.is_some() && config.agents.len() >= 3, "{config:?}");
        assert_eq!(config.web.display_name, "Web console");
    }

    #[test]
    fn the_example_config_parses_and_states_the_defaults() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/taskgate.toml");
        let config = Config::load_from(Some(&example), env(&[])).unwrap();
        let defaults = RuntimeConfig::default();
        assert_eq!(
            (config.runtime.turn_timeout_secs, config.runtime.max_processes, config.runtime.interrupt_grace_secs),
            (defaults.turn_timeout_secs, defaults.max_processes, defaults.interrupt_grace_secs)
        );
    }
}
