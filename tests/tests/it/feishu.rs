//! The Feishu/Lark channel end to end: the real client against a fake open platform, the real
//! engine, store (SQLite in a temp dir) and runtime adapters, with the fake agent binary.
//! Callbacks are encrypted and signed as Feishu does; assertions read the fake's recorded
//! calls and the store, never log text.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use base64::Engine as _;
use serde_json::{Value, json};
use taskgate::config::{Config, FeishuConfig};
use taskgate::engine::Engine;
use taskgate::feishu::{self, Feishu, FeishuOptions};
use taskgate_adapters::feishu::crypto;
use taskgate_adapters::feishu::outbound::OutboxOptions;
use taskgate_adapters::feishu::ws::WsOptions;
use taskgate_adapters::store::SeaStore;
use taskgate_core::model::*;
use taskgate_core::store::Store;
use taskgate_tests::app::{Port, Server, spawn_app};
use taskgate_tests::fake_feishu::{APP_ID, APP_SECRET, BOT_OPEN_ID, Call, FakeFeishu, SERVICE_ID};
use taskgate_tests::harness::{Trial, connected, eventually};
use taskgate_tests::reads::completed_turns;
use taskgate_tests::world::World;

pub fn trials() -> Vec<Trial> {
    let mut trials = taskgate_tests::db::trials(
        module_path!(),
        taskgate_tests::db::Backend::Postgres,
        POSTGRES_CASES,
        taskgate_tests::harness::Flavor::CurrentThread,
        None,
    );
    trials.extend(taskgate_tests::trials! {
        current_thread: [
            every_sdk_vector_gets_the_sdk_verdict_over_http,
            approval_by_card_click_and_follow_up,
            without_cardkit_a_turn_patches_one_status_card_in_place,
            a_turn_streams_its_status_on_one_card_entity,
            a_long_status_moves_to_a_new_card_entity,
            a_refused_card_update_falls_back_to_message_edits,
            the_stop_button_of_a_streaming_card_stops_the_turn,
            strangers_group_chatter_and_redelivery,
            token_refresh_rate_limit_and_idempotent_retries,
            long_connection_frames_acks_and_reconnect,
            serve_starts_the_channel_from_config,
            one_approved_command_costs_at_most_three_new_messages,
        ],
    });
    trials
}

const POSTGRES_CASES: &[(&str, taskgate_tests::db::Case)] =
    taskgate_tests::db_cases![a_nul_in_a_message_is_stored_and_the_next_is_answered];

/// PostgreSQL cannot keep a NUL in text: a message with one is still stored (the NUL replaced),
/// acknowledged 200, and the message after it is answered (no poison row stops the channel).
async fn a_nul_in_a_message_is_stored_and_the_next_is_answered(db: &taskgate_tests::db::TestDb) -> anyhow::Result<()> {
    let world = FeishuWorld::new().await;
    let gw = world.gateway_on(db.store().await?).await;
    let (status, _, _) = post_event(&gw, &message_event("ev-nul", "om_nul", P2P, ALICE, "make\u{0}it green")).await;
    assert_eq!(status, 200, "stored and acknowledged");
    let (status, _, _) = post_event(&gw, &message_event("ev-next", "om_next", P2P, ALICE, "/status")).await;
    assert_eq!(status, 200);
    let store = gw.store.clone();
    eventually("both handled", || async {
        let pending = store.inbox_pending(Channel::Feishu, 10).await.ok()?;
        pending.is_empty().then_some(())
    })
    .await;
    let task =
        eventually("the task of the first message", || async { store.tasks(10).await.ok()?.into_iter().next() }).await;
    assert_eq!(task.goal, "make\u{FFFD}it green");
    assert!(store.inbox_set_aside(10).await?.is_empty(), "nothing set aside");
    sent(&world.fake, "the answer to the next message", |c| c.text().contains("make\u{FFFD}it green")).await;
    Ok(())
}

const ALICE: &str = "ou_alice00000000000000000000000001";
const MALLORY: &str = "ou_mallory000000000000000000000009";
const KEY: &str = "test key";
const TOKEN: &str = "v-token";
const P2P: &str = "oc_p2p_alice";
const GROUP: &str = "oc_team";

/// The shared world and a fake open platform that knows Alice's name.
struct FeishuWorld {
    world: World,
    fake: FakeFeishu,
}

/// A running gateway: the channel, and its webhook served on a local port (stopped first).
struct Gateway {
    _server: Server,
    store: Arc<SeaStore>,
    _engine: Arc<Engine>,
    _channel: Feishu,
    url: String,
}

impl FeishuWorld {
    async fn new() -> Self {
        let fake = FakeFeishu::start().await.expect("fake feishu");
        fake.set_name(ALICE, "Alice");
        FeishuWorld { world: World::new(), fake }
    }

    fn feishu_config(&self, mode: &str, encrypt_key: &str) -> FeishuConfig {
        let key = if encrypt_key.is_empty() { String::new() } else { format!("encrypt_key = \"{encrypt_key}\"\n") };
        let text = format!(
            "app_id = \"{APP_ID}\"\napp_secret = \"{APP_SECRET}\"\nverification_token = \"{TOKEN}\"\n{key}api_url = \"{}\"\nmode = \"{mode}\"\nallowed_users = [\"{ALICE}\"]\n",
            self.fake.url()
        );
        toml::from_str(&text).expect("feishu config")
    }

    /// An engine on database `db` in the world's dir (one world may run several), its Feishu
    /// channel, and the HTTP routes with the channel's webhook.
    async fn gateway(&self, mode: &str, encrypt_key: &str, db: &str) -> Gateway {
        self.gateway_with(mode, encrypt_key, self.world.engine_on(db).await).await
    }

    /// As [`FeishuWorld::gateway`], on a database of the caller's (PostgreSQL).
    async fn gateway_on(&self, store: SeaStore) -> Gateway {
        let engine = self.world.engine_with_store(store);
        engine.start();
        self.gateway_with("webhook", KEY, engine).await
    }

    async fn gateway_with(&self, mode: &str, encrypt_key: &str, engine: Engine) -> Gateway {
        self.gateway_sending(mode, encrypt_key, engine, OutboxOptions::default()).await
    }

