//! What a person is shown: one typed outbox row. The engine writes replies; every channel
//! renders the same fields its own way (Telegram HTML and inline keyboards, Feishu cards, the
//! web console). JSON is only how the outbox stores them.

use serde::{Deserialize, Serialize};

use crate::classify::Decision;
use crate::model::{Answer, Id};

/// How a reply competes for the chat's sending budget: approvals and questions block an agent
/// and go first; a live status is edited in place and arrives silently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyKind {
    /// An approval card: the agent waits on it.
    Approval,
    /// The agent asks the person something.
    Question,
    /// The answer to what someone said (an acknowledgement, a status report, a refusal).
    #[default]
    Answer,
    /// The end of a turn: the one message per turn that notifies.
    Final,
    /// A turn's live status line (edited in place, silent).
    Status,
    /// The agent's text as it streams, where a chat can show a draft (Telegram private chats,
    /// Feishu streaming cards); replaced by the turn's final message, never kept as a message.
    Draft,
    /// A refusal to someone not allowed to use the bot: sent after everything else, so
    /// strangers never delay the people the bot serves.
    Refusal,
}

impl ReplyKind {
    /// Sent before informational rows of the same chat.
    pub fn is_urgent(self) -> bool {
        matches!(self, ReplyKind::Approval | ReplyKind::Question)
    }

    /// The outbox's sending priority (higher first): urgent replies before informational ones
    /// of the same chat, refusals to strangers last.
    pub fn priority(self) -> i16 {
        match self {
            ReplyKind::Approval | ReplyKind::Question => 1,
            ReplyKind::Refusal => -1,
            ReplyKind::Answer | ReplyKind::Final | ReplyKind::Status | ReplyKind::Draft => 0,
        }
    }
}

/// What pressing a button does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Action {
    /// Answer approval `approval`. `nonce` is the approval's own random value: a press must
    /// name it, so ids cannot be guessed into decisions.
    Decide { approval: Id, nonce: String, answer: Answer },
    /// Complete the message a clarify asked about (`Reply::source_text`) with this reading.
    Choose { choice: usize, reading: Decision },
    /// Stop the task's running turn.
    Stop { task: Id },
    /// Merge execution `execution`'s worktree branch into the project (`/merge`).
    Merge { execution: Id },
    /// Drop execution `execution`'s worktree and branch (`/discard`).
    Discard { execution: Id },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Button {
    pub label: String,
    pub action: Action,
}

/// One message for a chat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Button>,
    #[serde(default)]
    pub kind: ReplyKind,
    /// Topic or thread inside the chat; empty when the chat has none.
    #[serde(default)]
    pub thread_id: String,
    /// Live status key (`turn:<id>`): every reply with the same key edits one message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<String>,
    /// The platform's id of the message this answers: in groups the reply is threaded to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// A clarify: the message its buttons complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_text: Option<String>,
    /// Shown below the text in a quieter style (an approval's diff or working directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A turn's final message names the turn's live key: status updates of that key that
    /// were never shown (the turn was quick) are dropped rather than sent after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes: Option<String>,
}

impl Reply {
    pub fn text(text: impl Into<String>) -> Self {
        Reply { text: text.into(), ..Reply::default() }
    }

    pub fn kind(mut self, kind: ReplyKind) -> Self {
        self.kind = kind;
        self
    }

    pub fn in_thread(mut self, thread_id: impl Into<String>) -> Self {
        self.thread_id = thread_id.into();
        self
    }

    /// Reads a stored payload. Rows this build cannot read keep at least their text, so an
    /// old or odd row still reaches the person instead of being lost.
    pub fn from_json(value: serde_json::Value) -> Self {
        match serde_json::from_value::<Reply>(value.clone()) {
            Ok(reply) => reply,
            Err(_) => Reply {
                text: value.get("text").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned(),
                thread_id: value.get("thread_id").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned(),
                live: value.get("live").and_then(serde_json::Value::as_str).map(str::to_owned),
                ..Reply::default()
            },
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The approval this reply asks about, if it is an approval card.
    pub fn approval(&self) -> Option<Id> {
        self.buttons.iter().find_map(|b| match &b.action {
            Action::Decide { approval, .. } => Some(*approval),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::Scope;

    #[test]
    fn replies_round_trip_and_old_rows_keep_their_text() {
        let reply = Reply {
            text: "Codex is waiting for approval: run `ls`".into(),
            buttons: vec![Button {
                label: "Approve".into(),
                action: Action::Decide { approval: 4, nonce: "n".into(), answer: Answer::Approve(Scope::Once) },
            }],
            kind: ReplyKind::Approval,
            ..Reply::default()
        };
        assert_eq!(Reply::from_json(reply.to_json()), reply);
        assert_eq!(reply.approval(), Some(4));
        let old = json!({"text": "hi", "buttons": [{"label": "x", "choice": 0}], "options": [], "thread_id": "7"});
        let read = Reply::from_json(old);
        assert_eq!((read.text.as_str(), read.thread_id.as_str(), read.buttons.len()), ("hi", "7", 0));
    }
}
