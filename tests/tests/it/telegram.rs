//! The Telegram channel end to end: the real teloxide client against a fake Bot API, the real
//! engine, store (SQLite in a temp dir) and runtime adapters, with the fake agent binary.
//! Assertions read the fake's recorded calls and the store, never log text.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use futures_util::StreamExt;
use serde_json::{Value, json};
use taskgate::config::{Config, TelegramConfig};
use taskgate::engine::Engine;
use taskgate::telegram::{self, Telegram};
use taskgate_adapters::store::SeaStore;
use taskgate_core::model::*;
use taskgate_core::store::Store;
use taskgate_tests::app::{Port, spawn_app};
use taskgate_tests::fake_telegram::{BOT_ID, BOT_USERNAME, Call, FakeTelegram, channel_options};
use taskgate_tests::harness::{Trial, connected, eventually};
use taskgate_tests::reads::completed_turns;
use taskgate_tests::world::World;

pub fn trials() -> Vec<Trial> {
    let mut trials = taskgate_tests::db::trials(
        module_path!(),
        taskgate_tests::db::Backend::Postgres,
        POSTGRES_CASES,
        taskgate_tests::harness::Flavor::MultiThread(2),
        None,
    );
    trials.extend(taskgate_tests::trials! {
        multi_thread(2): [
            a_thousand_webhook_deliveries_with_a_concurrent_writer_are_all_stored,
            a_burst_over_five_chats_is_answered_and_an_approval_overtakes_the_chatter,
            a_flood_from_one_person_does_not_hold_up_another,
        ],
        current_thread: [
            approval_button_follow_up_and_review,
            a_turn_edits_one_status_message_in_place,
            a_deleted_status_message_is_replaced_by_a_new_one,
            a_clarify_button_approves_exactly_its_approval,
            strangers_group_chatter_and_duplicates,
            webhook_checks_the_secret_and_deduplicates,
            rate_limited_send_is_retried_after_retry_after,
            a_forum_topic_is_answered_in_its_topic,
            serve_starts_the_channel_from_config,
            serve_starts_while_telegram_is_down_and_connects_when_it_comes_up,
            one_approved_command_notifies_at_most_three_times_and_a_follow_up_once,
            group_answers_reply_to_the_message_they_answer,
            a_refused_stranger_hears_once_an_hour_and_waits_behind_allowed_people,
            title_renames_the_task,
            a_private_chat_sees_the_answer_stream_as_a_draft_then_one_message,
        ],
    });
    trials
}

const POSTGRES_CASES: &[(&str, taskgate_tests::db::Case)] =
    taskgate_tests::db_cases![a_nul_in_an_update_is_stored_and_the_next_is_answered];

/// The webhook route and channel of an engine on `store`, served on a local port: the URL.
async fn webhook_on(
    world: &TelegramWorld,
    engine: Engine,
) -> (String, Arc<SeaStore>, taskgate_tests::app::Server, Telegram) {
    let (store, _engine, channel) = world.gateway_with("webhook", engine).await;
    let state = taskgate::http::AppState {
        store: store.clone(),
        metrics: taskgate::metrics::Metrics::new(),
        links: Default::default(),
    };
    let app = taskgate::http::router(state).layer(Extension(channel.webhook()));
    let server = Port::bind().await.serve(app);
    (format!("http://{}/webhook/telegram", server.addr), store, server, channel)
}

/// PostgreSQL cannot keep a NUL in text: an update with one is still stored (the NUL replaced)
/// and acknowledged 200, and the update after it is answered (no poison row stops polling or
/// the webhook).
async fn a_nul_in_an_update_is_stored_and_the_next_is_answered(db: &taskgate_tests::db::TestDb) -> anyhow::Result<()> {
    let world = TelegramWorld::new().await;
    let engine = world.world.engine_with_store(db.store().await?);
    engine.start();
    let (url, store, _server, _channel) = webhook_on(&world, engine).await;
    let client = reqwest::Client::new();
    for update in [text_update(50, ADA as i64, ADA, "make\u{0}it green"), text_update(51, ADA as i64, ADA, "/status")] {
        let response = client.post(&url).header("X-Telegram-Bot-Api-Secret-Token", SECRET).json(&update).send().await?;
        assert_eq!(response.status(), 200, "stored and acknowledged");
    }
    sent(&world.fake, ADA as i64, "the answer to the next update", |t| t.contains("make\u{FFFD}it green")).await;
    let task = store.tasks(10).await?.into_iter().next().expect("the first update's task");
    assert_eq!(task.goal, "make\u{FFFD}it green");
    assert!(store.inbox_set_aside(10).await?.is_empty(), "nothing set aside");
    Ok(())
}

