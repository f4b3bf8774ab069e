//! Interactive cards: what the outbox's buttons become, what a pressed button's `value` says,
//! and the card that replaces an answered one.
//!
//! An approval button names its approval (`{"op": "approve" | "always" | "deny", "approval":
//! "42"}`), so a press resolves exactly that approval even when several wait. Any other
//! button carries its choice index (`{"op": "choice", "choice": "1"}`), read against the
//! stored outbound message the card belongs to. Values are strings: Feishu hands them back
//! as they were written.

use serde_json::{Value, json};
use taskgate_core::model::{Answer, Id, Scope};
use taskgate_core::reply::{self, Action};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ButtonValue {
    /// The nonce is the approval's own random value: a press cannot name an approval it was
    /// never shown.
    Approval {
        approval: Id,
        nonce: String,
        answer: Answer,
    },
    Choice(usize),
    Stop(Id),
    /// Merge the execution's worktree branch.
    Merge(Id),
    /// Drop the execution's worktree and branch.
    Discard(Id),
}

impl From<&Action> for ButtonValue {
    fn from(action: &Action) -> Self {
        match action {
            Action::Decide { approval, nonce, answer } => {
                ButtonValue::Approval { approval: *approval, nonce: nonce.clone(), answer: *answer }
            }
            Action::Choose { choice, .. } => ButtonValue::Choice(*choice),
            Action::Stop { task } => ButtonValue::Stop(*task),
            Action::Merge { execution } => ButtonValue::Merge(*execution),
            Action::Discard { execution } => ButtonValue::Discard(*execution),
        }
    }
}

impl ButtonValue {
    pub fn encode(&self) -> Value {
        match self {
            ButtonValue::Approval { approval, nonce, answer } => {
                let op = match answer {
                    Answer::Approve(Scope::Once) => "approve",
                    Answer::Approve(Scope::Always) => "always",
                    Answer::Approve(Scope::Project) => "project",
                    Answer::Deny | Answer::DenyAndStop => "deny",
                };
                json!({"op": op, "approval": approval.to_string(), "nonce": nonce})
            }
            ButtonValue::Choice(n) => json!({"op": "choice", "choice": n.to_string()}),
            ButtonValue::Stop(task) => json!({"op": "stop", "task": task.to_string()}),
            ButtonValue::Merge(execution) => json!({"op": "merge", "execution": execution.to_string()}),
            ButtonValue::Discard(execution) => json!({"op": "discard", "execution": execution.to_string()}),
        }
    }

    /// `None` for anything this gateway did not write (old cards, forged presses).
    pub fn decode(value: &Value) -> Option<Self> {
        let number = |key: &str| match value.get(key)? {
            Value::String(s) => s.parse::<i64>().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        let answer = match value.get("op")?.as_str()? {
            "approve" => Answer::Approve(Scope::Once),
            "always" => Answer::Approve(Scope::Always),
            "project" => Answer::Approve(Scope::Project),
            "deny" => Answer::Deny,
            "choice" => return Some(ButtonValue::Choice(usize::try_from(number("choice")?).ok()?)),
            "stop" => return Some(ButtonValue::Stop(number("task")?)),
            "merge" => return Some(ButtonValue::Merge(number("execution")?)),
            "discard" => return Some(ButtonValue::Discard(number("execution")?)),
            _ => return None,
        };
        let nonce = value.get("nonce")?.as_str().filter(|n| !n.is_empty())?.to_owned();
        Some(ButtonValue::Approval { approval: number("approval")?, nonce, answer })
    }
}

/// A button as the reply describes it, resolved to what it will carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Button {
    pub label: String,
    pub value: ButtonValue,
}

/// The reply's buttons as card buttons.
pub fn buttons(reply: &reply::Reply) -> Vec<Button> {
    reply.buttons.iter().map(|b| Button { label: b.label.clone(), value: ButtonValue::from(&b.action) }).collect()
}

/// A card showing `text` with `buttons`. `update_multi` makes it one shared card that a
/// press (or a PATCH) updates for everyone in the chat.
pub fn with_buttons(text: &str, buttons: &[Button]) -> Value {
    let actions: Vec<Value> = buttons
        .iter()
        .map(|b| {
            json!({"tag": "button", "text": {"tag": "plain_text", "content": b.label}, "type": style(&b.value), "value": b.value.encode()})
        })
        .collect();
    let mut elements = vec![body(text)];
    if !actions.is_empty() {
        elements.push(json!({"tag": "action", "actions": actions}));
    }
    json!({"config": {"wide_screen_mode": true, "update_multi": true}, "elements": elements})
}

/// How a button looks: the safe answer stands out, the ones that refuse or stop warn.
fn style(value: &ButtonValue) -> &'static str {
    match value {
        ButtonValue::Approval { answer: Answer::Approve(Scope::Once), .. } => "primary",
        ButtonValue::Approval { answer: Answer::Deny, .. } | ButtonValue::Stop(_) => "danger",
        _ => "default",
    }
}

/// The `element_id` of a streaming card's text: CardKit updates an element by its id.
pub const STATUS_ELEMENT: &str = "status";