    /// As [`FeishuWorld::gateway_with`], the outbox's options but its pacing taken from `outbox`.
    async fn gateway_sending(&self, mode: &str, encrypt_key: &str, engine: Engine, outbox: OutboxOptions) -> Gateway {
        let config = self.feishu_config(mode, encrypt_key);
        engine.set_admission(Channel::Feishu, feishu::admission(&config));
        let engine = Arc::new(engine);
        let options = FeishuOptions {
            outbox: OutboxOptions { poll_interval: Duration::from_millis(50), chat_interval: Duration::ZERO, ..outbox },
            ws: WsOptions {
                min_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_millis(500),
                max_jitter: Duration::from_millis(50),
                ..WsOptions::default()
            },
            inbox_interval: Duration::from_millis(100),
            ..FeishuOptions::default()
        };
        let links = options.links.clone();
        let channel = Feishu::start(engine.clone(), &config, options).await.expect("feishu starts");
        connected(&links).await;
        let store = engine.store().clone();
        let state = taskgate::http::AppState {
            store: store.clone(),
            metrics: taskgate::metrics::Metrics::new(),
            links: Default::default(),
        };
        let server = Port::bind().await.serve(taskgate::http::router(state).layer(Extension(channel.webhook())));
        let url = format!("http://{}/webhook/feishu", server.addr);
        Gateway { _server: server, store, _engine: engine, _channel: channel, url }
    }
}

/// Posts a raw callback; the status, the JSON answer, and how long it took.
async fn post_raw(url: &str, body: &str, headers: &[(String, String)]) -> (u16, Value, Duration) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .timeout(Duration::from_secs(10));
    for (k, v) in headers {
        request = request.header(k.as_str(), v.as_str());
    }
    let started = Instant::now();
    let response = request.send().await.expect("the webhook answers");
    let status = response.status().as_u16();
    let value = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, value, started.elapsed())
}

/// Posts `event` encrypted with `KEY` and signed, as Feishu does.
async fn post_event(gw: &Gateway, event: &Value) -> (u16, Value, Duration) {
    let plain = serde_json::to_vec(event).unwrap();
    let iv: [u8; 16] = core::array::from_fn(|i| (i as u8).wrapping_mul(7));
    let body = json!({"encrypt": crypto::encrypt(KEY, &plain, iv)}).to_string();
    let (ts, nonce) = ("1763800000", "nonce-1");
    let sig = crypto::signature(ts, nonce, KEY, body.as_bytes());
    let headers = [
        ("X-Lark-Request-Timestamp".to_owned(), ts.to_owned()),
        ("X-Lark-Request-Nonce".to_owned(), nonce.to_owned()),
        ("X-Lark-Signature".to_owned(), sig),
    ];
    post_raw(&gw.url, &body, &headers).await
}

fn message_event(event_id: &str, message_id: &str, chat: &str, from: &str, text: &str) -> Value {
    let group = chat == GROUP;
    let mut mentions = json!([]);
    let mut text = text.to_owned();
    if let Some(rest) = text.strip_prefix("@bot ") {
        text = format!("@_user_1 {rest}");
        mentions = json!([{"key": "@_user_1", "id": {"open_id": BOT_OPEN_ID}, "name": "taskgate"}]);
    }
    json!({"schema": "2.0",
        "header": {"event_id": event_id, "token": TOKEN, "create_time": "1763800000000", "event_type": "im.message.receive_v1", "tenant_key": "t", "app_id": APP_ID},
        "event": {"sender": {"sender_id": {"open_id": from}, "sender_type": "user", "tenant_key": "t"},
            "message": {"message_id": message_id, "root_id": "", "parent_id": "", "chat_id": chat,
                "chat_type": if group { "group" } else { "p2p" }, "message_type": "text",
                "content": json!({"text": text}).to_string(), "mentions": mentions}}})
}

fn reply_event(event_id: &str, message_id: &str, from: &str, text: &str, parent: &str) -> Value {
    let mut e = message_event(event_id, message_id, P2P, from, text);
    e["event"]["message"]["parent_id"] = json!(parent);
    e["event"]["message"]["root_id"] = json!(parent);
    e
}

fn card_event(event_id: &str, from: &str, card_message: &str, value: &Value) -> Value {
    json!({"schema": "2.0",
        "header": {"event_id": event_id, "token": TOKEN, "create_time": "1763800000000", "event_type": "card.action.trigger", "tenant_key": "t", "app_id": APP_ID},
        "event": {"operator": {"open_id": from}, "token": "c-1", "action": {"tag": "button", "value": value},
            "host": "im_message", "context": {"open_message_id": card_message, "open_chat_id": P2P}}})
}

/// The first successful send (or reply) whose text or card passes `pred`.
async fn sent(fake: &FakeFeishu, what: &str, pred: impl Fn(&Call) -> bool) -> Call {
    eventually(what, || async { fake.sent().into_iter().find(|c| pred(c)) }).await
}

async fn drained(store: &SeaStore) {
    eventually("the inbox drained", || async {
        store.inbox_pending(Channel::Feishu, 10).await.ok()?.is_empty().then_some(())
    })
    .await;
}