/// The webhook at full speed on SQLite while the engine writes beside it (each update is
/// handled, answered and written to the outbox, and a writer appends to a timeline): every
/// delivery is acknowledged 200 once stored, none 5xx, and every update is stored exactly once.
async fn a_thousand_webhook_deliveries_with_a_concurrent_writer_are_all_stored() {
    let world = TelegramWorld::new().await;
    let (url, store, _server, _channel) = webhook_on(&world, world.world.engine().await).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let task = store
                .create_task(taskgate_core::store::NewTask {
                    project_id: None,
                    title: "busy".into(),
                    goal: "busy".into(),
                    created_by: None,
                })
                .await
                .expect("task");
            let mut writes = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let event = NewEvent {
                    task_id: task.id,
                    execution_id: None,
                    channel: None,
                    actor: None,
                    body: Body::AgentText { text: format!("write {writes}") }.into(),
                };
                store.append_event(event).await.expect("a concurrent write");
                writes += 1;
            }
            writes
        })
    };
    let client = reqwest::Client::new();
    let statuses: Vec<u16> = futures_util::stream::iter(0..1000i64)
        .map(|n| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                // Updates from a stranger: refused by the drain (one refusal), stored all the same.
                let update = text_update(10_000 + n, STRANGER as i64, STRANGER, &format!("hello {n}"));
                let response = client
                    .post(&url)
                    .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
                    .json(&update)
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await;
                response.map(|r| r.status().as_u16()).unwrap_or(0)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.await.expect("writer");
    let failed: Vec<&u16> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(failed.is_empty(), "{} of 1000 not acknowledged 200: {:?}", failed.len(), &failed[..failed.len().min(10)]);
    assert!(writes > 0, "the writer wrote alongside");
    let stored = store.inbox_recent(Channel::Telegram, 2000).await.unwrap();
    let mut ids: Vec<&str> = stored.iter().map(|r| r.external_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((stored.len(), ids.len()), (1000, 1000), "every update stored exactly once");
}

const TOKEN: &str = "123456:TEST-token";
const ADA: u64 = 111;
const STRANGER: u64 = 222;
const BOB: u64 = 333;
/// Five more allowed people, one private chat each.
const BURST_USERS: [u64; 5] = [401, 402, 403, 404, 405];
const SECRET: &str = "hook-secret_1";

/// The shared world and a fake Bot API.
struct TelegramWorld {
    world: World,
    fake: FakeTelegram,
}

impl TelegramWorld {
    async fn new() -> Self {
        let fake = FakeTelegram::start(TOKEN).await.expect("fake telegram");
        TelegramWorld { world: World::new(), fake }
    }

    fn telegram_config(&self, mode: &str) -> TelegramConfig {
        let text = format!(
            "token = \"{TOKEN}\"\napi_url = \"{}\"\nmode = \"{mode}\"\nwebhook_secret = \"{SECRET}\"\nallowed_users = [{ADA}, {BOB}, {}]\n",
            self.fake.url(),
            BURST_USERS.map(|u| u.to_string()).join(", ")
        );
        toml::from_str(&text).expect("telegram config")
    }

    /// The engine (with the Telegram allow-lists as its admission hook) and the channel.
    async fn gateway(&self, mode: &str) -> (Arc<SeaStore>, Arc<Engine>, Telegram) {
        self.gateway_with(mode, self.world.engine().await).await
    }

    async fn gateway_with(&self, mode: &str, engine: Engine) -> (Arc<SeaStore>, Arc<Engine>, Telegram) {
        self.gateway_with_options(mode, engine, channel_options()).await
    }

    async fn gateway_with_options(
        &self,
        mode: &str,
        engine: Engine,
        options: telegram::TelegramOptions,
    ) -> (Arc<SeaStore>, Arc<Engine>, Telegram) {
        let config = self.telegram_config(mode);
        engine.set_admission(Channel::Telegram, telegram::admission(&config));
        let engine = Arc::new(engine);
        let links = options.links.clone();
        let channel = Telegram::start(engine.clone(), &config, None, options).await.expect("telegram starts");
        connected(&links).await;
        (engine.store().clone(), engine, channel)
    }
}

fn user(id: u64) -> Value {
    let name = match id {
        ADA => "Ada",
        BOB => "Bob",
        _ => "Mallory",
    };
    json!({"id": id, "is_bot": false, "first_name": name, "username": name.to_lowercase()})
}

fn chat(id: i64) -> Value {
    if id < 0 {
        json!({"id": id, "type": "supergroup", "title": "team"})
    } else {
        json!({"id": id, "type": "private", "first_name": "Ada"})
    }
}

fn text_update(update_id: i64, chat_id: i64, from: u64, text: &str) -> Value {
    json!({"update_id": update_id, "message": {
        "message_id": update_id * 10, "date": 1_700_000_000, "chat": chat(chat_id), "from": user(from), "text": text
    }})
}

fn reply_update(update_id: i64, chat_id: i64, from: u64, text: &str, to: i64) -> Value {
    let mut u = text_update(update_id, chat_id, from, text);
    u["message"]["reply_to_message"] = json!({
        "message_id": to, "date": 1_700_000_000, "chat": chat(chat_id),
        "from": {"id": BOT_ID, "is_bot": true, "first_name": "Taskgate", "username": BOT_USERNAME}, "text": "…"
    });
    u
}

fn press_update(update_id: i64, chat_id: i64, from: u64, message: &Call, data: &str) -> Value {
    json!({"update_id": update_id, "callback_query": {
        "id": format!("cb-{update_id}"), "from": user(from), "chat_instance": "ci", "data": data,
        "message": {
            "message_id": message.message_id().expect("a sent message"), "date": 1_700_000_000, "chat": chat(chat_id),
            "from": {"id": BOT_ID, "is_bot": true, "first_name": "Taskgate", "username": BOT_USERNAME},
            "text": message.body["text"].as_str().unwrap_or_default()
        }
    }})
}

/// The first successful `sendMessage` to `chat` after the `skip` first, whose text passes `pred`.
async fn sent(fake: &FakeTelegram, chat: i64, what: &str, pred: impl Fn(&str) -> bool) -> Call {
    eventually(what, || async {
        fake.calls_to("sendMessage").into_iter().find(|c| {
            c.status == 200
                && c.body["chat_id"].as_i64() == Some(chat)
                && pred(c.body["text"].as_str().unwrap_or_default())
        })
    })
    .await
    .clone()
}

/// The first approval card sent to `chat` whose text passes `pred`: a message whose buttons
/// decide (`a:…`), not the live status, which says the same with a Stop button.
async fn card(fake: &FakeTelegram, chat: i64, what: &str, pred: impl Fn(&str) -> bool) -> Call {
    eventually(what, || async {
        fake.calls_to("sendMessage").into_iter().find(|c| {
            c.status == 200
                && c.body["chat_id"].as_i64() == Some(chat)
                && c.callback_data().first().is_some_and(|d| d.starts_with("a:"))
                && pred(c.body["text"].as_str().unwrap_or_default())
        })
    })
    .await
}

/// A task asks for approval; the Approve button (a callback query) resolves exactly that
/// approval, the buttons become "Approved by @ada", the summary arrives; a reply continues the
/// same runtime session; "use cc to review it too" adds a reviewer; a second press hears who
/// decided. The reviewer's own approval is answered with "Always".
async fn approval_button_follow_up_and_review() {
    let world = TelegramWorld::new().await;
    let (store, _engine, _channel) = world.gateway("polling").await;
    let fake = &world.fake;
    let chat = ADA as i64;

    fake.push_update(text_update(1, chat, ADA, "RUN_CMD: echo telegram-ok"));
    let ask = card(fake, chat, "the approval request", |t| t.contains("waiting for approval")).await;
    let approval = store.pending_approvals(None).await.unwrap().into_iter().next().expect("a pending approval");
    let (id, nonce) = (approval.id, approval.nonce.clone());
    assert_eq!(
        ask.callback_data(),
        vec![
            format!("a:{id}:{nonce}:o"),
            format!("a:{id}:{nonce}:d"),
            format!("a:{id}:{nonce}:a"),
            format!("a:{id}:{nonce}:p")
        ],
        "{}",
        fake.summary()
    );
    assert_eq!(ask.body["parse_mode"], "HTML");
    assert!(ask.body["text"].as_str().unwrap().contains("<code>echo telegram-ok</code>"), "{}", ask.body);
    let task = approval.task_id;
    // Recorded once the sender has the platform's answer (just after the fake saw the call).
    let external = ask.message_id().unwrap().to_string();
    let outbound = eventually("the card's message id recorded", || async {
        store.outbound_by_external_id(Channel::Telegram, &chat.to_string(), &external).await.ok().flatten()
    })
    .await;
    assert_eq!(
        (outbound.task_id, outbound.approval_id),
        (Some(task), Some(id)),
        "the sent message is stored with its task and approval"
    );

    fake.push_update(press_update(2, chat, ADA, &ask, &format!("a:{id}:{nonce}:o")));
    let edit = eventually("the buttons replaced by the decision", || async {
        fake.calls_to("editMessageText")
            .into_iter()
            .find(|c| c.status == 200 && c.body["message_id"].as_i64() == ask.message_id())
    })
    .await;
    assert_eq!(edit.body["message_id"].as_i64(), ask.message_id());
    assert!(edit.body["text"].as_str().unwrap().ends_with("Approved by Ada (Telegram)"), "{}", edit.body);
    assert!(edit.body.get("reply_markup").is_none(), "the keyboard is gone: {}", edit.body);
    let answers = fake.calls_to("answerCallbackQuery");
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].body["callback_query_id"], "cb-2");
    assert_eq!(answers[0].body["text"], "Approved by Ada (Telegram)");
    let decided = store.approval(id).await.unwrap();
    assert_eq!(
        (decided.status, decided.scope, decided.decided_channel),
        (ApprovalStatus::Approved, Some(Scope::Once), Some(Channel::Telegram))
    );

    let summary = sent(fake, chat, "the result summary", |t| t.starts_with("FAKE-REPLY")).await;
    assert!(summary.body["text"].as_str().unwrap().contains("exit=0"), "{}", summary.body);
    let exec = store.executions(task).await.unwrap()[0].clone();
    eventually("the first turn done", || async { (completed_turns(&store, exec.id).await == 1).then_some(()) }).await;
    let first = store.latest_session(exec.id).await.unwrap().expect("session");

    // A reply to the summary continues the same task in the same runtime session.
    fake.push_update(reply_update(3, chat, ADA, "make it say hello again", summary.message_id().unwrap()));
    eventually("the follow-up done", || async { (completed_turns(&store, exec.id).await == 2).then_some(()) }).await;
    let second = store.latest_session(exec.id).await.unwrap().expect("session");
    assert_eq!(second.id, first.id, "no new session row");
    assert_eq!(second.provider_session_id, first.provider_session_id);
    assert_eq!(store.tasks(10).await.unwrap().len(), 1);

    fake.push_update(text_update(4, chat, ADA, "use cc to review it too"));
    let execs = eventually("a reviewer execution", || async {
        let execs = store.executions(task).await.ok()?;
        (execs.len() == 2).then_some(execs)
    })
    .await;
    assert_eq!((execs[1].agent.as_str(), execs[1].role), ("claude", Role::Reviewer));
    // The reviewer, seeded with the task's goal, asks to run the command too: "Always".
    let ask2 =
        card(fake, chat, "the reviewer's approval request", |t| t.starts_with("Claude is waiting for approval")).await;
    let data = ask2.callback_data();
    assert_eq!(data.len(), 4, "{}", ask2.body);
    assert_ne!(data[0], format!("a:{id}:{nonce}:o"), "the reviewer's request is a new approval");
    assert!(data[2].ends_with(":a"), "{data:?}");
    fake.push_update(press_update(5, chat, ADA, &ask2, &data[2]));
    let edit2 = eventually("the reviewer's buttons replaced", || async {
        fake.calls_to("editMessageText")
            .into_iter()
            .find(|c| c.status == 200 && c.body["message_id"].as_i64() == ask2.message_id())
    })
    .await;
    assert!(
        edit2.body["text"].as_str().unwrap().ends_with("Approved for this session by Ada (Telegram)"),
        "{}",
        edit2.body
    );
    eventually("the review done", || async { (completed_turns(&store, execs[1].id).await == 1).then_some(()) }).await;
    sent(fake, chat, "the review's summary", |t| t.starts_with("Claude finished")).await;
    let reviewer_approval =
        store.approvals(task, 10).await.unwrap().into_iter().find(|a| a.id != id).expect("the reviewer's approval");
    assert_eq!((reviewer_approval.status, reviewer_approval.scope), (ApprovalStatus::Approved, Some(Scope::Always)));
    assert_eq!(store.tasks(10).await.unwrap().len(), 1);

    // A second press on the old keyboard: told who decided, nothing changes.
    fake.push_update(press_update(6, chat, ADA, &ask, &format!("a:{id}:{nonce}:d")));
    let late = eventually("the late press answered", || async {
        fake.calls_to("answerCallbackQuery").into_iter().find(|c| c.body["callback_query_id"] == "cb-6")
    })
    .await;
    assert_eq!(late.body["text"], "Already approved by Ada (Telegram)", "{}", late.body);
    assert_eq!(store.approval(id).await.unwrap(), decided, "the approval resolves once");
}