/// A live status as a CardKit card entity (card JSON schema 2.0): the same text and buttons as
/// [`with_buttons`], the text in an element CardKit can stream into ([`STATUS_ELEMENT`]).
/// Schema 2.0 has no `action` row: buttons stand in the body, their `value` in a callback
/// behaviour (a press arrives as the same `card.action.trigger` with the same value).
pub fn streaming(text: &str, buttons: &[Button], streaming_mode: bool) -> Value {
    // Plain text as before (a command may hold `*` or `<`); CardKit streams into a plain-text
    // `div` by the div's element id as into markdown.
    let mut elements =
        vec![json!({"tag": "div", "element_id": STATUS_ELEMENT, "text": {"tag": "plain_text", "content": text}})];
    elements.extend(buttons.iter().map(|b| {
        json!({
            "tag": "button",
            "text": {"tag": "plain_text", "content": b.label},
            "type": style(&b.value),
            "behaviors": [{"type": "callback", "value": b.value.encode()}]
        })
    }));
    json!({
        "schema": "2.0",
        "config": {"streaming_mode": streaming_mode, "update_multi": true},
        "body": {"elements": elements}
    })
}

/// An interactive message's content showing card entity `card_id`.
pub fn entity(card_id: &str) -> Value {
    json!({"type": "card", "data": {"card_id": card_id}})
}

/// A live status card: the turn's current line, no buttons. Shared (`update_multi`), so the
/// outbox can PATCH it in place as the turn goes on.
pub fn status(text: &str) -> Value {
    with_buttons(text, &[])
}

/// The card after its question was answered: the text, and the decision instead of buttons.
pub fn decided(text: &str, line: &str) -> Value {
    json!({
        "config": {"wide_screen_mode": true, "update_multi": true},
        "elements": [body(text), {"tag": "div", "text": {"tag": "plain_text", "content": line}}]
    })
}

fn body(text: &str) -> Value {
    json!({"tag": "div", "text": {"tag": "plain_text", "content": text}})
}

/// The text a card of ours shows (its first element), to redraw it with the decision.
pub fn shown_text(card: &Value) -> Option<String> {
    card.pointer("/elements/0/text/content").and_then(Value::as_str).map(str::to_owned)
}

/// What a card callback is answered with: a toast, and the replacement card when there is one.
pub fn callback_answer(success: bool, toast: &str, card: Option<Value>) -> Value {
    let kind = if success { "success" } else { "info" };
    let mut answer = json!({"toast": {"type": kind, "content": toast}});
    if let Some(card) = card {
        answer["card"] = json!({"type": "raw", "data": card});
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_forgeries_are_refused() {
        let nonce = "n0nce".to_owned();
        for v in [
            ButtonValue::Approval { approval: 42, nonce: nonce.clone(), answer: Answer::Approve(Scope::Once) },
            ButtonValue::Approval { approval: i64::MAX, nonce: nonce.clone(), answer: Answer::Approve(Scope::Always) },
            ButtonValue::Approval { approval: -1, nonce: nonce.clone(), answer: Answer::Deny },
            ButtonValue::Approval { approval: 3, nonce, answer: Answer::Approve(Scope::Project) },
            ButtonValue::Choice(3),
            ButtonValue::Stop(9),
            ButtonValue::Merge(4),
            ButtonValue::Discard(5),
        ] {
            assert_eq!(ButtonValue::decode(&v.encode()), Some(v));
        }
        for bad in [
            json!({}),
            json!({"op": "approve"}),
            json!({"op": "approve", "approval": "x", "nonce": "n"}),
            json!({"op": "approve", "approval": "7"}),
            json!({"op": "approve", "approval": "7", "nonce": ""}),
            json!({"op": "nuke", "approval": "1"}),
            json!({"op": "choice", "choice": "-1"}),
            json!({"op": "stop"}),
            json!("approve"),
            json!(null),
        ] {
            assert_eq!(ButtonValue::decode(&bad), None, "{bad}");
        }
    }

    #[test]
    fn an_approval_becomes_a_shared_card_with_three_buttons_naming_it() {
        use taskgate_core::reply::{Button as ReplyButton, Reply};
        let decide = |label: &str, answer| ReplyButton {
            label: label.into(),
            action: Action::Decide { approval: 42, nonce: "n".into(), answer },
        };
        let reply = Reply {
            text: "Codex is waiting for approval: run `npm test`".into(),
            buttons: vec![
                decide("Approve", Answer::Approve(Scope::Once)),
                decide("Always", Answer::Approve(Scope::Always)),
                decide("Deny", Answer::Deny),
            ],
            ..Reply::default()
        };
        let card = with_buttons(&reply.text, &buttons(&reply));
        assert_eq!(card["config"]["update_multi"], true);
        let actions = card["elements"][1]["actions"].as_array().unwrap();
        let values: Vec<&Value> = actions.iter().map(|a| &a["value"]).collect();
        assert_eq!(
            values,
            [
                &json!({"op": "approve", "approval": "42", "nonce": "n"}),
                &json!({"op": "always", "approval": "42", "nonce": "n"}),
                &json!({"op": "deny", "approval": "42", "nonce": "n"})
            ]
        );
        assert_eq!(shown_text(&card).as_deref(), Some(reply.text.as_str()));
        assert!(buttons(&Reply::text("x")).is_empty());
    }

    #[test]
    fn a_status_card_is_shared_and_has_no_buttons() {
        let card = status("Codex is running `npm test`");
        assert_eq!(card["config"]["update_multi"], true, "PATCH needs it before and after");
        assert_eq!(card["elements"].as_array().map(Vec::len), Some(1));
        assert_eq!(shown_text(&card).as_deref(), Some("Codex is running `npm test`"));
    }
}
