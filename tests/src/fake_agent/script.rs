//! What a prompt asks the fake to do: the first marker found decides, a marker in the request
//! (after the context a seeded prompt starts with) before one in that context.
//!
//! - `RUN_CMD: <cmd>`  ask to run a shell command (runs it with `sh -c` if allowed)
//! - `WRITE_FILE: <path>`  ask to create a file (writes it if allowed)
//! - `SLOW_REPLY`  keep working until interrupted (or 20 s); `SLOW_MS: <n>` the same for n ms
//! - `STREAM_MS: <n>`  stream the echo reply first, then work n ms more before the turn ends
//!   (codex; the other fakes echo at once)
//! - `STUBBORN`  work for 20 s without reading anything (ignores interrupts)
//! - `PLAN`  publish a three-step plan, then reply
//! - `ASK: <question>`  ask the person a question and echo the answer
//! - `FAIL_TURN`  end the turn with a model error
//! - `CRASH` / `CRASH_ONCE` / `CRASH_FORGET`  exit mid-turn (once per state dir / and lose the session)
//! - `GARBAGE`  print malformed lines first, then reply
//! - `RECALL`  reply with the previous input of this session
//! - `NOTE: <json>`  call the offered MCP server's tools: `{"tool", "arguments"}` or a list
//! - `SAY_EXACTLY: <text>`  reply exactly `<text>` (the rest of that line)
//! - a prompt starting `taskgate handoff:` (the gateway's `/new` handoff), with the fake started
//!   with `--handoff-note <json>`: call those tools as `NOTE:` would
//! - anything else  reply `FAKE-REPLY: you said '<text>'`

pub enum Script {
    RunCmd(String),
    WriteFile(String),
    /// Work this long, or until interrupted.
    Slow(std::time::Duration),
    /// The echo reply streamed, then this long until the turn ends.
    Stream(std::time::Duration),
    Stubborn,
    Plan,
    Ask(String),
    Fail,
    Crash {
        once: bool,
        forget: bool,
    },
    Garbage,
    Recall,
    Note(String),
    Reply(String),
    Echo,
}

/// `--handoff-note <json>` on the fake's command line.
fn handoff_note() -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == "--handoff-note").and_then(|i| args.get(i + 1)).cloned()
}

pub fn parse(text: &str) -> Script {
    // A seeded prompt quotes earlier messages (the goal, the restart note's instructions): a
    // marker in the request itself, after the gateway's context, wins over those.
    let request = ["\nRequest: ", "\nContinue from the restart note.\n\n"]
        .iter()
        .find_map(|sep| text.rsplit_once(sep).map(|(_, request)| request));
    match request.map(parse_text) {
        Some(Script::Echo) | None => parse_text(text),
        Some(script) => script,
    }
}

fn parse_text(text: &str) -> Script {
    let after =
        |marker: &str| text.split_once(marker).map(|(_, rest)| rest.lines().next().unwrap_or("").trim().to_string());
    if text.starts_with("taskgate handoff:")
        && let Some(spec) = handoff_note()
    {
        return Script::Note(spec);
    }
    if let Some(cmd) = after("RUN_CMD:") {
        Script::RunCmd(cmd)
    } else if let Some(path) = after("WRITE_FILE:") {
        Script::WriteFile(path)
    } else if text.contains("STUBBORN") {
        Script::Stubborn
    } else if let Some(ms) = after("STREAM_MS:") {
        let ms = ms.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(1000);
        Script::Stream(std::time::Duration::from_millis(ms))
    } else if let Some(ms) = after("SLOW_MS:") {
        let ms = ms.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(1000);
        Script::Slow(std::time::Duration::from_millis(ms))
    } else if text.contains("SLOW_REPLY") {
        Script::Slow(std::time::Duration::from_secs(20))
    } else if let Some(q) = after("ASK:") {
        Script::Ask(q)
    } else if text.contains("PLAN") {
        Script::Plan
    } else if text.contains("FAIL_TURN") {
        Script::Fail
    } else if text.contains("CRASH_FORGET") {
        Script::Crash { once: true, forget: true }
    } else if text.contains("CRASH_ONCE") {
        Script::Crash { once: true, forget: false }
    } else if text.contains("CRASH") {
        Script::Crash { once: false, forget: false }
    } else if text.contains("GARBAGE") {
        Script::Garbage
    } else if text.contains("RECALL") {
        Script::Recall
    } else if let Some(spec) = after("NOTE:") {
        Script::Note(spec)
    } else if let Some(reply) = after("SAY_EXACTLY:") {
        Script::Reply(reply)
    } else {
        Script::Echo
    }
}

pub const PLAN_STEPS: [&str; 3] = ["read the code", "fix the bug", "run the tests"];
