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
use taskgate_tests::db::{self, Backend, TestDb};
use taskgate_tests::harness::{Flavor, Trial, WAIT, eventually};

pub fn trials() -> Vec<Trial> {
    let mut trials = taskgate_tests::trials! {
        multi_thread(2): [
            every_api_route_needs_the_token_and_wrong_tokens_get_401,
            openapi_file_lists_exactly_the_console_routes,
            web_chat_task_timeline_and_an_approval_that_resolves_exactly_once,
            link_joins_web_and_telegram_and_the_task_continues_across_them,
            the_task_page_marks_a_finding_stale_when_its_file_changed,
            a_clarify_button_completes_the_original_message_once,
            task_controls_stop_rename_new_session_and_another_agent,
            search_finds_tasks_by_title_and_text_and_the_list_follows_last_activity,
            a_file_change_approval_carries_its_diff_before_the_decision,
            a_reply_telegram_refuses_for_good_is_listed_as_undelivered,
        ],
        blocking: [
            token_without_rotate_fails_once_a_token_exists_and_sessions_lists_and_revokes,
        ],
    };
    for backend in [Backend::Sqlite, Backend::Postgres] {
        trials.extend(db::trials(module_path!(), backend, DB_CASES, Flavor::MultiThread(4), Some(WAIT)));
    }
    trials
}

const DB_CASES: &[(&str, db::Case)] = taskgate_tests::db_cases![racing_replicas_create_the_login_token_once];

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

    // The manifest, icons and service worker (fetched without cookies), the API description
    // and logging out need nothing.
    for path in ["/manifest.webmanifest", "/icon-192.png", "/icon-512.png", "/icon.svg", "/sw.js", "/api/openapi.json"]
    {
        assert_eq!(http.get(url(path)).send().await.unwrap().status(), StatusCode::OK, "{path} is public");
    }
    assert_eq!(http.post(url("/api/logout")).send().await.unwrap().status(), StatusCode::NO_CONTENT);

    // Login: a wrong token sets nothing; the right one opens a server-side session whose random
    // id (never the token) is an HttpOnly, SameSite=Strict cookie; Secure only behind https.
    let bad = http.post(url("/api/login")).json(&json!({"token": "nope"})).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(bad.headers().get("set-cookie").is_none());
    let pair = login(&http, &gw, None).await;
    assert!(!pair.contains(&gw.token), "the login token is never the cookie: {pair}");
    assert!(pair.starts_with("taskgate_session=tgs_"), "{pair}");
    let session = http.get(url("/api/session")).header("cookie", &pair).send().await.unwrap();
    assert_eq!(session.status(), StatusCode::OK);
    let session: Value = session.json().await.unwrap();
    assert_eq!(session["display_name"], "Ada (web)");
    assert_eq!(session["via"], "session");
    assert_eq!(session["agents"], json!(["claude", "codex"]));
    let as_cookie = format!("taskgate_session={}", gw.token);
    let token_cookie = http.get(url("/api/tasks")).header("cookie", &as_cookie).send().await.unwrap();
    assert_eq!(token_cookie.status(), StatusCode::UNAUTHORIZED, "the token is not a session id");
    // Only the session id's hash is stored, with an expiry about 30 days out.
    let sessions = gw.store.web_sessions(chrono::Utc::now()).await.unwrap();
    assert_eq!(sessions.len(), 1);
    let days = (sessions[0].expires_at - chrono::Utc::now()).num_days();
    assert!((29..=30).contains(&days), "expires in {days} days");

    // Behind an https proxy the cookie is Secure.
    let https = http
        .post(url("/api/login"))
        .header("x-forwarded-proto", "https")
        .json(&json!({"token": gw.token}))
        .send()
        .await
        .unwrap();
    let secure = https.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(secure.contains("; Secure"), "{secure}");

    // Logging out ends the session on the server: the same cookie, replayed, gets 401.
    let out = http.post(url("/api/logout")).header("cookie", &pair).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    for path in ["/api/tasks", "/api/session", "/api/stream"] {
        let replayed = http.get(url(path)).header("cookie", &pair).send().await.unwrap();
        assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED, "{path} with a logged-out cookie");
    }
    assert_eq!(gw.store.web_sessions(chrono::Utc::now()).await.unwrap().len(), 1, "only the https one is left");

    // Rotating the token (what `taskgate token --rotate` does) locks the old one out at once
    // and ends every session.
    let pair = login(&http, &gw, None).await;
    let new = taskgate::web::auth::rotate_token(gw.store.as_ref()).await.unwrap();
    let old = http.get(url("/api/tasks")).bearer_auth(&gw.token).send().await.unwrap();
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let ended = http.get(url("/api/tasks")).header("cookie", &pair).send().await.unwrap();
    assert_eq!(ended.status(), StatusCode::UNAUTHORIZED, "sessions end with the token they were opened with");
    assert!(gw.store.web_sessions(chrono::Utc::now()).await.unwrap().is_empty());
    assert_eq!(http.get(url("/api/tasks")).bearer_auth(&new).send().await.unwrap().status(), StatusCode::OK);
    // Only the hash is stored.
    let stored = gw.store.setting(taskgate::web::auth::TOKEN_SETTING).await.unwrap().unwrap();
    assert_ne!(stored, new);
    assert_eq!(stored, taskgate::web::auth::hash(&new));
    let _ = gw.stop().await;
}

