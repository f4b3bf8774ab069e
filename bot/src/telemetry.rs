//! Logging: `tracing` to stderr, one line per event, with control characters in field values
//! and messages escaped.
//!
//! Field values often come from outside: a Feishu open_id, a Telegram name, an agent's stderr
//! line, an error quoting a request. Written raw, a NUL, a carriage return or a newline in one
//! of them forges or hides log lines (and ANSI sequences repaint the terminal). The default
//! formatter escapes only some ANSI bytes, so every field is formatted first and then escaped.

use std::fmt;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};

/// Logs go to stderr, filtered by `TASKGATE_LOG` (e.g. `debug`, `taskgate=trace`), default info.
pub fn init() {
    let filter = EnvFilter::try_from_env("TASKGATE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm_migration=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(EscapedFields::default())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// The default field format (`message key=value …`) with control characters escaped.
#[derive(Debug, Default)]
pub struct EscapedFields(DefaultFields);

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut plain = String::new();
        self.0.format_fields(Writer::new(&mut plain), fields)?;
        write_escaped(&mut writer, &plain)
    }
}

/// `text` with C0/C1 control characters (newlines and NUL included) written as `\n`, `\r`,
/// `\t` or `\u{..}`, and the bidirectional overrides that reorder what a terminal shows too.
fn write_escaped(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    for c in text.chars() {
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c.is_control()
                || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                write!(out, "\\u{{{:x}}}", c as u32)?
            }
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn control_characters_from_outside_are_escaped_in_one_line() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(EscapedFields::default())
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        // A refused Feishu sender whose open_id carries a NUL, a forged line and a terminal
        // escape, as `feishu.rs` logs it.
        let open_id = "ou_\0x\n2026-01-01T00:00:00Z  INFO taskgate: admin logged in\x1b[2J";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(user = %open_id, chat = %"oc_1\r", "feishu: sender not allowed; refused");
            tracing::warn!("agent stderr: {}", "line\u{202e}gnp.exe\u{85}");
        });
        let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "one line per event: {log:?}");
        assert!(!log.contains('\0') && !log.contains('\r') && !log.contains('\x1b'), "{log:?}");
        assert!(
            lines[0].ends_with(
                r"feishu: sender not allowed; refused user=ou_\u{0}x\n2026-01-01T00:00:00Z  INFO taskgate: admin logged in\u{1b}[2J chat=oc_1\r"
            ),
            "{}",
            lines[0]
        );
        assert!(lines[1].ends_with(r"agent stderr: line\u{202e}gnp.exe\u{85}"), "{}", lines[1]);
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let mut out = String::new();
        write_escaped(&mut out, "task 7: \"fix it\" — 修复 ✓").unwrap();
        assert_eq!(out, "task 7: \"fix it\" — 修复 ✓");
    }
}
