//! Interactive cards: what the outbox's buttons become, what a pressed button's `value` says,
//! and the card that replaces an answered one.
//!
//! An approval button names its approval (`{"op": "approve" | "always" | "deny", "approval":
//! "42"}`), so a press resolves exactly that approval even when several wait. Any other
//! button carries its choice index (`{"op": "choice", "choice": "1"}`), read against the
//! stored outbound message the card belongs to. Values are strings: Feishu hands them back
//! as they were written.

use serde_json::{Value, json};
use taskgate_core::model::Id;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalAnswer {
    Once,
    Always,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonValue {
    Approval { approval: Id, answer: ApprovalAnswer },
    Choice(usize),
}

impl ButtonValue {
    pub fn encode(&self) -> Value {
        match self {
            ButtonValue::Approval { approval, answer } => {
                let op = match answer {
                    ApprovalAnswer::Once => "approve",
                    ApprovalAnswer::Always => "always",
                    ApprovalAnswer::Deny => "deny",
                };
                json!({"op": op, "approval": approval.to_string()})
            }
            ButtonValue::Choice(n) => json!({"op": "choice", "choice": n.to_string()}),
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
            "approve" => ApprovalAnswer::Once,
            "always" => ApprovalAnswer::Always,
            "deny" => ApprovalAnswer::Deny,
            "choice" => return Some(ButtonValue::Choice(usize::try_from(number("choice")?).ok()?)),
            _ => return None,
        };
        Some(ButtonValue::Approval { approval: number("approval")?, answer })
    }
}

/// A button as the outbox payload describes it, resolved to what it will carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Button {
    pub label: String,
    pub value: ButtonValue,
}

/// `{buttons: [{label, choice}], options: [{intent, approval, scope}]}` → the buttons.
pub fn buttons(payload: &Value) -> Vec<Button> {
    let Some(list) = payload.get("buttons").and_then(Value::as_array) else { return Vec::new() };
    let options = payload.get("options").and_then(Value::as_array);
    list.iter()
        .filter_map(|b| {
            let label = b.get("label")?.as_str()?.to_owned();
            let choice = usize::try_from(b.get("choice")?.as_u64()?).ok()?;
            let value =
                options.and_then(|o| o.get(choice)).and_then(approval_of).unwrap_or(ButtonValue::Choice(choice));
            Some(Button { label, value })
        })
        .collect()
}

/// `{intent: approve|deny, approval: "42", scope}` → an approval button's value.
fn approval_of(option: &Value) -> Option<ButtonValue> {
    let approval = match option.get("approval")? {
        Value::String(s) => s.parse().ok()?,
        Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    let answer = match (option.get("intent")?.as_str()?, option.get("scope").and_then(Value::as_str)) {
        ("approve", Some("always")) => ApprovalAnswer::Always,
        ("approve", _) => ApprovalAnswer::Once,
        ("deny", _) => ApprovalAnswer::Deny,
        _ => return None,
    };
    Some(ButtonValue::Approval { approval, answer })
}

/// A card showing `text` with `buttons`. `update_multi` makes it one shared card that a
/// press (or a PATCH) updates for everyone in the chat.
pub fn with_buttons(text: &str, buttons: &[Button]) -> Value {
    let actions: Vec<Value> = buttons
        .iter()
        .map(|b| {
            let kind = match b.value {
                ButtonValue::Approval { answer: ApprovalAnswer::Once, .. } => "primary",
                ButtonValue::Approval { answer: ApprovalAnswer::Deny, .. } => "danger",
                _ => "default",
            };
            json!({"tag": "button", "text": {"tag": "plain_text", "content": b.label}, "type": kind, "value": b.value.encode()})
        })
        .collect();
    let mut elements = vec![body(text)];
    if !actions.is_empty() {
        elements.push(json!({"tag": "action", "actions": actions}));
    }
    json!({"config": {"wide_screen_mode": true, "update_multi": true}, "elements": elements})
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
        for v in [
            ButtonValue::Approval { approval: 42, answer: ApprovalAnswer::Once },
            ButtonValue::Approval { approval: i64::MAX, answer: ApprovalAnswer::Always },
            ButtonValue::Approval { approval: -1, answer: ApprovalAnswer::Deny },
            ButtonValue::Choice(3),
        ] {
            assert_eq!(ButtonValue::decode(&v.encode()), Some(v));
        }
        for bad in [
            json!({}),
            json!({"op": "approve"}),
            json!({"op": "approve", "approval": "x"}),
            json!({"op": "nuke", "approval": "1"}),
            json!({"op": "choice", "choice": "-1"}),
            json!("approve"),
            json!(null),
        ] {
            assert_eq!(ButtonValue::decode(&bad), None, "{bad}");
        }
        // The SDK vector's shape.
        assert_eq!(
            ButtonValue::decode(&json!({"op": "approve", "approval": "7"})),
            Some(ButtonValue::Approval { approval: 7, answer: ApprovalAnswer::Once })
        );
    }

    #[test]
    fn an_approval_becomes_a_shared_card_with_three_buttons_naming_it() {
        let payload = json!({
            "text": "Codex is waiting for approval: run `npm test`",
            "buttons": [{"label": "Approve", "choice": 0}, {"label": "Always", "choice": 1}, {"label": "Deny", "choice": 2}],
            "options": [
                {"intent": "approve", "approval": "42", "scope": "once"},
                {"intent": "approve", "approval": "42", "scope": "always"},
                {"intent": "deny", "approval": "42", "scope": null}
            ]
        });
        let card = with_buttons(payload["text"].as_str().unwrap(), &buttons(&payload));
        assert_eq!(card["config"]["update_multi"], true);
        let actions = card["elements"][1]["actions"].as_array().unwrap();
        let values: Vec<&Value> = actions.iter().map(|a| &a["value"]).collect();
        assert_eq!(
            values,
            [
                &json!({"op": "approve", "approval": "42"}),
                &json!({"op": "always", "approval": "42"}),
                &json!({"op": "deny", "approval": "42"})
            ]
        );
        assert_eq!(shown_text(&card).as_deref(), payload["text"].as_str());
        let other = json!({"text": "Which?", "buttons": [{"label": "New task", "choice": 1}], "options": [{}, {"intent": "new_task"}]});
        assert_eq!(buttons(&other), vec![Button { label: "New task".into(), value: ButtonValue::Choice(1) }]);
        assert!(buttons(&json!({})).is_empty());
    }

    #[test]
    fn a_status_card_is_shared_and_has_no_buttons() {
        let card = status("Codex is running `npm test`");
        assert_eq!(card["config"]["update_multi"], true, "PATCH needs it before and after");
        assert_eq!(card["elements"].as_array().map(Vec::len), Some(1));
        assert_eq!(shown_text(&card).as_deref(), Some("Codex is running `npm test`"));
    }
}
