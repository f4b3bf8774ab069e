//! Files people send, on the gateway's side: checked against `[attachments]`, stored
//! content-addressed under `<data_dir>/attachments` (written to a temporary name and renamed,
//! so nothing is ever half-stored), voice notes transcribed, and, when a turn starts, files
//! copied into `<project>/.taskgate/attachments/<task>/` for the agent. The rules are
//! `taskgate_core::attachment`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use taskgate_core::attachment::{self, Attachment, AttachmentKind, Limits};
use taskgate_core::runtime::{InputFile, TurnInput};

use taskgate_core::model::NewOutbound;
use taskgate_core::reply::Reply;
use taskgate_core::store::Store;

use crate::config::Config;
use crate::engine::{Engine, EngineError, IncomingMessage};

/// A file as a channel fetched it, before it is checked and stored.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub name: String,
    pub mime: String,
    /// The platform called it a voice note (or audio message).
    pub voice: bool,
    pub bytes: Vec<u8>,
}

/// The content-addressed store and the rules it applies.
#[derive(Debug, Clone)]
pub struct Stash {
    root: PathBuf,
    limits: Limits,
    transcribe: Vec<String>,
    transcribe_timeout: Duration,
    /// Chats already told how to turn on transcription (in memory: after a restart a chat
    /// is told once more).
    told: Arc<Mutex<HashSet<String>>>,
}

/// A file a message offers, as the platform describes it before it is fetched.
#[derive(Debug, Clone)]
pub struct Offered {
    pub name: String,
    pub mime: String,
    pub size: Option<u64>,
    pub voice: bool,
}

impl Stash {
    pub fn new(config: &Config) -> Self {
        let root = config.server.data_dir.join("attachments");
        Self {
            root: std::path::absolute(&root).unwrap_or(root),
            limits: config.attachments.limits(),
            transcribe: config.attachments.transcribe.clone(),
            transcribe_timeout: Duration::from_secs(config.attachments.transcribe_timeout_secs.max(1)),
            told: Arc::default(),
        }
    }

    /// Whether to fetch `file` for a message in `chat` (channel and chat id): `Err` is the one
    /// line for the person (too big, a refused type, a voice note with no transcriber).
    pub fn admit(&self, file: &Offered, chat: &str) -> Result<(), String> {
        self.limits.check(&file.mime, file.size)?;
        if file.voice && !self.transcribes() {
            let first = self.told.lock().map(|mut told| told.insert(chat.to_owned())).unwrap_or(false);
            return Err(if first { attachment::NO_TRANSCRIBER } else { attachment::NO_TRANSCRIBER_AGAIN }.to_owned());
        }
        Ok(())
    }

    pub fn max_bytes(&self) -> u64 {
        self.limits.max_bytes
    }