/// One live status message per turn: sent silently once, then edited in place as the turn
/// goes on (coalesced, at most about one edit a second, `retry_after` honoured), ending on how
/// the turn ended; the approval and the final summary are messages of their own.
async fn a_turn_edits_one_status_message_in_place() {
    let world = TelegramWorld::new().await;
    let fake = &world.fake;
    // The first edit is rate limited: it waits out `retry_after` like a send does.
    fake.rate_limit("editMessageText", 1, 1);
    let (store, _engine, _channel) = world.gateway("polling").await;
    let chat = ADA as i64;

    fake.push_update(text_update(1, chat, ADA, "RUN_CMD: echo live-ok"));
    let ask = card(fake, chat, "the approval request", |t| t.contains("waiting for approval")).await;
    let approval = store.pending_approvals(None).await.unwrap().into_iter().next().expect("a pending approval");
    let (id, nonce) = (approval.id, approval.nonce);
    // The status message says it too, once the chat's edit pacing lets it.
    let status_messages = || {
        fake.calls_to("sendMessage")
            .into_iter()
            .filter(|c| c.status == 200 && c.body["disable_notification"] == true)
            .collect::<Vec<_>>()
    };
    let status = eventually("the status message", || async { status_messages().into_iter().next() }).await;
    let status_id = status.message_id();
    let edits_of_status = || {
        fake.calls_to("editMessageText")
            .into_iter()
            .filter(|c| c.status == 200 && c.body["message_id"].as_i64() == status_id)
            .collect::<Vec<_>>()
    };
    eventually("the status saying it waits", || async {
        edits_of_status()
            .iter()
            .any(|c| c.body["text"].as_str().unwrap_or("").contains("is waiting for approval"))
            .then_some(())
    })
    .await;

    let limited = fake.calls_to("editMessageText").into_iter().find(|c| c.status == 429).expect("the 429");
    assert_eq!(limited.body["message_id"].as_i64(), status_id, "the status edit met the rate limit");
    let retried = edits_of_status().into_iter().next().expect("the edit, retried");
    let waited = retried.at.duration_since(limited.at);
    assert!(waited >= Duration::from_millis(900), "edited again after {waited:?}, before retry_after");

    fake.push_update(press_update(2, chat, ADA, &ask, &format!("a:{id}:{nonce}:o")));
    let summary = sent(fake, chat, "the result summary", |t| t.starts_with("FAKE-REPLY")).await;
    assert_ne!(summary.message_id(), status_id, "the summary is a message of its own");
    assert!(summary.body["disable_notification"] != true, "the summary notifies: {}", summary.body);
    assert!(ask.body["disable_notification"] != true, "the approval notifies: {}", ask.body);

    let edits = edits_of_status();
    assert_eq!(edits.last().and_then(|c| c.body["text"].as_str()), Some("Codex finished"), "{}", fake.summary());
    assert!(edits.len() >= 2, "edited as the turn went on: {}", fake.summary());
    for pair in edits.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(gap >= Duration::from_millis(900), "two edits {gap:?} apart: {}", fake.summary());
    }
    let stop_only = |c: &Call| c.callback_data().iter().all(|d| d.starts_with("s:"));
    assert!(edits.iter().all(stop_only), "a status has at most its Stop button");
    assert!(edits.last().is_some_and(|c| c.body.get("reply_markup").is_none()), "the end takes Stop away");
    assert_eq!(status_messages().len(), 1, "one status message for the turn: {}", fake.summary());
    // Coalesced: fewer edits than status updates, every update marked sent as that message.
    let task = store.pending_approvals(None).await.unwrap();
    assert!(task.is_empty());
    let rows = store.outbox_recent(Channel::Telegram, &chat.to_string(), 100).await.unwrap();
    let live: Vec<_> =
        rows.iter().filter(|r| r.payload.live.as_deref().is_some_and(|k| k.starts_with("turn:"))).collect();
    assert!(live.len() > edits.len() + 1, "{} updates, {} edits: {live:#?}", live.len(), edits.len());
    let status_ext = status_id.map(|m| m.to_string());
    assert!(
        live.iter().all(|r| r.sent_at.is_some() && r.external_message_id == status_ext),
        "every update is shown by the one message: {live:#?}"
    );
}

