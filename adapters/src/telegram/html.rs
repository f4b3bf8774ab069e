//! Text for Telegram's HTML parse mode: escaping, `code` spans, and splitting at the 4096 limit.
//!
//! HTML is preferred over MarkdownV2 because only `& < >` need escaping, so agent output (full of
//! `_`, `*`, `.`, `-`) cannot break parsing.

/// Telegram's message length limit. It counts the text after entity parsing, in UTF-16 units;
/// measuring the HTML source is stricter, so a chunk within it is always accepted.
pub const MAX_MESSAGE: usize = 4096;

/// Escapes the three characters HTML parse mode reserves.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        c => out.push(c),
    }
}

/// One line as HTML: escaped, with paired backticks as `<code>` (the engine writes commands as
/// "run `npm test`"). An unpaired backtick stays a backtick. Tags never span lines, so a split
/// on line boundaries keeps every chunk well-formed.
pub fn render_line(line: &str) -> String {
    let pairs = line.matches('`').count() / 2;
    let mut out = String::with_capacity(line.len() + 16);
    let (mut opened, mut closed) = (false, 0);
    for c in line.chars() {
        if c == '`' && closed < pairs {
            if opened {
                out.push_str("</code>");
                closed += 1;
            } else {
                out.push_str("<code>");
            }
            opened = !opened;
        } else {
            push_escaped(&mut out, c);
        }
    }
    out
}

fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

/// `text` as HTML chunks of at most `max` UTF-16 units, split on line boundaries; a single line
/// longer than `max` is cut between characters (escaped only, without `code` spans, so no tag
/// or entity is cut). Whitespace-only chunks are dropped: Telegram refuses empty messages.
pub fn chunks(text: &str, max: usize) -> Vec<String> {
    let max = max.max(8);
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.split('\n') {
        let rendered = render_line(line);
        let pieces = if units(&rendered) <= max { vec![rendered] } else { hard_split(line, max) };
        for piece in pieces {
            current = Some(match current.take() {
                None => piece,
                Some(mut cur) if units(&cur) + 1 + units(&piece) <= max => {
                    cur.push('\n');
                    cur.push_str(&piece);
                    cur
                }
                Some(cur) => {
                    out.push(cur);
                    piece
                }
            });
        }
    }
    out.extend(current);
    out.retain(|c| !c.trim().is_empty());
    out
}

/// An overlong line, escaped, in pieces of at most `max` units.
fn hard_split(line: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut piece = String::new();
    let mut len = 0;
    let mut one = String::new();
    for c in line.chars() {
        one.clear();
        push_escaped(&mut one, c);
        let n = units(&one);
        if len + n > max {
            out.push(std::mem::take(&mut piece));
            len = 0;
        }
        piece.push_str(&one);
        len += n;
    }
    if !piece.is_empty() {
        out.push(piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_three_reserved_characters_only() {
        assert_eq!(escape("a < b && c > d \"q\" 'x'"), "a &lt; b &amp;&amp; c &gt; d \"q\" 'x'");
    }

    #[test]
    fn paired_backticks_become_code_and_their_content_is_escaped() {
        assert_eq!(render_line("run `a<b && c`"), "run <code>a&lt;b &amp;&amp; c</code>");
        assert_eq!(render_line("one ` tick"), "one ` tick");
        assert_eq!(render_line("`a` and `b` and `"), "<code>a</code> and <code>b</code> and `");
    }

    #[test]
    fn short_text_is_one_chunk_with_its_lines() {
        assert_eq!(chunks("a\n\nb <c>", 4096), vec!["a\n\nb &lt;c&gt;".to_owned()]);
    }

    #[test]
    fn long_text_splits_on_line_boundaries_within_the_limit() {
        let line = "x".repeat(30);
        let text = [line.as_str(); 10].join("\n");
        let parts = chunks(&text, 100);
        assert!(parts.len() > 1);
        for p in &parts {
            assert!(p.encode_utf16().count() <= 100, "{p}");
            assert!(p.split('\n').all(|l| l == line), "cut inside a line: {p:?}");
        }
        assert_eq!(parts.join("\n"), text);
    }

    #[test]
    fn an_overlong_line_is_cut_between_escaped_characters() {
        let text = "&".repeat(50);
        let parts = chunks(&text, 12);
        for p in &parts {
            assert!(p.encode_utf16().count() <= 12);
            assert!(p.split("&amp;").all(str::is_empty), "entity cut: {p}");
        }
        assert_eq!(parts.concat(), "&amp;".repeat(50));
    }

    #[test]
    fn limit_counts_utf16_units() {
        let text = "😀".repeat(10); // 2 units each
        let parts = chunks(&text, 8);
        assert!(parts.iter().all(|p| p.encode_utf16().count() <= 8));
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn empty_text_has_no_chunks() {
        assert!(chunks("", 4096).is_empty());
        assert!(chunks(" \n \n", 4096).is_empty());
    }
}
