//! Files people send with (or instead of) a message: screenshots, documents, voice notes.
//!
//! The rules are here, pure: which types are taken, the size limit and the one line that
//! refuses a file, the names files may have on disk, where a file lives in the content-addressed
//! store, how the agent's prompt names files, and the timeline entry of each one. Downloading,
//! storing and transcribing are the bot's (IO).

use serde::{Deserialize, Serialize};

use crate::classify::{Decision, Intent};
use crate::model::{Body, Id};
use crate::plan::{Effect, Plan};

/// The default `[attachments] max_bytes`: 20 MB.
pub const DEFAULT_MAX_BYTES: u64 = 20 * 1024 * 1024;

/// What an attachment is to an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    /// A picture every agent protocol takes as image input (PNG, JPEG, GIF, WebP).
    Image,
    /// Anything else: copied into the project and named in the prompt by its path.
    File,
    /// A voice note or audio message: transcribed when a transcriber is configured.
    Voice,
}

impl AttachmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::File => "file",
            Self::Voice => "voice",
        }
    }
}

/// A file as the gateway stored it: content-addressed under the data dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The file's name, sanitized ([`sanitize_name`]).
    pub name: String,
    pub mime: String,
    pub kind: AttachmentKind,
    pub size: u64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    /// Where the content is stored (absolute, or relative to the gateway's working directory).
    pub path: String,
}

/// The `[attachments]` rules a file must pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: u64,
    /// MIME patterns: `image/*`, `application/pdf`, `*` (anything).
    pub allowed: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_bytes: DEFAULT_MAX_BYTES, allowed: default_allowed() }
    }
}

/// Pictures, audio, text and application files (PDF, JSON, archives, logs sent as
/// `application/octet-stream`); not video, whose size and use to an agent rarely fit.
pub fn default_allowed() -> Vec<String> {
    ["image/*", "audio/*", "text/*", "application/*"].map(str::to_owned).to_vec()
}

impl Limits {
    /// Whether a file of `mime` and `size` (when known before downloading it) is taken; `Err`
    /// is the one line that tells the person why not.
    pub fn check(&self, mime: &str, size: Option<u64>) -> Result<(), String> {
        if let Some(size) = size
            && size > self.max_bytes
        {
            return Err(too_big(self.max_bytes, size));
        }
        if !self.allows(mime) {
            return Err(format!(
                "files of type {} are not taken here (allowed: {})",
                if mime.is_empty() { "unknown" } else { mime },
                self.allowed.join(", ")
            ));
        }
        Ok(())
    }

    pub fn allows(&self, mime: &str) -> bool {
        let mime = mime.trim().to_ascii_lowercase();
        self.allowed.iter().any(|pattern| {
            let pattern = pattern.trim().to_ascii_lowercase();
            match pattern.strip_suffix("/*") {
                _ if pattern == "*" || pattern == "*/*" => true,
                Some(major) => mime.split('/').next() == Some(major),
                None => mime == pattern,
            }
        })
    }
}

/// "files up to 20 MB; this one is 48 MB".
pub fn too_big(max: u64, size: u64) -> String {
    format!("files up to {}; this one is {}", size_text(max), size_text(size.max(max + 1)))
}

/// A size as people say it: "48 MB", "512 KB", "12 bytes" (binary units, rounded up so a file
/// just over the limit never reads as equal to it).
pub fn size_text(bytes: u64) -> String {
    const KB: u64 = 1024;
    const MB: u64 = 1024 * KB;
    if bytes >= MB {
        format!("{} MB", bytes.div_ceil(MB))
    } else if bytes >= KB {
        format!("{} KB", bytes.div_ceil(KB))
    } else if bytes == 1 {
        "1 byte".to_owned()
    } else {
        format!("{bytes} bytes")
    }
}

/// The kind of a file from its MIME type and whether the platform called it a voice note.
pub fn kind_of(mime: &str, voice: bool) -> AttachmentKind {
    let mime = mime.to_ascii_lowercase();
    if voice || mime.starts_with("audio/") {
        AttachmentKind::Voice
    } else if matches!(mime.as_str(), "image/png" | "image/jpeg" | "image/gif" | "image/webp") {
        AttachmentKind::Image
    } else {
        AttachmentKind::File
    }
}

/// A MIME type from a file name's extension, for platforms that do not say.
pub fn mime_from_name(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "json" => "application/json",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "txt" | "log" | "md" | "csv" | "rs" | "py" | "js" | "ts" | "toml" | "yaml" | "yml" | "diff" | "patch" => {
            "text/plain"
        }
        "ogg" | "oga" | "opus" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        _ => "application/octet-stream",
    }
}

