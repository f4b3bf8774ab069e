//! stdin/stdout plumbing, the session store and the effects a scripted turn can have.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub struct Context {
    pub state_dir: Option<PathBuf>,
    pub log: Option<PathBuf>,
    /// Every prompt received, one JSON line each (`{"pid", "ppid", "at_ms", "text"}`): which
    /// agent process (and gateway) got which input, for the replica tests.
    pub prompts: Option<PathBuf>,
    pub acp_load: bool,
    /// ACP without `mcpCapabilities.http`: the agent then gets a stdio MCP server.
    pub acp_stdio_mcp: bool,
    pub cwd: PathBuf,
    /// The MCP server offered on the command line (ACP offers it in `session/new`).
    pub mcp: Option<crate::mcp::Mcp>,
    lines: mpsc::Receiver<String>,
}

impl Context {
    pub fn from_args(args: &[String]) -> Self {
        let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map(PathBuf::from);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Context {
            state_dir: value("--state-dir"),
            log: value("--log"),
            prompts: value("--prompts"),
            acp_load: args.iter().any(|a| a == "--acp-load"),
            acp_stdio_mcp: args.iter().any(|a| a == "--acp-stdio-mcp"),
            cwd: std::env::current_dir().unwrap_or_default(),
            mcp: crate::mcp::Mcp::from_args(args),
            lines: rx,
        }
    }

    /// The next JSON message on stdin; `None` on EOF. Logs raw lines when asked to.
    pub fn recv(&self, timeout: Option<Duration>) -> Recv {
        let line = match timeout {
            Some(t) => match self.lines.recv_timeout(t) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => return Recv::Timeout,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Recv::Eof,
            },
            None => match self.lines.recv() {
                Ok(line) => line,
                Err(_) => return Recv::Eof,
            },
        };
        if let Some(log) = &self.log
            && let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log)
        {
            let _ = writeln!(f, "{line}");
        }
        match serde_json::from_str(&line) {
            Ok(v) => Recv::Msg(v),
            Err(_) => {
                eprintln!("fake-agent: ignoring non-JSON input");
                self.recv(timeout)
            }
        }
    }

    /// What a fake needs besides stdin, for threads that run turns beside the reader.
    pub fn tools(&self) -> Tools {
        Tools { state_dir: self.state_dir.clone(), prompts: self.prompts.clone() }
    }

    pub fn log_input(&self, text: &str, input: &Value) {
        self.tools().log_input(text, input);
    }

    pub fn send(&self, msg: &Value) {
        self.tools().send(msg);
    }

    pub fn send_raw(&self, line: &str) {
        self.tools().send_raw(line);
    }

    pub fn send_garbage(&self, unknown_method: &str, unknown_response: Value) {
        self.tools().send_garbage(unknown_method, unknown_response);
    }

    pub fn session_exists(&self, id: &str) -> bool {
        self.tools().session_exists(id)
    }

    pub fn save_session(&self, id: &str, last_input: &str) {
        self.tools().save_session(id, last_input);
    }

    pub fn forget_session(&self, id: &str) {
        self.tools().forget_session(id);
    }

    pub fn recall(&self, id: &str) -> String {
        self.tools().recall(id)
    }

    pub fn crash_once(&self, flag: &str) -> bool {
        self.tools().crash_once(flag)
    }
}

/// Output, the session store and the prompt log: everything but stdin, shareable by threads.
#[derive(Debug, Clone)]
pub struct Tools {
    pub state_dir: Option<PathBuf>,
    pub prompts: Option<PathBuf>,
}

impl Tools {
    /// Records a prompt in the `--prompts` file (appended whole, one line, by every process
    /// sharing the file), with the protocol's raw input (codex `input` items, claude `content`
    /// blocks, ACP `prompt` blocks) as `input`: which content types arrived.
    pub fn log_input(&self, text: &str, input: &Value) {
        let Some(path) = &self.prompts else { return };
        let at_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let line = serde_json::json!({
            "pid": std::process::id(),
            "ppid": std::os::unix::process::parent_id(),
            "at_ms": at_ms,
            "text": text,
            "input": input,
        });
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }

    pub fn send(&self, msg: &Value) {
        self.send_raw(&msg.to_string());
    }

    pub fn send_raw(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Lines a broken agent might print: the adapter must skip all of them.
    pub fn send_garbage(&self, unknown_method: &str, unknown_response: Value) {
        self.send_raw("this is not json {");
        self.send_raw("[1,2,3]");
        self.send_raw(&format!("{{\"method\":\"{unknown_method}\",\"params\":{{}}}}"));
        self.send(&unknown_response);
        self.send_raw(&format!("{{\"pad\":\"{}\"}}", "x".repeat(200_000)));
    }

    /// Whether a session exists in the state dir (sessions always exist without one).
    pub fn session_exists(&self, id: &str) -> bool {
        self.state_dir.as_ref().is_none_or(|d| d.join(id).exists())
    }

    /// Remembers the last input of a session, so a resumed session can recall it.
    pub fn save_session(&self, id: &str, last_input: &str) {
        if let Some(dir) = &self.state_dir {
            let _ = std::fs::create_dir_all(dir);
            let _ = std::fs::write(dir.join(id), last_input);
        }
    }

    pub fn forget_session(&self, id: &str) {
        if let Some(dir) = &self.state_dir {
            let _ = std::fs::remove_file(dir.join(id));
        }
    }

    pub fn recall(&self, id: &str) -> String {
        self.state_dir.as_ref().and_then(|d| std::fs::read_to_string(d.join(id)).ok()).unwrap_or_default()
    }

    /// Crashes at most once per marker: creates a flag file in the state dir the first time.
    pub fn crash_once(&self, flag: &str) -> bool {
        let Some(dir) = &self.state_dir else { return true };
        let _ = std::fs::create_dir_all(dir);
        let path = dir.join(format!("crashed-{flag}"));
        if path.exists() {
            false
        } else {
            let _ = std::fs::write(&path, "1");
            true
        }
    }
}

impl Context {
    /// Runs a `NOTE:` marker's tool calls; the reply says what the tools answered.
    pub fn note(&self, spec: &str) -> String {
        match &self.mcp {
            Some(mcp) => format!("FAKE-REPLY: noted: {}", mcp.run(spec)),
            None => "FAKE-REPLY: no MCP server was offered".to_owned(),
        }
    }
}

pub enum Recv {
    Msg(Value),
    Timeout,
    Eof,
}

/// Runs a shell command in the working directory, like an agent's shell tool.
pub fn run_command(command: &str) -> (i32, String) {
    run_command_in(command, &std::env::current_dir().unwrap_or_default())
}

/// Runs a shell command in `cwd` (a thread's working directory).
pub fn run_command_in(command: &str, cwd: &std::path::Path) -> (i32, String) {
    match std::process::Command::new("sh").arg("-c").arg(command).current_dir(cwd).output() {
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            (out.status.code().unwrap_or(-1), text)
        }
        Err(e) => (127, e.to_string()),
    }
}

pub const FILE_CONTENT: &str = "hello from fake model\n";

pub fn write_file(path: &str) -> Result<(), String> {
    std::fs::write(path, FILE_CONTENT).map_err(|e| e.to_string())
}

pub fn new_id(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}