/// Logs in with the gateway's token; the `name=value` of the session cookie it set.
async fn login(http: &reqwest::Client, gw: &TestApp, proto: Option<&str>) -> String {
    let mut request = http.post(format!("{}/api/login", gw.url)).json(&json!({"token": gw.token}));
    if let Some(proto) = proto {
        request = request.header("x-forwarded-proto", proto);
    }
    let good = request.send().await.unwrap();
    assert_eq!(good.status(), StatusCode::NO_CONTENT);
    let cookie = good.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure") || proto == Some("https"), "no Secure over plain http: {cookie}");
    cookie.split(';').next().unwrap().to_owned()
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
    // The server serves the same document.
    let served: Value = http.get(format!("{}/api/openapi.json", gw.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(served, spec, "GET /api/openapi.json is bot/openapi.json");
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
        inbound: None,
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

/// Several replicas starting on one fresh database: exactly one creates (and may print) the
/// login token; the others find it, and it is the one that works.
async fn racing_replicas_create_the_login_token_once(db: &TestDb) -> anyhow::Result<()> {
    use taskgate::web::auth::{TokenState, ensure_token, verify};
    let mut replicas = Vec::new();
    for _ in 0..6 {
        replicas.push(std::sync::Arc::new(db.store().await?));
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(replicas.len()));
    let runs = replicas.iter().cloned().map(|store| {
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            ensure_token(&store).await
        })
    });
    let mut created = Vec::new();
    for run in futures_util::future::join_all(runs).await {
        if let TokenState::Created(token) = run?? {
            created.push(token);
        }
    }
    anyhow::ensure!(created.len() == 1, "exactly one replica creates the token, not {}", created.len());
    anyhow::ensure!(verify(replicas[0].as_ref(), &created[0]).await?, "the printed token is the stored one");
    anyhow::ensure!(ensure_token(&replicas[1]).await? == TokenState::Existing);
    Ok(())
}

/// The CLI: `taskgate token` creates and prints the token once, then fails (non-zero, saying
/// why) instead of printing nothing; `--rotate` replaces it; `taskgate sessions` lists and
/// revokes console sessions.
fn token_without_rotate_fails_once_a_token_exists_and_sessions_lists_and_revokes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_taskgate-cli"));
        cmd.current_dir(dir.path()).args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("TASKGATE_") {
                cmd.env_remove(key);
            }
        }
        let out = cmd.output().expect("taskgate runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = run(&["token"]);
    assert!(!ok && err.contains("no database"), "no token into a database no gateway reads: {err}");
    let (ok, _, err) = run(&["migrate"]);
    assert!(ok, "{err}");
    let (ok, first, _) = run(&["token"]);
    assert!(ok && first.trim().starts_with("tgw_"), "first `taskgate token` prints the new token: {first}");
    let (ok, out, err) = run(&["token"]);
    assert!(!ok, "a second `taskgate token` fails");
    assert!(out.is_empty(), "and prints no token: {out}");
    assert!(err.contains("already set") && err.contains("taskgate token --rotate"), "{err}");
    let (ok, rotated, err) = run(&["token", "--rotate"]);
    assert!(ok && rotated.trim().starts_with("tgw_") && rotated != first, "{rotated} {err}");

    let (ok, out, _) = run(&["sessions"]);
    assert!(ok && out.contains("no console sessions"), "{out}");
    let ids: Vec<i64> = harness_block_on(async {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("data/taskgate.db").display());
        let store = taskgate_adapters::store::SeaStore::connect(&url).await.unwrap();
        let until = chrono::Utc::now() + chrono::Duration::days(1);
        let a = store.create_web_session("a".repeat(64).as_str(), "Firefox on a phone", until).await.unwrap();
        let b = store.create_web_session("b".repeat(64).as_str(), "", until).await.unwrap();
        store.close().await.unwrap();
        vec![a.id, b.id]
    });
    let (ok, out, _) = run(&["sessions"]);
    assert!(ok && out.contains("Firefox on a phone") && out.contains("unknown browser"), "{out}");
    let (ok, out, _) = run(&["sessions", "--revoke", &ids[0].to_string()]);
    assert!(ok && out.contains(&format!("ended session {}", ids[0])), "{out}");
    let (ok, _, err) = run(&["sessions", "--revoke", "999"]);
    assert!(!ok && err.contains("no session 999"), "{err}");
    let (ok, out, _) = run(&["sessions", "--revoke-all"]);
    assert!(ok && out.contains("ended 1 session(s)"), "{out}");
    let (_, out, _) = run(&["sessions"]);
    assert!(out.contains("no console sessions"), "{out}");
}