/// A status message someone deleted cannot be edited: the status goes on in a new message,
/// and later updates edit that one.
async fn a_deleted_status_message_is_replaced_by_a_new_one() {
    let world = TelegramWorld::new().await;
    let fake = &world.fake;
    fake.fail("editMessageText", 1, 400, "Bad Request: message to edit not found", None);
    let (_store, _engine, _channel) = world.gateway("polling").await;
    let chat = ADA as i64;

    fake.push_update(text_update(1, chat, ADA, "RUN_CMD: echo replaced"));
    let ask = card(fake, chat, "the approval request", |_| true).await;
    let status_messages = || {
        fake.calls_to("sendMessage")
            .into_iter()
            .filter(|c| c.status == 200 && c.body["disable_notification"] == true)
            .filter_map(|c| c.message_id())
            .collect::<Vec<_>>()
    };
    let ids = eventually("a second status message", || async {
        let ids = status_messages();
        (ids.len() == 2).then_some(ids)
    })
    .await;
    let failed = fake.calls_to("editMessageText").into_iter().find(|c| c.status == 400).expect("the failed edit");
    assert_eq!(failed.body["message_id"].as_i64(), Some(ids[0]), "{}", fake.summary());

    let id = ask.callback_data()[0].clone();
    fake.push_update(press_update(2, chat, ADA, &ask, &id));
    sent(fake, chat, "the result summary", |t| t.starts_with("FAKE-REPLY")).await;
    let last_edit = fake
        .calls_to("editMessageText")
        .into_iter()
        .rfind(|c| c.status == 200 && c.body["text"] == "Codex finished")
        .expect("the status's last edit");
    assert_eq!(last_edit.body["message_id"].as_i64(), Some(ids[1]), "{}", fake.summary());
    assert_eq!(status_messages().len(), 2, "not a new message per update: {}", fake.summary());
}

/// Two approvals wait and a bare "ok" could mean either: the bot asks with two buttons, and
/// pressing one completes the "ok" with that reading, approving exactly that approval. A
/// second press changes nothing.
async fn a_clarify_button_approves_exactly_its_approval() {
    let world = TelegramWorld::new().await;
    let (store, _engine, _channel) = world.gateway("polling").await;
    let fake = &world.fake;
    let chat = ADA as i64;

    fake.push_update(text_update(1, chat, ADA, "RUN_CMD: echo one"));
    eventually("the first approval", || async { (store.pending_approvals(None).await.ok()?.len() == 1).then_some(()) })
        .await;
    fake.push_update(text_update(2, chat, ADA, "/new RUN_CMD: echo two"));
    let pending = eventually("two approvals", || async {
        let p = store.pending_approvals(None).await.ok()?;
        (p.len() == 2).then_some(p)
    })
    .await;
    let two = pending.iter().find(|a| a.action.contains("echo two")).expect("the second approval").clone();
    let one = pending.iter().find(|a| a.action.contains("echo one")).expect("the first approval").clone();

    fake.push_update(text_update(3, chat, ADA, "ok"));
    let ask = sent(fake, chat, "the clarify", |t| t.starts_with("Did you mean")).await;
    assert_eq!(ask.callback_data(), vec!["c:0", "c:1"], "{}", ask.body);
    let buttons: Vec<Value> =
        ask.body["reply_markup"]["inline_keyboard"].as_array().unwrap().iter().map(|row| row[0].clone()).collect();
    let pick = buttons.iter().find(|b| b["text"].as_str().unwrap_or("").contains("echo two")).expect("a button for it");
    let data = pick["callback_data"].as_str().unwrap().to_owned();

    fake.push_update(press_update(4, chat, ADA, &ask, &data));
    eventually("the chosen approval decided", || async {
        (store.approval(two.id).await.ok()?.status == ApprovalStatus::Approved).then_some(())
    })
    .await;
    let decided = store.approval(two.id).await.unwrap();
    assert_eq!((decided.scope, decided.decided_channel), (Some(Scope::Once), Some(Channel::Telegram)));
    assert_eq!(store.approval(one.id).await.unwrap().status, ApprovalStatus::Pending, "the other one still waits");
    let edit = eventually("the clarify's buttons replaced", || async {
        fake.calls_to("editMessageText")
            .into_iter()
            .find(|c| c.status == 200 && c.body["message_id"].as_i64() == ask.message_id())
    })
    .await;
    assert!(edit.body["text"].as_str().unwrap().contains("@ada chose: Approve"), "{}", edit.body);
    // The timeline shows what was said, with the reading picked.
    let timeline = store.timeline(two.task_id).await.unwrap();
    assert!(
        timeline.iter().any(|e| e.kind == EventKind::Message && e.body.to_json()["text"] == "ok"),
        "the original message is on the task: {timeline:#?}"
    );
    sent(fake, chat, "the chosen task's summary", |t| t.starts_with("FAKE-REPLY") && t.contains("exit=0")).await;

    // The other button, pressed late: nothing happens to the first approval.
    let other = if data == "c:0" { "c:1" } else { "c:0" };
    fake.push_update(press_update(5, chat, ADA, &ask, other));
    let late = eventually("the late press answered", || async {
        fake.calls_to("answerCallbackQuery").into_iter().find(|c| c.body["callback_query_id"] == "cb-5")
    })
    .await;
    assert_eq!(late.body["text"], "Already chosen.", "{}", late.body);
    assert_eq!(store.approval(one.id).await.unwrap().status, ApprovalStatus::Pending);
}

