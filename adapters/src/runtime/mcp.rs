//! Offering the gateway's MCP server (restart-note tools) to each kind of agent, in the way
//! that agent adds MCP servers. The server speaks streamable HTTP; the token is bound to one
//! runtime session.
//!
//! - codex: `-c mcp_servers.<name>.url=…` and `bearer_token_env_var`, the token in the env,
//!   and `default_tools_approval_mode="approve"`: codex otherwise asks before every MCP call
//!   (`mcpServer/elicitation/request`, which this client refuses, so the call is "rejected").
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

/// TOML basic strings accept JSON's escapes for everything a URL or a name can hold.
fn toml_string(value: &str) -> String {
    Value::String(value.to_owned()).to_string()
}

/// A server name that is safe as a TOML bare key and a claude server id.
fn key(mcp: &McpServer) -> String {
    let key: String = mcp.name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
    if key.is_empty() { "taskgate".to_owned() } else { key }
}

pub(super) fn codex_args(mcp: Option<&McpServer>) -> Vec<String> {
    let Some(mcp) = mcp else { return Vec::new() };
    let key = key(mcp);
    vec![
        "-c".into(),
        format!("mcp_servers.{key}.url={}", toml_string(&mcp.url)),
        "-c".into(),
        format!("mcp_servers.{key}.bearer_token_env_var={}", toml_string(&mcp.token_env)),
        // Without it, codex asks before every MCP tool call under `untrusted` and, through the
        // app-server, the call ends up "rejected" without a person ever being asked.
        "-c".into(),
        format!("mcp_servers.{key}.default_tools_approval_mode=\"approve\""),
    ]
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
    fn codex_gets_the_url_and_the_name_of_the_token_variable_not_the_token() {
        let args = codex_args(Some(&server()));
        assert_eq!(
            args,
            [
                "-c",
                "mcp_servers.taskgate.url=\"http://127.0.0.1:8700/mcp\"",
                "-c",
                "mcp_servers.taskgate.bearer_token_env_var=\"TASKGATE_MCP_TOKEN\"",
                "-c",
                "mcp_servers.taskgate.default_tools_approval_mode=\"approve\"",
            ]
        );
        assert!(!args.concat().contains("tok-1"));
        assert!(codex_args(None).is_empty());
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
