//! `/rules` in a chat: the standing approvals ("always allow `npm test` in this project") of the
//! project, each with its id; `/rules revoke <id>` removes one. Only someone who may decide
//! approvals may revoke, and revoking is recorded on the audit trail of the timeline.

use taskgate_core::model::{Conversation, Id, NewOutbound};
use taskgate_core::reply::Reply;
use taskgate_core::store::Store;

use super::{Engine, EngineError, IncomingMessage};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesCommand {
    List,
    Revoke(Id),
    Usage,
}

/// `/rules`, `/rules revoke 3` (also `/rules@bot …`); `None` for anything else.
pub fn parse(text: &str) -> Option<RulesCommand> {
    let mut words = text.split_whitespace();
    let head = words.next()?;
    let command = head.split('@').next()?;
    if !command.eq_ignore_ascii_case("/rules") {
        return None;
    }
    Some(match (words.next(), words.next(), words.next()) {
        (None, _, _) => RulesCommand::List,
        (Some(verb), Some(id), None) if verb.eq_ignore_ascii_case("revoke") => match id.trim_start_matches('#').parse()
        {
            Ok(id) => RulesCommand::Revoke(id),
            Err(_) => RulesCommand::Usage,
        },
        _ => RulesCommand::Usage,
    })
}

impl Engine {
    pub(super) async fn rules_command(
        &self,
        command: RulesCommand,
        msg: &IncomingMessage,
        person: Id,
        conversation: &Conversation,
    ) -> Result<(), EngineError> {
        let store = self.store().as_ref();
        let text = match command {
            RulesCommand::Usage => "Usage: /rules (list what is always allowed), /rules revoke <id>".to_owned(),
            RulesCommand::List => {
                let rules = store.rules(None).await?;
                if rules.is_empty() {
                    "No standing approvals: every action is asked for.".to_owned()
                } else {
                    let lines: Vec<String> = rules
                        .iter()
                        .map(|r| format!("#{} {}: {}", r.id, super::display_agent(&r.agent), r.action))
                        .collect();
                    format!("Always allowed:\n{}\nRevoke one with /rules revoke <id>.", lines.join("\n"))
                }
            }
            RulesCommand::Revoke(id) => {
                // Rules are few and listed together: revoking one takes being an approver
                // of every project, the same standing as deciding approvals.
                let allowed =
                    self.config().projects.iter().all(|p| self.is_approver(msg.channel, &msg.sender_id, Some(&p.name)));
                if !allowed {
                    "Only the project's approvers can revoke rules.".to_owned()
                } else if store.revoke_rule(id).await? {
                    tracing::info!(rule = id, person, "approval rule revoked");
                    format!("Rule #{id} revoked: that action is asked for again.")
                } else {
                    format!("There is no active rule #{id}.")
                }
            }
        };
        store
            .outbox_enqueue(NewOutbound {
                channel: conversation.channel,
                chat_id: conversation.chat_id.clone(),
                task_id: None,
                approval_id: None,
                payload: Reply::text(text).in_thread(conversation.thread_id.clone()),
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_commands_parse() {
        assert_eq!(parse("/rules"), Some(RulesCommand::List));
        assert_eq!(parse("/rules@taskgate_bot"), Some(RulesCommand::List));
        assert_eq!(parse("/rules revoke 3"), Some(RulesCommand::Revoke(3)));
        assert_eq!(parse("/rules revoke #12"), Some(RulesCommand::Revoke(12)));
        assert_eq!(parse("/rules revoke x"), Some(RulesCommand::Usage));
        assert_eq!(parse("/rules delete 3"), Some(RulesCommand::Usage));
        assert_eq!(parse("what are the rules"), None);
        assert_eq!(parse("/rulesx"), None);
    }
}
