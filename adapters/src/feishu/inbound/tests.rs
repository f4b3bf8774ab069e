use serde_json::{Value, json};

use super::*;
use taskgate_core::model::Answer;

const ALICE: &str = "ou_alice00000000000000000000000001";
const BOT: &str = "ou_bot0000000000000000000000000001";

fn bot() -> BotIdentity {
    BotIdentity { open_id: BOT.into(), name: "taskgate".into() }
}

fn policy() -> AccessPolicy {
    AccessPolicy { allowed_users: vec![ALICE.into()], allowed_chats: vec![] }
}

/// The decrypted event of an SDK vector.
fn vector(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/feishu/vectors.json");
    let all: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    all.into_iter().find(|v| v["name"] == name).unwrap()["event"].clone()
}

fn message(chat_type: &str, message_type: &str, content: Value, mentions: Value, sender: &str) -> Value {
    json!({"schema": "2.0", "header": {"event_id": "e", "event_type": "im.message.receive_v1", "token": "t"},
        "event": {"sender": {"sender_id": {"open_id": sender}, "sender_type": "user"},
            "message": {"message_id": "om_1", "root_id": "", "parent_id": "", "chat_id": "oc_1", "chat_type": chat_type,
                "message_type": message_type, "content": content.to_string(), "mentions": mentions}}})
}

fn text_of(inbound: Inbound) -> Text {
    match inbound {
        Inbound::Text(t) => t,
        other => panic!("not a text: {other:?}"),
    }
}

#[test]
fn a_direct_text_from_an_allowed_user() {
    let t = text_of(normalise(&vector("p2p_text"), &bot(), &policy(), Facts::default()));
    assert_eq!(t.text, "fix the flaky test in ci");
    assert_eq!((t.chat_id.as_str(), t.chat, t.mentioned), ("oc_dev_p2p", Chat::Direct, false));
    assert_eq!((t.sender_open_id.as_str(), t.message_id.as_str()), (ALICE, "om_dev0001"));
    assert!(t.reply_to.is_empty());
}

#[test]
fn a_group_mention_of_the_bot_is_removed_and_counts() {
    let t = text_of(normalise(&vector("group_mention"), &bot(), &policy(), Facts::default()));
    assert_eq!((t.text.as_str(), t.chat, t.mentioned), ("status?", Chat::Group, true));
}

#[test]
fn group_chatter_is_ignored_unless_it_replies_to_the_bot() {
    let chatter = vector("group_no_mention");
    assert!(matches!(normalise(&chatter, &bot(), &policy(), Facts::default()), Inbound::Ignore(_)));
    let facts = Facts { replies_to_bot: true, ..Facts::default() };
    let t = text_of(normalise(&chatter, &bot(), &policy(), facts));
    assert_eq!((t.text.as_str(), t.mentioned), ("lunch anyone?", true));
    // A stranger's chatter is ignored too, not refused: the bot was not asked.
    let mut stranger = chatter.clone();
    stranger["event"]["sender"]["sender_id"]["open_id"] = json!("ou_mallory");
    assert!(matches!(normalise(&stranger, &bot(), &policy(), Facts::default()), Inbound::Ignore(_)));
}

#[test]
fn a_reply_names_its_parent_and_keeps_unicode() {
    let t = text_of(normalise(&vector("chinese_reply"), &bot(), &policy(), Facts::default()));
    assert_eq!(t.text, "把按钮改成绿色");
    assert_eq!(t.reply_to, vec!["om_bot_0042".to_owned()], "parent and root are the same message");
    assert_eq!(reply_targets(&vector("chinese_reply")), vec!["om_bot_0042".to_owned()]);
}