/// Every callback in the official SDK's vectors gets the SDK's verdict from the running
/// webhook: accepted ones are answered 200 (challenges echoed, card presses with a toast)
/// within 3 s and are in the inbox; refused ones get non-2xx and store nothing.
async fn every_sdk_vector_gets_the_sdk_verdict_over_http() {
    let world = FeishuWorld::new().await;
    let signed = world.gateway("webhook", KEY, "signed.db").await;
    let plain = world.gateway("webhook", "", "plain.db").await;
    let vectors: Vec<Value> =
        serde_json::from_str(include_str!("../../data/feishu/vectors.json")).expect("the vectors parse");
    assert_eq!(vectors.len(), 10);
    for v in &vectors {
        let name = v["name"].as_str().unwrap();
        let gw = if v["encrypt_key"] == "" { &plain } else { &signed };
        let headers: Vec<(String, String)> = v["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let (status, answer, took) = post_raw(&gw.url, v["body"].as_str().unwrap(), &headers).await;
        assert!(took < Duration::from_secs(3), "{name}: answered in {took:?}");
        let event = &v["event"];
        let key = match event.pointer("/event/message/message_id").and_then(Value::as_str) {
            Some(m) => format!("message:{m}"),
            None => format!("event:{}", event.pointer("/header/event_id").and_then(Value::as_str).unwrap_or_default()),
        };
        if v["sdk_status"] == 200 {
            assert_eq!(status, 200, "{name}: the SDK accepted it: {answer}");
            if event["type"] == "url_verification" {
                let sdk: Value = serde_json::from_str(v["sdk_body"].as_str().unwrap()).unwrap();
                assert_eq!(answer, sdk, "{name}");
                continue;
            }
            if event.pointer("/header/event_type").and_then(Value::as_str) == Some("card.action.trigger") {
                assert!(answer["toast"]["content"].is_string(), "{name}: a card press gets a toast: {answer}");
            }
            let again = gw
                .store
                .inbox_accept(NewInbound { channel: Channel::Feishu, external_id: key, payload: json!({}) })
                .await
                .unwrap();
            assert!(matches!(again, InboxOutcome::Duplicate(_)), "{name}: stored before the 200");
        } else {
            assert!(!(200..300).contains(&status), "{name}: the SDK refused it, we answered {status}");
            let row = gw
                .store
                .inbox_accept(NewInbound { channel: Channel::Feishu, external_id: key, payload: json!({}) })
                .await
                .unwrap();
            assert!(matches!(row, InboxOutcome::Accepted(_)), "{name}: nothing was stored");
        }
    }
    // The accepted group chatter ("lunch anyone?") and the refused ones made no task; the
    // direct message, the mention and the reply did (in one conversation or another).
    drained(&signed.store).await;
    let tasks = signed.store.tasks(10).await.unwrap();
    assert!(tasks.iter().all(|t| !t.goal.contains("lunch")), "{tasks:?}");
}

/// A task asks for approval as an interactive card naming it; pressing Approve answers the
/// callback within 3 s with a toast and the card replaced by "Approved by Alice", resolves
/// exactly that approval, and the summary arrives; a reply to the summary continues the same
/// task; a late press on the old card hears who decided.
async fn approval_by_card_click_and_follow_up() {
    let world = FeishuWorld::new().await;
    let gw = world.gateway("webhook", KEY, "taskgate.db").await;
    let (fake, store) = (&world.fake, &gw.store);

    let (status, answer, _) =
        post_event(&gw, &message_event("ev-1", "om_in_1", P2P, ALICE, "RUN_CMD: echo feishu-ok")).await;
    assert_eq!((status, &answer), (200, &json!({"msg": "success"})));
    let ask = sent(fake, "the approval card", |c| c.body["msg_type"] == "interactive" && c.has_buttons()).await;
    assert_eq!(ask.body["receive_id"], P2P);
    let card = ask.content();
    assert_eq!(card["config"]["update_multi"], true, "{card}");
    assert!(card.to_string().contains("echo feishu-ok"), "{card}");
    let approval = store.pending_approvals(None).await.unwrap().into_iter().next().expect("a pending approval");
    let (id, nonce) = (approval.id.to_string(), approval.nonce.clone());
    let values: Vec<Value> =
        card["elements"][1]["actions"].as_array().unwrap().iter().map(|a| a["value"].clone()).collect();
    assert_eq!(
        values,
        vec![
            json!({"op": "approve", "approval": id, "nonce": nonce}),
            json!({"op": "deny", "approval": id, "nonce": nonce}),
            json!({"op": "always", "approval": id, "nonce": nonce}),
            json!({"op": "project", "approval": id, "nonce": nonce})
        ]
    );
    let card_id = ask.message_id().unwrap();
    // Recorded once the sender has the platform's answer (just after the fake saw the call).
    let outbound = eventually("the card's message id recorded", || async {
        store.outbound_by_external_id(Channel::Feishu, P2P, &card_id).await.ok().flatten()
    })
    .await;
    assert_eq!((outbound.task_id, outbound.approval_id), (Some(approval.task_id), Some(approval.id)));
    assert!(ask.body["uuid"].as_str().is_some_and(|u| u.len() == 36), "an idempotency key: {}", ask.body);

    let (status, answer, took) = post_event(&gw, &card_event("ev-2", ALICE, &card_id, &values[0])).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(3), "answered in {took:?}");
    assert_eq!(answer["toast"], json!({"type": "success", "content": "Approved by Alice (Feishu)"}), "{answer}");
    let replaced = answer["card"]["data"].to_string();
    assert!(replaced.contains("Approved by Alice (Feishu)") && replaced.contains("echo feishu-ok"), "{answer}");
    assert!(
        answer["card"]["data"]["elements"].as_array().unwrap().iter().all(|e| e["tag"] != "action"),
        "no buttons left"
    );
    let decided = store.approval(approval.id).await.unwrap();
    assert_eq!(
        (decided.status, decided.scope, decided.decided_channel),
        (ApprovalStatus::Approved, Some(Scope::Once), Some(Channel::Feishu))
    );

    let summary = sent(fake, "the result summary", |c| c.text().starts_with("FAKE-REPLY")).await;
    // The command's status line went to the turn's status card (maybe coalesced away).
    let rows = store.outbox_recent(Channel::Feishu, P2P, 100).await.unwrap();
    let ran = rows.iter().find(|r| r.payload.text == "Codex ran `echo feishu-ok` (exit 0)").expect("the status line");
    assert_eq!(ran.payload.live.as_deref().map(|k| k.starts_with("turn:")), Some(true), "{ran:?}");
    let task = approval.task_id;
    let exec = store.executions(task).await.unwrap()[0].clone();
    eventually("the first turn done", || async { (completed_turns(store, exec.id).await == 1).then_some(()) }).await;
    let first = store.latest_session(exec.id).await.unwrap().expect("session");

    let reply = reply_event("ev-3", "om_in_3", ALICE, "make it say hello again", &summary.message_id().unwrap());
    assert_eq!(post_event(&gw, &reply).await.0, 200);
    eventually("the follow-up done", || async { (completed_turns(store, exec.id).await == 2).then_some(()) }).await;
    let second = store.latest_session(exec.id).await.unwrap().expect("session");
    assert_eq!((second.id, second.provider_session_id.clone()), (first.id, first.provider_session_id.clone()));
    assert_eq!(store.tasks(10).await.unwrap().len(), 1);

    // A late press on the old card: told who decided, nothing changes.
    let (status, late, _) = post_event(&gw, &card_event("ev-4", ALICE, &card_id, &values[2])).await;
    assert_eq!(status, 200);
    assert_eq!(late["toast"]["content"], "Already approved by Alice (Feishu)", "{late}");
    assert_eq!(store.approval(approval.id).await.unwrap(), decided, "the approval resolves once");
    // A press from a stranger is refused in its toast, with their open_id.
    let (_, refused, _) = post_event(&gw, &card_event("ev-5", MALLORY, &card_id, &values[2])).await;
    assert!(refused["toast"]["content"].as_str().unwrap().contains(MALLORY), "{refused}");
}

