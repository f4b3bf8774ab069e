//! Clarify buttons: what a press on one means, read from the outbox row the buttons belong to.
//! The row keeps the original message (`source_text`) and, per button, the classifier reading
//! it stands for (`options[choice]`, a serialized `Decision`).

use serde_json::Value;
use taskgate_core::classify::Decision;

use super::apply::SOURCE_TEXT;

/// What became of a press on a clarify button (see `Engine::choose`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chosen {
    /// The reading was applied to the original message; `label` is the button's.
    Applied { label: String },
    /// Not a clarify of this chat, or no such choice (an old keyboard, a forged press).
    Unknown,
}

/// A button's reading of the original message.
#[derive(Debug, Clone, PartialEq)]
pub struct Picked {
    pub decision: Decision,
    pub text: String,
    pub label: String,
}

/// The reading of button `choice` in a clarify payload, `None` for anything else (a payload
/// without the original text, an approval's buttons, a choice out of range).
pub fn picked(payload: &Value, choice: usize) -> Option<Picked> {
    let text = payload.get(SOURCE_TEXT)?.as_str()?.to_owned();
    let label = payload
        .get("buttons")?
        .as_array()?
        .iter()
        .find(|b| b.get("choice").and_then(Value::as_u64) == Some(choice as u64))?
        .get("label")?
        .as_str()?
        .to_owned();
    let option = payload.get("options")?.as_array()?.get(choice)?;
    let decision: Decision = serde_json::from_value(option.clone()).ok()?;
    Some(Picked { decision, text, label })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use taskgate_core::classify::Intent;

    use super::*;

    fn clarify() -> Value {
        json!({
            "text": "Did you mean:",
            "buttons": [{"label": "Approve run `a`", "choice": 0}, {"label": "Approve run `b`", "choice": 1}],
            "options": [
                {"intent": "approve", "task": "1", "agent": null, "role": null, "approval": "3", "scope": "once", "confidence": 0.5, "reason": "approve run `a`"},
                {"intent": "approve", "task": "2", "agent": null, "role": null, "approval": "4", "scope": "once", "confidence": 0.5, "reason": "approve run `b`"}
            ],
            "thread_id": "",
            "source_text": "ok"
        })
    }

    #[test]
    fn a_choice_is_the_original_text_with_its_reading() {
        let p = picked(&clarify(), 1).expect("a reading");
        assert_eq!((p.text.as_str(), p.label.as_str()), ("ok", "Approve run `b`"));
        assert_eq!((p.decision.intent, p.decision.approval.as_deref()), (Intent::Approve, Some("4")));
    }

    #[test]
    fn anything_else_is_no_choice() {
        assert_eq!(picked(&clarify(), 2), None, "out of range");
        let mut old = clarify();
        old.as_object_mut().unwrap().remove("source_text");
        assert_eq!(picked(&old, 0), None, "a row without the original message");
        let approval = json!({
            "text": "Codex is waiting for approval", "buttons": [{"label": "Approve", "choice": 0}],
            "options": [{"intent": "approve", "approval": "3", "scope": "once"}], "source_text": "x"
        });
        assert_eq!(picked(&approval, 0), None, "an approval's options are not readings");
        assert_eq!(picked(&json!(null), 0), None);
    }
}
