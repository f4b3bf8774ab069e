//! Files from the phone reach the agent: photos, documents and voice notes sent through the
//! fake Bot API (and the fake Feishu platform) are fetched, checked, stored content-addressed,
//! put on the timeline, and given to the fake agent in its protocol's own terms (codex
//! `localImage`, claude base64 image blocks, ACP image content and resource links). Assertions
//! read what the fake agent recorded (`--prompts`), the chat, the store and the disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use taskgate::config::{AgentKind, Config, TelegramConfig};
use taskgate::engine::Engine;
use taskgate::telegram::{self, Telegram};
use taskgate_adapters::store::SeaStore;
use taskgate_core::model::*;
use taskgate_core::store::Store;
use taskgate_tests::cluster::{Prompt, prompts};
use taskgate_tests::fake_feishu::{APP_ID, APP_SECRET, FakeFeishu};
use taskgate_tests::fake_telegram::{FakeTelegram, channel_options};
use taskgate_tests::harness::{Trial, eventually};
use taskgate_tests::world::{World, fake_agent_config};

pub fn trials() -> Vec<Trial> {
    taskgate_tests::trials! {
        current_thread: [
            telegram_photo_document_and_voice_reach_codex,
            a_photo_reaches_claude_as_an_image_block,
            a_photo_and_a_file_reach_an_acp_agent,
            an_oversized_file_is_refused_with_one_line_and_nothing_stored,
            a_voice_note_without_a_transcriber_says_how_to_enable_it_once,
            feishu_image_post_file_and_audio_reach_codex,
        ],
        multi_thread(2): [
            web_console_upload_reaches_codex_and_the_timeline_links_it,
            a_turn_run_again_after_a_restart_keeps_its_image,
        ],
    }
}

const TOKEN: &str = "123456:TEST-token";
const ADA: u64 = 111;
/// A tiny PNG's worth of bytes (the agents are fakes: the content only has to round-trip).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\nfake-image-bytes";

/// A world whose agents record every input, a fake Bot API, and the Telegram channel.
struct Phone {
    world: World,
    fake: FakeTelegram,
    prompts: PathBuf,
    _scratch: tempfile::TempDir,
    store: Arc<SeaStore>,
    _channel: Telegram,
}

impl Phone {
    /// `tune` adjusts the config after the recording agents are set up (`scratch` is a dir
    /// outside the world's for scripts).
    async fn start(tune: impl FnOnce(&mut Config, &Path)) -> Phone {
        let (world, prompts, scratch) = recording_world(tune);
        let fake = FakeTelegram::start(TOKEN).await.expect("fake telegram");
        let text = format!("token = \"{TOKEN}\"\napi_url = \"{}\"\nallowed_users = [{ADA}]\n", fake.url());
        let config: TelegramConfig = toml::from_str(&text).expect("telegram config");
        let engine: Engine = world.engine().await;
        engine.set_admission(Channel::Telegram, telegram::admission(&config));
        let engine = Arc::new(engine);
        let channel = Telegram::start(engine.clone(), &config, None, channel_options()).await.expect("telegram starts");
        let store = engine.store().clone();
        Phone { world, fake, prompts, _scratch: scratch, store, _channel: channel }
    }
}

/// The shared world with every agent (codex, claude, and `gemini` over ACP) recording its
/// inputs in `prompts.jsonl` of a scratch dir; `tune` adjusts the config (`scratch` holds
/// scripts).
fn recording_world(tune: impl FnOnce(&mut Config, &Path)) -> (World, PathBuf, tempfile::TempDir) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let prompts = scratch.path().join("prompts.jsonl");
    let recorded = prompts.clone();
    let scratch_path = scratch.path().to_owned();
    let world = World::with(|config| {
        let state = config.server.data_dir.join("fake-state");
        let args = |kind| {
            fake_agent_config(
                kind,
                [
                    "--state-dir".to_owned(),
                    state.to_string_lossy().into_owned(),
                    "--prompts".to_owned(),
                    recorded.to_string_lossy().into_owned(),
                ],
            )
        };
        config.agents.insert("codex".into(), args(AgentKind::Codex));
        config.agents.insert("claude".into(), args(AgentKind::Claude));
        config.agents.insert("gemini".into(), args(AgentKind::Acp));
        tune(config, &scratch_path);
    });
    let mut world = world;
    // Stored files go under the world's own dir.
    world.config.server.data_dir = world.dir.path().join("data");
    (world, prompts, scratch)
}

