//! The JSON Lines layer of `taskgate classify`: output shape, error lines, and `--eval` scores.

use serde_json::{Value, json};
use taskgate_core::classify::{Classifier, Intent, jsonl};

fn context() -> Value {
    json!({
        "chat": "direct", "mentioned": false, "reply_to": null, "active_task": "t1",
        "tasks": [{"id": "t1", "title": "fix routing for /api/v2", "status": "idle", "agents": ["codex"]}],
        "pending_approvals": [], "agents": ["codex", "claude", "gemini"]
    })
}

fn run(input: &str) -> Vec<Value> {
    let mut out = Vec::new();
    jsonl::run(input.as_bytes(), &mut out, &Classifier::default()).expect("run");
    String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

#[test]
fn one_output_line_per_input_line_in_order_with_the_contract_fields() {
    let lines = [
        json!({"id": "d1", "text": "use cc to review it too", "context": context()}),
        json!({"id": "d2", "text": "now write release notes for 2.3", "context": context()}),
    ];
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let out = run(&input);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0]["id"], "d1");
    assert_eq!(out[1]["id"], "d2");
    let keys: Vec<&str> = out[0].as_object().unwrap().keys().map(String::as_str).collect();
    for k in ["id", "intent", "task", "agent", "role", "approval", "scope", "confidence", "reason"] {
        assert!(keys.contains(&k), "missing {k} in {}", out[0]);
    }
    assert_eq!(out[0]["intent"], "spawn");
    assert_eq!(out[0]["role"], "reviewer");
    assert_eq!(out[0]["approval"], Value::Null);
    // snake_case intent names.
    assert_eq!(out[1]["intent"], "new_task");
    let conf = out[0]["confidence"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&conf));
}

#[test]
fn malformed_lines_get_an_error_line_and_the_run_goes_on() {
    let input = format!(
        "not json\n{}\n{}\n{}\n[1,2]\n{}\n",
        json!({"id": "m1", "context": context()}),
        json!({"id": "m2", "text": "ok"}),
        json!({"text": "ok", "context": context()}),
        json!({"id": "ok1", "text": "retry", "context": context()}),
    );
    let out = run(&input);
    assert_eq!(out.len(), 6);
    assert_eq!(out[0]["id"], Value::Null);
    assert!(out[0]["error"].as_str().unwrap().contains("JSON"));
    assert_eq!(out[1]["id"], "m1");
    assert!(out[1]["error"].as_str().unwrap().contains("text"));
    assert_eq!(out[2]["id"], "m2");
    assert!(out[2]["error"].as_str().unwrap().contains("context"));
    assert_eq!(out[3]["id"], Value::Null);
    assert!(out[3].get("error").is_some());
    assert!(out[4].get("error").is_some());
    assert_eq!(out[5]["id"], "ok1");
    assert_eq!(out[5]["intent"], "continue");
}

#[test]
fn a_context_of_the_wrong_shape_is_an_error_line() {
    let line = json!({"id": "x", "text": "ok", "context": {"chat": "channel", "tasks": "none"}});
    let out = run(&format!("{line}\n"));
    assert_eq!(out[0]["id"], "x");
    assert!(out[0]["error"].as_str().unwrap().contains("context"));
}

fn labelled(id: &str, text: &str, expect: Value) -> String {
    format!("{}\n", json!({"id": id, "text": text, "context": context(), "expect": expect}))
}

#[test]
fn eval_scores_accuracy_wrong_action_and_clarify_rate() {
    let input = [
        // Right.
        labelled(
            "e1",
            "use cc to review it too",
            json!({"intent": "spawn", "task": "t1", "agent": "claude", "role": "reviewer"}),
        ),
        // Right intent, wrong field: not accurate, and a wrong action.
        labelled("e2", "use cc to review it too", json!({"intent": "spawn", "task": "t1", "agent": "gemini"})),
        // A clarify where an action was expected: wrong, but no wrong action.
        labelled("e3", "ok", json!({"intent": "continue", "task": "t1"})),
        // Right.
        labelled("e4", "retry", json!({"intent": "continue", "task": "t1"})),
    ]
    .concat();
    let r = jsonl::eval(input.as_bytes(), &Classifier::default()).expect("eval");
    assert_eq!(r.lines, 4);
    assert_eq!(r.accuracy, 0.5);
    assert_eq!(r.wrong_action, 0.25);
    assert_eq!(r.clarify_rate, 0.25);
    assert_eq!(r.intent_accuracy, 0.75);
    assert_eq!(r.confusion[&(Intent::Continue, Intent::Clarify)], 1);
    assert_eq!(r.misses.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["e2", "e3"]);

    let shown = r.to_string();
    let last = shown.lines().last().unwrap();
    assert_eq!(last, "accuracy: 0.500");
    for score in ["wrong_action: 0.250", "clarify_rate: 0.250", "intent_accuracy: 0.750"] {
        assert!(shown.lines().any(|l| l == score), "{score} missing from\n{shown}");
    }
}

#[test]
fn eval_rejects_unlabelled_or_malformed_lines() {
    let no_expect = format!("{}\n", json!({"id": "e1", "text": "ok", "context": context()}));
    let err = jsonl::eval(no_expect.as_bytes(), &Classifier::default()).unwrap_err();
    assert!(err.contains("line 1") && err.contains("expect"), "{err}");
    let bad_intent = labelled("e1", "ok", json!({"intent": "maybe"}));
    assert!(jsonl::eval(bad_intent.as_bytes(), &Classifier::default()).is_err());
    assert!(jsonl::eval("".as_bytes(), &Classifier::default()).is_err());
}

// The typed fast path keeps the slow path's precise errors, reads CRLF lines and ignores
// unknown fields.

const CTX: &str = r#"{"chat":"direct","mentioned":false,"reply_to":null,"active_task":null,"tasks":[],"pending_approvals":[],"agents":["codex"]}"#;

#[test]
fn the_typed_fast_path_keeps_precise_errors_and_reads_crlf_lines() {
    let input = [
        format!(r#"{{"id":"a","text":"/status","context":{CTX}}}"#),
        "not json".to_owned(),
        format!(r#"{{"text":"hi","context":{CTX}}}"#),
        format!(r#"{{"id":7,"text":42,"context":{CTX}}}"#),
        r#"{"id":"c","text":"hi"}"#.to_owned(),
        format!("{{\"id\":\"d\",\"text\":\"add a dark mode toggle\",\"context\":{CTX},\"expect\":{{}}}}\r"),
    ]
    .join("\n");
    let mut out = Vec::new();
    jsonl::run(input.as_bytes(), &mut out, &Classifier::default()).expect("runs");
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 6);
    assert_eq!((lines[0]["id"].as_str(), lines[0]["intent"].as_str()), (Some("a"), Some("status")));
    assert!(lines[1]["error"].as_str().unwrap().starts_with("invalid JSON"), "{}", lines[1]);
    assert_eq!(lines[2]["error"], "missing id");
    assert_eq!((lines[3]["id"].as_i64(), lines[3]["error"].as_str()), (Some(7), Some("text is not a string")));
    assert_eq!((lines[4]["id"].as_str(), lines[4]["error"].as_str()), (Some("c"), Some("missing context")));
    // A CRLF line and unknown fields parse on the fast path.
    assert_eq!((lines[5]["id"].as_str(), lines[5]["intent"].as_str()), (Some("d"), Some("new_task")));
    assert!((0.0..=1.0).contains(&lines[5]["confidence"].as_f64().unwrap()));
}