/// Where CardKit refuses (here: every card creation, as for an app without the permission),
/// the status falls back to one card message per turn: sent once as a shared card
/// (`update_multi`), then PATCHed in place as the turn goes on (coalesced, at least 250 ms
/// apart, a 429 waited out for `x-ogw-ratelimit-reset`), ending on how the turn ended; the
/// approval and the final summary are messages of their own.
async fn without_cardkit_a_turn_patches_one_status_card_in_place() {
    let world = FeishuWorld::new().await;
    let fake = &world.fake;
    fake.refuse_cards(usize::MAX);
    // The first PATCH is rate limited: it waits out the reset like a send does.
    fake.rate_limit("PATCH /open-apis/im/v1/messages", 1, 1);
    let gw = world.gateway("webhook", KEY, "taskgate.db").await;
    let store = &gw.store;

    assert_eq!(post_event(&gw, &message_event("ev-1", "om_in_1", P2P, ALICE, "RUN_CMD: echo live-ok")).await.0, 200);
    let ask = sent(fake, "the approval card", |c| c.has_buttons()).await;
    let status_cards = || {
        fake.sent().into_iter().filter(|c| c.body["msg_type"] == "interactive" && !c.has_buttons()).collect::<Vec<_>>()
    };
    let status = eventually("the status card", || async { status_cards().into_iter().next() }).await;
    assert_eq!(status.content()["config"]["update_multi"], true, "{}", status.body);
    let status_id = status.message_id().expect("an id");
    let patches_of_status = |ok: bool| {
        fake.calls_to("PATCH /open-apis/im/v1/messages/")
            .into_iter()
            .filter(|c| c.path.ends_with(&format!("/{status_id}")) && (c.status == 200) == ok)
            .collect::<Vec<_>>()
    };
    eventually("the status saying it waits", || async {
        patches_of_status(true).iter().any(|c| c.card_text().contains("is waiting for approval")).then_some(())
    })
    .await;

    let limited = patches_of_status(false).into_iter().next().expect("the 429");
    assert_eq!(limited.status, 429, "{}", fake.summary());
    let retried = patches_of_status(true).into_iter().next().expect("the PATCH, retried");
    let waited = retried.at.duration_since(limited.at);
    assert!(waited >= Duration::from_millis(900), "patched again after {waited:?}, before the reset");

    let approve = ask.content()["elements"][1]["actions"][0]["value"].clone();
    let (status_code, _, _) = post_event(&gw, &card_event("ev-2", ALICE, &ask.message_id().unwrap(), &approve)).await;
    assert_eq!(status_code, 200);
    let summary = sent(fake, "the result summary", |c| c.text().starts_with("FAKE-REPLY")).await;
    assert_ne!(summary.message_id().as_deref(), Some(status_id.as_str()), "the summary is a message of its own");
    assert!(matches!(summary.body["msg_type"].as_str(), Some("text" | "post")), "{}", summary.body);

    let patches = eventually("the status saying the turn finished", || async {
        let patches = patches_of_status(true);
        (patches.last().map(|c| c.card_text()).as_deref() == Some("Codex finished")).then_some(patches)
    })
    .await;
    assert!(patches.len() >= 2, "patched as the turn went on: {}", fake.summary());
    for pair in patches.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(gap >= Duration::from_millis(250), "two PATCHes {gap:?} apart: {}", fake.summary());
    }
    for p in &patches {
        assert_eq!(p.content()["config"]["update_multi"], true, "kept shared: {}", p.body);
        assert!(!p.has_buttons(), "a status asks nothing");
        assert!(p.button_ops().iter().all(|op| op == "stop"), "at most its Stop: {}", p.body);
    }
    assert_eq!(status_cards().len(), 1, "one status card for the turn: {}", fake.summary());
    // Coalesced: fewer PATCHes than status updates, every update marked sent as that card.
    drained(store).await;
    let rows = store.outbox_recent(Channel::Feishu, P2P, 100).await.unwrap();
    let live: Vec<_> =
        rows.iter().filter(|r| r.payload.live.as_deref().is_some_and(|k| k.starts_with("turn:"))).collect();
    assert!(live.len() > patches.len() + 1, "{} updates, {} patches: {live:#?}", live.len(), patches.len());
    assert!(
        live.iter().all(|r| r.sent_at.is_some() && r.external_message_id.as_deref() == Some(status_id.as_str())),
        "every update is shown by the one card: {live:#?}"
    );
    let creations = fake.calls_to("POST /open-apis/cardkit/v1/cards");
    assert!(!creations.is_empty() && creations.iter().all(|c| c.status == 400), "{}", fake.summary());
    assert!(fake.calls_to("/open-apis/cardkit/v1/cards/").is_empty(), "no card entity to update: {}", fake.summary());
}