impl Phone {
    fn project(&self) -> PathBuf {
        self.world.config.projects[0].path.clone()
    }

    fn stored_files(&self) -> Vec<PathBuf> {
        walk(&self.world.config.server.data_dir.join("attachments"))
    }

    /// The `n`th input any agent received (0-based), once it arrived.
    async fn prompt(&self, n: usize) -> Prompt {
        let what = format!("agent input #{n}");
        let found = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            loop {
                if let Some(p) = prompts(&self.prompts).get(n).cloned() {
                    return p;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
        .await;
        match found {
            Ok(p) => p,
            Err(_) => panic!("timed out waiting for {what}; telegram calls:\n{}", self.fake.summary()),
        }
    }

    /// The texts sent to Ada's chat.
    fn chat(&self) -> Vec<String> {
        self.fake.sent_texts(ADA as i64)
    }

    async fn said(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        eventually(what, || async { self.chat().into_iter().find(|t| pred(t)) }).await
    }

    async fn attachments_on_timeline(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for task in self.store.tasks(50).await.unwrap() {
            for event in self.store.timeline(task.id).await.unwrap() {
                let body = event.body.to_json();
                if body["type"] == "attachment" {
                    out.push(body);
                }
            }
        }
        out
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn message(update_id: i64, body: Value) -> Value {
    let mut message = json!({
        "message_id": update_id * 10, "date": 1_700_000_000,
        "chat": {"id": ADA, "type": "private", "first_name": "Ada"},
        "from": {"id": ADA, "is_bot": false, "first_name": "Ada", "username": "ada"},
    });
    for (k, v) in body.as_object().unwrap() {
        message[k] = v.clone();
    }
    json!({"update_id": update_id, "message": message})
}

fn photo(update_id: i64, caption: Option<&str>) -> Value {
    let mut body = json!({"photo": [
        {"file_id": "photo-small", "file_unique_id": "ps", "width": 90, "height": 51, "file_size": 100},
        {"file_id": "photo-big", "file_unique_id": "pb", "width": 1280, "height": 720, "file_size": PNG.len()},
    ]});
    if let Some(c) = caption {
        body["caption"] = json!(c);
    }
    message(update_id, body)
}

fn document(update_id: i64, file_id: &str, name: &str, mime: &str, size: usize) -> Value {
    message(
        update_id,
        json!({"document": {"file_id": file_id, "file_unique_id": format!("u{file_id}"), "file_name": name,
            "mime_type": mime, "file_size": size}}),
    )
}

fn voice(update_id: i64, file_id: &str) -> Value {
    message(
        update_id,
        json!({"voice": {"file_id": file_id, "file_unique_id": format!("u{file_id}"), "duration": 2,
            "mime_type": "audio/ogg", "file_size": 5}}),
    )
}

/// The items of one kind in a codex `turn/start` input.
fn items<'a>(prompt: &'a Prompt, kind: &str) -> Vec<&'a Value> {
    prompt.input.as_array().map(|a| a.iter().filter(|i| i["type"] == kind).collect()).unwrap_or_default()
}

/// A photo with a caption reaches codex as a `localImage` of the stored bytes (the largest
/// size, downloaded again after a failed try); a document alone continues that task, copied
/// into the project and named by its path; a voice note is transcribed by the configured
/// command, shown back as "Heard: …", and sent as the message. Every file is on the timeline.
async fn telegram_photo_document_and_voice_reach_codex() {
    let phone = Phone::start(|config, scratch| {
        let script = scratch.join("transcribe.sh");
        std::fs::write(&script, "#!/bin/sh\ntest -f \"$1\" || exit 3\necho 'please also check the footer'\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        config.attachments.transcribe = vec![script.to_string_lossy().into_owned(), "{file}".into()];
    })
    .await;
    let fake = &phone.fake;
    fake.add_file("photo-big", PNG);
    fake.add_file("photo-small", b"thumb");
    fake.fail_downloads(1);

    fake.push_update(photo(1, Some("the Save button is cut off, fix it")));
    let first = phone.prompt(0).await;
    assert!(first.text.starts_with("the Save button is cut off, fix it"), "{}", first.text);
    let images = items(&first, "localImage");
    assert_eq!(images.len(), 1, "one image item: {}", first.input);
    let path = images[0]["path"].as_str().unwrap();
    assert_eq!(std::fs::read(path).unwrap(), PNG, "the image item is the stored photo");
    assert!(Path::new(path).is_absolute(), "{path}");
    assert_eq!(items(&first, "text").len(), 1);
    assert!(
        fake.downloads().iter().all(|d| d.contains("photo-big")) && fake.downloads().len() == 2,
        "the largest size, tried again after a failure: {:?}",
        fake.downloads()
    );
    let task = phone.store.tasks(10).await.unwrap()[0].clone();
    phone.said("the first answer", |t| t.starts_with("FAKE-REPLY")).await;

    // A document alone: the same task goes on, the file in the project, named by its path.
    fake.add_file("doc-1", b"error: linker failed\n");
    fake.push_update(document(2, "doc-1", "../build output.log", "text/plain", 21));
    let second = phone.prompt(1).await;
    let copied = phone
        .project()
        .join(".taskgate/attachments")
        .join(task.id.to_string())
        .join(format!("{}-build_output.log", &sha256(b"error: linker failed\n")[..8]));
    assert_eq!(std::fs::read(&copied).unwrap(), b"error: linker failed\n", "{}", second.text);
    assert!(second.text.contains(&copied.to_string_lossy().into_owned()), "{}", second.text);
    assert!(second.text.contains("build_output.log (file, text/plain"), "{}", second.text);
    assert!(items(&second, "localImage").is_empty(), "a log is not an image: {}", second.input);
    assert_eq!(phone.store.tasks(10).await.unwrap().len(), 1, "a file alone continues the active task");

    // A voice note: transcribed, shown back, sent as the text.
    fake.add_file("voice-1", b"OggS-voice");
    fake.push_update(voice(3, "voice-1"));
    phone.said("the transcript shown back", |t| t == "Heard: please also check the footer").await;
    let third = phone.prompt(2).await;
    assert!(third.text.contains("please also check the footer"), "{}", third.text);
    assert!(!third.text.contains("voice-30.ogg"), "the voice file itself is not sent: {}", third.text);

    let timeline = eventually("three files on the timeline", || async {
        let found = phone.attachments_on_timeline().await;
        (found.len() == 3).then_some(found)
    })
    .await;
    assert_eq!(timeline[0]["kind"], "image");
    assert_eq!(timeline[0]["size"], PNG.len());
    assert_eq!(timeline[0]["sha256"], sha256(PNG));
    assert_eq!((timeline[1]["kind"].as_str(), timeline[1]["name"].as_str()), (Some("file"), Some("build_output.log")));
    assert_eq!(timeline[2]["kind"], "voice");
    assert!(timeline.iter().all(|b| b.get("path").is_none()), "the timeline says what, not where");
}

/// Claude gets an image as a base64 image content block beside the text.
async fn a_photo_reaches_claude_as_an_image_block() {
    let phone = Phone::start(|config, _| {
        config.projects[0].default_agent = Some("claude".into());
    })
    .await;
    phone.fake.add_file("photo-big", PNG);
    phone.fake.push_update(photo(1, Some("what does this screen say?")));
    let prompt = phone.prompt(0).await;
    let blocks = prompt.input.as_array().unwrap_or_else(|| panic!("content blocks: {}", prompt.input));
    assert_eq!(blocks[0]["type"], "text");
    assert!(blocks[0]["text"].as_str().unwrap().starts_with("what does this screen say?"));
    let image = blocks.iter().find(|b| b["type"] == "image").expect("an image block");
    assert_eq!(image["source"]["type"], "base64");
    assert_eq!(image["source"]["media_type"], "image/jpeg");
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.decode(image["source"]["data"].as_str().unwrap()).unwrap();
    assert_eq!(data, PNG);
}

/// An ACP agent gets image content for a photo and a resource link for a file.
async fn a_photo_and_a_file_reach_an_acp_agent() {
    let phone = Phone::start(|config, _| {
        config.projects[0].default_agent = Some("gemini".into());
    })
    .await;
    phone.fake.add_file("photo-big", PNG);
    phone.fake.push_update(photo(1, Some("compare with the spec")));
    let first = phone.prompt(0).await;
    let blocks = first.input.as_array().unwrap_or_else(|| panic!("prompt blocks: {}", first.input));
    let image = blocks.iter().find(|b| b["type"] == "image").unwrap_or_else(|| panic!("image: {}", first.input));
    assert_eq!(image["mimeType"], "image/jpeg");
    use base64::Engine as _;
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(image["data"].as_str().unwrap()).unwrap(), PNG);
    phone.said("the first answer", |t| t.contains("FAKE-REPLY")).await;

    phone.fake.add_file("spec", b"%PDF-1.4 spec");
    phone.fake.push_update(document(2, "spec", "spec.pdf", "application/pdf", 13));
    let second = phone.prompt(1).await;
    let blocks = second.input.as_array().unwrap_or_else(|| panic!("prompt blocks: {}", second.input));
    let link = blocks.iter().find(|b| b["type"] == "resource_link").unwrap_or_else(|| panic!("{}", second.input));
    assert_eq!(link["name"], "spec.pdf");
    let uri = link["uri"].as_str().unwrap();
    let path = uri.strip_prefix("file://").expect("a file URI");
    assert!(path.contains("/.taskgate/attachments/"), "{uri}");
    assert_eq!(std::fs::read(path).unwrap(), b"%PDF-1.4 spec");
}

/// A file over `max_bytes` is refused with exactly one line, before it is downloaded when
/// Telegram says its size, after `getFile` when it did not; nothing is stored, no task starts.
async fn an_oversized_file_is_refused_with_one_line_and_nothing_stored() {
    let phone = Phone::start(|_, _| {}).await;
    let fake = &phone.fake;
    fake.push_update(document(1, "huge", "dump.zip", "application/zip", 48 * 1024 * 1024));
    phone.said("the refusal", |t| t.starts_with("files up to")).await;
    assert_eq!(phone.chat(), vec!["files up to 20 MB; this one is 48 MB".to_owned()]);
    assert!(fake.calls_to("getFile").is_empty(), "not fetched");

    // The update under-reports the size: refused after getFile, still nothing stored.
    fake.add_file("liar", &vec![b'x'; 21 * 1024 * 1024]);
    fake.push_update(document(2, "liar", "big.log", "text/plain", 10));
    eventually("the second refusal", || async { (phone.chat().len() == 2).then_some(()) }).await;
    assert_eq!(phone.chat()[1], "files up to 20 MB; this one is 21 MB");
    assert!(fake.downloads().is_empty(), "{:?}", fake.downloads());

    // A refused type.
    fake.add_file("clip", b"mp4");
    fake.push_update(document(3, "clip", "clip.mp4", "video/mp4", 3));
    eventually("the third refusal", || async { (phone.chat().len() == 3).then_some(()) }).await;
    assert!(phone.chat()[2].contains("video/mp4"), "{}", phone.chat()[2]);

    assert!(phone.stored_files().is_empty(), "{:?}", phone.stored_files());
    assert!(phone.store.tasks(10).await.unwrap().is_empty(), "no task");
    assert!(prompts(&phone.prompts).is_empty(), "nothing reached an agent");
}

/// Without `[attachments] transcribe`, the first voice note explains how to turn it on, later
/// ones get one short line; neither reaches the agent.
async fn a_voice_note_without_a_transcriber_says_how_to_enable_it_once() {
    let phone = Phone::start(|_, _| {}).await;
    phone.fake.add_file("v1", b"OggS");
    phone.fake.push_update(voice(1, "v1"));
    phone.fake.push_update(voice(2, "v1"));
    eventually("two answers", || async { (phone.chat().len() == 2).then_some(()) }).await;
    let chat = phone.chat();
    assert!(chat[0].contains("[attachments]") && chat[0].contains("transcribe"), "{}", chat[0]);
    assert_eq!(chat[1], "Voice notes aren't transcribed here; please type your message.");
    assert!(phone.fake.calls_to("getFile").is_empty());
    assert!(phone.store.tasks(10).await.unwrap().is_empty());
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

const ALICE: &str = "ou_alice00000000000000000000000001";
const FEISHU_CHAT: &str = "oc_p2p_alice";
const VERIFICATION: &str = "v-token";

/// A Feishu message event of `message_type` with `content`, from Alice in her direct chat.
fn feishu_event(n: usize, message_type: &str, content: Value) -> Value {
    json!({"schema": "2.0",
        "header": {"event_id": format!("ev-{n}"), "token": VERIFICATION, "create_time": "1763800000000",
            "event_type": "im.message.receive_v1", "tenant_key": "t", "app_id": APP_ID},
        "event": {"sender": {"sender_id": {"open_id": ALICE}, "sender_type": "user", "tenant_key": "t"},
            "message": {"message_id": format!("om_{n}"), "root_id": "", "parent_id": "", "chat_id": FEISHU_CHAT,
                "chat_type": "p2p", "message_type": message_type, "content": content.to_string(), "mentions": []}}})
}

/// Through the fake Feishu platform: an `image` message, a `post` with an image in it, a
/// `file` and an `audio` message are fetched from the message resources API and reach codex
/// as image input, a file in the project, and a transcript; an oversized file gets one line.
async fn feishu_image_post_file_and_audio_reach_codex() {
    let (world, prompts_file, _scratch) = recording_world(|config, scratch| {
        let script = scratch.join("transcribe.sh");
        std::fs::write(&script, "#!/bin/sh\necho 'ship it after lunch'\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        config.attachments.transcribe = vec![script.to_string_lossy().into_owned(), "{file}".into()];
    });
    let fake = FakeFeishu::start().await.expect("fake feishu");
    let text = format!(
        "app_id = \"{APP_ID}\"\napp_secret = \"{APP_SECRET}\"\nverification_token = \"{VERIFICATION}\"\napi_url = \"{}\"\nallowed_users = [\"{ALICE}\"]\n",
        fake.url()
    );
    let config: taskgate::config::FeishuConfig = toml::from_str(&text).expect("feishu config");
    let engine = world.engine().await;
    engine.set_admission(Channel::Feishu, taskgate::feishu::admission(&config));
    let engine = Arc::new(engine);
    let options = taskgate::feishu::FeishuOptions {
        outbox: taskgate_adapters::feishu::outbound::OutboxOptions {
            poll_interval: std::time::Duration::from_millis(50),
            chat_interval: std::time::Duration::ZERO,
            ..Default::default()
        },
        inbox_interval: std::time::Duration::from_millis(100),
        ..Default::default()
    };
    let channel = taskgate::feishu::Feishu::start(engine.clone(), &config, options).await.expect("feishu starts");
    let state = taskgate::http::AppState {
        store: engine.store().clone(),
        metrics: taskgate::metrics::Metrics::new(),
        links: Default::default(),
    };
    let server = taskgate_tests::app::Port::bind()
        .await
        .serve(taskgate::http::router(state).layer(axum::Extension(channel.webhook())));
    let url = format!("http://{}/webhook/feishu", server.addr);
    let post = |event: Value| {
        let url = url.clone();
        async move {
            let response = reqwest::Client::new().post(&url).json(&event).send().await.expect("the webhook answers");
            assert_eq!(response.status().as_u16(), 200);
        }
    };
    let prompt = |n: usize| {
        let file = prompts_file.clone();
        async move { eventually(&format!("agent input #{n}"), || async { prompts(&file).get(n).cloned() }).await }
    };
    let said = |what: &'static str, line: &'static str| {
        let fake = &fake;
        async move { eventually(what, || async { fake.sent().into_iter().find(|c| c.text() == line).map(|_| ()) }).await }
    };

    fake.add_resource("om_1", "img_v3_1", "image", "image/png", PNG);
    post(feishu_event(1, "image", json!({"image_key": "img_v3_1"}))).await;
    let first = prompt(0).await;
    let images = items(&first, "localImage");
    assert_eq!(images.len(), 1, "{}", first.input);
    assert_eq!(std::fs::read(images[0]["path"].as_str().unwrap()).unwrap(), PNG);
    let fetched = fake.calls_to("/resources/img_v3_1");
    assert_eq!(fetched.len(), 1, "{}", fake.summary());
    assert_eq!(fetched[0].query, "type=image");

    let post_content = json!({"title": "Header overlaps", "content": [
        [{"tag": "text", "text": "it also happens here"}],
        [{"tag": "img", "image_key": "img_v3_2"}],
    ]});
    fake.add_resource("om_2", "img_v3_2", "image", "image/jpeg", b"jpeg-bytes");
    post(feishu_event(2, "post", post_content)).await;
    let second = prompt(1).await;
    assert!(second.text.starts_with("Header overlaps\nit also happens here"), "{}", second.text);
    let images = items(&second, "localImage");
    assert_eq!(images.len(), 1, "{}", second.input);
    assert!(images[0]["path"].as_str().unwrap().ends_with(".jpg"), "{}", second.input);

    fake.add_resource("om_3", "file_v3_3", "file", "application/octet-stream", b"panic at line 3");
    post(feishu_event(3, "file", json!({"file_key": "file_v3_3", "file_name": "crash.log"}))).await;
    let third = prompt(2).await;
    assert!(third.text.contains("crash.log (file, text/plain"), "{}", third.text);
    assert!(third.text.contains("/.taskgate/attachments/"), "{}", third.text);
    assert_eq!(fake.calls_to("/resources/file_v3_3")[0].query, "type=file");

    fake.add_resource("om_4", "file_v3_4", "file", "audio/opus", b"opus-voice");
    post(feishu_event(4, "audio", json!({"file_key": "file_v3_4", "duration": 1200}))).await;
    said("the transcript shown back", "Heard: ship it after lunch").await;
    let fourth = prompt(3).await;
    assert!(fourth.text.contains("ship it after lunch"), "{}", fourth.text);

    fake.add_resource("om_5", "file_v3_5", "file", "application/zip", &vec![0u8; 21 * 1024 * 1024]);
    post(feishu_event(5, "file", json!({"file_key": "file_v3_5", "file_name": "dump.zip"}))).await;
    said("the refusal", "files up to 20 MB; this one is 21 MB").await;
    let tasks = engine.store().tasks(10).await.unwrap();
    assert_eq!(tasks.len(), 1, "every file continued the first task");
    assert!(prompts(&prompts_file).len() == 4, "the refused file reached no agent");
}

/// The web console: a picture uploaded (`POST /api/files`) and sent with a message reaches
/// codex as a `localImage`; the stored file is served back for the timeline's thumbnail; an
/// upload over the limit is refused with the one line, storing nothing.
async fn web_console_upload_reaches_codex_and_the_timeline_links_it() {
    let (mut world, prompts_file, _scratch) = recording_world(|config, _| {
        config.attachments.max_bytes = 64 * 1024;
    });
    world.config.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let app = taskgate_tests::app::spawn_app(&world.config).await.expect("gateway starts");
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", app.url);

    let unauthorised = http.post(url("/api/files?name=shot.png")).body(PNG.to_vec()).send().await.unwrap();
    assert_eq!(unauthorised.status().as_u16(), 401);

    let uploaded = http
        .post(url("/api/files?name=../shot.png"))
        .bearer_auth(&app.token)
        .header("content-type", "image/png")
        .body(PNG.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status().as_u16(), 201);
    let file: Value = uploaded.json().await.unwrap();
    assert_eq!((file["name"].as_str(), file["kind"].as_str()), (Some("shot.png"), Some("image")));
    assert_eq!(file["size"], PNG.len());

    let sent = http
        .post(url("/api/messages"))
        .bearer_auth(&app.token)
        .json(&json!({"text": "the login button overlaps the logo", "files": [file.clone()]}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status().as_u16(), 202);
    let prompt = eventually("codex got the upload", || async { prompts(&prompts_file).first().cloned() }).await;
    let images = items(&prompt, "localImage");
    assert_eq!(images.len(), 1, "{}", prompt.input);
    assert_eq!(std::fs::read(images[0]["path"].as_str().unwrap()).unwrap(), PNG);

    let served = http
        .get(url(&format!("/api/files/{}", file["sha256"].as_str().unwrap())))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.bytes().await.unwrap().as_ref(), PNG);
    let history: Value =
        http.get(url("/api/messages")).bearer_auth(&app.token).send().await.unwrap().json().await.unwrap();
    let mine = history.as_array().unwrap().iter().find(|m| m["from"] == "you").expect("the message");
    assert_eq!(mine["files"][0]["sha256"], file["sha256"], "{mine}");

    let big = http
        .post(url("/api/files?name=dump.log"))
        .bearer_auth(&app.token)
        .header("content-type", "text/plain")
        .body(vec![b'x'; 200 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status().as_u16(), 413);
    let error: Value = big.json().await.unwrap();
    assert_eq!(error["error"], "files up to 64 KB; this one is 200 KB", "{error}");
    let unknown = http
        .post(url("/api/messages"))
        .bearer_auth(&app.token)
        .json(&json!({"text": "", "files": [{"sha256": "../../etc/passwd", "name": "x", "mime": "text/plain"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 400);
    let stored = walk(&world.config.server.data_dir.join("attachments"));
    assert_eq!(stored.len(), 1, "only the picture is stored: {stored:?}");
}

/// A gateway restart while a turn with a picture runs: the next start runs the turn again,
/// and the agent gets the picture again too, not only the text.
async fn a_turn_run_again_after_a_restart_keeps_its_image() {
    let (world, prompts_file, _scratch) = recording_world(|_, _| {});
    let png = world.dir.path().join("shot.png");
    std::fs::write(&png, PNG).unwrap();
    let file = taskgate_core::attachment::Attachment {
        name: "shot.png".into(),
        mime: "image/png".into(),
        kind: taskgate_core::attachment::AttachmentKind::Image,
        size: PNG.len() as u64,
        sha256: sha256(PNG),
        path: png.to_string_lossy().into_owned(),
    };
    let engine = world.engine().await;
    let msg = taskgate_tests::world::message("42", "u1", "Ada", "SLOW_REPLY look at this");
    engine.handle_with_files(msg, vec![file]).await.expect("handle");
    let first = eventually("the first run", || async { prompts(&prompts_file).first().cloned() }).await;
    assert_eq!(items(&first, "localImage").len(), 1, "{}", first.input);
    drop(engine);

    let _engine = world.engine().await;
    let again = eventually("the turn run again", || async { prompts(&prompts_file).get(1).cloned() }).await;
    assert!(again.text.contains("The gateway restarted"), "{}", again.text);
    let images = items(&again, "localImage");
    assert_eq!(images.len(), 1, "the picture goes with the rerun: {}", again.input);
    assert_eq!(images[0]["path"].as_str(), Some(png.to_str().unwrap()));
}