/// A stranger is refused once, with their id, and nothing of theirs reaches the engine; group
/// chatter without a mention is ignored without a reply; a mention in the group is handled;
/// an update delivered twice is handled once.
async fn strangers_group_chatter_and_duplicates() {
    let world = TelegramWorld::new().await;
    let (store, _engine, _channel) = world.gateway("polling").await;
    let fake = &world.fake;

    fake.push_update(text_update(1, STRANGER as i64, STRANGER, "RUN_CMD: echo pwned"));
    fake.push_update(text_update(2, STRANGER as i64, STRANGER, "please?"));
    fake.push_update(text_update(3, -100, ADA, "make the button green"));
    // Delivered twice in one batch (a redelivery after a crash looks the same to the inbox).
    fake.push_update(text_update(4, ADA as i64, ADA, "/help"));
    fake.push_update(text_update(4, ADA as i64, ADA, "/help"));
    fake.push_update(text_update(5, -100, ADA, &format!("@{BOT_USERNAME} write hello.txt")));

    let refusal = sent(fake, STRANGER as i64, "the refusal", |_| true).await;
    assert!(refusal.body["text"].as_str().unwrap().contains(&STRANGER.to_string()), "{}", refusal.body);
    sent(fake, -100, "an answer to the group mention", |_| true).await;
    let help = sent(fake, ADA as i64, "the help", |t| t.contains("/status")).await;
    assert!(help.body["text"].as_str().unwrap().contains("/new"));
    // Updates are handled in order, so everything before the mention is done.
    assert_eq!(fake.sent_texts(STRANGER as i64).len(), 1, "one refusal, not one per message: {}", fake.summary());
    assert_eq!(fake.sent_texts(ADA as i64).len(), 1, "the duplicate was handled once: {}", fake.summary());
    assert!(
        store.find_identity(Channel::Telegram, &STRANGER.to_string()).await.unwrap().is_none(),
        "nothing of the stranger's was stored"
    );
    let tasks = store.tasks(10).await.unwrap();
    assert_eq!(tasks.len(), 1, "only the group mention made a task: {tasks:?}");
    assert!(tasks[0].goal.contains("write hello.txt") && !tasks[0].goal.contains("button"), "{:?}", tasks[0]);
    let conversation = store.conversation(Channel::Telegram, "-100", "").await.unwrap();
    assert_eq!(conversation.focused_task_id, Some(tasks[0].id));
}

/// Webhook mode: a wrong or missing secret is 401 and stores nothing; the right one stores
/// the update before the 200; a redelivery is acknowledged and not handled again.
async fn webhook_checks_the_secret_and_deduplicates() {
    let world = TelegramWorld::new().await;
    let (store, _engine, channel) = world.gateway("webhook").await;
    let fake = &world.fake;
    assert!(fake.calls_to("getUpdates").is_empty(), "webhook mode does not poll");

    let state = taskgate::http::AppState {
        store: store.clone(),
        metrics: taskgate::metrics::Metrics::new(),
        links: Default::default(),
    };
    let app = taskgate::http::router(state).layer(Extension(channel.webhook()));
    let server = Port::bind().await.serve(app);
    let url = format!("http://{}/webhook/telegram", server.addr);
    let client = reqwest::Client::new();
    let forged = text_update(40, ADA as i64, ADA, "RUN_CMD: echo forged");
    let update = text_update(42, ADA as i64, ADA, "/start");
    let post = |body: &Value, secret: Option<&str>| {
        let mut request = client.post(&url).json(body).timeout(Duration::from_secs(10));
        if let Some(secret) = secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        request.send()
    };

    assert_eq!(post(&forged, Some("wrong")).await.unwrap().status(), 401);
    assert_eq!(post(&forged, None).await.unwrap().status(), 401);
    assert_eq!(post(&forged, Some(&SECRET[..SECRET.len() - 1])).await.unwrap().status(), 401);

    assert_eq!(post(&update, Some(SECRET)).await.unwrap().status(), 200);
    assert_eq!(post(&update, Some(SECRET)).await.unwrap().status(), 200, "a redelivery is acknowledged");
    sent(fake, ADA as i64, "the answer to the webhook update", |t| t.contains("/status")).await;
    eventually("the inbox drained", || async {
        store.inbox_pending(Channel::Telegram, 10).await.ok()?.is_empty().then_some(())
    })
    .await;
    assert_eq!(fake.sent_texts(ADA as i64).len(), 1, "handled once: {}", fake.summary());
    let again = store
        .inbox_accept(NewInbound { channel: Channel::Telegram, external_id: "42".into(), payload: update.clone() })
        .await
        .unwrap();
    assert!(matches!(again, InboxOutcome::Duplicate(_)), "the update is in the inbox under its update_id");
    let forged_row = store
        .inbox_accept(NewInbound {
            channel: Channel::Telegram,
            external_id: "40".into(),
            payload: json!({"update_id": 40}),
        })
        .await
        .unwrap();
    assert!(matches!(forged_row, InboxOutcome::Accepted(_)), "the update with a wrong secret was never stored");
    assert!(store.tasks(10).await.unwrap().is_empty(), "and never reached the engine");
}

/// A 429 on sendMessage: the message waits `retry_after` and is then sent, once.
async fn rate_limited_send_is_retried_after_retry_after() {
    let world = TelegramWorld::new().await;
    let fake = &world.fake;
    fake.rate_limit("sendMessage", 1, 1);
    let (store, _engine, _channel) = world.gateway("polling").await;

    fake.push_update(text_update(1, ADA as i64, ADA, "/help"));
    let ok = sent(fake, ADA as i64, "the help, after the rate limit", |_| true).await;
    let calls = fake.calls_to("sendMessage");
    assert_eq!(calls.len(), 2, "{}", fake.summary());
    assert_eq!(calls[0].status, 429);
    let waited = ok.at.duration_since(calls[0].at);
    assert!(waited >= Duration::from_millis(900), "sent again after {waited:?}, before retry_after");
    assert_eq!(fake.sent_texts(ADA as i64).len(), 1);
    let _ = store;
}