/// The status text a card entity shows (its `status` element).
fn entity_text(card: &Value) -> String {
    let elements = card.pointer("/body/elements").and_then(Value::as_array).cloned().unwrap_or_default();
    let status = elements.iter().find(|e| e["element_id"] == "status").cloned().unwrap_or_default();
    status.pointer("/text/content").and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// The button values of a card entity (schema 2.0: buttons in the body, values in a callback).
fn entity_buttons(card: &Value) -> Vec<Value> {
    let elements = card.pointer("/body/elements").and_then(Value::as_array).cloned().unwrap_or_default();
    elements.iter().filter(|e| e["tag"] == "button").map(|b| b["behaviors"][0]["value"].clone()).collect()
}

/// The CardKit calls on card `card_id` after its creation, in order.
fn card_updates(fake: &FakeFeishu, card_id: &str) -> Vec<Call> {
    fake.calls_to(&format!("/open-apis/cardkit/v1/cards/{card_id}"))
}

/// One turn, one streaming card: a card entity created once (schema 2.0, streaming on, a
/// `status` element), one message showing it, its text streamed into the element with
/// growing sequences (never a message PATCH, so no "edited" badge), redrawn when its Stop goes,
/// streaming turned off at the end; the approval and the final summary are messages of their
/// own, and every status row is marked as shown by the one message.
async fn a_turn_streams_its_status_on_one_card_entity() {
    let world = FeishuWorld::new().await;
    let fake = &world.fake;
    let gw = world.gateway("webhook", KEY, "taskgate.db").await;
    let store = &gw.store;

    assert_eq!(post_event(&gw, &message_event("ev-1", "om_in_1", P2P, ALICE, "RUN_CMD: echo live-ok")).await.0, 200);
    let ask = sent(fake, "the approval card", |c| c.has_buttons()).await;
    let status = sent(fake, "the message showing the card", |c| c.card_id().is_some()).await;
    let (status_id, card_id) = (status.message_id().expect("an id"), status.card_id().unwrap());
    let created = fake.calls_to("POST /open-apis/cardkit/v1/cards");
    assert_eq!(created.len(), 1, "{}", fake.summary());
    assert_eq!(created[0].reply["data"]["card_id"], card_id.as_str());
    let first = created[0].card_json();
    assert_eq!(first["schema"], "2.0");
    assert_eq!(first["config"]["streaming_mode"], true, "{first}");
    assert!(!entity_text(&first).is_empty(), "{first}");
    let waiting = eventually("the card saying it waits, with its Stop", || async {
        let card = fake.card(&card_id)?;
        entity_text(&card).contains("is waiting for approval").then_some(card)
    })
    .await;
    let stop = entity_buttons(&waiting);
    assert_eq!(stop.len(), 1, "{waiting}");
    assert_eq!(stop[0]["op"], "stop", "the running turn's brake: {waiting}");

    let approve = ask.content()["elements"][1]["actions"][0]["value"].clone();
    let (status_code, _, _) = post_event(&gw, &card_event("ev-2", ALICE, &ask.message_id().unwrap(), &approve)).await;
    assert_eq!(status_code, 200);
    let summary = sent(fake, "the result summary", |c| c.text().starts_with("FAKE-REPLY")).await;
    assert_ne!(summary.message_id().as_deref(), Some(status_id.as_str()), "the summary is a message of its own");

    let updates = eventually("streaming turned off at the end", || async {
        let updates = card_updates(fake, &card_id);
        updates.last().is_some_and(|c| c.path.ends_with("/settings")).then_some(updates)
    })
    .await;
    assert!(updates.iter().all(|c| c.status == 200), "every update accepted: {}", fake.summary());
    let sequences: Vec<i64> = updates.iter().filter_map(Call::sequence).collect();
    assert_eq!(sequences.len(), updates.len());
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "sequences grow: {sequences:?}");
    let streamed: Vec<&Call> = updates.iter().filter(|c| c.path.ends_with("/elements/status/content")).collect();
    assert!(!streamed.is_empty(), "text streamed into the element: {}", fake.summary());
    assert!(streamed.iter().all(|c| c.method == "PUT" && c.body["content"].is_string()));
    let off = updates.last().unwrap();
    assert_eq!(off.method, "PATCH");
    let settings: Value = serde_json::from_str(off.body["settings"].as_str().unwrap()).unwrap();
    assert_eq!(settings, json!({"config": {"streaming_mode": false}}));
    let last = fake.card(&card_id).unwrap();
    assert_eq!(entity_text(&last), "Codex finished", "{last}");
    assert!(entity_buttons(&last).is_empty(), "the end takes Stop away: {last}");
    assert_eq!(last["config"]["streaming_mode"], false);

    assert!(
        fake.calls_to("PATCH /open-apis/im/v1/messages/").iter().all(|c| !c.path.ends_with(&status_id)),
        "the status message is never PATCHed: {}",
        fake.summary()
    );
    assert_eq!(fake.calls_to("POST /open-apis/cardkit/v1/cards").len(), 1, "one card entity");
    // The platform (here, the fake) holds the card to its sequence: an old one is refused.
    let api = taskgate_adapters::feishu::FeishuApi::new(&fake.url(), APP_ID, APP_SECRET.to_owned().into()).unwrap();
    let stale = api.replace_card(&card_id, &last, *sequences.last().unwrap() as u64).await;
    assert!(matches!(stale, Err(taskgate_adapters::feishu::api::ApiError::Api { code: 300317, .. })), "{stale:?}");
    assert_eq!(fake.sent().iter().filter(|c| c.card_id().is_some()).count(), 1, "one message showing it");
    drained(store).await;
    eventually("every status shown by the one message", || async {
        let rows = store.outbox_recent(Channel::Feishu, P2P, 100).await.ok()?;
        let live: Vec<_> =
            rows.iter().filter(|r| r.payload.live.as_deref().is_some_and(|k| k.starts_with("turn:"))).collect();
        (live.len() > 1
            && live.iter().all(|r| r.sent_at.is_some() && r.external_message_id.as_deref() == Some(status_id.as_str())))
        .then_some(())
    })
    .await;
}

