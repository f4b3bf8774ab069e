//! The console's HTTP API end to end: the real gateway (`Application`) on a free port, SQLite in
//! a temp dir, the fake agent behind the real runtime adapters; requests over real HTTP.
//! Assertions read the API's JSON and the store, never log text.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use taskgate::engine::IncomingMessage;
use taskgate_core::classify::Chat;
use taskgate_core::model::Channel;
use taskgate_core::store::Store;
use taskgate_tests::app::{TestApp, spawn_console};
use taskgate_tests::harness::{Trial, WAIT, eventually};

pub fn trials() -> Vec<Trial> {
    taskgate_tests::trials! {
        multi_thread(2): [
            every_api_route_needs_the_token_and_wrong_tokens_get_401,
            openapi_file_lists_exactly_the_console_routes,
            web_chat_task_timeline_and_an_approval_that_resolves_exactly_once,
            link_joins_web_and_telegram_and_the_task_continues_across_them,
            the_task_page_marks_a_finding_stale_when_its_file_changed,
            a_clarify_button_completes_the_original_message_once,
        ],
    }
}

/// The console's gateway. The tests stop it without asking for a clean stop: a test's open
/// `/api/stream` keeps the server from finishing gracefully before the stop's time limit.
async fn gateway() -> TestApp {
    spawn_console().await.expect("gateway starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client")
}

struct Api<'a> {
    gw: &'a TestApp,
    http: reqwest::Client,
}

impl Api<'_> {
    async fn get(&self, path: &str) -> Value {
        let res =
            self.http.get(format!("{}{path}", self.gw.url)).bearer_auth(&self.gw.token).send().await.expect("GET");
        assert_eq!(res.status(), StatusCode::OK, "GET {path}");
        res.json().await.expect("json")
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.gw.url))
            .bearer_auth(&self.gw.token)
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn say(&self, text: &str, task: Option<i64>) {
        let (status, _) = self.post("/api/messages", json!({"text": text, "task": task})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "message {text:?} accepted");
    }
}

async fn every_api_route_needs_the_token_and_wrong_tokens_get_401() {
    let gw = gateway().await;
    let http = client();
    let url = |p: &str| format!("{}{p}", gw.url);

    // The page and its assets are public: they show the login form.
    let page = http.get(url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("/app.js"));

    for path in ["/api/tasks", "/api/approvals", "/api/session", "/api/messages", "/api/stream", "/api/tasks/1"] {
        assert_eq!(
            http.get(url(path)).send().await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{path} without a token"
        );
        let wrong = http.get(url(path)).bearer_auth("tgw_wrong").send().await.unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{path} with a wrong bearer token");
        let cookie = http.get(url(path)).header("cookie", "taskgate_session=tgw_wrong").send().await.unwrap();
        assert_eq!(cookie.status(), StatusCode::UNAUTHORIZED, "{path} with a wrong cookie");
    }
    let denied = http.post(url("/api/approvals/1/approve")).json(&json!({})).send().await.unwrap();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(http.get(url("/api/tasks")).bearer_auth(&gw.token).send().await.unwrap().status(), StatusCode::OK);

    // Login: a wrong token sets nothing; the right one sets an HttpOnly, SameSite=Strict cookie.
    let bad = http.post(url("/api/login")).json(&json!({"token": "nope"})).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(bad.headers().get("set-cookie").is_none());
    let good = http.post(url("/api/login")).json(&json!({"token": gw.token})).send().await.unwrap();
    assert_eq!(good.status(), StatusCode::NO_CONTENT);
    let cookie = good.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();
    let session = http.get(url("/api/session")).header("cookie", &pair).send().await.unwrap();
    assert_eq!(session.status(), StatusCode::OK);
    assert_eq!(session.json::<Value>().await.unwrap()["display_name"], "Ada (web)");
    let out = http.post(url("/api/logout")).header("cookie", &pair).send().await.unwrap();
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));

    // Rotating the token (what `taskgate token --rotate` does) locks the old one out at once.
    let new = taskgate::web::auth::rotate_token(gw.store.as_ref()).await.unwrap();
    let old = http.get(url("/api/tasks")).bearer_auth(&gw.token).send().await.unwrap();
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(http.get(url("/api/tasks")).bearer_auth(&new).send().await.unwrap().status(), StatusCode::OK);
    // Only the hash is stored.
    let stored = gw.store.setting(taskgate::web::auth::TOKEN_SETTING).await.unwrap().unwrap();
    assert_ne!(stored, new);
    assert_eq!(stored, taskgate::web::auth::hash(&new));
    let _ = gw.stop().await;
}