    /// The stored file with content `sha256` (64 lowercase hex digits; anything else is
    /// `None`, so a caller's string never becomes a path).
    pub fn find(&self, sha256: &str) -> Option<PathBuf> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        let dir = self.root.join(&sha256[..2]);
        let prefix = format!("{sha256}.");
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .find(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)))
            .map(|e| e.path())
    }

    /// An attachment stored earlier (a web upload), named again by the message that sends it.
    pub fn restore(&self, name: &str, mime: &str, sha256: &str) -> Option<Attachment> {
        let path = self.find(sha256)?;
        let size = std::fs::metadata(&path).ok()?.len();
        Some(Attachment {
            name: attachment::sanitize_name(name),
            mime: mime.to_owned(),
            kind: attachment::kind_of(mime, false),
            size,
            sha256: sha256.to_owned(),
            path: path.to_string_lossy().into_owned(),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn transcribes(&self) -> bool {
        !self.transcribe.is_empty()
    }

    /// Checks a file the platform described before it is downloaded: `Err` is the line for
    /// the person.
    pub fn precheck(&self, mime: &str, size: Option<u64>) -> Result<(), String> {
        self.limits.check(mime, size)
    }

    /// Checks and stores `file`. `Err(line)`: refused, with the line for the person; nothing
    /// was stored. An IO failure is an `Err` too (the person is told storing failed).
    pub async fn store(&self, file: Fetched) -> Result<Attachment, String> {
        let size = file.bytes.len() as u64;
        self.limits.check(&file.mime, Some(size))?;
        let sha256 = hex(&Sha256::digest(&file.bytes));
        let name = attachment::sanitize_name(&file.name);
        let extension = attachment::extension_for(&file.mime, &name);
        let path = self.root.join(attachment::stored_relative_path(&sha256, &extension));
        write_atomically(&path, &file.bytes).await.map_err(|e| {
            tracing::warn!(path = %path.display(), error = %e, "attachments: storing a file failed");
            format!("I could not store {name}: the gateway's disk refused it")
        })?;
        Ok(Attachment {
            kind: attachment::kind_of(&file.mime, file.voice),
            name,
            mime: file.mime,
            size,
            sha256,
            path: path.to_string_lossy().into_owned(),
        })
    }

    /// Runs the transcriber on a stored voice note: its standard output, trimmed. No shell;
    /// killed at the time limit.
    pub async fn transcribe(&self, voice: &Attachment) -> Result<String, String> {
        let argv = attachment::transcribe_argv(&self.transcribe, &voice.path);
        let Some((program, args)) = argv.split_first() else { return Err("no transcriber configured".into()) };
        let child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("could not run {program}: {e}"))?;
        let output = match tokio::time::timeout(self.transcribe_timeout, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return Err(format!("{program} failed: {e}")),
            Err(_) => return Err(format!("{program} took longer than {}s", self.transcribe_timeout.as_secs())),
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
            return Err(format!("{program} exited with {}: {}", output.status, last.trim()));
        }
        let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if text.is_empty() {
            return Err(format!("{program} printed nothing"));
        }
        Ok(text)
    }
}

/// Hands a message with files to the engine: each fetched file is checked and stored, voice
/// notes transcribed (the transcript becomes the message, shown back as "Heard: …"), and every
/// file that did not make it explained in one line. When every file failed, nothing reaches
/// the agent (a caption alone would ask about a picture it cannot see).
pub async fn deliver(
    engine: &Engine,
    stash: &Stash,
    msg: IncomingMessage,
    files: Vec<Result<Fetched, String>>,
) -> Result<(), EngineError> {
    let mut stored = Vec::with_capacity(files.len());
    let mut lines = Vec::new();
    for file in files {
        match file {
            Ok(fetched) => match stash.store(fetched).await {
                Ok(a) => stored.push(a),
                Err(line) => lines.push(line),
            },
            Err(line) => lines.push(line),
        }
    }
    deliver_stored(engine, stash, msg, stored.into_iter().map(Ok).chain(lines.into_iter().map(Err)).collect()).await
}

/// [`deliver`] for files already stored (web uploads): voice notes heard, failures told, the
/// rest to the engine.
pub async fn deliver_stored(
    engine: &Engine,
    stash: &Stash,
    mut msg: IncomingMessage,
    files: Vec<Result<Attachment, String>>,
) -> Result<(), EngineError> {
    let offered = files.len();
    let mut stored = Vec::with_capacity(offered);
    let mut lines = Vec::new();
    for file in files {
        match file {
            Ok(a) => stored.push(a),
            Err(line) => lines.push(line),
        }
    }
    // A voice note reaches the agent as its transcript (the file stays on the timeline); one
    // that could not be heard is not delivered: there is nothing of it to act on.
    let mut heard = Vec::new();
    let mut kept = Vec::with_capacity(stored.len());
    for file in stored {
        if file.kind != AttachmentKind::Voice {
            kept.push(file);
            continue;
        }
        match stash.transcribe(&file).await {
            Ok(text) => {
                heard.push(text);
                kept.push(file);
            }
            Err(e) => {
                tracing::warn!(error = %e, "attachments: transcribing a voice note failed");
                lines.push(format!("I could not transcribe the voice note: {e}"));
            }
        }
    }
    for line in &lines {
        tell(engine, &msg, line).await?;
    }
    if offered > 0 && kept.is_empty() {
        return Ok(());
    }
    if !heard.is_empty() {
        let transcript = heard.join("\n");
        tell(engine, &msg, &attachment::heard_line(&transcript)).await?;
        msg.text = if msg.text.trim().is_empty() { transcript } else { format!("{}\n\n{transcript}", msg.text.trim()) };
    }
    engine.handle_with_files(msg, kept).await
}

/// One line to the chat the message came from, through the outbox.
async fn tell(engine: &Engine, msg: &IncomingMessage, line: &str) -> Result<(), EngineError> {
    let mut reply = Reply::text(line).in_thread(msg.thread_id.clone());
    reply.reply_to = msg.message_id.clone();
    engine
        .store()
        .outbox_enqueue(NewOutbound {
            channel: msg.channel,
            chat_id: msg.chat_id.clone(),
            task_id: None,
            approval_id: None,
            payload: reply,
        })
        .await?;
    Ok(())
}

/// The turn's input for the agent: images by their stored path, other files copied into
/// `<project>/.taskgate/attachments/<task>/` and named in the text with that path. A file that
/// cannot be copied is named by its stored path instead.
pub async fn turn_input(text: String, files: &[Attachment], project: &Path, task: i64) -> TurnInput {
    if files.is_empty() {
        return TurnInput::text(text);
    }
    let dir = project.join(".taskgate").join("attachments").join(task.to_string());
    let mut named = Vec::with_capacity(files.len());
    let mut inputs = Vec::with_capacity(files.len());
    for file in files {
        let stored = PathBuf::from(&file.path);
        let path = if file.kind == AttachmentKind::Image {
            stored
        } else {
            let target = dir.join(attachment::project_file_name(file));
            match copy_atomically(&stored, &target).await {
                Ok(()) => target,
                Err(e) => {
                    tracing::warn!(file = %file.name, error = %e, "attachments: copying into the project failed");
                    stored
                }
            }
        };
        inputs.push(InputFile {
            path: path.clone(),
            name: file.name.clone(),
            mime: file.mime.clone(),
            image: file.kind == AttachmentKind::Image,
        });
        named.push((file.clone(), path.to_string_lossy().into_owned()));
    }
    TurnInput { text: attachment::prompt(&text, &named), files: inputs }
}

async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if tokio::fs::try_exists(path).await.unwrap_or(false) {
        // Content-addressed: the same bytes are already there.
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(dir).await?;
    let tmp = dir.join(format!(".tmp-{:016x}", fastrand::u64(..)));
    let written = async {
        tokio::fs::write(&tmp, bytes).await?;
        tokio::fs::rename(&tmp, path).await
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    written
}

async fn copy_atomically(from: &Path, to: &Path) -> std::io::Result<()> {
    if tokio::fs::try_exists(to).await.unwrap_or(false) {
        return Ok(());
    }
    let bytes = tokio::fs::read(from).await?;
    write_atomically(to, &bytes).await
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stash(dir: &Path, transcribe: Vec<String>) -> Stash {
        Stash {
            root: dir.join("attachments"),
            limits: Limits { max_bytes: 16, allowed: vec!["image/*".into(), "text/*".into(), "audio/*".into()] },
            transcribe,
            transcribe_timeout: Duration::from_secs(5),
            told: Arc::default(),
        }
    }

    fn fetched(name: &str, mime: &str, bytes: &[u8]) -> Fetched {
        Fetched { name: name.into(), mime: mime.into(), voice: false, bytes: bytes.to_vec() }
    }

    #[tokio::test]
    async fn files_are_stored_by_content_and_refusals_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let stash = stash(dir.path(), Vec::new());
        let a = stash.store(fetched("../shot.png", "image/png", b"png bytes")).await.unwrap();
        assert_eq!(a.name, "shot.png");
        assert_eq!(a.kind, AttachmentKind::Image);
        assert_eq!(std::fs::read(&a.path).unwrap(), b"png bytes");
        assert!(a.path.ends_with(&format!("{}.png", a.sha256)));
        // Same bytes, another name: one copy.
        let b = stash.store(fetched("again.png", "image/png", b"png bytes")).await.unwrap();
        assert_eq!(a.path, b.path);

        let too_big = stash.store(fetched("big.txt", "text/plain", &[b'x'; 17])).await.unwrap_err();
        assert_eq!(too_big, "files up to 16 bytes; this one is 17 bytes");
        assert!(stash.store(fetched("v.mp4", "video/mp4", b"v")).await.is_err());
        let stored: Vec<_> = walk(&dir.path().join("attachments"));
        assert_eq!(stored.len(), 1, "{stored:?}");
    }

    #[tokio::test]
    async fn the_transcriber_runs_without_a_shell_and_its_failures_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let voice = Attachment {
            name: "v.ogg".into(),
            mime: "audio/ogg".into(),
            kind: AttachmentKind::Voice,
            size: 1,
            sha256: "x".into(),
            path: "/a path/with $HOME.ogg".into(),
        };
        let echo = stash(dir.path(), vec!["echo".into(), "heard".into(), "{file}".into()]);
        assert_eq!(echo.transcribe(&voice).await.unwrap(), "heard /a path/with $HOME.ogg");
        let failing = stash(dir.path(), vec!["false".into()]);
        assert!(failing.transcribe(&voice).await.unwrap_err().contains("exited"));
        let missing = stash(dir.path(), vec!["/no/such/transcriber".into()]);
        assert!(missing.transcribe(&voice).await.unwrap_err().contains("could not run"));
    }

    #[tokio::test]
    async fn files_are_copied_into_the_project_and_named_in_the_prompt() {
        let dir = tempfile::tempdir().unwrap();
        let stash = stash(dir.path(), Vec::new());
        let log = stash.store(fetched("build.log", "text/plain", b"error: x")).await.unwrap();
        let png = stash.store(fetched("s.png", "image/png", b"img")).await.unwrap();
        let project = dir.path().join("project");
        let input = turn_input("why?".into(), &[log.clone(), png.clone()], &project, 7).await;
        let copied = project.join(".taskgate/attachments/7").join(attachment::project_file_name(&log));
        assert_eq!(std::fs::read(&copied).unwrap(), b"error: x");
        assert!(input.text.starts_with("why?\n\nAttached files:\n- build.log"), "{}", input.text);
        assert!(input.text.contains(&copied.to_string_lossy().into_owned()));
        assert_eq!(input.images().count(), 1);
        assert_eq!(input.images().next().unwrap().path, PathBuf::from(&png.path));
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
        }
        out
    }
}
