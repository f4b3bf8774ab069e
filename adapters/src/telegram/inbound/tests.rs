use serde_json::{Value, json};

use super::*;
use taskgate_core::model::{Answer, Scope};

const BOT_ID: u64 = 999;

fn bot() -> BotIdentity {
    BotIdentity { id: BOT_ID, username: "taskgate_bot".into() }
}

fn policy() -> AccessPolicy {
    AccessPolicy { allowed_users: vec![111], allowed_chats: vec![] }
}

fn user(id: u64) -> Value {
    json!({"id": id, "is_bot": false, "first_name": "Ada", "last_name": "L", "username": "ada"})
}

fn private(id: i64) -> Value {
    json!({"id": id, "type": "private", "first_name": "Ada"})
}

fn group(id: i64) -> Value {
    json!({"id": id, "type": "supergroup", "title": "team"})
}

fn forum(id: i64) -> Value {
    json!({"id": id, "type": "supergroup", "title": "team", "is_forum": true})
}

fn message(chat: Value, from: u64, text: &str) -> Value {
    json!({"message_id": 10, "date": 1_700_000_000, "chat": chat, "from": user(from), "text": text})
}

fn update(kind: &str, body: Value) -> Update {
    let mut v = json!({"update_id": 5});
    v[kind] = body;
    parse_update(&v).expect("a valid update")
}

fn run(body: Value) -> Inbound {
    normalise(&update("message", body), &bot(), &policy())
}

fn text_of(inbound: Inbound) -> Text {
    match inbound {
        Inbound::Text(t) => t,
        other => panic!("expected a text, got {other:?}"),
    }
}

#[test]
fn a_direct_message_from_an_allowed_user_is_a_text() {
    let t = text_of(run(message(private(111), 111, "fix the login page")));
    assert_eq!(t.update_id, 5);
    assert_eq!(t.place, Place { chat_id: 111, thread_id: None });
    assert_eq!(t.from.id, 111);
    assert_eq!(t.from.name, "Ada L");
    assert_eq!(t.from.handle(), "@ada");
    assert_eq!(t.text, "fix the login page");
    assert_eq!((t.chat, t.mentioned), (Chat::Direct, false));
    assert_eq!(t.reply_to_message_id, None);
}

#[test]
fn an_unknown_user_is_refused_with_their_id() {
    match run(message(private(222), 222, "hello")) {
        Inbound::Refuse(r) => {
            assert_eq!(r.user_id, 222);
            assert!(r.text.contains("222"), "{}", r.text);
            assert_eq!(r.place.map(|p| p.chat_id), Some(222));
            assert_eq!(r.callback_query_id, None);
        }
        other => panic!("{other:?}"),
    }
    // /start is how a stranger learns their id: refused too, not helped.
    assert!(matches!(run(message(private(222), 222, "/start")), Inbound::Refuse(_)));
}

#[test]
fn both_lists_empty_admit_no_one() {
    let p = AccessPolicy::default();
    assert!(!p.admits(111, 111, false));
    assert!(!p.admits(111, -5, true));
}

#[test]
fn allowed_chats_admit_their_members_and_restrict_groups() {
    let p = AccessPolicy { allowed_users: vec![111], allowed_chats: vec![-100] };
    assert!(p.admits(222, -100, true), "a member of an allowed group");
    assert!(!p.admits(111, -200, true), "an allowed user in a group not listed");
    assert!(p.admits(111, 111, false));
    assert!(!p.admits(222, 222, false));
    let users_only = AccessPolicy { allowed_users: vec![111], allowed_chats: vec![] };
    assert!(users_only.admits(111, -200, true));
    assert!(!users_only.admits(222, -200, true));
}

#[test]
fn a_group_message_without_a_mention_is_ignored_even_from_a_stranger() {
    assert!(matches!(run(message(group(-100), 111, "make the button green")), Inbound::Ignore(_)));
    // Strangers' chatter is not answered either: only an addressed message earns a refusal.
    assert!(matches!(run(message(group(-100), 222, "lunch?")), Inbound::Ignore(_)));
    assert!(matches!(run(message(group(-100), 222, "@taskgate_bot hi")), Inbound::Refuse(_)));
}

