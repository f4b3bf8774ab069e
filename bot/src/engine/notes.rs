//! `/note` in a chat: shows the task's restart note or adds to it, through the notes keeper
//! (`crate::notes::Keeper`), and answers in the chat.

use taskgate_core::model::{Conversation, Id, NewOutbound};
use taskgate_core::notes::NoteCommand;
use taskgate_core::reply::Reply;
use taskgate_core::store::{Store, StoreError};

use super::{Engine, EngineError};
use crate::notes::{NoteError, NoteWrite};

/// A chat line showing the note stays under every channel's message limit.
const MAX_CHAT: usize = 3500;

impl Engine {
    /// `/note` from a chat: about the task the message replies to, else the focused one.
    pub(super) async fn note_command(
        &self,
        command: NoteCommand,
        person: Id,
        conversation: &Conversation,
        reply_to: Option<Id>,
    ) -> Result<(), EngineError> {
        let command_usage = match &command {
            NoteCommand::Help(usage) => Some(usage.clone()),
            _ => None,
        };
        let task = reply_to.or(conversation.focused_task_id);
        let write = match command {
            NoteCommand::Show | NoteCommand::Help(_) => None,
            NoteCommand::Record { kind, text, evidence } => Some(NoteWrite::Entry { kind, text, evidence }),
            NoteCommand::Objective(t) => Some(NoteWrite::Objective(t)),
            NoteCommand::Reproduction(t) => Some(NoteWrite::Reproduction(t)),
            NoteCommand::NextAction(t) => Some(NoteWrite::NextAction(t)),
        };
        let text = match (task, write, command_usage) {
            (_, _, Some(usage)) => usage,
            (None, _, None) => "No task in focus: reply to a task's message, or start one first.".to_owned(),
            (Some(task), None, None) => match self.notes().restart_note(task).await {
                Ok(note) => match note.condensed() {
                    Some(text) => shorten(&format!("Task {task} note:\n{text}")),
                    None => format!("Task {task} has no notes yet. Add one with /note verified: …"),
                },
                Err(StoreError::NotFound { .. }) => format!("There is no task {task}."),
                Err(e) => return Err(e.into()),
            },
            (Some(task), Some(write), None) => match self.notes().write(task, write, &format!("person:{person}")).await
            {
                Ok(done) => done,
                Err(NoteError::Invalid(why)) => format!("Not noted: {why}."),
                Err(NoteError::Store(StoreError::NotFound { .. })) => format!("There is no task {task}."),
                Err(NoteError::Store(e)) => return Err(e.into()),
            },
        };
        self.store()
            .outbox_enqueue(NewOutbound {
                channel: conversation.channel,
                chat_id: conversation.chat_id.clone(),
                task_id: task,
                approval_id: None,
                payload: Reply::text(text).in_thread(conversation.thread_id.clone()),
            })
            .await?;
        Ok(())
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_CHAT {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX_CHAT).collect();
    format!("{cut}\n… (the whole note is in the web console)")
}