#[test]
fn other_mentions_become_names() {
    let mentions = json!([
        {"key": "@_user_1", "id": {"open_id": BOT}, "name": "taskgate"},
        {"key": "@_user_2", "id": {"open_id": "ou_bob"}, "name": "Bob"},
        {"key": "@_user_10", "id": {"open_id": "ou_ten"}, "name": "Ten"}
    ]);
    let e = message("group", "text", json!({"text": "@_user_1 ask @_user_2 and @_user_10 to review"}), mentions, ALICE);
    let t = text_of(normalise(&e, &bot(), &policy(), Facts::default()));
    assert_eq!(t.text, "ask @Bob and @Ten to review");
    // Someone else mentioned in a group, not the bot: not addressed.
    let e = message(
        "group",
        "text",
        json!({"text": "@_user_2 hi"}),
        json!([{"key": "@_user_2", "id": {"open_id": "ou_bob"}, "name": "Bob"}]),
        ALICE,
    );
    assert!(matches!(normalise(&e, &bot(), &policy(), Facts::default()), Inbound::Ignore(_)));
}

#[test]
fn a_post_reads_as_text_with_its_mentions() {
    let content = json!({"title": "Plan", "content": [
        [{"tag": "at", "user_id": "@_user_1", "user_name": "taskgate"}, {"tag": "text", "text": " run "}, {"tag": "a", "text": "the tests", "href": "https://x"}],
        [{"tag": "img", "image_key": "k"}, {"tag": "text", "text": "then deploy"}]
    ]});
    let mentions = json!([{"key": "@_user_1", "id": {"open_id": BOT}, "name": "taskgate"}]);
    let t =
        text_of(normalise(&message("group", "post", content, mentions, ALICE), &bot(), &policy(), Facts::default()));
    assert_eq!(t.text, "Plan\nrun the tests\nthen deploy");
    assert!(t.mentioned);
    let keyed = json!({"zh_cn": {"title": "", "content": [[{"tag": "text", "text": "你好"}]]}});
    let t = text_of(normalise(&message("p2p", "post", keyed, json!([]), ALICE), &bot(), &policy(), Facts::default()));
    assert_eq!(t.text, "你好");
}

#[test]
fn strangers_are_refused_with_their_open_id() {
    let e = message("p2p", "text", json!({"text": "RUN_CMD: echo pwned"}), json!([]), "ou_mallory");
    match normalise(&e, &bot(), &policy(), Facts::default()) {
        Inbound::Refuse(r) => {
            assert!(r.text.contains("ou_mallory"), "{}", r.text);
            assert_eq!((r.chat_id.as_str(), r.message_id.as_deref()), ("oc_1", Some("om_1")));
        }
        other => panic!("{other:?}"),
    }
    let listed_chat = AccessPolicy { allowed_users: vec![], allowed_chats: vec!["oc_1".into()] };
    let e = message(
        "group",
        "text",
        json!({"text": "@_user_1 hi"}),
        json!([{"key": "@_user_1", "id": {"open_id": BOT}, "name": "b"}]),
        "ou_mallory",
    );
    assert!(
        matches!(normalise(&e, &bot(), &listed_chat, Facts::default()), Inbound::Text(_)),
        "a listed group admits its members"
    );
}

#[test]
fn help_other_types_bots_and_garbage() {
    let help = message("p2p", "text", json!({"text": "/help"}), json!([]), ALICE);
    assert!(matches!(normalise(&help, &bot(), &policy(), Facts::default()), Inbound::Help { .. }));
    let sticker = message("p2p", "sticker", json!({"file_key": "k"}), json!([]), ALICE);
    assert!(matches!(normalise(&sticker, &bot(), &policy(), Facts::default()), Inbound::Ignore(_)));
    let keyless = message("p2p", "image", json!({}), json!([]), ALICE);
    assert!(matches!(normalise(&keyless, &bot(), &policy(), Facts::default()), Inbound::Ignore(_)));
    let mut from_app = message("p2p", "text", json!({"text": "hi"}), json!([]), ALICE);
    from_app["event"]["sender"]["sender_type"] = json!("app");
    assert!(matches!(normalise(&from_app, &bot(), &policy(), Facts::default()), Inbound::Ignore(_)));
    for garbage in [
        json!({}),
        json!(null),
        json!({"header": {"event_type": "im.message.receive_v1"}}),
        json!({"header": {"event_type": "im.message.receive_v1"}, "event": {"message": 5}}),
    ] {
        assert!(matches!(normalise(&garbage, &bot(), &policy(), Facts::default()), Inbound::Ignore(_)), "{garbage}");
    }
    let mut bad_content = message("p2p", "text", json!({}), json!([]), ALICE);
    bad_content["event"]["message"]["content"] = json!("not json");
    assert!(matches!(normalise(&bad_content, &bot(), &policy(), Facts::default()), Inbound::Ignore(_)));
}