#[test]
fn a_group_mention_is_addressed_and_removed_from_the_text() {
    let t = text_of(run(message(group(-100), 111, "@TaskGate_Bot fix the login page")));
    assert_eq!(t.text, "fix the login page");
    assert_eq!((t.chat, t.mentioned), (Chat::Group, true));
    let t = text_of(run(message(group(-100), 111, "hey @taskgate_bot, fix it")));
    assert_eq!(t.text, "hey , fix it");
    // Another account whose name starts like ours is not a mention.
    assert!(matches!(run(message(group(-100), 111, "@taskgate_bot2 fix it")), Inbound::Ignore(_)));
    assert!(matches!(run(message(group(-100), 111, "mail me@taskgate_bot now")), Inbound::Ignore(_)));
}

#[test]
fn a_text_mention_entity_of_the_bot_counts() {
    let mut body = message(group(-100), 111, "Taskgate fix it");
    body["entities"] = json!([{"type": "text_mention", "offset": 0, "length": 8, "user": {"id": BOT_ID, "is_bot": true, "first_name": "Taskgate"}}]);
    let t = text_of(run(body));
    assert_eq!((t.text.as_str(), t.mentioned), ("fix it", true));
}

#[test]
fn bad_entity_offsets_do_not_panic() {
    let mut body = message(group(-100), 111, "é @taskgate_bot x");
    body["entities"] = json!([
        {"type": "text_mention", "offset": 1000, "length": 8, "user": {"id": BOT_ID, "is_bot": true, "first_name": "T"}},
        {"type": "mention", "offset": 3, "length": 1000}
    ]);
    let t = text_of(run(body));
    assert_eq!(t.text, "é  x");
}

#[test]
fn a_reply_to_the_bot_is_addressed_and_names_the_message() {
    let mut body = message(group(-100), 111, "make it green");
    body["reply_to_message"] = json!({
        "message_id": 77, "date": 1_700_000_000, "chat": group(-100),
        "from": {"id": BOT_ID, "is_bot": true, "first_name": "Taskgate", "username": "taskgate_bot"},
        "text": "Codex finished"
    });
    let t = text_of(run(body));
    assert_eq!(t.reply_to_message_id, Some(77));
    assert!(t.mentioned);
    // A reply to someone else is neither addressed nor a task reference.
    let mut body = message(group(-100), 111, "agreed");
    body["reply_to_message"] =
        json!({"message_id": 78, "date": 1_700_000_000, "chat": group(-100), "from": user(333), "text": "x"});
    assert!(matches!(run(body), Inbound::Ignore(_)));
}

#[test]
fn commands_lose_our_bot_name_and_other_bots_commands_are_ignored() {
    let t = text_of(run(message(group(-100), 111, "/status@TaskGate_bot")));
    assert_eq!((t.text.as_str(), t.mentioned), ("/status", true));
    let t = text_of(run(message(private(111), 111, "/approve@taskgate_bot always")));
    assert_eq!(t.text, "/approve always");
    assert!(matches!(run(message(group(-100), 111, "/status@other_bot")), Inbound::Ignore(_)));
    assert!(matches!(run(message(private(111), 111, "/cc@other_bot review")), Inbound::Ignore(_)));
    // A path is not a command: in a group it is chatter.
    assert!(matches!(run(message(group(-100), 111, "/api/v2 is down")), Inbound::Ignore(_)));
    let t = text_of(run(message(private(111), 111, "/api/v2 is down")));
    assert_eq!(t.text, "/api/v2 is down");
}

#[test]
fn every_engine_command_passes_through() {
    for cmd in ["/new", "/status", "/cancel", "/approve", "/deny", "/review", "/cc review it", "/codex fix it"] {
        let t = text_of(run(message(private(111), 111, cmd)));
        assert_eq!(t.text, cmd);
    }
}

#[test]
fn task_command_opens_a_task_or_asks_for_status() {
    assert_eq!(text_of(run(message(private(111), 111, "/task write release notes"))).text, "/new write release notes");
    assert_eq!(text_of(run(message(private(111), 111, "/task@taskgate_bot"))).text, "/status");
}

#[test]
fn start_and_help_are_answered_by_the_channel() {
    assert_eq!(run(message(private(111), 111, "/start")), Inbound::Help(Place { chat_id: 111, thread_id: None }));
    assert!(matches!(run(message(group(-100), 111, "/help@taskgate_bot")), Inbound::Help(_)));
}