/// A forum topic is its own conversation: a mention in topic 42 is answered in topic 42, and
/// the conversation is keyed by the topic.
async fn a_forum_topic_is_answered_in_its_topic() {
    let world = TelegramWorld::new().await;
    let (store, _engine, _channel) = world.gateway("polling").await;
    let fake = &world.fake;
    let mut update = text_update(1, -100, ADA, &format!("@{BOT_USERNAME} write hello.txt"));
    update["message"]["chat"]["is_forum"] = json!(true);
    update["message"]["message_thread_id"] = json!(42);
    update["message"]["is_topic_message"] = json!(true);
    fake.push_update(update);
    let answer = sent(fake, -100, "an answer in the topic", |_| true).await;
    assert_eq!(answer.body["message_thread_id"], 42, "{}", answer.body);
    let task = store.tasks(1).await.unwrap().into_iter().next().expect("a task");
    let topic = store.conversation(Channel::Telegram, "-100", "42").await.unwrap();
    assert_eq!(topic.focused_task_id, Some(task.id));
    let general = store.conversation(Channel::Telegram, "-100", "").await.unwrap();
    assert_eq!(general.focused_task_id, None, "the rest of the group is another conversation");
}

/// `taskgate serve`'s own wiring: with `[telegram]` configured, the application starts the
/// channel (getMe, then polling or the webhook route) from config alone, and stops it cleanly.
async fn serve_starts_the_channel_from_config() {
    for mode in ["polling", "webhook"] {
        let fake = FakeTelegram::start(TOKEN).await.expect("fake telegram");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("taskgate.toml");
        std::fs::write(
            &file,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[telegram]\ntoken = \"{TOKEN}\"\napi_url = \"{}\"\nmode = \"{mode}\"\nwebhook_secret = \"{SECRET}\"\nallowed_users = [{ADA}]\n",
                dir.path().join("data").display(),
                fake.url()
            ),
        )
        .unwrap();
        let config = Config::load_from(Some(&file), std::iter::empty()).expect("config");
        let app = spawn_app(&config).await.expect("application builds");
        let addr = app.addr;
        eventually("the token is checked at start", || async { (fake.calls_to("getMe").len() == 1).then_some(()) })
            .await;
        let hook = reqwest::Client::new()
            .post(format!("http://{addr}/webhook/telegram"))
            .header("X-Telegram-Bot-Api-Secret-Token", "wrong")
            .json(&text_update(7, ADA as i64, ADA, "hi"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        if mode == "polling" {
            eventually("the poller asks for updates", || async {
                (!fake.calls_to("getUpdates").is_empty()).then_some(())
            })
            .await;
            assert_eq!(hook.status(), 404, "no webhook route state in polling mode");
        } else {
            assert_eq!(hook.status(), 401, "the webhook route is mounted and checks the secret");
            assert!(fake.calls_to("getUpdates").is_empty());
        }
        app.stop().await.expect("stops cleanly");
    }
}

/// Telegram unreachable at boot: the gateway starts anyway, serves health and the console,
/// reports the channel as retrying, and connects and answers once the API is up.
async fn serve_starts_while_telegram_is_down_and_connects_when_it_comes_up() {
    // The API's port is reserved but nobody listens yet: connections are refused.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let api = socket.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("taskgate.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[telegram]\ntoken = \"{TOKEN}\"\napi_url = \"http://{api}/\"\nallowed_users = [{ADA}]\n",
            dir.path().join("data").display(),
        ),
    )
    .unwrap();
    let config = Config::load_from(Some(&file), std::iter::empty()).expect("config");
    let app = spawn_app(&config).await.expect("the gateway starts without Telegram");
    let get = |path: &str| {
        let url = format!("{}{path}", app.url);
        async move {
            let res = reqwest::Client::new().get(url).timeout(Duration::from_secs(10)).send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await, (200, "ok".to_owned()));
    assert_eq!(get("/").await.0, 200, "the console is served");
    let ready = eventually("readyz reports the channel retrying", || async {
        let (status, body) = get("/readyz").await;
        body.contains("telegram: retrying").then_some((status, body))
    })
    .await;
    assert_eq!(ready.0, 200, "a channel outage does not make the replica unready: {}", ready.1);
    assert!(ready.1.starts_with("ready\n") && ready.1.contains("telegram getMe"), "says why: {}", ready.1);

    let fake = FakeTelegram::serve_on(TOKEN, socket.listen(64).unwrap()).expect("fake telegram");
    fake.push_update(text_update(1, ADA as i64, ADA, "/help"));
    sent(&fake, ADA as i64, "the help, once Telegram is back", |t| t.contains("/status")).await;
    assert_eq!(get("/readyz").await, (200, "ready\ntelegram: connected".to_owned()));
    assert_eq!(fake.calls_to("getMe").len(), 1, "{}", fake.summary());
    app.stop().await.expect("stops cleanly");
}

/// Sends that notify the phone (`disable_notification` not set), successful, to `chat`.
fn notifying(fake: &FakeTelegram, chat: i64) -> Vec<Call> {
    fake.calls_to("sendMessage")
        .into_iter()
        .filter(|c| {
            c.status == 200 && c.body["chat_id"].as_i64() == Some(chat) && c.body["disable_notification"] != true
        })
        .collect()
}

