//! The fake's MCP client: finds the server it was offered (codex `-c mcp_servers.*` or a
//! thread's `config` overrides, claude
//! `--mcp-config`, ACP `session/new {mcpServers}`) and calls its tools over streamable HTTP,
//! with a bare HTTP/1.1 client (loopback only, one request per connection), or, for an ACP
//! stdio server, by spawning it like an agent would and speaking JSON lines to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub enum Mcp {
    Http {
        url: String,
        token: String,
    },
    /// ACP's stdio server: `command args`, with `env` added to the fake's own environment.
    Stdio {
        command: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
    },
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
            return Some(Mcp::Http { url, token: std::env::var(var).ok()? });
        }
        let config = args.iter().position(|a| a == "--mcp-config").and_then(|i| args.get(i + 1))?;
        let config: Value = serde_json::from_str(config).ok()?;
        let server = config.get("mcpServers")?.as_object()?.values().next()?;
        let token = server.pointer("/headers/Authorization")?.as_str()?.strip_prefix("Bearer ")?.to_owned();
        Some(Mcp::Http { url: server.get("url")?.as_str()?.to_owned(), token })
    }

    /// From a codex thread's `config` overrides (`thread/start` / `thread/resume`):
    /// `mcp_servers.<n>.url` with the token in `mcp_servers.<n>.http_headers.Authorization`.
    pub fn from_codex_config(config: &Value) -> Option<Mcp> {
        let config = config.as_object()?;
        let setting = |suffix: &str| {
            config
                .iter()
                .find_map(|(key, value)| (key.starts_with("mcp_servers.") && key.ends_with(suffix)).then_some(value))
        };
        let url = setting(".url")?.as_str()?.to_owned();
        let token = setting(".http_headers")?.get("Authorization")?.as_str()?.strip_prefix("Bearer ")?.to_owned();
        Some(Mcp::Http { url, token })
    }

    /// From ACP's `session/new` params: the first http server, else the first stdio server.
    pub fn from_acp(params: &Value) -> Option<Mcp> {
        let servers = params.get("mcpServers")?.as_array()?;
        let Some(server) = servers.iter().find(|s| s["type"] == "http") else {
            // Stdio servers have no `type`; they are the ones with a `command`.
            let server = servers.iter().find(|s| s.get("command").is_some())?;
            let strings =
                |key: &str| -> Vec<Value> { server.get(key).and_then(Value::as_array).cloned().unwrap_or_default() };
            return Some(Mcp::Stdio {
                command: server["command"].as_str()?.to_owned(),
                args: strings("args").iter().filter_map(|a| a.as_str().map(str::to_owned)).collect(),
                env: strings("env")
                    .iter()
                    .filter_map(|e| Some((e.get("name")?.as_str()?.to_owned(), e.get("value")?.as_str()?.to_owned())))
                    .collect(),
            });
        };
        let token = server
            .get("headers")?
            .as_array()?
            .iter()
            .find(|h| h["name"] == "Authorization")?
            .get("value")?
            .as_str()?
            .strip_prefix("Bearer ")?
            .to_owned();
        Some(Mcp::Http { url: server.get("url")?.as_str()?.to_owned(), token })
    }

    /// Runs `NOTE: <json>`: one tool call `{"tool": .., "arguments": {..}}` or a list of them.
    /// Returns the tools' texts, or why it could not.
    pub fn run(&self, spec: &str) -> String {
        let calls: Vec<Value> = match serde_json::from_str::<Value>(spec) {
            Ok(Value::Array(calls)) => calls,
            Ok(call) => vec![call],
            Err(e) => return format!("bad NOTE json: {e}"),
        };
        let mut conn = match self.connect() {
            Ok(conn) => conn,
            Err(e) => return format!("error: {e}"),
        };
        if let Err(e) = conn.request(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "fake-agent", "version": "0"}
        }})) {
            return format!("mcp initialize failed: {e}");
        }
        conn.notify(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        let mut out = Vec::new();
        for (i, call) in calls.iter().enumerate() {
            let request = json!({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": {
                "name": call["tool"], "arguments": call.get("arguments").cloned().unwrap_or(json!({})),
            }});
            out.push(match conn.request(&request) {
                Ok(response) => {
                    let text = response.pointer("/result/content/0/text").and_then(Value::as_str).unwrap_or("?");
                    if response.pointer("/result/isError") == Some(&json!(true)) {
                        format!("error: {text}")
                    } else {
                        text.to_owned()
                    }
                }
                Err(e) => format!("error: {e}"),
            });
        }
        if let Err(e) = conn.close() {
            out.push(format!("error: {e}"));
        }
        out.join(" | ")
    }

    fn connect(&self) -> Result<Conn, String> {
        match self {
            Mcp::Http { url, token } => Ok(Conn::Http { url: url.clone(), token: token.clone() }),
            Mcp::Stdio { command, args, env } => {
                let mut child = Command::new(command)
                    .args(args)
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .map_err(|e| format!("cannot start the MCP server {command}: {e}"))?;
                let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
                let (Some(stdin), Some(stdout)) = (stdin, stdout) else { return Err("no pipes".into()) };
                let (tx, lines) = mpsc::channel();
                std::thread::spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                });
                let mut conn = Conn::Stdio { child, stdin: Some(stdin), lines };
                // A broken line must get a parse error back, not kill the server.
                let garbage = conn.exchange_raw("this is not json {", &Value::Null)?;
                if garbage.pointer("/error/code") != Some(&json!(-32700)) {
                    return Err(format!("a malformed line got {garbage}, not a parse error"));
                }
                Ok(conn)
            }
        }
    }
}

/// One MCP client session.
enum Conn {
    Http { url: String, token: String },
    Stdio { child: Child, stdin: Option<ChildStdin>, lines: mpsc::Receiver<String> },
}

impl Conn {
    fn request(&mut self, body: &Value) -> Result<Value, String> {
        match self {
            Conn::Http { url, token } => post(url, token, body),
            Conn::Stdio { .. } => self.exchange_raw(&body.to_string(), &body["id"]),
        }
    }

    fn notify(&mut self, body: &Value) {
        match self {
            Conn::Http { url, token } => {
                let _ = post(url, token, body);
            }
            Conn::Stdio { stdin: Some(stdin), .. } => {
                let _ = writeln!(stdin, "{body}").and_then(|()| stdin.flush());
            }
            Conn::Stdio { .. } => {}
        }
    }

    /// Writes a line to the stdio server and reads until the response with `id` (server
    /// notifications and requests in between are skipped).
    fn exchange_raw(&mut self, line: &str, id: &Value) -> Result<Value, String> {
        let Conn::Stdio { stdin: Some(stdin), lines, .. } = self else { return Err("not a stdio server".into()) };
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).map_err(|e| format!("MCP server stdin: {e}"))?;
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = lines.recv_timeout(left).map_err(|_| "no answer from the MCP server".to_owned())?;
            let reply: Value = serde_json::from_str(&reply).map_err(|e| format!("MCP server wrote non-JSON: {e}"))?;
            if reply.get("method").is_none() && reply.get("id") == Some(id) {
                return Ok(reply);
            }
        }
    }

    /// Ends the session; a stdio server must exit (successfully) when its stdin closes.
    fn close(self) -> Result<(), String> {
        let Conn::Stdio { mut child, stdin, .. } = self else { return Ok(()) };
        drop(stdin);
        let deadline = Instant::now() + WAIT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("the MCP server exited with {status}")),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err("the MCP server did not exit when its stdin closed".into());
                }
            }
        }
    }
}

fn post(url: &str, token: &str, body: &Value) -> Result<Value, String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = TcpStream::connect(host).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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
