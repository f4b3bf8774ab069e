//! Fake `claude` in stream-json mode with the stdio control protocol, shaped after
//! `claude-sdk-control-protocol-transcript.jsonl`, `claude-interrupt-transcript.jsonl`,
//! `claude-resume.jsonl` and `claude-api-error-400.jsonl`.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Context, FILE_CONTENT, Recv, new_id, run_command, write_file};
use crate::script::{PLAN_STEPS, Script, parse};

const WAIT: Duration = Duration::from_secs(60);

struct Fake {
    ctx: Context,
    session: String,
    next_request: u64,
    next_tool: u64,
    cost: f64,
    allowed_commands: HashSet<String>,
    accept_edits: bool,
}

enum Waited {
    Response(Value),
    Interrupted,
}

pub fn run(ctx: Context, args: &[String]) -> i32 {
    let has = |a: &str, b: &str| args.windows(2).any(|w| w[0] == a && w[1] == b);
    if !(has("--output-format", "stream-json")
        && has("--input-format", "stream-json")
        && args.iter().any(|a| a == "--verbose"))
    {
        eprintln!("Error: --input-format=stream-json requires --output-format=stream-json and --verbose");
        return 1;
    }
    if !has("--permission-prompt-tool", "stdio") {
        eprintln!("fake-agent: without --permission-prompt-tool stdio nobody can be asked");
        return 1;
    }
    let resume = args.iter().position(|a| a == "--resume").and_then(|i| args.get(i + 1)).cloned();
    let session = match resume {
        Some(id) if !ctx.session_exists(&id) => {
            eprintln!("No conversation found with session ID: {id}");
            return 1;
        }
        Some(id) => id,
        None => new_id("session"),
    };
    let mut fake = Fake {
        ctx,
        session,
        next_request: 0,
        next_tool: 0,
        cost: 0.0,
        allowed_commands: HashSet::new(),
        accept_edits: false,
    };
    loop {
        match fake.ctx.recv(None) {
            Recv::Msg(msg) => fake.handle(msg),
            Recv::Eof | Recv::Timeout => return 0,
        }
    }
}

