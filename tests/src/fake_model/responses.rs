//! The OpenAI Responses API as codex (`wire_api = "responses"`) consumes it, scripted by markers.

use serde_json::{Value, json};

use super::script::{command_after, find_tool, head, py_repr, tool_call_after, word_after};

/// What the latest input asks for: a tool's output (the model's call came back) or user text.
pub(crate) enum Latest<'a> {
    ToolOutput(&'a Value),
    UserText(String),
}

/// `responses_last_user_text` of fake_llm.py: a trailing tool output wins, else the last user
/// message's text parts joined by spaces, else "".
pub(crate) fn latest(body: &Value) -> Latest<'_> {
    let items = body.get("input").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    if let Some(last) = items.last() {
        let kind = last.get("type").and_then(Value::as_str);
        if matches!(kind, Some("function_call_output" | "custom_tool_call_output")) {
            return Latest::ToolOutput(last);
        }
    }
    for item in items.iter().rev() {
        let is_user_message = item.get("type").and_then(Value::as_str) == Some("message")
            && item.get("role").and_then(Value::as_str) == Some("user");
        if is_user_message {
            let parts = item.get("content").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
            let texts: Vec<&str> = parts
                .iter()
                .filter(|c| c.is_object())
                .map(|c| c.get("text").and_then(Value::as_str).unwrap_or(""))
                .collect();
            return Latest::UserText(texts.join(" "));
        }
    }
    Latest::UserText(String::new())
}

/// The user text of the latest input, "" when a tool output is what came last.
pub(crate) fn latest_user_text(body: &Value) -> String {
    match latest(body) {
        Latest::UserText(t) => t,
        Latest::ToolOutput(_) => String::new(),
    }
}

/// Names of the offered tools (`name`, or `type` for built-ins such as `web_search`).
fn tool_names(body: &Value) -> Vec<String> {
    tools(body)
        .iter()
        .filter_map(|t| {
            t.get("name").and_then(Value::as_str).or_else(|| t.get("type").and_then(Value::as_str)).map(str::to_owned)
        })
        .collect()
}

/// A tool inside a `{"type": "namespace", "tools": [...]}` entry (codex offers each MCP server's
/// tools that way, the namespace being `mcp__<server>`): `(namespace, name)`.
fn namespaced_tool(body: &Value, wanted: &str) -> Option<(String, String)> {
    tools(body).iter().filter(|t| t.get("type").and_then(Value::as_str) == Some("namespace")).find_map(|ns| {
        let namespace = ns.get("name").and_then(Value::as_str)?;
        let inner: Vec<String> = ns
            .get("tools")
            .and_then(Value::as_array)?
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let name = find_tool(&inner, wanted)?;
        Some((namespace.to_owned(), name.to_owned()))
    })
}

