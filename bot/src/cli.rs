use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// taskgate: drive coding agents from Telegram, Feishu/Lark and the web, with durable tasks.
#[derive(Debug, Parser)]
#[command(name = "taskgate", version, about)]
pub struct Cli {
    /// Config file (default: ./taskgate.toml when present, else built-in defaults).
    #[arg(long, global = true, env = "TASKGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: HTTP server (health, metrics, webhooks, console) and workers.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Check config, database, agents and channel credentials; one line per check.
    Doctor,
    /// Create and print the web console's login token. An existing token is stored hashed and
    /// cannot be shown again: then this fails, and `--rotate` replaces it.
    Token {
        /// Replace the token: the old one stops working and every browser session ends.
        #[arg(long)]
        rotate: bool,
    },
    /// Exit 0 when this machine's gateway answers `GET /healthz` (for container health checks).
    /// Asks `server.listen`, with 0.0.0.0 or :: as loopback.
    Health,
    /// List the web console's login sessions (one per browser that logged in), or end them.
    Sessions {
        /// End the session with this id (from the list); may be given more than once.
        #[arg(long, value_name = "ID")]
        revoke: Vec<i64>,
        /// End every session: every browser must log in again.
        #[arg(long, conflicts_with = "revoke")]
        revoke_all: bool,
    },
    /// Classify chat messages (JSON Lines in, JSON Lines out); see docs/classify.md.
    Classify {
        /// Input file (default: standard input).
        #[arg(long, value_name = "FILE", conflicts_with = "eval")]
        input: Option<PathBuf>,
        /// Score a labelled file (lines with an `expect` object) instead.
        #[arg(long, value_name = "FILE")]
        eval: Option<PathBuf>,
    },
    /// Print the audit log of approval decisions (who, where, when, what, scope, rule);
    /// `--verify` checks its hash chain and exits non-zero at the first edited or missing entry.
    Audit {
        #[arg(long)]
        verify: bool,
    },
    /// Stdio MCP server bridging to the gateway's `/mcp` (for agents without HTTP MCP).
    /// Started by agents, not people: reads the URL from `TASKGATE_MCP_URL` and the session
    /// token from the environment; needs no config file.
    Mcp {
        /// The environment variable holding the session's token.
        #[arg(long, value_name = "VAR", default_value = crate::notes::mcp::TOKEN_ENV)]
        token_env: String,
    },
}