#[test]
fn a_forum_topic_is_its_own_thread_but_reply_threads_are_not() {
    let mut body = message(forum(-100), 111, "@taskgate_bot hi");
    body["message_thread_id"] = json!(42);
    body["is_topic_message"] = json!(true);
    assert_eq!(text_of(run(body)).place, Place { chat_id: -100, thread_id: Some(42) });
    let mut body = message(group(-100), 111, "@taskgate_bot hi");
    body["message_thread_id"] = json!(42);
    assert_eq!(text_of(run(body)).place.thread_id, None, "not a forum");
    let mut body = message(forum(-100), 111, "@taskgate_bot hi");
    body["message_thread_id"] = json!(42);
    assert_eq!(text_of(run(body)).place.thread_id, None, "General topic / not a topic message");
    assert_eq!(Place { chat_id: 1, thread_id: Some(42) }.thread_key(), "42");
    assert_eq!(Place { chat_id: 1, thread_id: None }.thread_key(), "");
}

#[test]
fn messages_without_text_or_sender_or_from_bots_are_ignored() {
    let mut sticker = message(private(111), 111, "x");
    sticker.as_object_mut().unwrap().remove("text");
    sticker["sticker"] = json!({"file_id": "f", "file_unique_id": "u", "type": "regular", "width": 1, "height": 1, "is_animated": false, "is_video": false});
    assert!(matches!(run(sticker), Inbound::Ignore(_)));
    let mut anonymous = message(group(-100), 111, "/status");
    anonymous.as_object_mut().unwrap().remove("from");
    assert!(matches!(run(anonymous), Inbound::Ignore(_)));
    let mut from_bot = message(private(111), 111, "hi");
    from_bot["from"]["is_bot"] = json!(true);
    assert!(matches!(run(from_bot), Inbound::Ignore(_)));
    let edited = normalise(&update("edited_message", message(private(111), 111, "x")), &bot(), &policy());
    assert!(matches!(edited, Inbound::Ignore(_)));
}

#[test]
fn a_caption_is_text() {
    let mut photo = message(private(111), 111, "x");
    photo.as_object_mut().unwrap().remove("text");
    photo["photo"] = json!([{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}]);
    photo["caption"] = json!("what is wrong here?");
    assert_eq!(text_of(run(photo)).text, "what is wrong here?");
}

fn callback(from: u64, data: &str, chat: Value) -> Update {
    update(
        "callback_query",
        json!({
            "id": "cb-1", "from": user(from), "chat_instance": "ci", "data": data,
            "message": {"message_id": 77, "date": 1_700_000_000, "chat": chat,
                        "from": {"id": BOT_ID, "is_bot": true, "first_name": "T"}, "text": "Codex is waiting for approval: run `x`"}
        }),
    )
}