/// Alice asks for a command, approves it, and it finishes: the id of the message showing the
/// turn's status card.
async fn approved_command_on_a_card(gw: &Gateway, fake: &FakeFeishu, text: &str) -> String {
    post_event(gw, &message_event("ev-1", "om_in_1", P2P, ALICE, text)).await;
    let ask = sent(fake, "the approval card", |c| c.has_buttons()).await;
    let status = sent(fake, "the message showing the card", |c| c.card_id().is_some()).await;
    let approve = ask.content()["elements"][1]["actions"][0]["value"].clone();
    post_event(gw, &card_event("ev-2", ALICE, &ask.message_id().unwrap(), &approve)).await;
    sent(fake, "the result summary", |c| c.text().starts_with("FAKE-REPLY")).await;
    status.message_id().unwrap()
}

/// A status outliving its card's streaming window (10 minutes on Feishu; here at once) moves
/// to a new card entity: the one message is pointed at it, the old card's streaming is turned
/// off, and the newest card ends the turn as usual.
async fn a_long_status_moves_to_a_new_card_entity() {
    let world = FeishuWorld::new().await;
    let fake = &world.fake;
    let engine = world.world.engine_on("taskgate.db").await;
    let outbox = OutboxOptions { rotate_after: Duration::ZERO, ..OutboxOptions::default() };
    let gw = world.gateway_sending("webhook", KEY, engine, outbox).await;
    let status_id = approved_command_on_a_card(&gw, fake, "RUN_CMD: echo long-ok").await;
    let pointed = eventually("the message pointed at the newest card, ended", || async {
        let pointed: Vec<String> = fake
            .calls_to(&format!("PATCH /open-apis/im/v1/messages/{status_id}"))
            .iter()
            .filter_map(|c| c.content()["data"]["card_id"].as_str().map(str::to_owned))
            .collect();
        let newest = fake.card(pointed.last()?)?;
        (entity_text(&newest) == "Codex finished" && newest["config"]["streaming_mode"] == false).then_some(pointed)
    })
    .await;
    let created = fake.calls_to("POST /open-apis/cardkit/v1/cards");
    assert_eq!(created.len(), pointed.len() + 1, "each new card shown by the one message: {}", fake.summary());
    for card in created.iter().filter_map(|c| c.reply["data"]["card_id"].as_str()) {
        assert_eq!(fake.card(card).unwrap()["config"]["streaming_mode"], false, "{card} streams no more");
        assert!(card_updates(fake, card).iter().all(|c| c.status == 200), "{}", fake.summary());
    }
    assert_eq!(fake.sent().iter().filter(|c| c.card_id().is_some()).count(), 1, "still one status message");
}

/// A CardKit update refused in the middle of a turn (the card deleted, say): the status goes
/// on in the same message, PATCHed in place from then on, and ends on how the turn ended.
async fn a_refused_card_update_falls_back_to_message_edits() {
    let world = FeishuWorld::new().await;
    let fake = &world.fake;
    fake.refuse_card_updates(1);
    let gw = world.gateway("webhook", KEY, "taskgate.db").await;
    let status_id = approved_command_on_a_card(&gw, fake, "RUN_CMD: echo fallback-ok").await;
    let patches = eventually("the message PATCHed to the end", || async {
        let patches = fake.calls_to(&format!("PATCH /open-apis/im/v1/messages/{status_id}"));
        (patches.last()?.card_text() == "Codex finished").then_some(patches)
    })
    .await;
    assert!(patches.iter().all(|p| p.status == 200 && !p.has_buttons()), "{}", fake.summary());
    let refused: Vec<Call> =
        fake.calls_to("/open-apis/cardkit/v1/cards/").into_iter().filter(|c| c.status != 200).collect();
    assert_eq!(refused.len(), 1, "one refusal, then message edits: {}", fake.summary());
    assert_eq!(fake.calls_to("/open-apis/cardkit/v1/cards/").len(), 1, "{}", fake.summary());
    assert_eq!(fake.sent().iter().filter(|c| c.card_id().is_some()).count(), 1, "still one status message");
}

/// The Stop button of a streaming card works like the old card's: its press (same
/// `card.action.trigger`, same value) stops the turn; the card loses the button and stops
/// streaming, and the turn still ends with its own message.
async fn the_stop_button_of_a_streaming_card_stops_the_turn() {
    let world = FeishuWorld::new().await;
    let fake = &world.fake;
    let gw = world.gateway("webhook", KEY, "taskgate.db").await;
    post_event(&gw, &message_event("ev-1", "om_in_1", P2P, ALICE, "SLOW_MS: 60000 index everything")).await;
    let status = sent(fake, "the message showing the card", |c| c.card_id().is_some()).await;
    let (status_id, card_id) = (status.message_id().unwrap(), status.card_id().unwrap());
    let stop =
        eventually("the Stop button", || async { entity_buttons(&fake.card(&card_id)?).into_iter().next() }).await;
    assert_eq!(stop["op"], "stop");
    let (code, answer, _) = post_event(&gw, &card_event("ev-2", ALICE, &status_id, &stop)).await;
    assert_eq!(code, 200);
    assert_eq!(answer["toast"]["type"], "success", "{answer}");
    eventually("the card without its Stop, streaming off", || async {
        let card = fake.card(&card_id)?;
        (entity_buttons(&card).is_empty() && card["config"]["streaming_mode"] == false).then_some(())
    })
    .await;
    let task = gw.store.tasks(10).await.unwrap()[0].id;
    let exec = gw.store.executions(task).await.unwrap()[0].id;
    eventually("the turn ended", || async { (completed_turns(&gw.store, exec).await == 1).then_some(()) }).await;
    assert!(card_updates(fake, &card_id).iter().all(|c| c.status == 200), "{}", fake.summary());
    assert_eq!(fake.calls_to("POST /open-apis/cardkit/v1/cards").len(), 1);
}