#[test]
fn a_card_press_names_its_approval() {
    let mut e = vector("card_approve");
    e["event"]["action"]["value"] = json!({"op": "deny", "approval": "9", "nonce": "n0nce"});
    match normalise(&e, &bot(), &policy(), Facts::default()) {
        Inbound::Press(p) => {
            assert_eq!(
                p.value,
                Some(ButtonValue::Approval { approval: 9, nonce: "n0nce".into(), answer: Answer::Deny })
            );
            assert_eq!(
                (p.message_id.as_str(), p.chat_id.as_str(), p.chat),
                ("om_card_0001", "oc_dev_p2p", Chat::Direct)
            );
        }
        other => panic!("{other:?}"),
    }
    // The vector's own value names approval "a1": not one of ours.
    match normalise(&vector("card_approve"), &bot(), &policy(), Facts::default()) {
        Inbound::Press(p) => assert_eq!(p.value, None),
        other => panic!("{other:?}"),
    }
    e["event"]["operator"]["open_id"] = json!("ou_mallory");
    assert!(matches!(
        normalise(&e, &bot(), &policy(), Facts::default()),
        Inbound::Refuse(Refusal { message_id: None, .. })
    ));
}

#[test]
fn images_files_audio_and_images_in_posts_are_files_to_fetch() {
    let image = message("p2p", "image", json!({"image_key": "img_1"}), json!([]), ALICE);
    let Inbound::Text(text) = normalise(&image, &bot(), &policy(), Facts::default()) else {
        panic!("an image is a message")
    };
    assert_eq!(text.text, "");
    assert_eq!(text.files.len(), 1);
    assert_eq!((text.files[0].key.as_str(), text.files[0].resource), ("img_1", "image"));

    let file = message("p2p", "file", json!({"file_key": "f_1", "file_name": "../build.log"}), json!([]), ALICE);
    let Inbound::Text(text) = normalise(&file, &bot(), &policy(), Facts::default()) else {
        panic!("a file is a message")
    };
    assert_eq!(text.files[0].resource, "file");
    assert_eq!(text.files[0].name, "../build.log", "sanitized when stored, not here");
    assert_eq!(text.files[0].mime.as_deref(), Some("text/plain"));

    let audio = message("p2p", "audio", json!({"file_key": "a_1", "duration": 900}), json!([]), ALICE);
    let Inbound::Text(text) = normalise(&audio, &bot(), &policy(), Facts::default()) else {
        panic!("audio is a message")
    };
    assert!(text.files[0].voice);
    assert_eq!(text.files[0].resource, "file", "audio is fetched as a file");

    let post = json!({"title": "Broken", "content": [[{"tag": "text", "text": "look"}], [{"tag": "img", "image_key": "img_a"}, {"tag": "img", "image_key": "img_b"}]]});
    let post = message("p2p", "post", post, json!([]), ALICE);
    let Inbound::Text(text) = normalise(&post, &bot(), &policy(), Facts::default()) else {
        panic!("a post is a message")
    };
    assert!(text.text.starts_with("Broken\nlook"), "{}", text.text);
    let keys: Vec<&str> = text.files.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["img_a", "img_b"]);
    assert_ne!(text.files[0].name, text.files[1].name);
}