#[test]
fn a_button_press_names_its_approval() {
    match normalise(&callback(111, "a:42:n0nce:a", private(111)), &bot(), &policy()) {
        Inbound::Press(p) => {
            assert_eq!(p.query_id, "cb-1");
            assert_eq!(p.message_id, Some(77));
            assert_eq!(p.place, Some(Place { chat_id: 111, thread_id: None }));
            assert_eq!(
                p.data,
                Some(ButtonData::Approval {
                    approval: 42,
                    nonce: "n0nce".into(),
                    answer: Answer::Approve(Scope::Always)
                })
            );
            assert_eq!(p.message_text.as_deref(), Some("Codex is waiting for approval: run `x`"));
            assert_eq!(p.from.handle(), "@ada");
        }
        other => panic!("{other:?}"),
    }
    match normalise(&callback(111, "garbage", private(111)), &bot(), &policy()) {
        Inbound::Press(p) => assert_eq!(p.data, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stranger_pressing_a_button_is_refused_in_the_callback_answer() {
    match normalise(&callback(222, "a:42:o", group(-100)), &bot(), &policy()) {
        Inbound::Refuse(r) => {
            assert_eq!(r.callback_query_id.as_deref(), Some("cb-1"));
            assert!(r.text.contains("222") && r.text.contains("-100"), "{}", r.text);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_bot_added_to_a_chat_is_a_membership_change() {
    let change = json!({
        "chat": group(-100), "from": user(111), "date": 1_700_000_000,
        "old_chat_member": {"user": {"id": BOT_ID, "is_bot": true, "first_name": "T"}, "status": "left"},
        "new_chat_member": {"user": {"id": BOT_ID, "is_bot": true, "first_name": "T"}, "status": "member"}
    });
    assert_eq!(
        normalise(&update("my_chat_member", change), &bot(), &policy()),
        Inbound::Membership { chat_id: -100, member: true }
    );
}

#[test]
fn unknown_update_kinds_are_ignored() {
    let u = parse_update(&json!({"update_id": 9, "something_new": {"x": 1}})).expect("tolerated");
    assert!(matches!(normalise(&u, &bot(), &policy()), Inbound::Ignore(_)));
}

#[test]
fn a_stored_update_parses_back_even_from_a_json_value() {
    // teloxide's UpdateKind reads its key as a borrowed str: straight from a `Value` it
    // silently yields `Error(..)`. `parse_update` goes through text.
    let v = json!({"update_id": 5, "message": message(private(111), 111, "x")});
    let u = parse_update(&v).expect("parses");
    assert!(matches!(u.kind, UpdateKind::Message(_)));
    assert!(parse_update(&json!({"message": {}})).is_err(), "no update_id");
}

fn with_file(chat: Value, key: &str, file: Value, caption: Option<&str>) -> Value {
    let mut m = json!({"message_id": 10, "date": 1_700_000_000, "chat": chat, "from": user(111)});
    m[key] = file;
    if let Some(c) = caption {
        m["caption"] = json!(c);
    }
    m
}

#[test]
fn a_photo_is_its_largest_size_and_its_caption_the_text() {
    let sizes = json!([
        {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 60, "file_size": 900},
        {"file_id": "large", "file_unique_id": "l", "width": 1280, "height": 853, "file_size": 90_000},
        {"file_id": "medium", "file_unique_id": "m", "width": 320, "height": 213, "file_size": 9_000},
    ]);
    let t = text_of(run(with_file(private(111), "photo", sizes.clone(), Some("the button is cut off"))));
    assert_eq!(t.text, "the button is cut off");
    assert_eq!(t.files.len(), 1);
    assert_eq!(
        (t.files[0].file_id.as_str(), t.files[0].mime.as_str(), t.files[0].size),
        ("large", "image/jpeg", 90_000)
    );
    // No caption: still a message, with empty text.
    let t = text_of(run(with_file(private(111), "photo", sizes.clone(), None)));
    assert_eq!(t.text, "");
    // In a group a photo needs a mention (in its caption) like any message.
    assert!(matches!(run(with_file(group(-5), "photo", sizes.clone(), None)), Inbound::Ignore(_)));
    let t = text_of(run(with_file(group(-5), "photo", sizes, Some("@taskgate_bot look"))));
    assert_eq!(t.text, "look");
}

#[test]
fn documents_voice_and_audio_are_files_with_their_types() {
    let doc = json!({"file_id": "d", "file_unique_id": "du", "file_name": "build.log", "mime_type": "text/plain", "file_size": 12});
    let t = text_of(run(with_file(private(111), "document", doc, None)));
    assert_eq!(
        (t.files[0].name.as_str(), t.files[0].mime.as_str(), t.files[0].voice),
        ("build.log", "text/plain", false)
    );
    let nameless = json!({"file_id": "d2", "file_unique_id": "du2", "file_size": 12});
    let t = text_of(run(with_file(private(111), "document", nameless, None)));
    assert_eq!(t.files[0].name, "document-10");
    let voice =
        json!({"file_id": "v", "file_unique_id": "vu", "duration": 3, "mime_type": "audio/ogg", "file_size": 4000});
    let t = text_of(run(with_file(private(111), "voice", voice, None)));
    assert!(t.files[0].voice);
    assert_eq!(t.files[0].name, "voice-10.ogg");
    let audio = json!({"file_id": "a", "file_unique_id": "au", "duration": 3, "file_name": "memo.mp3", "mime_type": "audio/mpeg", "file_size": 4000});
    let t = text_of(run(with_file(private(111), "audio", audio, None)));
    assert!(t.files[0].voice && t.files[0].name == "memo.mp3");
}
