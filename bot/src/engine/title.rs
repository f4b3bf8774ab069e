//! `/title <name>` in a chat: renames the task the message is about (the one replied to, else
//! the conversation's current task). The old title stays on the timeline, as when the web
//! console renames it; a bare `/title` says the current one.

use taskgate_core::model::{Body, Conversation, Id, NewEvent, NewOutbound, Task};
use taskgate_core::reply::Reply;
use taskgate_core::store::{Store, StoreError};

use super::{Engine, EngineError, IncomingMessage};

/// The longest title (the web console's limit too).
pub const MAX_TITLE: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TitleCommand {
    /// Say the current title.
    Show,
    /// Rename to this (whitespace collapsed).
    Rename(String),
    /// Too long: the limit is named.
    TooLong,
}

/// `/title`, `/title <name>` (also `/title@bot …`); `None` for anything else.
pub fn parse(text: &str) -> Option<TitleCommand> {
    let text = text.trim_start();
    let head = text.split_whitespace().next()?;
    if !head.split('@').next()?.eq_ignore_ascii_case("/title") {
        return None;
    }
    let title = text[head.len()..].split_whitespace().collect::<Vec<_>>().join(" ");
    Some(if title.is_empty() {
        TitleCommand::Show
    } else if title.chars().count() > MAX_TITLE {
        TitleCommand::TooLong
    } else {
        TitleCommand::Rename(title)
    })
}

impl Engine {
    pub(super) async fn title_command(
        &self,
        command: TitleCommand,
        msg: &IncomingMessage,
        by: &str,
        conversation: &Conversation,
    ) -> Result<(), EngineError> {
        let store = self.store().as_ref();
        let task = match msg.reply_to_task.or(conversation.focused_task_id) {
            Some(id) => Some(store.task(id).await?),
            None => None,
        };
        let text = match (command, task) {
            (_, None) => "No task here to rename: reply to one of its messages with /title <name>.".to_owned(),
            (TitleCommand::TooLong, _) => format!("A title has at most {MAX_TITLE} characters."),
            (TitleCommand::Show, Some(task)) => format!("This task is '{}'. Rename it with /title <name>.", task.title),
            (TitleCommand::Rename(title), Some(task)) => {
                // The engine writes tasks too (status moves): on a concurrent write, again.
                let mut attempts = 0;
                let renamed = loop {
                    attempts += 1;
                    match retitle(self, task.id, &title, msg, by).await {
                        Err(StoreError::Conflict { .. }) if attempts < 5 => continue,
                        other => break other?,
                    }
                };
                if let Err(e) = self.notes().load_and_export(&renamed).await {
                    tracing::warn!(task = task.id, error = %e, "the renamed task's note could not be exported");
                }
                format!("Renamed: '{}'.", renamed.title)
            }
        };
        let task_id = msg.reply_to_task.or(conversation.focused_task_id);
        store
            .outbox_enqueue(NewOutbound {
                channel: conversation.channel,
                chat_id: conversation.chat_id.clone(),
                task_id,
                approval_id: None,
                payload: Reply { reply_to: msg.message_id.clone(), ..Reply::text(text) }
                    .in_thread(conversation.thread_id.clone()),
            })
            .await?;
        Ok(())
    }
}

async fn retitle(engine: &Engine, id: Id, title: &str, msg: &IncomingMessage, by: &str) -> Result<Task, StoreError> {
    let tx = engine.store().begin().await?;
    let mut task = tx.task(id).await?;
    if task.title == title {
        return Ok(task);
    }
    let previous = std::mem::replace(&mut task.title, title.to_owned());
    let task = tx.update_task(&task).await?;
    tx.append_event(NewEvent {
        task_id: id,
        execution_id: None,
        channel: Some(msg.channel),
        actor: Some(by.to_owned()),
        body: Body::NoteField { field: "title".into(), value: title.to_owned(), previous: Some(previous) }.into(),
    })
    .await?;
    tx.commit().await?;
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_commands_parse() {
        assert_eq!(parse("/title"), Some(TitleCommand::Show));
        assert_eq!(parse("/title   Fix  the login\tbug "), Some(TitleCommand::Rename("Fix the login bug".into())));
        assert_eq!(parse("/title@taskgate_bot Release notes"), Some(TitleCommand::Rename("Release notes".into())));
        assert_eq!(parse(&format!("/title {}", "x".repeat(MAX_TITLE + 1))), Some(TitleCommand::TooLong));
        assert_eq!(parse("/titles are nice"), None);
        assert_eq!(parse("give it a /title"), None);
    }
}