async fn openapi_file_lists_exactly_the_console_routes() {
    let spec: Value = serde_json::from_str(include_str!("../../../bot/openapi.json")).expect("openapi.json is JSON");
    assert!(spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let documented: BTreeSet<(String, String)> = spec["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .expect("operations")
                .keys()
                .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> =
        taskgate::web::route_table().into_iter().map(|(m, p)| (m.to_owned(), p.to_owned())).collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(undocumented.is_empty(), "routes missing from bot/openapi.json: {undocumented:?}");
    assert!(unrouted.is_empty(), "bot/openapi.json documents routes the router lacks: {unrouted:?}");

    // And the table is what the server really routes: every documented operation answers
    // something other than 404/405 (ids that do not exist may 404 with a JSON error body).
    let gw = gateway().await;
    let http = client();
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "999999");
        let request = match method.as_str() {
            "GET" => http.get(format!("{}{concrete}", gw.url)),
            _ => http.post(format!("{}{concrete}", gw.url)).json(&json!({"text": "hello", "token": "x"})),
        };
        let response = if path == "/api/stream" {
            // An endless stream: the status line is enough.
            tokio::time::timeout(Duration::from_secs(5), request.bearer_auth(&gw.token).send()).await.unwrap().unwrap()
        } else {
            request.bearer_auth(&gw.token).send().await.unwrap()
        };
        let status = response.status();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        if status == StatusCode::NOT_FOUND {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert!(body["error"].as_str().is_some_and(|e| e.contains("not found")), "{method} {path} is not routed");
        }
    }
    let _ = gw.stop().await;
}