/// The extension the stored copy gets, so tools that go by the name read the right format.
pub fn extension_for(mime: &str, name: &str) -> String {
    let from_mime = match mime.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "audio/ogg" => "ogg",
        "audio/mpeg" => "mp3",
        "application/pdf" => "pdf",
        _ => "",
    };
    if !from_mime.is_empty() {
        return from_mime.to_owned();
    }
    let name = sanitize_name(name);
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && (1..=8).contains(&ext.len()) => ext.to_ascii_lowercase(),
        _ => "bin".to_owned(),
    }
}

/// A file name safe to use as one path component anywhere: no directories, no `..`, no
/// control characters or characters shells and Windows treat specially; at most 100 bytes,
/// keeping the extension. Never empty.
pub fn sanitize_name(name: &str) -> String {
    // Only the last component of whatever path the sender's client put in.
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut out: String = base
        .chars()
        .map(|c| match c {
            c if c.is_control() => '_',
            '<' | '>' | ':' | '"' | '|' | '?' | '*' | '$' | '`' | '\'' | ';' | '&' | '!' => '_',
            c if c.is_whitespace() => '_',
            c => c,
        })
        .collect();
    // No hidden files, no `.` or `..`.
    let trimmed = out.trim_start_matches(['.', '-', '_']).trim_end_matches(['.', ' ']).to_owned();
    out = trimmed;
    if out.is_empty() {
        return "file".to_owned();
    }
    const MAX: usize = 100;
    if out.len() > MAX {
        let (stem, ext) = match out.rsplit_once('.') {
            Some((s, e)) if e.len() <= 10 && !s.is_empty() => (s.to_owned(), format!(".{e}")),
            _ => (out.clone(), String::new()),
        };
        let mut cut = MAX - ext.len();
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        out = format!("{}{ext}", &stem[..cut]);
    }
    out
}

/// Where content with `sha256` lives under the store's root: `ab/abcdef….ext`.
pub fn stored_relative_path(sha256: &str, extension: &str) -> String {
    let prefix = sha256.get(..2).unwrap_or("00");
    format!("{prefix}/{sha256}.{extension}")
}

/// The name of a file copied into a project for a task: the hash's start keeps two different
/// files of one name apart, the name keeps it readable.
pub fn project_file_name(attachment: &Attachment) -> String {
    let short = attachment.sha256.get(..8).unwrap_or(&attachment.sha256);
    format!("{short}-{}", sanitize_name(&attachment.name))
}

/// The text an agent gets for a message that came with files: the person's words, then one
/// line per file with where to read it (`paths`: the file's path as the agent sees it, in the
/// order of `attachments`; images are also given to the agent as images).
pub fn prompt(text: &str, attachments: &[(Attachment, String)]) -> String {
    if attachments.is_empty() {
        return text.to_owned();
    }
    let mut out = text.trim_end().to_owned();
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(if attachments.len() == 1 { "Attached file:" } else { "Attached files:" });
    for (a, path) in attachments {
        out.push_str(&format!("\n- {} ({}, {}, {}): {path}", a.name, a.kind.as_str(), a.mime, size_text(a.size)));
    }
    out
}

/// What a message that is only files says, for the classifier and the timeline: the files
/// named, so a task started from it has a sensible title.
pub fn only_files_text(attachments: &[Attachment]) -> String {
    let names: Vec<&str> = attachments.iter().map(|a| a.name.as_str()).collect();
    match attachments {
        [one] if one.kind == AttachmentKind::Image => format!("Look at the image {}", one.name),
        [_] => format!("Look at the file {}", names[0]),
        _ => format!("Look at the files {}", names.join(", ")),
    }
}

/// The decision for a message that brings files. Files are for an agent: a reading that would
/// answer without one (a status question such as "what does this screen say?", small talk, or a
/// clarify, whose buttons cannot carry the files) continues the task the message is about
/// (`about`: the one it replies to, else the conversation's focused one) or starts a task.
/// Every other reading (continue, spawn, approve, deny, stop, …) keeps its meaning.
pub fn decision_with_files(decision: Decision, about: Option<Id>) -> Decision {
    if !matches!(decision.intent, Intent::Status | Intent::Ignore | Intent::Clarify) {
        return decision;
    }
    let reason = format!("files are for the agent (read as {}: {})", decision.intent, decision.reason);
    Decision {
        intent: Intent::Continue,
        task: decision.task.or(about.map(|t| t.to_string())),
        agent: decision.agent,
        role: None,
        approval: None,
        scope: None,
        confidence: decision.confidence,
        reason,
    }
}

