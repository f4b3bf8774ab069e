//! Offering the gateway's MCP server (restart-note tools) to each kind of agent, in the way
//! that agent adds MCP servers. The server speaks streamable HTTP; the token is bound to one
//! runtime session.
//!
//! - codex: per-thread `config` overrides in `thread/start` / `thread/resume`:
//!   `mcp_servers.<name>.url`, the token in `http_headers.Authorization` (sent on the
//!   app-server's stdin, so neither on a command line nor in the environment of a process
//!   that other sessions share), and `default_tools_approval_mode = "approve"`: codex otherwise
//!   asks before every MCP call (`mcpServer/elicitation/request`, which this client refuses,
//!   so the call is "rejected"). Checked with codex 0.169.0: two threads on one app-server
//!   each reach the server with their own token, and a resumed thread takes a new one.
//! - claude: `--mcp-config <json>` with an `http` server, and `--allowedTools mcp__<name>` so
//!   the note tools do not wait for a person (`can_use_tool`). The token is written into the
//!   header itself: `${VAR}` expansion in `headers` has been reported not to happen
//!   (anthropics/claude-code#51581), and a literal `${VAR}` would fail every call.
//! - ACP: `session/new {mcpServers}`: `http` when the agent advertises
//!   `mcpCapabilities.http`, else the stdio bridge (`taskgate mcp`), which every ACP agent
//!   must support; the bridge reads the URL and token from its env.
//!
//! The note tools only read and append to the calling session's own task note, so they run
//! without approval. Checked against the real CLIs in `tests/tests/it/compat_real_clis.rs`.

use serde_json::{Value, json};
use taskgate_core::runtime::McpServer;

/// Where the stdio bridge finds the server.
pub const URL_ENV: &str = "TASKGATE_MCP_URL";

/// The child's extra environment: the token (and URL, for the bridge).
pub(super) fn child_env(mcp: &McpServer) -> Vec<(String, String)> {
    vec![(mcp.token_env.clone(), mcp.token.clone()), (URL_ENV.to_owned(), mcp.url.clone())]
}

/// A server name that is safe as a TOML bare key and a claude server id.
fn key(mcp: &McpServer) -> String {
    let key: String = mcp.name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
    if key.is_empty() { "taskgate".to_owned() } else { key }
}

/// The `config` overrides of a codex thread that offer `mcp` to it (dotted keys, as `-c`).
pub(super) fn codex_thread_config(mcp: &McpServer) -> Value {
    let key = key(mcp);
    json!({
        format!("mcp_servers.{key}.url"): mcp.url,
        format!("mcp_servers.{key}.http_headers"): { "Authorization": format!("Bearer {}", mcp.token) },
        // Without it, codex asks before every MCP tool call under `untrusted` and, through the
        // app-server, the call ends up "rejected" without a person ever being asked.
        format!("mcp_servers.{key}.default_tools_approval_mode"): "approve",
    })
}

pub(super) fn claude_args(mcp: Option<&McpServer>) -> Vec<String> {
    let Some(mcp) = mcp else { return Vec::new() };
    let config = json!({"mcpServers": {key(mcp): {
        "type": "http",
        "url": mcp.url,
        "headers": {"Authorization": format!("Bearer {}", mcp.token)},
    }}});
    // The note tools only touch the task's own note: no person should have to approve them.
    // `--allowedTools` before `--mcp-config`: both take several values, up to the next flag.
    vec!["--allowedTools".into(), format!("mcp__{}", key(mcp)), "--mcp-config".into(), config.to_string()]
}

/// The `mcpServers` entry of ACP's `session/new`, as JSON (the schema's `McpServer`).
pub(super) fn acp_server(mcp: &McpServer, agent_speaks_http: bool) -> Option<Value> {
    if agent_speaks_http {
        return Some(json!({
            "type": "http",
            "name": key(mcp),
            "url": mcp.url,
            "headers": [{"name": "Authorization", "value": format!("Bearer {}", mcp.token)}],
        }));
    }
    let (command, args) = mcp.stdio_bridge.as_ref()?.split_first()?;
    Some(json!({
        "name": key(mcp),
        "command": command,
        "args": args,
        "env": [
            {"name": URL_ENV, "value": mcp.url},
            {"name": mcp.token_env, "value": mcp.token},
        ],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> McpServer {
        McpServer {
            name: "taskgate".into(),
            url: "http://127.0.0.1:8700/mcp".into(),
            token: "tok-1".into(),
            token_env: "TASKGATE_MCP_TOKEN".into(),
            stdio_bridge: Some(vec!["/usr/bin/taskgate".into(), "mcp".into()]),
        }
    }

    #[test]
    fn codex_gets_the_server_and_its_token_as_thread_config() {
        let config = codex_thread_config(&server());
        assert_eq!(
            config,
            json!({
                "mcp_servers.taskgate.url": "http://127.0.0.1:8700/mcp",
                "mcp_servers.taskgate.http_headers": { "Authorization": "Bearer tok-1" },
                "mcp_servers.taskgate.default_tools_approval_mode": "approve",
            })
        );
        assert_eq!(child_env(&server())[0], ("TASKGATE_MCP_TOKEN".into(), "tok-1".into()));
    }

    #[test]
    fn claude_gets_an_http_server_in_mcp_config() {
        let args = claude_args(Some(&server()));
        assert_eq!(args[..3], ["--allowedTools", "mcp__taskgate", "--mcp-config"]);
        let config: Value = serde_json::from_str(&args[3]).unwrap();
        assert_eq!(config["mcpServers"]["taskgate"]["type"], "http");
        assert_eq!(config["mcpServers"]["taskgate"]["headers"]["Authorization"], "Bearer tok-1");
    }

    #[test]
    fn acp_gets_http_when_advertised_else_the_stdio_bridge() {
        let http = acp_server(&server(), true).unwrap();
        assert_eq!(http["type"], "http");
        let stdio = acp_server(&server(), false).unwrap();
        assert_eq!((stdio["command"].as_str(), stdio["args"][0].as_str()), (Some("/usr/bin/taskgate"), Some("mcp")));
        assert_eq!(stdio["env"][1]["value"], "tok-1");
        let mut no_bridge = server();
        no_bridge.stdio_bridge = None;
        assert_eq!(acp_server(&no_bridge, false), None);
        // Both parse as the schema's `McpServer`, which is what `session/new` carries.
        for v in [http, stdio] {
            serde_json::from_value::<agent_client_protocol_schema::v1::McpServer>(v).unwrap();
        }
    }
}
