//! `callback_data` of inline buttons: what a press means, in at most 64 bytes.
//!
//! An approval button names its approval (`a:<id>:<o|a|d>`), so a press resolves exactly that
//! approval even when several wait. Any other button carries its choice index (`c:<n>`), read
//! against the stored outbound message the keyboard belongs to.

use taskgate_core::model::Id;

/// Telegram's limit on `callback_data`, in bytes.
pub const MAX_DATA: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalAnswer {
    Once,
    Always,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonData {
    Approval { approval: Id, answer: ApprovalAnswer },
    Choice(usize),
}

impl ButtonData {
    pub fn encode(&self) -> String {
        match self {
            ButtonData::Approval { approval, answer } => {
                let a = match answer {
                    ApprovalAnswer::Once => 'o',
                    ApprovalAnswer::Always => 'a',
                    ApprovalAnswer::Deny => 'd',
                };
                format!("a:{approval}:{a}")
            }
            ButtonData::Choice(n) => format!("c:{n}"),
        }
    }

    /// `None` for anything this gateway did not write (old keyboards, forged presses).
    pub fn decode(data: &str) -> Option<Self> {
        if data.len() > MAX_DATA {
            return None;
        }
        let mut parts = data.split(':');
        let parsed = match (parts.next()?, parts.next(), parts.next()) {
            ("a", Some(id), Some(answer)) => {
                let answer = match answer {
                    "o" => ApprovalAnswer::Once,
                    "a" => ApprovalAnswer::Always,
                    "d" => ApprovalAnswer::Deny,
                    _ => return None,
                };
                ButtonData::Approval { approval: id.parse().ok()?, answer }
            }
            ("c", Some(n), None) => ButtonData::Choice(n.parse().ok()?),
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
        for data in [
            ButtonData::Approval { approval: i64::MAX, answer: ApprovalAnswer::Always },
            ButtonData::Approval { approval: i64::MIN, answer: ApprovalAnswer::Deny },
            ButtonData::Approval { approval: 7, answer: ApprovalAnswer::Once },
            ButtonData::Choice(usize::MAX),
        ] {
            let s = data.encode();
            assert!(s.len() <= MAX_DATA, "{s}");
            assert_eq!(ButtonData::decode(&s), Some(data));
        }
    }

    #[test]
    fn refuses_what_it_did_not_write() {
        for bad in ["", "a", "a:1", "a:x:o", "a:1:z", "a:1:o:extra", "c:", "c:-1", "zz:1", &"c:1".repeat(30)] {
            assert_eq!(ButtonData::decode(bad), None, "{bad}");
        }
    }
}