fn tools(body: &Value) -> &[Value] {
    body.get("tools").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

fn assistant_text(n: u64, msg: &str) -> [Value; 3] {
    let id = format!("msg_{n}");
    [
        json!({"type": "response.output_item.added", "item": {"type": "message", "role": "assistant", "id": id, "content": []}}),
        json!({"type": "response.output_text.delta", "item_id": id, "delta": msg}),
        json!({"type": "response.output_item.done", "item": {"type": "message", "role": "assistant", "id": id, "content": [{"type": "output_text", "text": msg}]}}),
    ]
}

fn function_call(n: u64, name: &str, args: &Value) -> Value {
    json!({"type": "response.output_item.done", "item": {
        "type": "function_call", "id": format!("fc_{n}"), "call_id": format!("call_{n}"),
        "name": name, "arguments": args.to_string(),
    }})
}

/// The SSE events answering one `/v1/responses` request; `n` numbers ids as fake_llm.py does.
pub(crate) fn reply(body: &Value, n: u64) -> Vec<Value> {
    let rid = format!("resp_{n}");
    let names = tool_names(body);
    let has = |name: &str| names.iter().any(|t| t == name);
    let mut evs = vec![json!({"type": "response.created", "response": {"id": rid}})];
    match latest(body) {
        Latest::ToolOutput(out) => {
            let output = serde_json::to_string(out.get("output").unwrap_or(&Value::Null)).unwrap_or_default();
            evs.extend(assistant_text(n, &format!("FAKE-REPLY: tool finished. output={}", head(&output, 300))));
        }
        Latest::UserText(text) if text.contains("CALL_TOOL:") => {
            let (wanted, args) = tool_call_after(&text, "CALL_TOOL:").unwrap_or_default();
            match (find_tool(&names, &wanted), namespaced_tool(body, &wanted)) {
                (Some(name), _) => evs.push(function_call(n, name, &args)),
                (None, Some((namespace, name))) => {
                    let mut call = function_call(n, &name, &args);
                    call["item"]["namespace"] = json!(namespace);
                    evs.push(call);
                }
                (None, None) => {
                    evs.extend(assistant_text(n, &format!("FAKE-REPLY: no tool {wanted:?} among {names:?}")));
                }
            }
        }
        Latest::UserText(text) if text.contains("RUN_CMD:") || text.contains("ESCALATE_CMD:") => {
            let esc = text.contains("ESCALATE_CMD:");
            let cmd = command_after(&text, if esc { "ESCALATE_CMD:" } else { "RUN_CMD:" }).unwrap_or_default();
            let (name, args) = if has("exec_command") {
                let mut args = json!({"cmd": cmd});
                if esc {
                    args["sandbox_permissions"] = json!("require_escalated");
                    args["justification"] = json!("Fake model wants to run this outside the sandbox");
                }
                ("exec_command", args)
            } else if has("shell_command") {
                ("shell_command", json!({"command": cmd}))
            } else {
                ("shell", json!({"command": ["bash", "-lc", cmd]}))
            };
            evs.push(function_call(n, name, &args));
        }
        Latest::UserText(text) if text.contains("WRITE_FILE:") => {
            let path = word_after(&text, "WRITE_FILE:").unwrap_or_default();
            let patch = format!("*** Begin Patch\n*** Add File: {path}\n+hello from fake model\n*** End Patch\n");
            // apply_patch is offered either as a freeform custom tool or as a function tool.
            let apply_patch = tools(body).iter().find(|t| t.get("name").and_then(Value::as_str) == Some("apply_patch"));
            match apply_patch {
                Some(t) if t.get("type").and_then(Value::as_str) == Some("custom") => {
                    evs.push(json!({"type": "response.output_item.done", "item": {
                        "type": "custom_tool_call", "id": format!("ctc_{n}"), "call_id": format!("call_{n}"),
                        "name": "apply_patch", "input": patch,
                    }}));
                }
                Some(_) => evs.push(function_call(n, "apply_patch", &json!({"input": patch}))),
                None => {
                    // No apply_patch tool: run it through the shell as a heredoc.
                    let heredoc = format!("apply_patch <<'EOF'\n{patch}EOF\n");
                    if has("exec_command") {
                        evs.push(function_call(n, "exec_command", &json!({"cmd": heredoc})));
                    } else {
                        evs.push(function_call(n, "shell_command", &json!({"command": heredoc})));
                    }
                }
            }
        }
        Latest::UserText(text) => {
            evs.extend(assistant_text(n, &head(&format!("FAKE-REPLY: you said {}", py_repr(&text)), 400)));
        }
    }
    evs.push(json!({"type": "response.completed", "response": {"id": rid, "usage": {
        "input_tokens": 11, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 18,
    }}}));
    evs
}

/// A `FAIL_SSE` reply: the stream starts, then the response fails.
pub(crate) fn failed_stream() -> Vec<Value> {
    vec![
        json!({"type": "response.created", "response": {"id": "resp_fail"}}),
        json!({"type": "response.failed", "response": {"id": "resp_fail", "error": {
            "code": "server_error", "message": "fake server: response.failed (FAIL_SSE)",
        }}}),
    ]
}

/// The body of a `FAIL_HTTP` 400 reply.
pub(crate) fn bad_request() -> Value {
    json!({"error": {"message": "fake server: bad request (FAIL_HTTP)", "type": "invalid_request_error", "code": "fake_error"}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str, tools: Value) -> Value {
        json!({"input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}], "tools": tools})
    }

    #[test]
    fn run_cmd_becomes_exec_command() {
        let evs = reply(
            &request("please RUN_CMD: touch x\nthanks", json!([{"type": "function", "name": "exec_command"}])),
            3,
        );
        let item = &evs[1]["item"];
        assert_eq!(item["name"], "exec_command");
        assert_eq!(item["call_id"], "call_3");
        let args: Value = serde_json::from_str(item["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"cmd": "touch x"}));
        assert_eq!(evs.last().unwrap()["type"], "response.completed");
    }

    #[test]
    fn call_tool_reaches_into_codex_tool_namespaces() {
        let tools = json!([{"type": "namespace", "name": "mcp__taskgate", "tools": [
            {"type": "function", "name": "record_entry"},
        ]}]);
        let evs = reply(&request("CALL_TOOL: record_entry {\"kind\": \"open\"}", tools), 4);
        let item = &evs[1]["item"];
        assert_eq!((item["namespace"].as_str(), item["name"].as_str()), (Some("mcp__taskgate"), Some("record_entry")));
        assert_eq!(item["arguments"], "{\"kind\":\"open\"}");
        let missing = reply(&request("CALL_TOOL: nope {}", json!([])), 5);
        assert!(missing[2]["delta"].as_str().unwrap().starts_with("FAKE-REPLY: no tool \"nope\""));
    }

    #[test]
    fn tool_output_gets_a_closing_message() {
        let body = json!({"input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "RUN_CMD: ls"}]},
            {"type": "function_call_output", "call_id": "call_1", "output": "done"},
        ]});
        let evs = reply(&body, 2);
        assert_eq!(evs[2]["delta"], "FAKE-REPLY: tool finished. output=\"done\"");
    }

    #[test]
    fn plain_text_is_echoed_with_python_repr() {
        let evs = reply(&request("Say hello", json!([])), 1);
        assert_eq!(evs[2]["delta"], "FAKE-REPLY: you said 'Say hello'");
    }
}