/// A stranger is refused once, in reply, with their open_id, and nothing of theirs reaches
/// the engine; group chatter without a mention is ignored; an event redelivered under the
/// same event_id, and resent under a new one, is processed once; a mention in the group is
/// handled. A wrong signature is refused and stores nothing.
async fn strangers_group_chatter_and_redelivery() {
    let world = FeishuWorld::new().await;
    let gw = world.gateway("webhook", KEY, "taskgate.db").await;
    let (fake, store) = (&world.fake, &gw.store);

    for (i, text) in ["RUN_CMD: echo pwned", "please?"].iter().enumerate() {
        let e = message_event(&format!("ev-m{i}"), &format!("om_m{i}"), "oc_p2p_mallory", MALLORY, text);
        assert_eq!(post_event(&gw, &e).await.0, 200);
    }
    assert_eq!(post_event(&gw, &message_event("ev-g1", "om_g1", GROUP, ALICE, "make the button green")).await.0, 200);
    let help = message_event("ev-h1", "om_h1", P2P, ALICE, "/help");
    assert_eq!(post_event(&gw, &help).await.0, 200);
    assert_eq!(post_event(&gw, &help).await.0, 200, "a redelivery is acknowledged");
    let mut resent = help.clone();
    resent["header"]["event_id"] = json!("ev-h1-after-reconnect");
    assert_eq!(post_event(&gw, &resent).await.0, 200, "the same message under a new event id too");
    assert_eq!(post_event(&gw, &message_event("ev-g2", "om_g2", GROUP, ALICE, "@bot write hello.txt")).await.0, 200);

    let refusal = sent(fake, "the refusal", |c| c.text().contains(MALLORY)).await;
    assert!(refusal.path.ends_with("/om_m0/reply"), "in reply to the refused message: {}", refusal.path);
    assert_eq!(refusal.body["msg_type"], "text", "one line is a text message");
    let help = sent(fake, "the help", |c| c.text().contains("/status")).await;
    // Several lines are a post: one paragraph per line, in both locales.
    assert_eq!(help.body["msg_type"], "post", "{}", help.body);
    let content = help.content();
    let lines: Vec<String> = help.text().lines().map(str::to_owned).collect();
    assert!(lines.len() >= 5 && lines.iter().any(|l| l.starts_with("/status")), "{lines:?}");
    for locale in ["zh_cn", "en_us"] {
        let paragraphs = content[locale]["content"].as_array().expect("paragraphs");
        assert_eq!(paragraphs.len(), lines.len(), "{locale}: {content}");
        for (p, line) in paragraphs.iter().zip(&lines) {
            assert_eq!(p, &json!([{"tag": "text", "text": line}]), "{locale}");
        }
    }
    // The answer replies to the mention (a quick turn's status card may never be sent).
    sent(fake, "an answer to the group mention", |c| c.body["receive_id"] == GROUP || c.path.ends_with("/om_g2/reply"))
        .await;
    drained(store).await;
    let sent_all = fake.sent();
    assert_eq!(sent_all.iter().filter(|c| c.text().contains(MALLORY)).count(), 1, "one refusal: {}", fake.summary());
    assert_eq!(sent_all.iter().filter(|c| c.text().contains("/status")).count(), 1, "help once: {}", fake.summary());
    assert!(store.find_identity(Channel::Feishu, MALLORY).await.unwrap().is_none(), "nothing of the stranger's stored");
    let tasks = store.tasks(10).await.unwrap();
    assert_eq!(tasks.len(), 1, "only the group mention made a task: {tasks:?}");
    assert!(tasks[0].goal.contains("write hello.txt") && !tasks[0].goal.contains("button"), "{:?}", tasks[0]);
    assert_eq!(store.conversation(Channel::Feishu, GROUP, "").await.unwrap().focused_task_id, Some(tasks[0].id));

    // Forged: a wrong signature, or the right body signed for another key.
    let forged = message_event("ev-f", "om_f", P2P, ALICE, "RUN_CMD: echo forged");
    let body = json!({"encrypt": crypto::encrypt(KEY, forged.to_string().as_bytes(), [0; 16])}).to_string();
    for sig in ["0".repeat(64), crypto::signature("1", "n", "other key", body.as_bytes()), String::new()] {
        let headers = [
            ("X-Lark-Request-Timestamp".to_owned(), "1".to_owned()),
            ("X-Lark-Request-Nonce".to_owned(), "n".to_owned()),
            ("X-Lark-Signature".to_owned(), sig),
        ];
        assert_eq!(post_raw(&gw.url, &body, &headers).await.0, 401);
    }
    let row = store
        .inbox_accept(NewInbound { channel: Channel::Feishu, external_id: "message:om_f".into(), payload: json!({}) })
        .await
        .unwrap();
    assert!(matches!(row, InboxOutcome::Accepted(_)), "the forged callback was never stored");
}

/// Sending: an expired tenant token is refreshed and the send made again; a 429 waits
/// `x-ogw-ratelimit-reset`; every attempt of one message carries the same uuid.
async fn token_refresh_rate_limit_and_idempotent_retries() {
    let world = FeishuWorld::new().await;
    let gw = world.gateway("webhook", KEY, "taskgate.db").await;
    let fake = &world.fake;
    assert_eq!(fake.calls_to("tenant_access_token").len(), 1, "one token for bot info");
    fake.expire_tokens();
    fake.rate_limit("POST /open-apis/im/v1/messages", 1, 1);

    assert_eq!(post_event(&gw, &message_event("ev-1", "om_1", P2P, ALICE, "/help")).await.0, 200);
    let ok = sent(fake, "the help, after the refresh and the rate limit", |c| c.text().contains("/status")).await;
    let attempts = fake.calls_to("/reply");
    let statuses: Vec<u16> = attempts.iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![400, 429, 200], "{}", fake.summary());
    assert_eq!(attempts[0].reply["code"], 99991663);
    assert_eq!(fake.calls_to("tenant_access_token").len(), 2, "refreshed once: {}", fake.summary());
    let uuids: Vec<&Value> = attempts.iter().map(|c| &c.body["uuid"]).collect();
    assert!(uuids.iter().all(|u| *u == uuids[0]) && uuids[0].is_string(), "one uuid for every attempt: {uuids:?}");
    let waited = ok.at.duration_since(attempts[1].at);
    assert!(waited >= Duration::from_millis(900), "sent again after {waited:?}, before the reset");
    drained(&gw.store).await;
    assert_eq!(fake.sent().len(), 1);
}