/// The timeline entry of one attachment.
pub fn timeline_body(attachment: &Attachment) -> Body {
    Body::Attachment {
        name: attachment.name.clone(),
        kind: attachment.kind,
        mime: attachment.mime.clone(),
        size: attachment.size,
        sha256: attachment.sha256.clone(),
    }
}

/// Adds the attachments to a routed plan: one timeline entry per file after each record of
/// the message itself. Returns whether the plan starts or queues a turn (the files reach the
/// agent with it); when it does not (a "stop" with a screenshot), the files are only on the
/// timeline.
pub fn annotate(plan: &mut Plan, attachments: &[Attachment]) -> bool {
    if attachments.is_empty() {
        return false;
    }
    let mut effects = Vec::with_capacity(plan.effects.len() + attachments.len());
    let mut turn = false;
    for effect in plan.effects.drain(..) {
        let after = match &effect {
            Effect::Record { task, body: Body::Message { .. } } => Some(*task),
            Effect::StartTurn { .. } | Effect::QueueTurn { .. } | Effect::SteerTurn { .. } => {
                turn = true;
                None
            }
            _ => None,
        };
        effects.push(effect);
        if let Some(task) = after {
            effects.extend(attachments.iter().map(|a| Effect::Record { task, body: timeline_body(a) }));
        }
    }
    plan.effects = effects;
    turn
}

/// The line shown back for a transcribed voice note, so a mis-hearing can be corrected.
pub fn heard_line(transcript: &str) -> String {
    format!("Heard: {}", transcript.trim())
}

/// Told once per chat when a voice note arrives and no transcriber is configured.
pub const NO_TRANSCRIBER: &str = "I can't listen to voice notes yet: to turn them into text, set [attachments] \
transcribe in taskgate.toml to a command that prints the text of {file}, e.g. transcribe = [\"whisper-cli\", \"-nt\", \"-f\", \"{file}\"]. \
For now, please type your message.";

/// Every later voice note in that chat, while there is still no transcriber.
pub const NO_TRANSCRIBER_AGAIN: &str = "Voice notes aren't transcribed here; please type your message.";