/// The message budget of one command that needs an approval: the live status is created
/// silently and edited in place (never back to "waiting" once decided), the card notifies and
/// is edited to the decision, the answer notifies: at most 3 notifying messages. A follow-up to
/// the idle task costs exactly 1 notifying message.
async fn one_approved_command_notifies_at_most_three_times_and_a_follow_up_once() {
    let world = TelegramWorld::new().await;
    let (store, _engine, _channel) = world.gateway("polling").await;
    let fake = &world.fake;
    let chat = ADA as i64;

    fake.push_update(text_update(1, chat, ADA, "RUN_CMD: echo budget-ok"));
    let ask = card(fake, chat, "the approval card", |t| t.contains("waiting for approval")).await;
    let data = ask.callback_data();
    fake.push_update(press_update(2, chat, ADA, &ask, &data[0]));
    let pressed = eventually("the press answered", || async {
        fake.calls_to("answerCallbackQuery").into_iter().find(|c| c.body["callback_query_id"] == "cb-2")
    })
    .await;
    let summary = sent(fake, chat, "the answer", |t| t.starts_with("FAKE-REPLY")).await;
    let task = store.tasks(10).await.unwrap()[0].id;
    let exec = store.executions(task).await.unwrap()[0].id;
    eventually("the turn done", || async { (completed_turns(&store, exec).await == 1).then_some(()) }).await;
    eventually("the outbox drained", || async {
        let rows = store.outbox_recent(Channel::Telegram, &chat.to_string(), 100).await.ok()?;
        rows.iter().all(|r| r.sent_at.is_some()).then_some(())
    })
    .await;
    let loud = notifying(fake, chat);
    assert!(loud.len() <= 3, "{} notifying messages: {}", loud.len(), fake.summary());
    assert!(
        loud.iter().any(|c| c.message_id() == ask.message_id())
            && loud.iter().any(|c| c.message_id() == summary.message_id())
    );

    // The status, as it was shown: never "waiting" again once the press was answered.
    let status = fake
        .calls_to("sendMessage")
        .into_iter()
        .find(|c| c.status == 200 && c.body["disable_notification"] == true)
        .and_then(|c| c.message_id());
    let shown: Vec<Call> = fake
        .calls()
        .into_iter()
        .filter(|c| {
            c.status == 200
                && c.method == "editmessagetext"
                && status.is_some()
                && c.body["message_id"].as_i64() == status
        })
        .collect();
    let late_waiting = shown.iter().find(|c| {
        c.at > pressed.at + Duration::from_millis(500)
            && c.body["text"].as_str().unwrap_or("").contains("waiting for approval")
    });
    assert!(late_waiting.is_none(), "the status went back to waiting: {}", fake.summary());
    if let Some(last) = shown.last() {
        assert_eq!(last.body["text"], "Codex finished", "{}", fake.summary());
    }

    // A follow-up to the idle task: one notifying message.
    let before = notifying(fake, chat).len();
    fake.push_update(reply_update(3, chat, ADA, "say it again", summary.message_id().unwrap()));
    eventually("the follow-up done", || async { (completed_turns(&store, exec).await == 2).then_some(()) }).await;
    eventually("the outbox drained again", || async {
        let rows = store.outbox_recent(Channel::Telegram, &chat.to_string(), 100).await.ok()?;
        rows.iter().all(|r| r.sent_at.is_some()).then_some(())
    })
    .await;
    let after = notifying(fake, chat);
    assert_eq!(after.len() - before, 1, "one notifying message for a follow-up: {}", fake.summary());
    assert!(after.last().unwrap().body["text"].as_str().unwrap().starts_with("FAKE-REPLY"), "{}", fake.summary());
}

/// In a group, the answer replies to the message that asked (`reply_parameters`), so several
/// people's tasks can be told apart; the silent status does not.
async fn group_answers_reply_to_the_message_they_answer() {
    let world = TelegramWorld::new().await;
    let (_store, _engine, _channel) = world.gateway("polling").await;
    let fake = &world.fake;
    fake.push_update(text_update(7, -100, ADA, &format!("@{BOT_USERNAME} write hello.txt")));
    let answer = sent(fake, -100, "the group answer", |t| t.starts_with("FAKE-REPLY")).await;
    assert_eq!(answer.body["reply_parameters"]["message_id"], 70, "{}", answer.body);
    assert_eq!(answer.body["reply_parameters"]["allow_sending_without_reply"], true, "{}", answer.body);
    for status in fake.calls_to("sendMessage").iter().filter(|c| c.body["disable_notification"] == true) {
        assert!(status.body.get("reply_parameters").is_none(), "a status is not threaded: {}", status.body);
    }
}

/// A stranger writing again and again hears one refusal an hour, and their refusals go after
/// the answers owed to allowed people.
async fn a_refused_stranger_hears_once_an_hour_and_waits_behind_allowed_people() {
    let world = TelegramWorld::new().await;
    let (store, _engine, _channel) = world.gateway("polling").await;
    let fake = &world.fake;
    for n in 0..5 {
        // The same stranger from two chats: still one refusal.
        let chat = if n % 2 == 0 { STRANGER as i64 } else { -200 };
        fake.push_update(text_update(10 + n, chat, STRANGER, &format!("@{BOT_USERNAME} let me in {n}")));
    }
    fake.push_update(text_update(20, ADA as i64, ADA, "/help"));
    sent(fake, ADA as i64, "the help", |t| t.contains("/status")).await;
    let refusal = sent(fake, STRANGER as i64, "the refusal", |_| true).await;
    let refusals = fake.sent_texts(STRANGER as i64).len() + fake.sent_texts(-200).len();
    assert_eq!(refusals, 1, "{}", fake.summary());
    let rows = store.outbox_recent(Channel::Telegram, &STRANGER.to_string(), 10).await.unwrap();
    assert_eq!(rows[0].payload.kind, taskgate_core::reply::ReplyKind::Refusal);
    let _ = refusal;
}

/// 50 messages over 5 private chats with an instant agent are all answered, the last within
/// 12 s; an approval card raised in the middle of the burst reaches its chat before any
/// informational row queued after it.
async fn a_burst_over_five_chats_is_answered_and_an_approval_overtakes_the_chatter() {
    let world = TelegramWorld::new().await;
    // Paced like a phone chat would be (slower than the tests' default), so queues form.
    let mut options = channel_options();
    options.outbox.chat_interval = Duration::from_millis(200);
    options.outbox.edit_interval = Duration::from_millis(200);
    let (store, _engine, _channel) = world.gateway_with_options("polling", world.world.engine().await, options).await;
    let fake = &world.fake;
    let start = std::time::Instant::now();
    let approver = BURST_USERS[0];
    let mut update = 100;
    for round in 0..10 {
        for user in BURST_USERS {
            update += 1;
            let text = if user == approver && round == 4 {
                "RUN_CMD: echo burst-approval".to_owned()
            } else {
                format!("note {user}-{round}")
            };
            fake.push_update(text_update(update, user as i64, user, &text));
        }
    }
    let ask = card(fake, approver as i64, "the approval card", |t| t.contains("waiting for approval")).await;
    fake.push_update(press_update(1000, approver as i64, approver, &ask, &ask.callback_data()[0]));
    for user in BURST_USERS {
        let chat = user as i64;
        eventually("every message answered", || async {
            let texts = fake.sent_texts(chat);
            let all = (0..10)
                .filter(|r| !(user == approver && *r == 4))
                .all(|r| texts.iter().any(|t| t.contains(&format!("note {user}-{r}"))));
            all.then_some(())
        })
        .await;
    }
    let took = start.elapsed();
    assert!(took <= Duration::from_secs(12), "the burst took {took:?}: {}", fake.summary());

    let rows = store.outbox_recent(Channel::Telegram, &approver.to_string(), 500).await.unwrap();
    let card = rows
        .iter()
        .find(|r| r.payload.kind == taskgate_core::reply::ReplyKind::Approval)
        .expect("the card's row")
        .clone();
    let card_sent = card.sent_at.expect("the card was sent");
    // It went ahead of the chatter already queued in its chat (the agent waits on it).
    let waited = card_sent - card.created_at;
    assert!(waited <= chrono::Duration::seconds(2), "the card waited {waited:?}: {rows:#?}");
    // Messages queued after the card are sent after it. Live status updates are not messages:
    // an edit of the status in flight shows the newest state queued, which may be one queued
    // just after the card (silently, in the status message the phone already has).
    let later = |r: &&Outbound| r.id > card.id && !r.payload.kind.is_urgent() && r.payload.live.is_none();
    for row in rows.iter().filter(later) {
        if let Some(at) = row.sent_at {
            assert!(
                at >= card_sent,
                "row {} ({:?}) queued after the card went first: {rows:#?}",
                row.id,
                row.payload.text
            );
        }
    }
}

