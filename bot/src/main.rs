use std::process::ExitCode;

use clap::Parser;
use taskgate::cli::{Cli, Command};
use taskgate::config::Config;
use taskgate::doctor::{self, Verdict};
use taskgate::startup::{self, Application};
use taskgate::{classify, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before the config: an agent starts the bridge in its own working directory, where a
    // `taskgate.toml` (or its absence) says nothing about the gateway.
    if let Command::Mcp { token_env } = &cli.command {
        telemetry::init();
        return taskgate::notes::bridge::main(token_env);
    }
    // A bad config is one clear line and a non-zero exit, before anything else starts.
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("taskgate: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::Classify { input, eval } = &cli.command {
        return report(classify::run(&config, input.as_deref(), eval.as_deref()));
    }
    telemetry::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return report(Err(e.into())),
    };
    runtime.block_on(async {
        match cli.command {
            Command::Serve => report(serve(&config).await),
            Command::Migrate => report(migrate(&config).await),
            Command::Doctor => {
                let source = cli
                    .config
                    .as_ref()
                    .map_or_else(|| "defaults and environment".to_owned(), |p| p.display().to_string());
                let checks = doctor::run(&config, &source).await;
                for check in &checks {
                    println!("{check}");
                }
                if checks.iter().any(|c| c.verdict == Verdict::Fail) { ExitCode::FAILURE } else { ExitCode::SUCCESS }
            }
            Command::Token { rotate } => report(token(&config, rotate).await),
            Command::Sessions { revoke, revoke_all } => report(sessions(&config, &revoke, revoke_all).await),
            Command::Audit { verify } => match audit(&config, verify).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => report(Err(e)),
            },
            Command::Health => match taskgate::http::probe(&config.server, HEALTH_WAIT).await {
                Ok(url) => {
                    println!("ok ({url})");
                    ExitCode::SUCCESS
                }
                Err(e) => report(Err(e)),
            },
            Command::Classify { .. } | Command::Mcp { .. } => unreachable!("handled above"),
        }
    })
}

/// `taskgate health`: inside a container's health-check timeout (3 s in deploy/Containerfile).
const HEALTH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

async fn serve(config: &Config) -> anyhow::Result<()> {
    // This binary is the stdio MCP bridge for agents that only speak stdio MCP.
    if !taskgate::notes::mcp::offer_self_as_bridge() {
        tracing::warn!("the path of this executable is unknown: agents without HTTP MCP get no note tools");
    }
    let mut app = Application::build(config).await?;
    tracing::info!("taskgate listening on http://{}", app.local_addr());
    // Printed, never logged: the only time this token can be shown (it is stored hashed).
    if let Some(token) = app.take_new_token() {
        println!(
            "Web console: http://{}/  login token (shown once; `taskgate token --rotate` makes a new one):\n{token}",
            app.local_addr()
        );
    }
    app.run_until(startup::shutdown_signal()).await
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let store = startup::open_store(config).await?;
    let pending = store.pending_migrations().await?;
    store.migrate().await?;
    println!("applied {} migration(s)", pending.len());
    store.close().await?;
    Ok(())
}

/// `taskgate token`: creates and prints the console login token when there is none; an
/// existing one cannot be shown (only its hash is stored), which is an error pointing at
/// `--rotate`. `--rotate` replaces it and ends every browser session.
async fn token(config: &Config, rotate: bool) -> anyhow::Result<()> {
    use taskgate::web::auth::{self, TokenState};
    // Creating a database here would hide a wrong --config or working directory: the token
    // would go to a database no gateway reads.
    if config.uses_sqlite() && !config.sqlite_path().exists() {
        anyhow::bail!(
            "no database at {}: start `taskgate serve` (or run `taskgate migrate`) with this config first, \
             or check --config / TASKGATE_CONFIG and server.data_dir",
            std::path::absolute(config.sqlite_path()).unwrap_or_else(|_| config.sqlite_path()).display()
        );
    }
    let store = startup::open_store(config).await?;
    store.migrate().await?;
    let outcome = if rotate {
        auth::rotate_token(&store).await.map(Some)
    } else {
        auth::ensure_token(&store).await.map(|state| match state {
            TokenState::Created(token) => Some(token),
            TokenState::Existing => None,
        })
    };
    store.close().await?;
    eprintln!("database: {}", taskgate::config::redact_url(&config.database_url()));
    match outcome? {
        Some(token) => {
            if rotate {
                eprintln!("New console login token (the old one no longer works; every browser must log in again):");
            }
            println!("{token}");
            Ok(())
        }
        None => anyhow::bail!(
            "a console login token is already set; it is stored hashed and cannot be shown again.\n\
             Run `taskgate token --rotate` to replace it (every browser must log in again)."
        ),
    }
}

/// `taskgate sessions [--revoke ID]... [--revoke-all]`: the console's login sessions, or
/// ending them. Revoking an id that is not there is an error (a typo must not look done).
async fn sessions(config: &Config, revoke: &[i64], revoke_all: bool) -> anyhow::Result<()> {
    let store = startup::open_store(config).await?;
    store.migrate().await?;
    let result = async {
        if revoke_all {
            let ended = store.revoke_web_sessions().await?;
            println!("ended {ended} session(s); every browser must log in again");
            return Ok(());
        }
        if !revoke.is_empty() {
            let mut missing = Vec::new();
            for id in revoke {
                if store.revoke_web_session(*id).await? {
                    println!("ended session {id}");
                } else {
                    missing.push(id.to_string());
                }
            }
            anyhow::ensure!(missing.is_empty(), "no session {} (see `taskgate sessions`)", missing.join(", "));
            return Ok(());
        }
        let list = store.web_sessions(chrono::Utc::now()).await?;
        if list.is_empty() {
            println!("no console sessions");
        }
        for s in list {
            let agent = if s.user_agent.is_empty() { "unknown browser".to_owned() } else { s.user_agent };
            println!(
                "{:>4}  logged in {}  last seen {}  expires {}  {agent}",
                s.id,
                s.created_at.format("%Y-%m-%d %H:%M"),
                s.last_seen_at.format("%Y-%m-%d %H:%M"),
                s.expires_at.format("%Y-%m-%d"),
            );
        }
        Ok(())
    }
    .await;
    store.close().await?;
    result
}

/// `taskgate audit [--verify]`: every approval decision, oldest first. `Ok(false)` when the
/// chain does not verify.
async fn audit(config: &Config, verify: bool) -> anyhow::Result<bool> {
    let store = startup::open_store(config).await?;
    store.migrate().await?;
    let (entries, broken_at) = taskgate_adapters::store::audit_log(&store).await?;
    store.close().await?;
    for e in &entries {
        let scope = e.scope.map(|s| format!(" ({s})")).unwrap_or_default();
        let rule = e.rule_id.map(|r| format!(" rule #{r}")).unwrap_or_default();
        let channel = e.channel.map(|c| format!(" via {c}")).unwrap_or_default();
        let place = if e.place.is_empty() { String::new() } else { format!(" in {}", e.place) };
        println!(
            "#{} {} task {} approval {}: {}{scope}{rule} by {}{channel}{place}: {}",
            e.id,
            e.at.format("%Y-%m-%d %H:%M:%S"),
            e.task_id,
            e.approval_id,
            e.decision,
            e.who,
            e.action
        );
    }
    if !verify {
        return Ok(true);
    }
    match broken_at {
        None => {
            println!("audit chain verified: {} entries", entries.len());
            Ok(true)
        }
        Some(id) => {
            eprintln!(
                "taskgate: the audit chain is broken at entry #{id}: it was changed, or one before it was removed"
            );
            Ok(false)
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("taskgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
