//! A protocol-faithful fake coding agent for the runtime tests, shaped after the recorded
//! transcripts in `fixtures/agents/`. Usage:
//!
//! `fake-agent [codex|claude|acp] [--state-dir DIR] [--log FILE] [--acp-load] [--acp-stdio-mcp] [agent flags...]`
//!
//! The protocol is the first of `codex`, `claude`, `acp` among the arguments. Each turn is
//! scripted by a marker in the prompt (see `fake_agent/script.rs`). `--state-dir` persists
//! sessions so resume works across a crash; `--log` appends every line received on stdin.
//! `NOTE: <json>` calls the tools of the MCP server taskgate offered (see `fake_agent/mcp.rs`);
//! `--acp-stdio-mcp` makes the ACP fake advertise no HTTP MCP, so it gets (and spawns) the
//! stdio bridge instead.

#[path = "../fake_agent/acp.rs"]
mod acp;
#[path = "../fake_agent/claude.rs"]
mod claude;
#[path = "../fake_agent/codex.rs"]
mod codex;
#[path = "../fake_agent/common.rs"]
mod common;
#[path = "../fake_agent/mcp.rs"]
mod mcp;
#[path = "../fake_agent/script.rs"]
mod script;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ctx = common::Context::from_args(&args);
    let code = match args.iter().find(|a| matches!(a.as_str(), "codex" | "claude" | "acp")).map(String::as_str) {
        Some("codex") => codex::run(ctx),
        Some("claude") => claude::run(ctx, &args),
        Some("acp") => acp::run(ctx),
        _ => {
            eprintln!("fake-agent: say codex, claude or acp");
            2
        }
    };
    std::process::exit(code);
}
