//! `/link`: one human, one person across channels. `/link` on one channel shows a one-time
//! code; `/link CODE` on another joins that channel's identity to the person who asked for the
//! code. Handled before classification: it is about who is speaking, not about any task.
//!
//! After linking, the conversation the code was entered in is focused on the person's newest
//! task, so a task started on the web continues from Telegram with a plain message.

use chrono::Utc;
use taskgate_core::model::{Channel, Conversation, Id, Identity, LinkCode, NewOutbound};
use taskgate_core::store::{Store, StoreError, StoreResult};

/// How long a code can be redeemed.
const CODE_MINUTES: i64 = 10;
/// Unambiguous characters (no 0/O, 1/I/L) so a code survives being read off a phone.
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkCommand {
    /// `/link`: show a code here.
    Issue,
    /// `/link CODE`: join this identity to the code's person.
    Redeem(String),
}

/// `/link`, `/link@bot`, `/link ABCD-EFGH`; anything else is not a link command.
pub fn parse(text: &str) -> Option<LinkCommand> {
    let text = text.trim();
    let rest = text.strip_prefix("/link")?;
    // `/linking` is not `/link`; `/link@taskgate_bot` is (Telegram group form).
    let rest = match rest.chars().next() {
        None => "",
        Some(c) if c.is_whitespace() => rest,
        Some('@') => rest.split_once(char::is_whitespace).map_or("", |(_, r)| r),
        Some(_) => return None,
    };
    let code = normalize(rest);
    Some(if code.is_empty() { LinkCommand::Issue } else { LinkCommand::Redeem(code) })
}

/// `abcd-efgh` → `ABCDEFGH`: case, spaces and dashes do not matter when typing a code.
fn normalize(code: &str) -> String {
    code.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect()
}

/// `ABCDEFGH` → `ABCD-EFGH`, easier to read aloud.
fn display(code: &str) -> String {
    let (a, b) = code.split_at(code.len() / 2);
    format!("{a}-{b}")
}

fn new_code() -> Result<String, StoreError> {
    let mut bytes = [0u8; CODE_LEN];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Backend(format!("no randomness for a link code: {e}")))?;
    // 256 is not a multiple of 31: the slight bias is irrelevant for a 10-minute one-time code.
    Ok(bytes.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect())
}

fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Telegram => "Telegram",
        Channel::Feishu => "Feishu",
        Channel::Web => "web console",
    }
}

/// Runs a link command for `identity` in `conversation` (in a transaction the caller commits)
/// and enqueues the reply. Returns the task the conversation was focused on, if any.
pub async fn run(
    tx: &dyn Store,
    command: LinkCommand,
    identity: &Identity,
    conversation: &Conversation,
) -> StoreResult<Option<Id>> {
    let (text, task) = match command {
        LinkCommand::Issue => {
            let code = new_code()?;
            tx.create_link_code(&LinkCode {
                code: code.clone(),
                person_id: identity.person_id,
                channel: identity.channel,
                expires_at: Utc::now() + chrono::Duration::minutes(CODE_MINUTES),
                used_at: None,
            })
            .await?;
            let text = format!(
                "Your link code: {shown}\nSend /link {shown} from your other channel (Telegram, Feishu or the web console) \
                 within {CODE_MINUTES} minutes to make both one person: tasks then continue on either.",
                shown = display(&code),
            );
            (text, None)
        }
        LinkCommand::Redeem(code) => redeem(tx, &code, identity, conversation).await?,
    };
    tx.outbox_enqueue(NewOutbound {
        channel: conversation.channel,
        chat_id: conversation.chat_id.clone(),
        task_id: task,
        approval_id: None,
        payload: taskgate_core::reply::Reply::text(text).in_thread(conversation.thread_id.clone()),
    })
    .await?;
    Ok(task)
}

async fn redeem(
    tx: &dyn Store,
    code: &str,
    identity: &Identity,
    conversation: &Conversation,
) -> StoreResult<(String, Option<Id>)> {
    let Some(link) = tx.redeem_link_code(code, Utc::now()).await? else {
        return Ok((
            "That link code is unknown, used or expired. Send /link on your other channel for a new one.".into(),
            None,
        ));
    };
    let into = link.person_id;
    if into != identity.person_id {
        tx.merge_person(identity.person_id, into).await?;
    }
    let person = tx.person(into).await?;
    let newest = newest_task_of(tx, into).await?;
    let mut text = if link.channel == conversation.channel {
        format!("Linked: both {} identities are now one person ({}).", channel_name(link.channel), person.name)
    } else {
        format!(
            "Linked: your {} and {} identities are now one person ({}).",
            channel_name(conversation.channel),
            channel_name(link.channel),
            person.name
        )
    };
    if let Some((id, title)) = &newest {
        tx.set_focus(conversation.id, Some(*id)).await?;
        text.push_str(&format!(" Continuing task {id} “{title}” here: just write."));
    }
    Ok((text, newest.map(|(id, _)| id)))
}

/// The person's most recently updated task.
async fn newest_task_of(store: &dyn Store, person: Id) -> StoreResult<Option<(Id, String)>> {
    Ok(store.tasks(200).await?.into_iter().find(|t| t.created_by == Some(person)).map(|t| (t.id, t.title)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_link_commands() {
        assert_eq!(parse("/link"), Some(LinkCommand::Issue));
        assert_eq!(parse("  /link  "), Some(LinkCommand::Issue));
        assert_eq!(parse("/link@taskgate_bot"), Some(LinkCommand::Issue));
        assert_eq!(parse("/link abcd-efgh"), Some(LinkCommand::Redeem("ABCDEFGH".into())));
        assert_eq!(parse("/link@taskgate_bot ABCD EFGH"), Some(LinkCommand::Redeem("ABCDEFGH".into())));
        assert_eq!(parse("/linking things"), None);
        assert_eq!(parse("please /link"), None);
    }

    #[test]
    fn codes_use_the_unambiguous_alphabet() {
        let code = new_code().unwrap();
        assert_eq!(code.len(), CODE_LEN);
        assert!(code.bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(display("ABCDEFGH"), "ABCD-EFGH");
        assert_eq!(normalize(&display(&code)), code);
    }
}