/// One person floods the bot with 2,000 messages, then another writes once: the other's
/// message is taken within ~2 s and their answer is sent within 2 s of their turn's end; the
/// flooder hears one "slow down", and the flood's tail is set aside (visible), not queued.
async fn a_flood_from_one_person_does_not_hold_up_another() {
    let world = TelegramWorld::new().await;
    let mut options = channel_options();
    options.limits = taskgate_core::fair::Limits { per_person_per_minute: 5, max_waiting: 20 };
    let (store, _engine, _channel) = world.gateway_with_options("polling", world.world.engine().await, options).await;
    let fake = &world.fake;
    for n in 0..2000 {
        fake.push_update(text_update(1 + n, ADA as i64, ADA, &format!("flood {n}")));
    }
    fake.push_update(text_update(5000, BOB as i64, BOB, "hello from bob"));
    let answer = sent(fake, BOB as i64, "Bob's answer", |t| t.starts_with("FAKE-REPLY")).await;
    assert!(answer.body["text"].as_str().unwrap().contains("hello from bob"), "{}", answer.body);

    let inbox = store.inbox_recent(Channel::Telegram, 3000).await.unwrap();
    let bobs = inbox.iter().find(|r| r.external_id == "5000").expect("Bob's update stored");
    let taken = bobs.processed_at.expect("handled") - bobs.received_at;
    assert!(taken <= chrono::Duration::seconds(2), "Bob's message waited {taken:?} behind the flood");
    let rows = store.outbox_recent(Channel::Telegram, &BOB.to_string(), 50).await.unwrap();
    let last =
        rows.iter().rfind(|r| r.payload.kind == taskgate_core::reply::ReplyKind::Final).expect("Bob's final row");
    let delay = last.sent_at.expect("sent") - last.created_at;
    assert!(delay <= chrono::Duration::seconds(2), "Bob's answer waited {delay:?} after the turn ended");

    let slow = eventually("the flooder told to slow down", || async {
        let told: Vec<String> =
            fake.sent_texts(ADA as i64).into_iter().filter(|t| t.starts_with("Slow down")).collect();
        (!told.is_empty()).then_some(told)
    })
    .await;
    assert_eq!(slow.len(), 1, "{slow:?}");
    assert!(slow[0].contains("waiting"), "{}", slow[0]);
    let set_aside = eventually("the flood's tail set aside", || async {
        let n = store.stats().await.ok()?.inbox_set_aside;
        (n >= 1900).then_some(n)
    })
    .await;
    assert!(set_aside <= 1995, "at least the first messages and the waiting ones are kept: {set_aside}");
    // Still exactly one notice after the waiting ones were looked at again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let told = fake.sent_texts(ADA as i64).into_iter().filter(|t| t.starts_with("Slow down")).count();
    assert_eq!(told, 1);
}

/// `/title <name>` renames the task the chat is on; the old title stays on the timeline.
async fn title_renames_the_task() {
    let world = TelegramWorld::new().await;
    let (store, _engine, _channel) = world.gateway("polling").await;
    let fake = &world.fake;
    let chat = ADA as i64;
    fake.push_update(text_update(1, chat, ADA, "please write hello.txt with a greeting"));
    sent(fake, chat, "the answer", |t| t.starts_with("FAKE-REPLY")).await;
    let task = store.tasks(10).await.unwrap()[0].clone();
    fake.push_update(text_update(2, chat, ADA, "/title   Greeting  file"));
    sent(fake, chat, "the rename confirmed", |t| t == "Renamed: 'Greeting file'.").await;
    assert_eq!(store.task(task.id).await.unwrap().title, "Greeting file");
    let events = store.timeline(task.id).await.unwrap();
    assert!(
        events.iter().any(|e| matches!(&e.body, EventBody::Known(Body::NoteField { field, previous: Some(p), .. }) if field == "title" && *p == task.title)),
        "the old title on the timeline"
    );
    assert_eq!(store.tasks(10).await.unwrap().len(), 1, "not a new task");
    fake.push_update(text_update(3, chat, ADA, "/title"));
    sent(fake, chat, "the title said", |t| t.starts_with("This task is 'Greeting file'")).await;
}

/// In a private chat the agent's text streams as a draft (`sendMessageDraft`, keyed by the
/// turn) while the turn goes on, and the turn ends with one real, notifying message; in a
/// group there are no drafts.
async fn a_private_chat_sees_the_answer_stream_as_a_draft_then_one_message() {
    let world = TelegramWorld::new().await;
    let (_store, _engine, _channel) = world.gateway("polling").await;
    let fake = &world.fake;
    let chat = ADA as i64;
    let ask = format!("STREAM_MS: 1500 tell me a long story about {}", "the **quiet** phone ".repeat(8));
    fake.push_update(text_update(1, chat, ADA, &ask));
    let draft = eventually("a draft", || async {
        fake.calls_to("sendMessageDraft").into_iter().find(|c| c.status == 200 && c.body["chat_id"] == chat)
    })
    .await;
    assert!(draft.body["text"].as_str().unwrap().contains("the <b>quiet</b> phone"), "{}", draft.body);
    assert_eq!(draft.body["parse_mode"], "HTML");
    assert!(draft.body["draft_id"].as_i64().is_some_and(|id| id != 0), "{}", draft.body);
    let answer = sent(fake, chat, "the answer", |t| t.starts_with("FAKE-REPLY")).await;
    assert!(answer.at > draft.at, "the draft came first");
    assert_eq!(notifying(fake, chat).len(), 1, "one real message ends the stream: {}", fake.summary());
    let drafts = fake.calls_to("sendMessageDraft");
    assert!(drafts.iter().all(|c| c.at < answer.at), "no draft after the final message: {}", fake.summary());

    fake.push_update(text_update(2, -100, ADA, &format!("@{BOT_USERNAME} {ask}")));
    sent(fake, -100, "the group answer", |t| t.starts_with("FAKE-REPLY")).await;
    assert!(fake.calls_to("sendMessageDraft").iter().all(|c| c.body["chat_id"] != -100), "no drafts in groups");
}