async fn web_chat_task_timeline_and_an_approval_that_resolves_exactly_once() {
    let gw = gateway().await;
    let api = Api { gw: &gw, http: client() };

    // Live hints: the stream says hello, then names the task once work starts.
    let mut stream = api
        .http
        .get(format!("{}/api/stream", gw.url))
        .bearer_auth(&gw.token)
        .timeout(WAIT)
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));

    api.say("RUN_CMD: echo hi", None).await;
    let approval = eventually("a pending approval", || async {
        let list = api.get("/api/approvals").await;
        list.as_array().and_then(|l| l.first().cloned())
    })
    .await;
    let task = approval["task_id"].as_i64().expect("task id");
    let id = approval["id"].as_i64().expect("approval id");
    assert_eq!(approval["status"], "pending");
    assert!(approval["action"].as_str().unwrap().contains("echo hi"), "{approval}");
    assert!(approval["task_title"].is_string());

    let mut seen = String::new();
    let hinted = tokio::time::timeout(WAIT, async {
        while let Some(chunk) = stream.chunk().await.expect("stream chunk") {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("event: hello") && seen.contains(&format!("\"task\":{task}")) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(hinted, Ok(true), "SSE hello and a hint naming task {task}: {seen}");

    // The task list, filtered.
    let tasks = api.get("/api/tasks?status=waiting_approval&agent=codex&project=demo").await;
    assert_eq!(tasks.as_array().unwrap().len(), 1, "{tasks}");
    assert_eq!(tasks[0]["pending_approvals"], 1);
    assert_eq!(api.get("/api/tasks?agent=claude").await, json!([]));
    let bad =
        api.http.get(format!("{}/api/tasks?status=sleeping", gw.url)).bearer_auth(&gw.token).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // The task page's JSON: the web message with its channel, the decision with its reason.
    let events = api.get(&format!("/api/tasks/{task}/events")).await;
    let message = events.as_array().unwrap().iter().find(|e| e["kind"] == "message").expect("message event");
    assert_eq!(message["channel"], "web");
    assert_eq!(message["body"]["text"], "RUN_CMD: echo hi");
    let decision = events.as_array().unwrap().iter().find(|e| e["kind"] == "decision").expect("decision event");
    assert!(decision["body"]["reason"].is_string());

    // Approve twice (and deny after): the first decides, the others hear who did.
    let (first, decided) = api.post(&format!("/api/approvals/{id}/approve"), json!({"scope": "once"})).await;
    assert_eq!(first, StatusCode::OK, "{decided}");
    assert_eq!(decided["status"], "approved");
    assert_eq!(decided["decided_channel"], "web");
    assert_eq!(decided["decided_by_name"], "Ada (web)");
    let (second, again) = api.post(&format!("/api/approvals/{id}/approve"), json!({})).await;
    assert_eq!(second, StatusCode::CONFLICT);
    assert!(again["error"].as_str().unwrap().contains("already approved by Ada (web) via web"), "{again}");
    let (deny, _) = api.post(&format!("/api/approvals/{id}/deny"), json!({})).await;
    assert_eq!(deny, StatusCode::CONFLICT);
    let (scope, _) = api.post(&format!("/api/approvals/{id}/approve"), json!({"scope": "forever"})).await;
    assert_eq!(scope, StatusCode::BAD_REQUEST);
    let (missing, _) = api.post("/api/approvals/999999/approve", json!({})).await;
    assert_eq!(missing, StatusCode::NOT_FOUND);
    let approvals = gw.store.approvals(task, 10).await.unwrap();
    assert_eq!(approvals.len(), 1);
    let decisions = gw
        .store
        .timeline(task)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.body.to_json()["type"] == "approval_decided")
        .count();
    assert_eq!(decisions, 1, "exactly one decision on the timeline");

    // The command ran once approved; its output and the result reach the timeline.
    let events = eventually("the turn's result", || async {
        let events = api.get(&format!("/api/tasks/{task}/events")).await;
        events.as_array().unwrap().iter().any(|e| e["kind"] == "result").then_some(events)
    })
    .await;
    let command = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "command" && e["body"]["output_tail"].as_str().is_some_and(|o| o.contains("hi")));
    assert!(command.is_some(), "a command event with its output tail: {events}");
    let after = events.as_array().unwrap().last().unwrap()["id"].as_i64().unwrap();
    assert_eq!(api.get(&format!("/api/tasks/{task}/events?after={after}")).await, json!([]));

    let detail = api.get(&format!("/api/tasks/{task}")).await;
    assert_eq!(detail["task"]["id"], task);
    assert_eq!(detail["executions"][0]["agent"], "codex");
    assert!(detail["executions"][0]["session"]["provider_session_id"].is_string(), "{detail}");
    assert_eq!(detail["approvals"][0]["decided_by_name"], "Ada (web)");
    assert_eq!(api.get(&format!("/api/tasks/{task}/executions")).await.as_array().unwrap().len(), 1);
    assert_eq!(api.get(&format!("/api/approvals/{id}")).await["status"], "approved");
    assert_eq!(api.get("/api/approvals").await, json!([]));

    // The web chat: the message, the approval request with its buttons, the replies; web
    // outbox rows are marked delivered once pushed to a connected browser (our stream).
    let chat = eventually("delivered web replies", || async {
        let chat = api.get("/api/messages").await;
        let lines = chat.as_array()?;
        let delivered = lines.iter().filter(|m| m["from"] == "taskgate").all(|m| m["done"] == true);
        (delivered && lines.iter().any(|m| m["approval"] == id)).then_some(chat)
    })
    .await;
    let lines = chat.as_array().unwrap();
    assert_eq!(lines[0]["from"], "you");
    assert_eq!(lines[0]["text"], "RUN_CMD: echo hi");
    let asking = lines.iter().find(|m| m["approval"] == id).unwrap();
    assert!(asking["text"].as_str().unwrap().starts_with("Codex is waiting for approval"), "{asking}");
    assert_eq!(asking["buttons"], json!([]), "the page draws an approval's own buttons from its id");

    // A client id makes a resend idempotent.
    let body = json!({"text": "thanks", "task": task, "client_id": "abc-1"});
    let (_, one) = api.post("/api/messages", body.clone()).await;
    let (_, two) = api.post("/api/messages", body).await;
    assert_eq!(one["id"], two["id"]);
    assert_eq!(two["duplicate"], true);
    let (empty, _) = api.post("/api/messages", json!({"text": "  "})).await;
    assert_eq!(empty, StatusCode::BAD_REQUEST);
    let _ = gw.stop().await;
}

