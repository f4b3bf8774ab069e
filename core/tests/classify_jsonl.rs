//! The JSON Lines layer of `taskgate classify`: typed fast path, precise errors, one output line
//! per input line in order.

use taskgate_core::classify::{Classifier, jsonl};

const CTX: &str = r#"{"chat":"direct","mentioned":false,"reply_to":null,"active_task":null,"tasks":[],"pending_approvals":[],"agents":["codex"]}"#;

#[test]
fn every_line_gets_an_answer_or_a_precise_error() {
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