/// Long-connection mode: the endpoint is discovered, pings flow, a message split over three
/// frames is joined, stored and acknowledged with code 200; after the server drops the
/// connection the client reconnects, and the same message resent under a new event id is
/// acknowledged but not handled again; a card press is answered in its ack's `data`.
async fn long_connection_frames_acks_and_reconnect() {
    let world = FeishuWorld::new().await;
    let fake = &world.fake;
    fake.set_ping_interval(1);
    let gw = world.gateway("websocket", "", "taskgate.db").await;
    eventually("connected", || async { (fake.ws_connections() == 1).then_some(()) }).await;
    let (status, _, _) = post_raw(&gw.url, "{}", &[]).await;
    assert_eq!(status, 404, "no webhook in websocket mode");

    let help = message_event("ev-ws-1", "om_ws_1", P2P, ALICE, "/help");
    let frame_id = fake.push_ws_event(&help, 3);
    let ack = eventually("the ack", || async { fake.ws_acks(&frame_id).into_iter().next() }).await;
    assert_eq!(ack.ack()["code"], 200, "{:?}", ack.ack());
    assert!(ack.frame.header("biz_rt").is_some());
    assert_eq!((ack.frame.service, ack.frame.header("sum")), (SERVICE_ID, Some("3")));
    sent(fake, "the help", |c| c.text().contains("/status")).await;
    let pings = eventually("a ping", || async {
        let pings: Vec<_> = fake.ws_received().into_iter().filter(|f| f.frame.method == 0).collect();
        (!pings.is_empty()).then_some(pings)
    })
    .await;
    assert_eq!((pings[0].frame.header("type"), pings[0].frame.service), (Some("ping"), SERVICE_ID));

    fake.drop_ws();
    eventually("reconnected", || async { (fake.ws_connections() == 2).then_some(()) }).await;
    assert_eq!(fake.calls_to("/callback/ws/endpoint").len(), 2, "a fresh endpoint per connection");
    let mut resent = help.clone();
    resent["header"]["event_id"] = json!("ev-ws-1-again");
    let again = fake.push_ws_event(&resent, 1);
    let ack = eventually("the second ack", || async { fake.ws_acks(&again).into_iter().next() }).await;
    assert_eq!(ack.ack()["code"], 200);

    let press =
        card_event("ev-ws-2", ALICE, "om_unknown", &json!({"op": "approve", "approval": "999", "nonce": "n0nce"}));
    let pressed = fake.push_ws_event(&press, 1);
    let ack = eventually("the card ack", || async { fake.ws_acks(&pressed).into_iter().next() }).await;
    let data = base64::engine::general_purpose::STANDARD.decode(ack.ack()["data"].as_str().expect("data")).unwrap();
    let answer: Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(answer["toast"]["content"], "This request is no longer known.", "{answer}");
    drained(&gw.store).await;
    assert_eq!(
        fake.sent().iter().filter(|c| c.text().contains("/status")).count(),
        1,
        "handled once: {}",
        fake.summary()
    );
}

/// `taskgate serve`'s own wiring: with `[feishu]` configured, the application checks the app
/// and mounts the webhook, which answers the url_verification handshake.
async fn serve_starts_the_channel_from_config() {
    let fake = FakeFeishu::start().await.expect("fake feishu");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("taskgate.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[feishu]\napp_id = \"{APP_ID}\"\napp_secret = \"{APP_SECRET}\"\nverification_token = \"{TOKEN}\"\nencrypt_key = \"{KEY}\"\napi_url = \"{}\"\nallowed_users = [\"{ALICE}\"]\n",
            dir.path().join("data").display(),
            fake.url()
        ),
    )
    .unwrap();
    let config = Config::load_from(Some(&file), std::iter::empty()).expect("config");
    let app = spawn_app(&config).await.expect("application builds");
    let addr = app.addr;
    eventually("the app is checked at start", || async { (fake.calls_to("/bot/v3/info").len() == 1).then_some(()) })
        .await;
    let url = format!("http://{addr}/webhook/feishu");
    let body = json!({"challenge": "c-1", "token": TOKEN, "type": "url_verification"}).to_string();
    assert_eq!(post_raw(&url, &body, &[]).await.1, json!({"challenge": "c-1"}));
    let wrong = json!({"challenge": "c-1", "token": "nope", "type": "url_verification"}).to_string();
    assert_eq!(post_raw(&url, &wrong, &[]).await.0, 401);
    app.stop().await.expect("stops cleanly");
}

/// Feishu has no silent send: the message budget of one approved command is the status card,
/// the approval card (updated to the decision, not followed by a repeat) and the answer, at
/// most 3 new messages; the cards are updated in place.
async fn one_approved_command_costs_at_most_three_new_messages() {
    let world = FeishuWorld::new().await;
    let gw = world.gateway("webhook", KEY, "taskgate.db").await;
    let (fake, store) = (&world.fake, &gw.store);
    post_event(&gw, &message_event("ev-1", "om_in_1", P2P, ALICE, "RUN_CMD: echo budget-ok")).await;
    let ask = sent(fake, "the approval card", |c| c.body["msg_type"] == "interactive" && c.has_buttons()).await;
    let values: Vec<Value> =
        ask.content()["elements"][1]["actions"].as_array().unwrap().iter().map(|a| a["value"].clone()).collect();
    let card_id = ask.message_id().unwrap();
    post_event(&gw, &card_event("ev-2", ALICE, &card_id, &values[0])).await;
    sent(fake, "the answer", |c| c.text().starts_with("FAKE-REPLY")).await;
    let task = store.tasks(10).await.unwrap()[0].id;
    let exec = store.executions(task).await.unwrap()[0].id;
    eventually("the turn done", || async { (completed_turns(store, exec).await == 1).then_some(()) }).await;
    eventually("the outbox drained", || async {
        let rows = store.outbox_recent(Channel::Feishu, P2P, 100).await.ok()?;
        rows.iter().all(|r| r.sent_at.is_some()).then_some(())
    })
    .await;
    let new_messages = fake.sent();
    assert!(new_messages.len() <= 3, "{} new messages: {new_messages:#?}", new_messages.len());
    assert!(!new_messages.iter().any(|c| c.text().starts_with("Approved")), "no repeat of the decision");
}
