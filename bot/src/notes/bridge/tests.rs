use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::*;

const TOKEN: &str = "tok-secret-1";

#[test]
fn lines_that_are_not_messages_get_error_lines() {
    let parse = classify(b"this is not json {").unwrap_err();
    assert_eq!((parse["id"].clone(), parse["error"]["code"].as_i64()), (Value::Null, Some(PARSE_ERROR)));
    assert_eq!(parse["jsonrpc"], "2.0");
    for line in [&b"42"[..], b"\"ping\"", b"[]", b"[1,2]", b"null"] {
        let invalid = classify(line).unwrap_err();
        assert_eq!(invalid["error"]["code"].as_i64(), Some(INVALID_REQUEST), "{}", String::from_utf8_lossy(line));
    }
    // Requests are answered; notifications, responses and null ids are not waited for.
    let ids = |line: &str| classify(line.as_bytes()).unwrap().1;
    assert_eq!(ids(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#), [json!(7)]);
    assert!(ids(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).is_empty());
    assert!(ids(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#).is_empty());
    assert_eq!(ids(r#"[{"id":"a","method":"x"},{"method":"y"}]"#), [json!("a")]);
}

#[tokio::test]
async fn lines_are_read_whole_and_bounded() {
    let big = vec![b'x'; MAX_MESSAGE + 10];
    let mut input: Vec<u8> = b"one\n\ntwo".to_vec();
    input.push(b'\n');
    input.extend_from_slice(&big);
    input.extend_from_slice(b"\nlast");
    let mut reader = BufReader::with_capacity(64, &input[..]);
    let mut got = Vec::new();
    loop {
        match read_line(&mut reader).await.unwrap() {
            Line::Eof => break,
            Line::TooLong => got.push("<too long>".to_owned()),
            Line::Message(l) => got.push(String::from_utf8_lossy(&l).trim_end().to_owned()),
        }
    }
    assert_eq!(got, ["one", "", "two", "<too long>", "last"]);
}

#[test]
fn error_excerpts_never_show_the_token() {
    let bridge = Bridge::new("http://127.0.0.1:9/mcp".into(), TOKEN.into()).unwrap();
    let excerpt = bridge.excerpt(&format!("bad header Authorization: Bearer {TOKEN}\nbye"));
    assert_eq!(excerpt, ": bad header Authorization: Bearer [REDACTED] bye");
    assert!(Bridge::new("ftp://x".into(), TOKEN.into()).is_err());
}

/// What the mock server saw: method and session header of each request.
type Seen = Arc<Mutex<Vec<String>>>;

/// A streamable-HTTP server that answers `initialize` in JSON with a session id, `tools/list`
/// as an SSE stream (a progress notification first), `tools/call` with a stream that ends
/// without the response, and `boom` with a 500.
async fn mock(seen: axum::Extension<Seen>, headers: HeaderMap, body: Bytes) -> Response {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
    if get("authorization") != format!("Bearer {TOKEN}") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else { return StatusCode::BAD_REQUEST.into_response() };
    let method = message["method"].as_str().unwrap_or("-").to_owned();
    seen.lock().unwrap().push(format!("{method} {} {}", get("mcp-session-id"), get("mcp-protocol-version")));
    let id = message["id"].clone();
    let sse = |body: String| ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response();
    let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}});
    match method.as_str() {
        "initialize" => (
            [("mcp-session-id", "s-1")],
            axum::Json(
                json!({"jsonrpc": "2.0", "id": id, "result": {"protocolVersion": "2025-06-18", "capabilities": {}}}),
            ),
        )
            .into_response(),
        "tools/list" => {
            let response = json!({"jsonrpc": "2.0", "id": id, "result": {"tools": []}});
            sse(format!("event: message\ndata: {progress}\n\n: keep-alive\n\ndata: {response}\n\n"))
        }
        "tools/call" => sse(format!("data: {progress}\n\n")),
        "boom" => (StatusCode::INTERNAL_SERVER_ERROR, "exploded").into_response(),
        _ => StatusCode::ACCEPTED.into_response(),
    }
}

async fn deleted(seen: axum::Extension<Seen>, headers: HeaderMap) -> StatusCode {
    let session = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
    seen.lock().unwrap().push(format!("DELETE {session}"));
    StatusCode::NO_CONTENT
}

#[tokio::test]
async fn the_bridge_speaks_json_and_sse_and_keeps_the_session() {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/mcp", axum::routing::post(mock).delete(deleted))
        .layer(axum::Extension(seen.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let server = tokio::spawn(axum::serve(listener, app).into_future());

    let bridge = Arc::new(Bridge::new(url, TOKEN.into()).unwrap());
    let (mut agent_in, bridge_in) = tokio::io::duplex(1 << 16);
    let (bridge_out, agent_out) = tokio::io::duplex(1 << 16);
    let running = tokio::spawn(serve(bridge, BufReader::new(bridge_in), bridge_out));
    let mut replies = BufReader::new(agent_out).lines();
    let mut all = Vec::new();
    let mut exchange = async |line: &str, expect: usize| -> Vec<Value> {
        agent_in.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        let mut got = Vec::new();
        for _ in 0..expect {
            let reply =
                tokio::time::timeout(Duration::from_secs(10), replies.next_line()).await.unwrap().unwrap().unwrap();
            all.push(reply.clone());
            got.push(serde_json::from_str::<Value>(&reply).unwrap());
        }
        got
    };

    let bad = exchange("this is not json {", 1).await;
    assert_eq!((bad[0]["id"].clone(), bad[0]["error"]["code"].as_i64()), (Value::Null, Some(PARSE_ERROR)));
    let init = exchange(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#, 1).await;
    assert_eq!(init[0]["result"]["protocolVersion"], "2025-06-18");
    // A notification has no answer: the next line out belongs to the next request.
    exchange(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#, 0).await;
    let list = exchange(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#, 2).await;
    assert_eq!(list[0]["method"], "notifications/progress");
    assert_eq!((list[1]["id"].as_i64(), list[1]["result"]["tools"].clone()), (Some(2), json!([])));
    let lost = exchange(r#"{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{}}"#, 2).await;
    assert_eq!((lost[1]["id"].as_str(), lost[1]["error"]["code"].as_i64()), (Some("c"), Some(INTERNAL_ERROR)));
    let boom = exchange(r#"{"jsonrpc":"2.0","id":4,"method":"boom"}"#, 1).await;
    assert_eq!(boom[0]["error"]["code"].as_i64(), Some(GATEWAY_ERROR));
    assert!(boom[0]["error"]["message"].as_str().unwrap().contains("HTTP 500: exploded"), "{boom:?}");

    // End of stdin: the bridge ends the session and returns.
    drop(agent_in);
    tokio::time::timeout(Duration::from_secs(10), running).await.unwrap().unwrap().unwrap();
    assert_eq!(replies.next_line().await.unwrap(), None);
    assert!(all.iter().all(|l| !l.contains(TOKEN)));
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "initialize - -",
            "notifications/initialized s-1 2025-06-18",
            "tools/list s-1 2025-06-18",
            "tools/call s-1 2025-06-18",
            "boom s-1 2025-06-18",
            "DELETE s-1",
        ]
    );
    server.abort();
}

#[tokio::test]
async fn an_unreachable_gateway_is_an_error_response() {
    // Nothing listens on the discard port of loopback.
    let bridge = Arc::new(Bridge::new("http://127.0.0.1:9/mcp".into(), TOKEN.into()).unwrap());
    let input =
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}\n";
    let (out, agent_out) = tokio::io::duplex(1 << 16);
    serve(bridge, &input[..], out).await.unwrap();
    let mut lines = BufReader::new(agent_out).lines();
    let reply: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!((reply["id"].as_i64(), reply["error"]["code"].as_i64()), (Some(1), Some(GATEWAY_ERROR)));
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("taskgate is not reachable") && !message.contains(TOKEN), "{message}");
    assert_eq!(lines.next_line().await.unwrap(), None, "the notification gets no line");
}