/// The transcriber's argv with `{file}` replaced (no shell: each element is one argument).
pub fn transcribe_argv(template: &[String], file: &str) -> Vec<String> {
    template.iter().map(|arg| arg.replace("{file}", file)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ExecRef, TaskRef};

    fn attachment(name: &str, kind: AttachmentKind) -> Attachment {
        Attachment {
            name: name.into(),
            mime: mime_from_name(name).into(),
            kind,
            size: 2048,
            sha256: "ab12cd34ef".into(),
            path: "/data/attachments/ab/ab12cd34ef.png".into(),
        }
    }

    #[test]
    fn a_question_with_files_goes_to_the_agent_and_other_readings_keep_their_meaning() {
        let status = Decision::new(Intent::Status, 0.9, "a question about progress");
        let carried = decision_with_files(status, Some(7));
        assert_eq!((carried.intent, carried.task.as_deref()), (Intent::Continue, Some("7")));
        assert!(carried.reason.contains("status"), "{}", carried.reason);
        // No task to continue: route starts one for a continue without a target.
        let clarify = decision_with_files(Decision::new(Intent::Clarify, 0.4, "unsure"), None);
        assert_eq!((clarify.intent, clarify.task), (Intent::Continue, None));
        for intent in [Intent::Cancel, Intent::Deny, Intent::Spawn, Intent::NewTask] {
            assert_eq!(decision_with_files(Decision::new(intent, 0.9, "x"), Some(7)).intent, intent);
        }
    }

    #[test]
    fn an_oversized_file_is_refused_with_one_line_in_megabytes() {
        let limits = Limits::default();
        assert_eq!(
            limits.check("image/jpeg", Some(48 * 1024 * 1024)),
            Err("files up to 20 MB; this one is 48 MB".into())
        );
        assert_eq!(limits.check("image/jpeg", Some(20 * 1024 * 1024)), Ok(()));
        // Just over the limit never reads "20 MB; this one is 20 MB".
        assert_eq!(
            limits.check("image/jpeg", Some(20 * 1024 * 1024 + 1)),
            Err("files up to 20 MB; this one is 21 MB".into())
        );
        assert_eq!(limits.check("image/jpeg", None), Ok(()));
    }

    #[test]
    fn types_are_matched_by_pattern() {
        let limits = Limits::default();
        assert!(limits.allows("image/png"));
        assert!(limits.allows("Application/PDF"));
        assert!(limits.allows("audio/ogg"));
        assert!(!limits.allows("video/mp4"));
        assert!(limits.check("video/mp4", Some(10)).unwrap_err().contains("video/mp4"));
        let only_pdf = Limits { max_bytes: 10, allowed: vec!["application/pdf".into()] };
        assert!(only_pdf.allows("application/pdf"));
        assert!(!only_pdf.allows("application/pdfx"));
        assert!(Limits { max_bytes: 10, allowed: vec!["*".into()] }.allows("video/mp4"));
    }

    #[test]
    fn names_never_leave_their_directory() {
        assert_eq!(sanitize_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_name("C:\\Users\\me\\shot.png"), "shot.png");
        assert_eq!(sanitize_name(".."), "file");
        assert_eq!(sanitize_name(".bashrc"), "bashrc");
        assert_eq!(sanitize_name(""), "file");
        assert_eq!(sanitize_name("a b;rm -rf $HOME`.txt"), "a_b_rm_-rf__HOME_.txt");
        assert_eq!(sanitize_name("-rf"), "rf");
        assert_eq!(sanitize_name("line\nbreak.log"), "line_break.log");
        let long = format!("{}.png", "é".repeat(200));
        let cut = sanitize_name(&long);
        assert!(cut.len() <= 100 && cut.ends_with(".png"), "{cut}");
    }

    #[test]
    fn kinds_follow_what_agents_take_as_images() {
        assert_eq!(kind_of("image/png", false), AttachmentKind::Image);
        assert_eq!(kind_of("image/heic", false), AttachmentKind::File);
        assert_eq!(kind_of("audio/ogg", false), AttachmentKind::Voice);
        assert_eq!(kind_of("application/octet-stream", true), AttachmentKind::Voice);
        assert_eq!(kind_of("text/plain", false), AttachmentKind::File);
    }

    #[test]
    fn stored_paths_are_content_addressed_with_a_readable_extension() {
        assert_eq!(stored_relative_path("abcdef", "png"), "ab/abcdef.png");
        assert_eq!(extension_for("image/jpeg", "photo"), "jpg");
        assert_eq!(extension_for("text/plain", "build.log"), "log");
        assert_eq!(extension_for("application/octet-stream", "noext"), "bin");
        let a = attachment("../x y.log", AttachmentKind::File);
        assert_eq!(project_file_name(&a), "ab12cd34-x_y.log");
    }

    #[test]
    fn the_prompt_names_each_file_with_its_path() {
        let a = attachment("build.log", AttachmentKind::File);
        let text =
            prompt("why does this fail?", &[(a.clone(), "/p/.taskgate/attachments/1/ab12cd34-build.log".into())]);
        assert_eq!(
            text,
            "why does this fail?\n\nAttached file:\n- build.log (file, text/plain, 2 KB): /p/.taskgate/attachments/1/ab12cd34-build.log"
        );
        assert_eq!(prompt("plain", &[]), "plain");
        assert_eq!(only_files_text(&[attachment("shot.png", AttachmentKind::Image)]), "Look at the image shot.png");
    }

    #[test]
    fn annotate_records_each_file_after_the_message_and_says_whether_a_turn_carries_them() {
        let mut plan = Plan::default();
        plan.push(Effect::Record {
            task: TaskRef::Existing(3),
            body: Body::Message { text: "see".into(), from: "Ada".into(), person_id: Some(1), channel: None },
        });
        plan.push(Effect::StartTurn { execution: ExecRef::Existing(4), input: "see".into(), fresh_session: false });
        let files = [attachment("a.png", AttachmentKind::Image), attachment("b.log", AttachmentKind::File)];
        assert!(annotate(&mut plan, &files));
        assert_eq!(plan.effects.len(), 4);
        assert!(
            matches!(&plan.effects[1], Effect::Record { task: TaskRef::Existing(3), body: Body::Attachment { name, .. } } if name == "a.png")
        );
        assert!(
            matches!(&plan.effects[2], Effect::Record { body: Body::Attachment { name, .. }, .. } if name == "b.log")
        );
        let mut status = Plan::default();
        status.reply("Nothing running.");
        assert!(!annotate(&mut status, &files));
    }

    #[test]
    fn the_transcriber_gets_the_file_as_one_argument() {
        let argv = transcribe_argv(&["whisper".into(), "-f".into(), "{file}".into()], "/d/a b.ogg");
        assert_eq!(argv, vec!["whisper", "-f", "/d/a b.ogg"]);
    }
}