impl Fake {
    fn handle(&mut self, msg: Value) {
        match msg.get("type").and_then(Value::as_str) {
            Some("control_request") => {
                let id = msg.get("request_id").and_then(Value::as_str).unwrap_or_default().to_string();
                match msg.pointer("/request/subtype").and_then(Value::as_str) {
                    Some("initialize") => self.success(&id, json!({ "commands": [], "models": [], "account": {} })),
                    Some("interrupt") => self.success(&id, Value::Null),
                    _ => self.ctx.send(&json!({ "type": "control_response", "response": { "subtype": "error", "request_id": id, "error": "unknown subtype" } })),
                }
            }
            Some("user") => {
                let text = match msg.pointer("/message/content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(blocks)) => {
                        blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect()
                    }
                    _ => String::new(),
                };
                self.ctx.log_input(&text, msg.pointer("/message/content").unwrap_or(&Value::Null));
                self.turn(&text);
            }
            _ => eprintln!("fake-agent: unexpected input"),
        }
    }

    fn success(&self, request_id: &str, response: Value) {
        let mut body = json!({ "subtype": "success", "request_id": request_id });
        if !response.is_null() {
            body["response"] = response;
        }
        self.ctx.send(&json!({ "type": "control_response", "response": body }));
    }

    fn emit(&self, kind: &str, mut msg: Value) {
        msg["type"] = json!(kind);
        msg["session_id"] = json!(self.session);
        msg["parent_tool_use_id"] = Value::Null;
        msg["uuid"] = json!(new_id("uuid"));
        self.ctx.send(&msg);
    }

    fn assistant(&self, content: Value) {
        self.emit("assistant", json!({ "message": { "id": new_id("msg"), "type": "message", "role": "assistant", "model": "fake-model", "content": [content], "stop_reason": null, "usage": { "input_tokens": 12, "output_tokens": 1 } } }));
    }

    fn say(&self, text: &str) {
        self.assistant(json!({ "type": "text", "text": text }));
    }

    fn tool_result(&self, tool_use_id: &str, content: &str, is_error: bool) {
        self.emit("user", json!({ "message": { "role": "user", "content": [{ "tool_use_id": tool_use_id, "type": "tool_result", "content": content, "is_error": is_error }] } }));
    }

    fn result(&mut self, subtype: &str, is_error: bool, text: &str) {
        if subtype == "success" && !is_error {
            self.cost += 0.00042;
        }
        let mut msg = json!({
            "subtype": subtype, "is_error": is_error, "duration_ms": 10, "num_turns": 1, "result": text,
            "stop_reason": "end_turn", "total_cost_usd": self.cost,
            "usage": { "input_tokens": 24, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 12 },
            "permission_denials": [],
        });
        if subtype == "error_during_execution" {
            msg["errors"] = json!(["[ede_diagnostic] result_type=user last_content_type=n/a stop_reason=null"]);
            msg.as_object_mut().map(|m| m.remove("result"));
        }
        self.emit("result", msg);
    }

    fn turn(&mut self, text: &str) {
        self.emit("system", json!({ "subtype": "init", "cwd": self.ctx.cwd, "tools": ["Bash", "Write", "TodoWrite", "AskUserQuestion"], "mcp_servers": [], "model": "fake-model", "permissionMode": "default" }));
        match parse(text) {
            Script::Echo | Script::Stream(_) => self.reply(&format!("FAKE-REPLY: you said '{text}'")),
            Script::Reply(reply) => self.reply(&reply),
            Script::Note(spec) => {
                let said = self.ctx.note(&spec);
                self.reply(&said)
            }
            Script::Recall => {
                let previous = self.ctx.recall(&self.session);
                self.reply(&format!("FAKE-REPLY: previous input was '{previous}'"));
            }
            Script::RunCmd(cmd) => self.run_cmd(&cmd),
            Script::WriteFile(path) => self.write(&path),
            Script::Slow(limit) => match self.wait(None, limit) {
                Some(Waited::Interrupted) => self.interrupted("[Request interrupted by user]"),
                _ => self.reply("FAKE-REPLY: slow reply done"),
            },
            Script::Stubborn => {
                std::thread::sleep(Duration::from_secs(20));
                self.reply("FAKE-REPLY: finally");
            }
            Script::Plan => {
                let id = self.tool_id();
                let todos: Vec<Value> = PLAN_STEPS.iter().enumerate().map(|(i, s)| {
                    json!({ "content": s, "status": if i == 0 { "in_progress" } else { "pending" }, "activeForm": s })
                }).collect();
                self.assistant(
                    json!({ "type": "tool_use", "id": id, "name": "TodoWrite", "input": { "todos": todos } }),
                );
                self.tool_result(&id, "Todos have been modified successfully.", false);
                self.reply("FAKE-REPLY: planned");
            }
            Script::Ask(question) => {
                let id = self.tool_id();
                let input = json!({ "questions": [{ "question": question, "header": "Question", "multiSelect": false,
                    "options": [{ "label": "yes", "description": "" }, { "label": "no", "description": "" }] }] });
                self.assistant(json!({ "type": "tool_use", "id": id, "name": "AskUserQuestion", "input": input }));
                match self.permission("AskUserQuestion", &id, &input, json!([])) {
                    Some(Waited::Response(r)) if r["behavior"] == "allow" => {
                        let answer = r
                            .pointer("/updatedInput/answers")
                            .and_then(|a| a.get(question.as_str()))
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        self.tool_result(
                            &id,
                            &format!("User has answered your questions: \"{question}\"=\"{answer}\""),
                            false,
                        );
                        self.reply(&format!("FAKE-REPLY: you answered '{answer}'"));
                    }
                    Some(Waited::Response(_)) => {
                        self.tool_result(&id, "denied", true);
                        self.reply("FAKE-REPLY: no answer");
                    }
                    _ => self.interrupted("[Request interrupted by user]"),
                }
            }
            Script::Fail => {
                let message = "API Error: 400 fake server: bad request (FAIL_TURN)";
                self.say(message);
                self.result("success", true, message);
            }
            Script::Crash { once, forget } => {
                if !once || self.ctx.crash_once(if forget { "claude-forget" } else { "claude" }) {
                    if forget {
                        self.ctx.forget_session(&self.session);
                    }
                    eprintln!("fake-agent: crashing as asked");
                    std::process::exit(3);
                }
                self.reply("FAKE-REPLY: survived");
            }
            Script::Garbage => {
                self.ctx.send_garbage("mystery", json!({ "type": "control_response", "response": { "subtype": "success", "request_id": "nobody-asked" } }));
                self.ctx.send_raw("{\"no_type\":true}");
                self.reply("FAKE-REPLY: after garbage");
            }
        }
        self.ctx.save_session(&self.session, text);
    }

    fn reply(&mut self, text: &str) {
        self.say(text);
        self.result("success", false, text);
    }

    fn interrupted(&mut self, note: &str) {
        self.emit("user", json!({ "message": { "role": "user", "content": [{ "type": "text", "text": note }] } }));
        self.result("error_during_execution", true, "");
    }

    fn run_cmd(&mut self, cmd: &str) {
        let id = self.tool_id();
        let input = json!({ "command": cmd, "description": "fake model command" });
        self.assistant(json!({ "type": "tool_use", "id": id, "name": "Bash", "input": input }));
        let decision = if self.allowed_commands.contains(cmd) {
            json!({ "behavior": "allow", "updatedInput": input })
        } else {
            let suggestions = json!([{ "type": "addRules", "rules": [{ "toolName": "Bash", "ruleContent": cmd }], "behavior": "allow", "destination": "localSettings" }]);
            match self.permission("Bash", &id, &input, suggestions) {
                Some(Waited::Response(r)) => r,
                _ => return self.interrupted("[Request interrupted by user]"),
            }
        };
        if decision["behavior"] == "allow" {
            for update in decision.get("updatedPermissions").and_then(Value::as_array).into_iter().flatten() {
                for rule in update.get("rules").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(c) = rule.get("ruleContent").and_then(Value::as_str) {
                        self.allowed_commands.insert(c.to_string());
                    }
                }
            }
            let command = decision.pointer("/updatedInput/command").and_then(Value::as_str).unwrap_or(cmd).to_string();
            let (code, output) = run_command(&command);
            if code == 0 {
                let shown = if output.is_empty() { "(Bash completed with no output)".to_string() } else { output };
                self.tool_result(&id, &shown, false);
                self.reply(&format!("FAKE-REPLY: tool finished (is_error=False). output={shown}"));
            } else {
                let shown = format!("Exit code {code}\n{output}");
                self.tool_result(&id, &shown, true);
                self.reply("FAKE-REPLY: tool finished (is_error=True)");
            }
        } else {
            let message = decision.get("message").and_then(Value::as_str).unwrap_or("denied").to_string();
            self.tool_result(&id, &message, true);
            if decision.get("interrupt").and_then(Value::as_bool) == Some(true) {
                self.interrupted("[Request interrupted by user for tool use]");
            } else {
                self.reply(&format!("FAKE-REPLY: tool finished (is_error=True). output={message}"));
            }
        }
    }

    fn write(&mut self, path: &str) {
        let id = self.tool_id();
        let abs = self.ctx.cwd.join(path).to_string_lossy().into_owned();
        let input = json!({ "file_path": abs, "content": FILE_CONTENT });
        self.assistant(json!({ "type": "tool_use", "id": id, "name": "Write", "input": input }));
        let decision = if self.accept_edits {
            json!({ "behavior": "allow", "updatedInput": input })
        } else {
            let suggestions = json!([{ "type": "setMode", "mode": "acceptEdits", "destination": "session" }]);
            match self.permission("Write", &id, &input, suggestions) {
                Some(Waited::Response(r)) => r,
                _ => return self.interrupted("[Request interrupted by user]"),
            }
        };
        if decision["behavior"] == "allow" {
            if decision
                .get("updatedPermissions")
                .and_then(Value::as_array)
                .is_some_and(|u| u.iter().any(|p| p["mode"] == "acceptEdits"))
            {
                self.accept_edits = true;
            }
            match write_file(&abs) {
                Ok(()) => {
                    self.tool_result(&id, &format!("File created successfully at: {abs}"), false);
                    self.reply("FAKE-REPLY: file written");
                }
                Err(e) => {
                    self.tool_result(&id, &e, true);
                    self.reply("FAKE-REPLY: write failed");
                }
            }
        } else {
            let message = decision.get("message").and_then(Value::as_str).unwrap_or("denied").to_string();
            self.tool_result(&id, &message, true);
            if decision.get("interrupt").and_then(Value::as_bool) == Some(true) {
                self.interrupted("[Request interrupted by user for tool use]");
            } else {
                self.reply(&format!("FAKE-REPLY: tool finished (is_error=True). output={message}"));
            }
        }
    }

    fn permission(&mut self, tool: &str, tool_use_id: &str, input: &Value, suggestions: Value) -> Option<Waited> {
        self.next_request += 1;
        let request_id = format!("{:08x}-perm-{}", self.next_request, std::process::id());
        self.ctx.send(&json!({ "type": "control_request", "request_id": request_id, "request": {
            "subtype": "can_use_tool", "tool_name": tool, "display_name": tool, "input": input,
            "description": "fake model command", "permission_suggestions": suggestions, "tool_use_id": tool_use_id,
        } }));
        self.wait(Some(&request_id), WAIT)
    }

    /// Reads until the control response to `request_id`, or an interrupt.
    fn wait(&mut self, request_id: Option<&str>, timeout: Duration) -> Option<Waited> {
        loop {
            let msg = match self.ctx.recv(Some(timeout)) {
                Recv::Msg(msg) => msg,
                Recv::Timeout => return None,
                Recv::Eof => std::process::exit(0),
            };
            match msg.get("type").and_then(Value::as_str) {
                Some("control_response") => {
                    let id = msg.pointer("/response/request_id").and_then(Value::as_str);
                    if id.is_some() && id == request_id {
                        return Some(Waited::Response(
                            msg.pointer("/response/response").cloned().unwrap_or(Value::Null),
                        ));
                    }
                    eprintln!("fake-agent: control response to unknown request");
                }
                Some("control_request")
                    if msg.pointer("/request/subtype").and_then(Value::as_str) == Some("interrupt") =>
                {
                    let id = msg.get("request_id").and_then(Value::as_str).unwrap_or_default().to_string();
                    self.success(&id, Value::Null);
                    return Some(Waited::Interrupted);
                }
                _ => eprintln!("fake-agent: ignoring input during a turn"),
            }
        }
    }

    fn tool_id(&mut self) -> String {
        self.next_tool += 1;
        format!("toolu_{:04}", self.next_tool)
    }
}