fn telegram(text: &str) -> IncomingMessage {
    IncomingMessage {
        channel: Channel::Telegram,
        chat_id: "555".into(),
        thread_id: String::new(),
        sender_id: "111".into(),
        sender_name: "Ada".into(),
        text: text.into(),
        reply_to_task: None,
        chat: Chat::Direct,
        mentioned: false,
        message_id: None,
    }
}

async fn link_joins_web_and_telegram_and_the_task_continues_across_them() {
    let gw = gateway().await;
    let api = Api { gw: &gw, http: client() };

    // Telegram knows Ada already, as a separate person (asking for a code she will not use).
    gw.engine.handle(telegram("/link")).await.unwrap();
    let tg_before = gw.store.find_identity(Channel::Telegram, "111").await.unwrap().unwrap();

    // A task started in web chat, then a code asked for on the web.
    api.say("write the release notes", None).await;
    let task = eventually("the web task", || async {
        let tasks = api.get("/api/tasks").await;
        tasks.as_array()?.iter().find(|t| t["title"].as_str().is_some_and(|s| s.contains("release notes")))?["id"]
            .as_i64()
    })
    .await;
    api.say("/link", None).await;
    let code = eventually("a link code in the web chat", || async {
        let chat = api.get("/api/messages").await;
        chat.as_array()?
            .iter()
            .filter_map(|m| m["text"].as_str()?.strip_prefix("Your link code: ").map(|r| r[..9].to_owned()))
            .next()
    })
    .await;
    let web = gw.store.find_identity(Channel::Web, "console").await.unwrap().unwrap();
    assert_ne!(web.person_id, tg_before.person_id);
    // /link is a command, never a task.
    assert!(gw.store.timeline(task).await.unwrap().iter().all(|e| e.body.to_json()["text"] != "/link"));

    // A wrong code links nothing; the right one, entered on Telegram, joins Ada's identities.
    gw.engine.handle(telegram("/link ZZZZ-ZZZZ")).await.unwrap();
    assert_eq!(gw.store.find_identity(Channel::Telegram, "111").await.unwrap().unwrap().person_id, tg_before.person_id);
    gw.engine.handle(telegram(&format!("/link {}", code.to_lowercase()))).await.unwrap();
    let tg = gw.store.find_identity(Channel::Telegram, "111").await.unwrap().unwrap();
    assert_eq!(tg.person_id, web.person_id, "one person across web and telegram");
    let replies = gw.store.outbox_recent(Channel::Telegram, "555", 20).await.unwrap();
    let linked = replies.iter().find(|o| o.payload.text.starts_with("Linked")).expect("a Linked reply");
    assert_eq!(linked.task_id, Some(task), "the telegram chat now follows the web task");
    // A code works once.
    gw.engine.handle(telegram(&format!("/link {code}"))).await.unwrap();
    let last = gw.store.outbox_recent(Channel::Telegram, "555", 1).await.unwrap();
    assert!(last[0].payload.text.contains("unknown, used or expired"));

    // Continued from Telegram: the same task, and its page shows each message's channel.
    gw.engine.handle(telegram("also mention the new console")).await.unwrap();
    let events = eventually("the telegram follow-up on the web task", || async {
        let events = api.get(&format!("/api/tasks/{task}/events")).await;
        events.as_array()?.iter().any(|e| e["kind"] == "message" && e["channel"] == "telegram").then_some(events)
    })
    .await;
    let channels: Vec<(&str, &str)> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "message")
        .map(|e| (e["channel"].as_str().unwrap(), e["body"]["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        channels,
        vec![("web", "write the release notes"), ("telegram", "also mention the new console")],
        "{events}"
    );
    assert_eq!(api.get("/api/tasks").await.as_array().unwrap().len(), 1, "no second task was started");
    let _ = gw.stop().await;
}

/// The console never shows a finding as trusted once a file it cites has changed.
async fn the_task_page_marks_a_finding_stale_when_its_file_changed() {
    use taskgate_core::model::{NewNoteEntry, NoteKind};
    use taskgate_core::store::NewTask;

    let gw = gateway().await;
    let api = Api { gw: &gw, http: client() };
    let project = gw.store.projects().await.unwrap().into_iter().next().expect("the demo project");
    let dir = std::path::PathBuf::from(&project.path);
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    git(&["init", "-q"]);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/a.rs"), "fn a() {}\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-qm", "first"]);
    let head = git(&["rev-parse", "HEAD"]);

    let task = gw
        .store
        .create_task(NewTask {
            project_id: Some(project.id),
            title: "flaky a".into(),
            goal: "flaky a".into(),
            created_by: None,
        })
        .await
        .unwrap();
    gw.store
        .add_note_entry(NewNoteEntry {
            task_id: task.id,
            kind: NoteKind::Verified,
            text: "a() is the culprit".into(),
            evidence: vec!["file:src/a.rs".into()],
            author: "person:1".into(),
            commit: Some(head),
        })
        .await
        .unwrap();
    let shown = api.get(&format!("/api/tasks/{}", task.id)).await;
    assert_eq!(shown["note_entries"][0]["stale_because"], json!([]), "{shown}");

    std::fs::write(dir.join("src/a.rs"), "fn a() { changed() }\n").unwrap();
    git(&["commit", "-qam", "change a"]);
    let shown = api.get(&format!("/api/tasks/{}", task.id)).await;
    assert_eq!(shown["note_entries"][0]["kind"], "verified", "the stored entry is not overwritten");
    assert_eq!(shown["note_entries"][0]["stale_because"], json!(["src/a.rs"]), "{shown}");
    let _ = gw.stop().await;
}

/// A clarify button in web chat applies its reading to the original message, once.
async fn a_clarify_button_completes_the_original_message_once() {
    use taskgate_core::model::NewOutbound;

    let gw = gateway().await;
    let api = Api { gw: &gw, http: client() };
    // What the engine writes for a clarify: the readings as options, the original text kept.
    let reading = |intent: &str, reason: &str| {
        json!({"intent": intent, "task": null, "agent": null, "role": null, "approval": null, "scope": null,
               "confidence": 0.5, "reason": reason})
    };
    let choice = |choice: usize, label: &str, reading: serde_json::Value| json!({"label": label, "action": {"do": "choose", "choice": choice, "reading": reading}});
    let row = gw
        .store
        .outbox_enqueue(NewOutbound {
            channel: Channel::Web,
            chat_id: "console".into(),
            task_id: None,
            approval_id: None,
            payload: taskgate_core::reply::Reply::from_json(json!({
                "text": "Did you mean:",
                "buttons": [
                    choice(0, "Start a new task", reading("new_task", "a new goal")),
                    choice(1, "Show status", reading("status", "status")),
                ],
                "thread_id": "",
                "source_text": "RUN_CMD: echo chosen",
            })),
        })
        .await
        .unwrap();

    let (status, body) = api.post(&format!("/api/messages/out-{}/choose", row.id), json!({"choice": 0})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["chosen"], "Start a new task");
    let task = eventually("the task the reading started", || async {
        gw.store.tasks(10).await.ok()?.into_iter().find(|t| t.goal == "RUN_CMD: echo chosen")
    })
    .await;
    assert_eq!(task.title, "echo chosen", "from the original message, not the button's label");

    let (status, _) = api.post(&format!("/api/messages/out-{}/choose", row.id), json!({"choice": 1})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a second press does nothing");
    let (status, _) = api.post("/api/messages/in-1/choose", json!({"choice": 0})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(gw.store.tasks(10).await.unwrap().len(), 1);
    let _ = gw.stop().await;
}
