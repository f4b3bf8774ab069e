//! An incremental reader of `text/event-stream` bodies, as streamable-HTTP MCP servers may
//! answer a POST: each event's `data` is one JSON-RPC message. Fed chunk by chunk, so a
//! message is forwarded as soon as its event is complete, not when the stream ends.
//!
//! Follows the WHATWG rules that matter here: lines end in `\n` or `\r\n`; an empty line ends
//! an event; `data:` lines are joined with `\n`; one space after the colon is dropped; lines
//! starting with `:` are comments (keep-alives); an event still open when the stream ends is
//! discarded. Events named other than `message` are not JSON-RPC and are skipped. A lone `\r`
//! as line end (allowed by the spec, unseen from MCP servers) is not recognised.

/// Longest line kept; a longer one is cut off (its event will not parse and is reported).
const MAX_LINE: usize = 8 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct SseReader {
    /// The current, unfinished line.
    line: Vec<u8>,
    /// The current event's `data`, lines joined with `\n`.
    data: Option<String>,
    /// The current event's name, when it set one.
    event: Option<String>,
}

impl SseReader {
    /// Takes the next chunk of the body; returns the `data` of every event it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut done = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.extend_line(&rest[..end]);
            rest = &rest[end + 1..];
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if let Some(data) = self.take_line(&line) {
                done.push(data);
            }
        }
        self.extend_line(rest);
        done
    }

    fn extend_line(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.line.len());
        self.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// One complete line; `Some` when it ended an event that carries a message.
    fn take_line(&mut self, line: &[u8]) -> Option<String> {
        if line.is_empty() {
            let data = self.data.take();
            let event = self.event.take();
            return data.filter(|_| event.as_deref().is_none_or(|e| e.is_empty() || e == "message"));
        }
        if line.first() == Some(&b':') {
            return None;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                let data = self.data.get_or_insert_with(String::new);
                // Bounded like a line: an endless event is cut off and then fails to parse.
                if data.len() < MAX_LINE {
                    data.push_str(value);
                    data.push('\n');
                }
            }
            "event" => self.event = Some(value.to_owned()),
            // `id` and `retry` steer reconnection, which a per-request stream does not do.
            _ => {}
        }
        None
    }
}

/// The data of a finished event without the `\n` every data line added.
pub fn message(data: &str) -> &str {
    data.strip_suffix('\n').unwrap_or(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&str]) -> Vec<String> {
        let mut reader = SseReader::default();
        chunks.iter().flat_map(|c| reader.push(c.as_bytes())).map(|d| message(&d).to_owned()).collect()
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let body = "event: message\ndata: {\"id\":1}\n\n: keep-alive\n\ndata: {\"id\":\r\ndata: 2}\r\n\r\n";
        let whole = all(&[body]);
        assert_eq!(whole, ["{\"id\":1}", "{\"id\":\n2}"]);
        // Byte by byte (and cut inside `\r\n`) gives the same events.
        let bytes: Vec<String> = body.chars().map(String::from).collect();
        let refs: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(all(&refs), whole);
    }

    #[test]
    fn other_events_comments_and_unfinished_events_are_not_messages() {
        let body = "event: endpoint\ndata: /mcp?x=1\n\nid: 7\nretry: 10\n\ndata:{\"id\":3}\n\ndata: {\"id\":4}\n";
        // `data:` without a space keeps its value; the last event never ended.
        assert_eq!(all(&[body]), ["{\"id\":3}"]);
    }

    #[test]
    fn a_huge_line_is_cut_not_kept() {
        let mut reader = SseReader::default();
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..10 {
            assert!(reader.push(&chunk).is_empty());
        }
        assert!(reader.line.len() <= MAX_LINE);
    }
}
