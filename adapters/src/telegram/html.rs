//! Text for Telegram's HTML parse mode: escaping, `code` spans, and splitting at the 4096 limit;
//! an agent's Markdown (code spans and fenced blocks, bold, links, headings, bullets) as the
//! HTML Telegram understands, everything else escaped.
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

/// An agent's Markdown as HTML chunks of at most `max` UTF-16 units, split on line
/// boundaries: fenced blocks (```) become `<pre>` (closed at the end of a chunk and opened
/// again at the start of the next when a block is split), other lines go through
/// [`markdown_line`]. Whitespace-only chunks are dropped.
pub fn markdown_chunks(text: &str, max: usize) -> Vec<String> {
    const CLOSE: &str = "</pre>";
    let max = max.max(32);
    let mut out = Vec::new();
    let mut current = String::new();
    // Whether `current` ends inside an open `<pre>`.
    let mut open = false;
    let mut fenced = false;
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            if !fenced && open {
                current.push_str(CLOSE);
                open = false;
            }
            continue;
        }
        let rendered = if fenced { escape(line) } else { markdown_line(line) };
        let budget = max - if fenced { CLOSE.len() + "<pre>".len() } else { 0 };
        let pieces = if units(&rendered) <= budget { vec![rendered] } else { hard_split(line, budget) };
        for piece in pieces {
            let opening = fenced && !open;
            let cost = units(&piece) + usize::from(!current.is_empty()) + if opening { 5 } else { 0 };
            let reserve = if fenced { CLOSE.len() } else { 0 };
            if !current.is_empty() && units(&current) + cost + reserve > max {
                if open {
                    current.push_str(CLOSE);
                    open = false;
                }
                out.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push('\n');
            }
            if fenced && !open {
                current.push_str("<pre>");
                open = true;
            }
            current.push_str(&piece);
        }
        if lines.peek().is_none() && open {
            current.push_str(CLOSE);
            open = false;
        }
    }
    if open {
        current.push_str(CLOSE);
    }
    out.push(current);
    out.retain(|c| !c.replace("<pre>", "").replace(CLOSE, "").trim().is_empty());
    out
}

/// One line of Markdown as HTML: a heading (`# …`) bold, a bullet (`- `, `* `) as `•`, paired
/// backticks as `<code>`, `**bold**` as `<b>`, `[text](https://…)` as a link; everything else
/// escaped. Tags never span lines.
pub fn markdown_line(line: &str) -> String {
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    let hashes = trimmed.chars().take_while(|c| *c == '#').count();
    if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with(' ') {
        return format!("<b>{}</b>", inline(trimmed[hashes..].trim()));
    }
    for bullet in ["- ", "* ", "+ "] {
        if let Some(rest) = trimmed.strip_prefix(bullet) {
            return format!("{indent}• {}", inline(rest));
        }
    }
    inline(line)
}

/// Code spans first (their content only escaped), then bold and links in the rest.
fn inline(line: &str) -> String {
    let pairs = line.matches('`').count() / 2;
    let mut out = String::with_capacity(line.len() + 16);
    let mut closed = 0;
    let mut in_code = false;
    let mut segment = String::new();
    for c in line.chars() {
        if c == '`' && (in_code || closed < pairs) {
            if in_code {
                out.push_str("<code>");
                out.push_str(&escape(&segment));
                out.push_str("</code>");
                closed += 1;
            } else {
                marks(&segment, &mut out);
            }
            segment.clear();
            in_code = !in_code;
        } else {
            segment.push(c);
        }
    }
    marks(&segment, &mut out);
    out
}

/// `**bold**` (in pairs) and `[text](http…)` links; the rest escaped.
fn marks(text: &str, out: &mut String) {
    let pairs = text.matches("**").count() / 2;
    let chars: Vec<char> = text.chars().collect();
    let (mut opened, mut closed) = (false, 0);
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '*' && chars.get(i + 1) == Some(&'*') && (opened || closed < pairs) {
            out.push_str(if opened { "</b>" } else { "<b>" });
            if opened {
                closed += 1;
            }
            opened = !opened;
            i += 2;
            continue;
        }
        if chars[i] == '['
            && let Some((label, url, next)) = link_at(&chars, i)
        {
            out.push_str(&format!("<a href=\"{}\">{}</a>", escape(&url).replace('"', "&quot;"), escape(&label)));
            i = next;
            continue;
        }
        push_escaped(out, chars[i]);
        i += 1;
    }
    if opened {
        out.push_str("</b>");
    }
}

/// `[label](url)` starting at `at`, with an http(s) URL: the label, the URL and where it ends.
fn link_at(chars: &[char], at: usize) -> Option<(String, String, usize)> {
    let close = at + 1 + chars[at + 1..].iter().position(|c| *c == ']')?;
    if chars.get(close + 1) != Some(&'(') {
        return None;
    }
    let end = close + 2 + chars[close + 2..].iter().position(|c| *c == ')')?;
    let label: String = chars[at + 1..close].iter().collect();
    let url: String = chars[close + 2..end].iter().collect();
    let web = url.starts_with("https://") || url.starts_with("http://");
    (web && !label.is_empty() && !label.contains('[') && !url.contains(char::is_whitespace)).then_some((
        label,
        url,
        end + 1,
    ))
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
    fn markdown_becomes_telegram_html_and_the_rest_is_escaped() {
        assert_eq!(markdown_line("## Result"), "<b>Result</b>");
        assert_eq!(
            markdown_line("- fixed `a<b` in **two** places"),
            "• fixed <code>a&lt;b</code> in <b>two</b> places"
        );
        assert_eq!(
            markdown_line("see [the PR](https://x.test/p?a=1&b=\"2\") & [not](javascript:alert(1))"),
            "see <a href=\"https://x.test/p?a=1&amp;b=&quot;2&quot;\">the PR</a> &amp; [not](javascript:alert(1))"
        );
        assert_eq!(markdown_line("a ** lone and `**not bold**`"), "a ** lone and <code>**not bold**</code>");
        let text = "Done:\n```rust\nfn main() { a < b }\n```\nbye";
        assert_eq!(markdown_chunks(text, 4096), vec!["Done:\n<pre>fn main() { a &lt; b }</pre>\nbye".to_owned()]);
        assert_eq!(markdown_chunks("```\nunclosed", 4096), vec!["<pre>unclosed</pre>".to_owned()]);
    }

    #[test]
    fn a_split_code_block_is_closed_and_opened_again() {
        let code: Vec<String> = (0..40).map(|n| format!("line {n} <x>")).collect();
        let text = format!("intro\n```\n{}\n```\noutro", code.join("\n"));
        let parts = markdown_chunks(&text, 120);
        assert!(parts.len() > 2, "{parts:?}");
        for p in &parts {
            assert!(p.encode_utf16().count() <= 120, "{p}");
            assert_eq!(p.matches("<pre>").count(), p.matches("</pre>").count(), "balanced: {p}");
        }
        let shown = parts.join("\n").replace("<pre>", "").replace("</pre>", "");
        assert_eq!(shown, format!("intro\n{}\noutro", escape(&code.join("\n"))));
    }

    #[test]
    fn empty_text_has_no_chunks() {
        assert!(markdown_chunks("", 4096).is_empty());
        assert!(markdown_chunks("```\n```", 4096).is_empty());
        assert!(chunks("", 4096).is_empty());
        assert!(chunks(" \n \n", 4096).is_empty());
    }
}
