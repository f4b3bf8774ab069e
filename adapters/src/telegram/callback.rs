//! `callback_data` of inline buttons: what a press means, in at most 64 bytes.
//!
//! An approval button names its approval and that approval's nonce (`a:<id>:<nonce>:<o|a|d>`),
//! so a press resolves exactly that approval even when several wait, and only one that was
//! shown. A clarify's buttons carry their choice index (`c:<n>`), read against the stored
//! outbound message the keyboard belongs to; a Stop button names its task (`s:<task>`).

use taskgate_core::model::{Answer, Id, Scope};
use taskgate_core::reply::Action;

/// Telegram's limit on `callback_data`, in bytes.
pub const MAX_DATA: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ButtonData {
    /// `a:<approval>:<nonce>:<o|a|p|d>`: the nonce is the approval's own random value, so a
    /// press cannot name an approval it was never shown.
    Approval { approval: Id, nonce: String, answer: Answer },
    /// `c:<n>`: a clarify's reading, read against the stored message the keyboard belongs to.
    Choice(usize),
    /// `s:<task>`: stop the task's running turn.
    Stop(Id),
    /// `m:<execution>`: merge the execution's worktree branch.
    Merge(Id),
    /// `x:<execution>`: discard the execution's worktree and branch.
    Discard(Id),
}

impl From<&Action> for ButtonData {
    fn from(action: &Action) -> Self {
        match action {
            Action::Decide { approval, nonce, answer } => {
                ButtonData::Approval { approval: *approval, nonce: nonce.clone(), answer: *answer }
            }
            Action::Choose { choice, .. } => ButtonData::Choice(*choice),
            Action::Stop { task } => ButtonData::Stop(*task),
            Action::Merge { execution } => ButtonData::Merge(*execution),
            Action::Discard { execution } => ButtonData::Discard(*execution),
        }
    }
}

impl ButtonData {
    pub fn encode(&self) -> String {
        match self {
            ButtonData::Approval { approval, nonce, answer } => {
                let a = match answer {
                    Answer::Approve(Scope::Once) => 'o',
                    Answer::Approve(Scope::Always) => 'a',
                    Answer::Approve(Scope::Project) => 'p',
                    Answer::Deny | Answer::DenyAndStop => 'd',
                };
                format!("a:{approval}:{nonce}:{a}")
            }
            ButtonData::Choice(n) => format!("c:{n}"),
            ButtonData::Stop(task) => format!("s:{task}"),
            ButtonData::Merge(execution) => format!("m:{execution}"),
            ButtonData::Discard(execution) => format!("x:{execution}"),
        }
    }

    /// `None` for anything this gateway did not write (old keyboards, forged presses).
    pub fn decode(data: &str) -> Option<Self> {
        if data.len() > MAX_DATA {
            return None;
        }
        let mut parts = data.split(':');
        let parsed = match (parts.next()?, parts.next(), parts.next(), parts.next()) {
            ("a", Some(id), Some(nonce), Some(answer))
                if !nonce.is_empty() && nonce.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                let answer = match answer {
                    "o" => Answer::Approve(Scope::Once),
                    "a" => Answer::Approve(Scope::Always),
                    "p" => Answer::Approve(Scope::Project),
                    "d" => Answer::Deny,
                    _ => return None,
                };
                ButtonData::Approval { approval: id.parse().ok()?, nonce: nonce.to_owned(), answer }
            }
            ("c", Some(n), None, None) => ButtonData::Choice(n.parse().ok()?),
            ("s", Some(task), None, None) => ButtonData::Stop(task.parse().ok()?),
            ("m", Some(execution), None, None) => ButtonData::Merge(execution.parse().ok()?),
            ("x", Some(execution), None, None) => ButtonData::Discard(execution.parse().ok()?),
            _ => return None,
        };
        parts.next().is_none().then_some(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_within_64_bytes() {
        let nonce = "abcdefghij12".to_owned();
        for data in [
            ButtonData::Approval { approval: i64::MAX, nonce: nonce.clone(), answer: Answer::Approve(Scope::Always) },
            ButtonData::Approval { approval: i64::MIN, nonce: nonce.clone(), answer: Answer::Deny },
            ButtonData::Approval { approval: 1, nonce: nonce.clone(), answer: Answer::Approve(Scope::Project) },
            ButtonData::Approval { approval: 7, nonce, answer: Answer::Approve(Scope::Once) },
            ButtonData::Choice(usize::MAX),
            ButtonData::Stop(i64::MAX),
            ButtonData::Merge(i64::MAX),
            ButtonData::Discard(7),
        ] {
            let s = data.encode();
            assert!(s.len() <= MAX_DATA, "{s}");
            assert_eq!(ButtonData::decode(&s), Some(data));
        }
    }

    #[test]
    fn refuses_what_it_did_not_write() {
        for bad in [
            "",
            "a",
            "a:1",
            "a:1:o",
            "a:x:n:o",
            "a:1:n:z",
            "a:1::o",
            "a:1:n-x:o",
            "a:1:n:o:extra",
            "c:",
            "c:-1",
            "s:",
            "s:x",
            "zz:1",
            &"c:1".repeat(30),
        ] {
            assert_eq!(ButtonData::decode(bad), None, "{bad}");
        }
    }
}
