//! The fake's MCP client: finds the server it was offered (codex `-c mcp_servers.*`, claude
//! `--mcp-config`, ACP `session/new {mcpServers}`) and calls its tools over streamable HTTP,
//! with a bare HTTP/1.1 client (loopback only, one request per connection).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Mcp {
    url: String,
    token: String,
}

impl Mcp {
    /// From the command line: codex's `-c mcp_servers.<n>.url=".."` plus
    /// `bearer_token_env_var`, or claude's `--mcp-config <json>` with an http server.
    pub fn from_args(args: &[String]) -> Option<Mcp> {
        let unquote = |v: &str| serde_json::from_str::<String>(v).ok().unwrap_or_else(|| v.to_owned());
        let setting = |suffix: &str| {
            args.iter().find_map(|a| {
                let (key, value) = a.split_once('=')?;
                (key.starts_with("mcp_servers.") && key.ends_with(suffix)).then(|| unquote(value))
            })
        };
        if let (Some(url), Some(var)) = (setting(".url"), setting(".bearer_token_env_var")) {
            return Some(Mcp { url, token: std::env::var(var).ok()? });
        }
        let config = args.iter().position(|a| a == "--mcp-config").and_then(|i| args.get(i + 1))?;
        let config: Value = serde_json::from_str(config).ok()?;
        let server = config.get("mcpServers")?.as_object()?.values().next()?;
        let token = server.pointer("/headers/Authorization")?.as_str()?.strip_prefix("Bearer ")?.to_owned();
        Some(Mcp { url: server.get("url")?.as_str()?.to_owned(), token })
    }

    /// From ACP's `session/new` params: the first http server.
    pub fn from_acp(params: &Value) -> Option<Mcp> {
        let server = params.get("mcpServers")?.as_array()?.iter().find(|s| s["type"] == "http")?;
        let token = server
            .get("headers")?
            .as_array()?
            .iter()
            .find(|h| h["name"] == "Authorization")?
            .get("value")?
            .as_str()?
            .strip_prefix("Bearer ")?
            .to_owned();
        Some(Mcp { url: server.get("url")?.as_str()?.to_owned(), token })
    }

    /// Runs `NOTE: <json>`: one tool call `{"tool": .., "arguments": {..}}` or a list of them.
    /// Returns the tools' texts, or why it could not.
    pub fn run(&self, spec: &str) -> String {
        let calls: Vec<Value> = match serde_json::from_str::<Value>(spec) {
            Ok(Value::Array(calls)) => calls,
            Ok(call) => vec![call],
            Err(e) => return format!("bad NOTE json: {e}"),
        };
        if let Err(e) = self.post(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "fake-agent", "version": "0"}
        }})) {
            return format!("mcp initialize failed: {e}");
        }
        let _ = self.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        let mut out = Vec::new();
        for (i, call) in calls.iter().enumerate() {
            let request = json!({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": {
                "name": call["tool"], "arguments": call.get("arguments").cloned().unwrap_or(json!({})),
            }});
            out.push(match self.post(&request) {
                Ok(response) => {
                    let text = response.pointer("/result/content/0/text").and_then(Value::as_str).unwrap_or("?");
                    if response.pointer("/result/isError") == Some(&json!(true)) { format!("error: {text}") } else { text.to_owned() }
                }
                Err(e) => format!("error: {e}"),
            });
        }
        out.join(" | ")
    }

    fn post(&self, body: &Value) -> Result<Value, String> {
        let rest = self.url.strip_prefix("http://").ok_or("only http:// URLs")?;
        let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
        let mut stream = TcpStream::connect(host).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        let body = body.to_string();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.token,
            body.len()
        );
        stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let mut response = String::new();
        stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
        let (head, body) = response.split_once("\r\n\r\n").ok_or("no HTTP body")?;
        let status = head.split_whitespace().nth(1).unwrap_or("?");
        if !status.starts_with('2') {
            return Err(format!("HTTP {status}"));
        }
        if body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(body).map_err(|e| e.to_string())
    }
}