fn harness_block_on<F: std::future::Future>(future: F) -> F::Output {
    taskgate_tests::harness::block_on(Flavor::CurrentThread, future)
}

/// The events of `task` whose body has `type` equal to `kind`.
async fn bodies(api: &Api<'_>, task: i64, kind: &str) -> Vec<Value> {
    let events = api.get(&format!("/api/tasks/{task}/events")).await;
    events.as_array().unwrap().iter().filter(|e| e["body"]["type"] == kind).map(|e| e["body"].clone()).collect()
}

async fn task_controls_stop_rename_new_session_and_another_agent() {
    let gw = gateway().await;
    let api = Api { gw: &gw, http: client() };
    api.say("SLOW_REPLY: take your time", None).await;
    let task = eventually("the running task", || async {
        let tasks = api.get("/api/tasks?status=running").await;
        tasks.as_array()?.first()?["id"].as_i64()
    })
    .await;
    eventually("the turn to have started", || async {
        (!bodies(&api, task, "turn_started").await.is_empty()).then_some(())
    })
    .await;

    // Stop interrupts the running turn.
    let (status, body) = api.post(&format!("/api/tasks/{task}/stop"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let outcome = eventually("the interrupted turn", || async {
        bodies(&api, task, "turn_finished").await.first().map(|b| b["outcome"]["status"].clone())
    })
    .await;
    assert_eq!(outcome, "interrupted");
    eventually("the task to stop running", || async {
        let t = api.get(&format!("/api/tasks/{task}")).await;
        (t["task"]["status"] != "running").then_some(())
    })
    .await;
    let (again, body) = api.post(&format!("/api/tasks/{task}/stop"), json!({})).await;
    assert_eq!(again, StatusCode::CONFLICT, "nothing runs any more: {body}");
    let (missing, _) = api.post("/api/tasks/999999/stop", json!({})).await;
    assert_eq!(missing, StatusCode::NOT_FOUND);

    // Rename: the title changes, the old one stays on the timeline.
    let (status, renamed) =
        api.post(&format!("/api/tasks/{task}/rename"), json!({"title": "  Slow   reply check "})).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["title"], "Slow reply check");
    let field = bodies(&api, task, "note_field").await;
    assert_eq!(field.len(), 1);
    assert_eq!(field[0]["field"], "title");
    assert_eq!(field[0]["previous"], "take your time");
    let (empty, _) = api.post(&format!("/api/tasks/{task}/rename"), json!({"title": "  "})).await;
    assert_eq!(empty, StatusCode::BAD_REQUEST);

    // Another agent joins as reviewer; an unknown agent or role is refused.
    let (status, spawned) =
        api.post(&format!("/api/tasks/{task}/agents"), json!({"agent": "claude", "role": "reviewer"})).await;
    assert_eq!(status, StatusCode::OK, "{spawned}");
    assert_eq!(spawned["execution"]["agent"], "claude");
    assert_eq!(spawned["execution"]["role"], "reviewer");
    let (unknown, _) = api.post(&format!("/api/tasks/{task}/agents"), json!({"agent": "nobody"})).await;
    assert_eq!(unknown, StatusCode::BAD_REQUEST);
    let (role, _) = api.post(&format!("/api/tasks/{task}/agents"), json!({"agent": "claude", "role": "boss"})).await;
    assert_eq!(role, StatusCode::BAD_REQUEST);
    let detail = api.get(&format!("/api/tasks/{task}")).await;
    let agents: Vec<(&str, &str)> = detail["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["agent"].as_str().unwrap(), e["role"].as_str().unwrap()))
        .collect();
    assert_eq!(agents, vec![("codex", "editor"), ("claude", "reviewer")]);

    // New session: the engine hears `/new` on the task.
    let (status, body) = api.post(&format!("/api/tasks/{task}/new-session"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let decisions = bodies(&api, task, "decision").await;
    assert!(decisions.iter().any(|d| d["intent"] == "new_session"), "{decisions:?}");
    let _ = gw.stop().await;
}

async fn search_finds_tasks_by_title_and_text_and_the_list_follows_last_activity() {
    let gw = gateway().await;
    let api = Api { gw: &gw, http: client() };
    api.say("write the changelog", None).await;
    let first = eventually("the first task's reply", || async {
        let tasks = api.get("/api/tasks").await;
        let t = tasks.as_array()?.first()?.clone();
        (t["status"] != "running" && !bodies(&api, t["id"].as_i64()?, "turn_finished").await.is_empty())
            .then(|| t["id"].as_i64())
            .flatten()
    })
    .await;
    api.say("/new tune the database pool", None).await;
    let second = eventually("the second task", || async {
        let tasks = api.get("/api/tasks").await;
        let list = tasks.as_array()?;
        (list.len() == 2 && list[0]["id"] != first).then(|| list[0]["id"].as_i64()).flatten()
    })
    .await;

    // By title (any case, every word), and by what was said on the timeline.
    let by_title = api.get("/api/tasks?q=Database%20POOL").await;
    assert_eq!(by_title.as_array().unwrap().len(), 1, "{by_title}");
    assert_eq!(by_title[0]["id"], second);
    assert!(by_title[0].get("matched").is_none());
    let by_text = api.get("/api/tasks?q=fake-reply%20changelog").await;
    assert_eq!(by_text.as_array().unwrap().len(), 1, "{by_text}");
    assert_eq!(by_text[0]["id"], first);
    let line = by_text[0]["matched"].as_str().unwrap_or_default();
    assert!(line.to_lowercase().contains("fake-reply"), "the matching line: {by_text}");
    assert_eq!(api.get("/api/tasks?q=nothing%20like%20this").await, json!([]));

    // The list is ordered by last activity: a follow-up on the first task puts it on top.
    api.say("and mention the console", Some(first)).await;
    eventually("the first task back on top", || async {
        let tasks = api.get("/api/tasks").await;
        let list = tasks.as_array()?;
        let top = list.first()?;
        let ordered = list.windows(2).all(|w| w[0]["last_activity"].as_str() >= w[1]["last_activity"].as_str());
        (top["id"] == first && ordered).then_some(())
    })
    .await;
    let _ = gw.stop().await;
}

async fn a_file_change_approval_carries_its_diff_before_the_decision() {
    let gw = gateway().await;
    let api = Api { gw: &gw, http: client() };
    api.say("WRITE_FILE: notes.txt", None).await;
    let approval = eventually("the file-change approval", || async {
        api.get("/api/approvals").await.as_array().and_then(|l| l.first().cloned())
    })
    .await;
    let id = approval["id"].as_i64().unwrap();
    let task = approval["task_id"].as_i64().unwrap();
    assert_eq!(approval["request"]["kind"], "file_change", "{approval}");
    let diff = approval["request"]["detail"].as_str().unwrap_or_default();
    assert!(diff.contains("notes.txt") && diff.contains("hello from fake model"), "{approval}");
    assert_eq!(approval["request"]["agent"], "Codex");
    // The same on the task, one approval, and in the chat line that asks.
    let detail = api.get(&format!("/api/tasks/{task}")).await;
    assert_eq!(detail["approvals"][0]["request"]["detail"], approval["request"]["detail"]);
    assert_eq!(api.get(&format!("/api/approvals/{id}")).await["request"]["kind"], "file_change");
    let asking = eventually("the chat line asking for it", || async {
        let chat = api.get("/api/messages").await;
        chat.as_array()?.iter().find(|m| m["approval"] == id).cloned()
    })
    .await;
    assert_eq!(asking["approval_state"]["status"], "pending");
    assert_eq!(asking["approval_state"]["request"]["kind"], "file_change");
    let (status, decided) = api.post(&format!("/api/approvals/{id}/approve"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(decided["request"]["kind"], "file_change", "{decided}");
    let _ = gw.stop().await;
}

/// Ada blocked the bot: the answer to her message can never be delivered. It is given up at
/// once (not retried for ever) and the console lists it, with Telegram's reason, among the
/// undelivered; the next answer, once she unblocks, is delivered and not listed.
async fn a_reply_telegram_refuses_for_good_is_listed_as_undelivered() {
    use taskgate_tests::fake_telegram::FakeTelegram;
    const TOKEN: &str = "123456:UNDELIVERED-token";
    let fake = FakeTelegram::start(TOKEN).await.expect("fake telegram");
    let mut world = taskgate_tests::world::World::new();
    world.config.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    world.config.server.data_dir = world.dir.path().join("data");
    world.config.telegram = Some(
        toml::from_str(&format!("token = \"{TOKEN}\"\napi_url = \"{}\"\nallowed_users = [111]\n", fake.url()))
            .expect("telegram config"),
    );
    let gw = taskgate_tests::app::spawn_app(&world.config).await.expect("gateway starts");
    let api = Api { gw: &gw, http: client() };
    let update = |id: i64| {
        json!({"update_id": id, "message": {"message_id": id, "date": 1_700_000_000,
            "chat": {"id": 111, "type": "private", "first_name": "Ada"},
            "from": {"id": 111, "is_bot": false, "first_name": "Ada"}, "text": "/status"}})
    };
    fake.fail("sendMessage", 1, 403, "Forbidden: bot was blocked by the user", None);
    fake.push_update(update(1));
    let listed = eventually("the refused answer listed", || async {
        let u = api.get("/api/undelivered").await;
        u["messages"].as_array().filter(|m| !m.is_empty()).cloned()
    })
    .await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0]["channel"].as_str(), listed[0]["chat_id"].as_str()), (Some("telegram"), Some("111")));
    assert!(listed[0]["error"].as_str().is_some_and(|e| e.contains("blocked")), "{listed:?}");
    assert!(listed[0]["text"].as_str().is_some_and(|t| !t.is_empty()), "what was not delivered: {listed:?}");
    // Unblocked: the next answer arrives, and the list is unchanged.
    fake.push_update(update(2));
    eventually("the next answer delivered", || async { (!fake.sent_texts(111).is_empty()).then_some(()) }).await;
    let after = api.get("/api/undelivered").await;
    assert_eq!(after["messages"].as_array().map(Vec::len), Some(1), "{after}");
    assert_eq!(after["updates"].as_array().map(Vec::len), Some(0), "{after}");
    drop(gw);
    drop(world);
}
