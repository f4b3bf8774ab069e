//! Spawning an agent child process with piped stdio, reading bounded lines from its stdout,
//! writing lines to its stdin, and draining its stderr into tracing.

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskgate_core::runtime::{RuntimeError, SessionSpec, one_line};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// One line from the agent's stdout.
#[derive(Debug)]
pub(crate) enum Line {
    Text(String),
    /// A line longer than the limit was skipped; carries its length in bytes.
    TooLong(usize),
}

/// A running agent: its stdin as a line sender, its stdout as a line receiver.
pub(crate) struct AgentProcess {
    pub child: Child,
    pub stdin: mpsc::UnboundedSender<String>,
    pub lines: mpsc::Receiver<Line>,
    /// The last stderr line, for handshake errors (cut short).
    pub last_stderr: Arc<Mutex<Option<String>>>,
}

/// Spawns `spec.program` with `args` in `spec.cwd`. The child dies with its handle.
pub(crate) fn spawn(spec: &SessionSpec, args: &[String], max_line_bytes: usize) -> Result<AgentProcess, RuntimeError> {
    let mut command = Command::new(&spec.program);
    command
        .args(args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        // The MCP token travels in the environment, not on the command line (see `mcp`).
        .envs(spec.mcp.iter().flat_map(super::mcp::child_env))
        .current_dir(&spec.cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| RuntimeError::Spawn(format!("{}: {e}", spec.program)))?;
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(RuntimeError::Spawn("stdio was not piped".into()));
    };
    tracing::info!(agent = %spec.agent, program = %spec.program, pid = child.id(), "agent process started");

    let (stdin_tx, mut stdin_rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut stdin = stdin;
        while let Some(line) = stdin_rx.recv().await {
            let written = async {
                stdin.write_all(line.as_bytes()).await?;
                stdin.write_all(b"\n").await?;
                stdin.flush().await
            };
            if let Err(e) = written.await {
                tracing::debug!(error = %e, "agent stdin closed");
                break;
            }
        }
        // Dropping stdin closes the pipe: agents treat EOF as "shut down".
    });

    let (line_tx, line_rx) = mpsc::channel(256);
    tokio::spawn(read_lines(stdout, max_line_bytes, line_tx));

    let last_stderr = Arc::new(Mutex::new(None));
    tokio::spawn(drain_stderr(stderr, spec.agent.clone(), last_stderr.clone()));

    Ok(AgentProcess { child, stdin: stdin_tx, lines: line_rx, last_stderr })
}

/// Reads newline-delimited lines, never holding more than `max` bytes of one line.
async fn read_lines(stdout: impl AsyncRead + Unpin, max: usize, tx: mpsc::Sender<Line>) {
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut buf: Vec<u8> = Vec::new();
    let mut skipped: Option<usize> = None;
    loop {
        let chunk = match reader.fill_buf().await {
            Ok([]) => break,
            Ok(chunk) => chunk,
            Err(e) => {
                tracing::debug!(error = %e, "agent stdout read failed");
                break;
            }
        };
        let (part, newline) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], true),
            None => (chunk, false),
        };
        match skipped.as_mut() {
            Some(n) => *n += part.len(),
            None if buf.len() + part.len() > max => skipped = Some(buf.len() + part.len()),
            None => buf.extend_from_slice(part),
        }
        let used = part.len() + usize::from(newline);
        reader.consume(used);
        if newline {
            let line = match skipped.take() {
                Some(n) => Line::TooLong(n),
                None => Line::Text(String::from_utf8_lossy(&buf).into_owned()),
            };
            buf.clear();
            if tx.send(line).await.is_err() {
                return;
            }
        } else if skipped.is_some() {
            buf.clear();
        }
    }
    if !buf.is_empty() {
        let _ = tx.send(Line::Text(String::from_utf8_lossy(&buf).into_owned())).await;
    }
}

async fn drain_stderr(stderr: impl AsyncRead + Unpin, agent: String, last: Arc<Mutex<Option<String>>>) {
    let mut lines = BufReader::new(stderr).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                let line = one_line(&line, 300);
                if line.is_empty() {
                    continue;
                }
                tracing::debug!(agent = %agent, "agent stderr: {line}");
                if let Ok(mut slot) = last.lock() {
                    *slot = Some(line);
                }
            }
            Ok(None) => break,
            // Non-UTF-8 or a huge line: stop draining would block the child, so keep going.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => continue,
            Err(_) => break,
        }
    }
}

/// Waits for the child to exit on its own for `grace`, then kills it.
pub(crate) async fn stop(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => {
            let _ = child.kill().await;
            child.wait().await.ok()
        }
    }
}

/// A short reason for a process exit, for the `Died` event.
pub(crate) fn exit_reason(status: Option<ExitStatus>) -> String {
    match status {
        Some(s) => {
            if let Some(code) = s.code() {
                return format!("the agent process exited with code {code}");
            }
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt;
                if let Some(sig) = s.signal() {
                    return format!("the agent process was killed by signal {sig}");
                }
            }
            format!("the agent process ended ({s})")
        }
        None => "the agent process closed its output".to_string(),
    }
}
