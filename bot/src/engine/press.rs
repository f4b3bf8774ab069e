//! Button presses (and the console's clicks) that act without being classified: an approval
//! decided, a running turn stopped. A press counts only where its button was shown, from a
//! sender the channel admits, and for an approval only with the nonce its buttons carry.

use taskgate_core::classify::{Decision, Intent};
use taskgate_core::model::{Answer, Approval, ApprovalStatus, Channel, Id};
use taskgate_core::plan::{Effect, Plan};
use taskgate_core::route::Sender;
use taskgate_core::store::{Store, StoreError};
use taskgate_core::wording::{self, Decider};

use super::apply::{self, Origin};
use super::{Engine, EngineError, IncomingMessage};

/// What a press did, in words for its toast (and the line that replaces the buttons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pressed {
    Done(String),
    /// Nothing changed; why.
    Refused(String),
}

const INACTIVE: &str = "This button is no longer active.";

impl Engine {
    /// Decides `approval` for the sender of `by` (its text is not used). `nonce` is what the
    /// pressed button carried; the web console, where the person logged in, passes `None`.
    pub async fn decide(
        &self,
        by: &IncomingMessage,
        approval: Id,
        nonce: Option<&str>,
        answer: Answer,
    ) -> Result<Pressed, EngineError> {
        if !self.admitted(by) {
            return Ok(Pressed::Refused("You are not allowed to use this bot.".into()));
        }
        let store = self.store().as_ref();
        let row = match store.approval(approval).await {
            Ok(row) => row,
            Err(StoreError::NotFound { .. }) => return Ok(Pressed::Refused("This request is no longer known.".into())),
            Err(e) => return Err(e.into()),
        };
        if let Some(nonce) = nonce
            && !subtle_eq(nonce.as_bytes(), row.nonce.as_bytes())
        {
            tracing::warn!(approval, channel = %by.channel, chat = %by.chat_id, "a press named an approval with the wrong nonce; refused");
            return Ok(Pressed::Refused(INACTIVE.into()));
        }
        if by.channel != Channel::Web && !store.shown_in(by.channel, &by.chat_id, Some(approval), None).await? {
            tracing::warn!(approval, channel = %by.channel, chat = %by.chat_id, "a press for an approval asked in another chat; refused");
            return Ok(Pressed::Refused("This approval was not asked here.".into()));
        }
        if row.status != ApprovalStatus::Pending {
            return Ok(Pressed::Refused(format!("Already {}", lowercase_first(&self.decided_line(&row).await))));
        }
        let (sender, conversation) = self.sender(by).await?;
        if !self.may_decide(by.channel, &by.sender_id, sender.person_id, &row).await? {
            tracing::info!(approval, channel = %by.channel, sender = %by.sender_id, "a press from someone not allowed to decide; refused");
            return Ok(Pressed::Refused(
                "Only the project's approvers (or whoever started the task) can decide this.".into(),
            ));
        }
        let mut plan = Plan::default();
        plan.push(Effect::Resolve { approval, answer, note: None });
        let model_of = |_: &str| None;
        let origin = Origin::Person {
            conversation: &conversation,
            sender: &sender,
            text: "",
            message_id: by.message_id.as_deref(),
            model_of: &model_of,
            files: &[],
            inbound: by.inbound,
        };
        let applied = apply::commit(store, &plan, &origin, None).await?;
        self.shared.outbox.after(&plan);
        for exec in applied.wake {
            self.runner.wake(exec);
        }
        let after = store.approval(approval).await?;
        let line = self.decided_line(&after).await;
        if after.decided_by == Some(sender.person_id) && after.status != ApprovalStatus::Pending {
            Ok(Pressed::Done(line))
        } else {
            Ok(Pressed::Refused(format!("Already {}", lowercase_first(&line))))
        }
    }

    /// Stops `task`'s running turn for the sender of `by`, as if they had said "stop" about it.
    pub async fn stop(&self, by: &IncomingMessage, task: Id) -> Result<Pressed, EngineError> {
        if !self.admitted(by) {
            return Ok(Pressed::Refused("You are not allowed to use this bot.".into()));
        }
        if by.channel != Channel::Web && !self.store().shown_in(by.channel, &by.chat_id, None, Some(task)).await? {
            return Ok(Pressed::Refused(INACTIVE.into()));
        }
        let msg = IncomingMessage { text: "/cancel".into(), reply_to_task: Some(task), mentioned: true, ..by.clone() };
        let decision = Decision {
            intent: Intent::Cancel,
            task: Some(task.to_string()),
            agent: None,
            role: None,
            approval: None,
            scope: None,
            confidence: 1.0,
            reason: "the Stop button".into(),
        };
        self.process(msg, Some(decision), &[]).await?;
        Ok(Pressed::Done("Stopping".into()))
    }

    /// "Approved by Ada (Telegram)", "Denied by Ada from the web console", …
    pub async fn decided_line(&self, approval: &Approval) -> String {
        let who = match approval.decided_by {
            Some(person) => self.store().person(person).await.map(|p| p.name).unwrap_or_else(|_| "someone".into()),
            None => "someone".into(),
        };
        let by = match approval.rule_id {
            Some(rule) if approval.decided_by.is_none() => Decider::Rule(rule),
            _ => Decider::Person { name: &who, channel: approval.decided_channel },
        };
        wording::decision_line(approval.status, approval.scope, by, None)
    }

    /// The sender as a person, and their conversation.
    async fn sender(&self, by: &IncomingMessage) -> Result<(Sender, taskgate_core::model::Conversation), EngineError> {
        let store = self.store().as_ref();
        let identity = self.identity(by).await?;
        let person = store.person(identity.person_id).await?;
        let sender = Sender {
            person_id: person.id,
            name: identity.display_name.clone().unwrap_or(person.name),
            channel: by.channel,
            at: chrono::Utc::now(),
        };
        let conversation = store.conversation(by.channel, &by.chat_id, &by.thread_id).await?;
        Ok((sender, conversation))
    }
}

/// Equal in time independent of where the first difference is (the length is not secret).
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
