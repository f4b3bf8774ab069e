//! Helpers shared by the scripted replies: marker parsing and the Python-flavoured text that
//! `fake_llm.py` produces, so transcripts from either fake read the same.

use serde_json::Value;

/// The command after `marker` up to the end of its line (`text.split(m,1)[1].strip().splitlines()[0]`).
pub(crate) fn command_after(text: &str, marker: &str) -> Option<String> {
    let rest = text.split_once(marker)?.1.trim();
    Some(rest.lines().next().unwrap_or("").to_owned())
}

/// The first whitespace-separated word after `marker` (`.strip().split()[0]`).
pub(crate) fn word_after(text: &str, marker: &str) -> Option<String> {
    let rest = text.split_once(marker)?.1;
    Some(rest.split_whitespace().next().unwrap_or("").to_owned())
}

/// `CALL_TOOL: <name> <json arguments>`: the tool (matched by [`find_tool`]) and its arguments,
/// `{}` when none or not JSON.
pub(crate) fn tool_call_after(text: &str, marker: &str) -> Option<(String, Value)> {
    let line = command_after(text, marker)?;
    let (name, args) = line.split_once(char::is_whitespace).unwrap_or((line.as_str(), ""));
    let args = serde_json::from_str(args.trim()).unwrap_or_else(|_| Value::Object(Default::default()));
    Some((name.to_owned(), args))
}

/// The offered tool name that is `wanted` or ends with `__wanted` (MCP tools are offered as
/// `mcp__<server>__<tool>`), among `names`.
pub(crate) fn find_tool<'a>(names: &'a [String], wanted: &str) -> Option<&'a str> {
    let suffix = format!("__{wanted}");
    names.iter().find(|n| *n == wanted).or_else(|| names.iter().find(|n| n.ends_with(&suffix))).map(String::as_str)
}

/// The first `n` characters (Python's `s[:n]`).
pub(crate) fn head(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The last `n` characters (Python's `s[-n:]`).
pub(crate) fn tail(s: &str, n: usize) -> String {
    let len = s.chars().count();
    s.chars().skip(len.saturating_sub(n)).collect()
}

/// Python's `repr()` of a str, close enough for log lines: single quotes unless the text has a
/// single quote and no double quote, backslash escapes for the quote, `\\`, `\n`, `\r`, `\t`.
pub(crate) fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `str()` of a JSON value as `fake_llm.py` would print it (`None`, `True`, plain strings).
pub(crate) fn py_str(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Server-sent events, one `event:`/`data:` pair per JSON event, named after its `type`.
pub(crate) fn sse(events: &[Value]) -> String {
    let mut out = String::new();
    for ev in events {
        let name = ev.get("type").and_then(Value::as_str).unwrap_or("message");
        out.push_str(&format!("event: {name}\ndata: {ev}\n\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_follow_python_slicing() {
        assert_eq!(command_after("x RUN_CMD:  touch a b\nmore", "RUN_CMD:").as_deref(), Some("touch a b"));
        assert_eq!(command_after("RUN_CMD:", "RUN_CMD:").as_deref(), Some(""));
        assert_eq!(command_after("nothing", "RUN_CMD:"), None);
        assert_eq!(word_after("WRITE_FILE: a.txt please", "WRITE_FILE:").as_deref(), Some("a.txt"));
    }

    #[test]
    fn call_tool_finds_mcp_tools_by_suffix() {
        let (name, args) =
            tool_call_after("x\nCALL_TOOL: record_entry {\"kind\": \"open\"}\nmore", "CALL_TOOL:").unwrap();
        assert_eq!((name.as_str(), args["kind"].as_str()), ("record_entry", Some("open")));
        let names = ["Bash".to_owned(), "mcp__taskgate__record_entry".to_owned()];
        assert_eq!(find_tool(&names, "record_entry"), Some("mcp__taskgate__record_entry"));
        assert_eq!(find_tool(&names, "Bash"), Some("Bash"));
        assert_eq!(find_tool(&names, "entry"), None);
    }

    #[test]
    fn repr_matches_python() {
        assert_eq!(py_repr("hi"), "'hi'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a\n'b\""), "'a\\n\\'b\"'");
        assert_eq!(tail("abcdef", 2), "ef");
        assert_eq!(head("abcdef", 2), "ab");
    }
}
