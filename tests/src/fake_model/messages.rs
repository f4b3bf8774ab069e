//! The Anthropic Messages API as Claude Code consumes it (streaming and not), scripted by markers.

use serde_json::{Value, json};

use super::script::{command_after, find_tool, head, py_repr, py_str, tail, tool_call_after, word_after};

/// What the last *user* message holds: a tool result, or its text.
pub(crate) enum Latest<'a> {
    ToolResult(&'a Value),
    UserText(String),
}

/// `messages_last` of fake_llm.py. Claude Code may append `role:"system"` messages, so only user
/// messages count; `<system-reminder>` text blocks are context, not the prompt.
pub(crate) fn latest(body: &Value) -> Latest<'_> {
    let Some(last_user) = last_user_message(body) else {
        return Latest::UserText(String::new());
    };
    let blocks = match last_user.get("content") {
        Some(Value::String(s)) => return Latest::UserText(s.clone()),
        Some(Value::Array(blocks)) => blocks.as_slice(),
        _ => &[],
    };
    let mut texts = Vec::new();
    let mut tool_result = None;
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = block.get("text").and_then(Value::as_str).unwrap_or("");
                if !text.trim_start().starts_with("<system-reminder>") {
                    texts.push(text);
                }
            }
            Some("tool_result") => tool_result = Some(block),
            _ => {}
        }
    }
    match tool_result {
        Some(result) => Latest::ToolResult(result),
        None => Latest::UserText(texts.join("\n")),
    }
}

pub(crate) fn last_user_message(body: &Value) -> Option<&Value> {
    body.get("messages")?.as_array()?.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
}

/// The user text of the last user message, "" when it carries a tool result.
pub(crate) fn latest_user_text(body: &Value) -> String {
    match latest(body) {
        Latest::UserText(t) => t,
        Latest::ToolResult(_) => String::new(),
    }
}

enum Block {
    Text(String),
    ToolUse { id: String, name: String, input: Value },
}

/// The reply to one `/v1/messages` request: SSE events when the request streams, else one JSON
/// message. `n` numbers ids as fake_llm.py does.
pub(crate) enum Reply {
    Stream(Vec<Value>),
    Json(Value),
}

pub(crate) fn reply(body: &Value, n: u64) -> Reply {
    let model = body.get("model").cloned().unwrap_or_else(|| json!("fake"));
    let offers = |tool: &str| {
        body.get("tools")
            .and_then(Value::as_array)
            .is_some_and(|ts| ts.iter().any(|t| t.get("name").and_then(Value::as_str) == Some(tool)))
    };
    let names: Vec<String> = body
        .get("tools")
        .and_then(Value::as_array)
        .map(|ts| ts.iter().filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned)).collect())
        .unwrap_or_default();
    let mut stop = "end_turn";
    let block = match latest(body) {
        Latest::ToolResult(result) => {
            let content = match result.get("content") {
                Some(Value::Array(parts)) => {
                    let texts: Vec<&str> = parts
                        .iter()
                        .filter(|p| p.is_object())
                        .map(|p| p.get("text").and_then(Value::as_str).unwrap_or(""))
                        .collect();
                    texts.join(" ")
                }
                Some(other) => py_str(other),
                None => "None".into(),
            };
            let is_error = py_str(result.get("is_error").unwrap_or(&Value::Bool(false)));
            Block::Text(format!("FAKE-REPLY: tool finished (is_error={is_error}). output={}", head(&content, 300)))
        }
        Latest::UserText(text) if text.contains("CALL_TOOL:") => {
            let (wanted, input) = tool_call_after(&text, "CALL_TOOL:").unwrap_or_default();
            match find_tool(&names, &wanted) {
                Some(name) => {
                    stop = "tool_use";
                    Block::ToolUse { id: format!("toolu_{n:04}"), name: name.to_owned(), input }
                }
                None => Block::Text(format!("FAKE-REPLY: no tool {wanted:?} among {names:?}")),
            }
        }
        Latest::UserText(text) if text.contains("RUN_CMD:") && offers("Bash") => {
            stop = "tool_use";
            let command = command_after(&text, "RUN_CMD:").unwrap_or_default();
            Block::ToolUse {
                id: format!("toolu_{n:04}"),
                name: "Bash".into(),
                input: json!({"command": command, "description": "fake model command"}),
            }
        }
        Latest::UserText(text) if text.contains("WRITE_FILE:") && offers("Write") => {
            stop = "tool_use";
            let path = word_after(&text, "WRITE_FILE:").unwrap_or_default();
            Block::ToolUse {
                id: format!("toolu_{n:04}"),
                name: "Write".into(),
                input: json!({"file_path": path, "content": "hello from fake model\n"}),
            }
        }
        Latest::UserText(text) => Block::Text(format!("FAKE-REPLY: you said {}", py_repr(&tail(&text, 200)))),
    };
    let usage =
        json!({"input_tokens": 12, "output_tokens": 6, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0});
    let id = format!("msg_fake_{n}");

    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        let content = match &block {
            Block::Text(text) => json!({"type": "text", "text": text}),
            Block::ToolUse { id, name, input } => json!({"type": "tool_use", "id": id, "name": name, "input": input}),
        };
        return Reply::Json(json!({
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [content],
            "stop_reason": stop, "stop_sequence": null, "usage": usage,
        }));
    }

    let mut start_usage = usage.clone();
    start_usage["output_tokens"] = json!(1);
    let mut evs = vec![json!({"type": "message_start", "message": {
        "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": null, "stop_sequence": null, "usage": start_usage,
    }})];
    match &block {
        Block::Text(text) => {
            evs.push(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}));
            evs.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}));
        }
        Block::ToolUse { id, name, input } => {
            evs.push(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}));
            evs.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": input.to_string()}}));
        }
    }
    evs.push(json!({"type": "content_block_stop", "index": 0}));
    evs.push(json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 6}}));
    evs.push(json!({"type": "message_stop"}));
    Reply::Stream(evs)
}

/// The body of a `FAIL_HTTP` 400 reply.
pub(crate) fn bad_request() -> Value {
    json!({"type": "error", "error": {"type": "invalid_request_error", "message": "fake server: bad request (FAIL_HTTP)"}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_cmd_becomes_bash_tool_use_past_system_messages() {
        // Shaped like fixtures/agents/claude-request-to-fake-server.json: a reminder block, the
        // prompt, then a trailing role:"system" message.
        let body = json!({"stream": true, "model": "m", "tools": [{"name": "Bash"}], "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>\nctx RUN_CMD: wrong\n</system-reminder>"},
                {"type": "text", "text": "RUN_CMD: touch y"},
            ]},
            {"role": "system", "content": "Available agent types"},
        ]});
        let Reply::Stream(evs) = reply(&body, 7) else { panic!("expected a stream") };
        assert_eq!(evs[1]["content_block"]["name"], "Bash");
        assert_eq!(evs[1]["content_block"]["id"], "toolu_0007");
        let input: Value = serde_json::from_str(evs[2]["delta"]["partial_json"].as_str().unwrap()).unwrap();
        assert_eq!(input["command"], "touch y");
        assert_eq!(evs[4]["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn tool_result_is_summarised_without_streaming() {
        let body = json!({"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": "denied", "is_error": true},
        ]}]});
        let Reply::Json(msg) = reply(&body, 1) else { panic!("expected json") };
        assert_eq!(msg["content"][0]["text"], "FAKE-REPLY: tool finished (is_error=True). output=denied");
        assert_eq!(msg["stop_reason"], "end_turn");
    }
}
