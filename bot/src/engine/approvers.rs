//! Who may decide an approval: a decision counts only from a person allowed to make it (the
//! project's `approvers`, else the channels' `allowed_users`), or from the person who started
//! the task, or from the web console. Members of an admitted group may talk to the bot without
//! being able to approve what it runs on the host.

use taskgate_core::model::{Approval, Channel, Id};
use taskgate_core::plan::{Effect, Plan};
use taskgate_core::store::{Store, StoreResult};

use super::Engine;

impl Engine {
    /// Whether `sender_id` (on `channel`, speaking as `person`) may decide `approval`.
    pub(super) async fn may_decide(
        &self,
        channel: Channel,
        sender_id: &str,
        person: Id,
        approval: &Approval,
    ) -> StoreResult<bool> {
        if channel == Channel::Web {
            return Ok(true);
        }
        let task = self.store().task(approval.task_id).await?;
        if task.created_by == Some(person) {
            return Ok(true);
        }
        let project = match task.project_id {
            Some(id) => self.store().projects().await?.into_iter().find(|p| p.id == id).map(|p| p.name),
            None => None,
        };
        Ok(self.is_approver(channel, sender_id, project.as_deref()))
    }

    /// Whether `sender_id` is listed as an approver of the project named `project`: its
    /// `approvers`, or without any, the channel's `allowed_users`. The web console's user is.
    pub(super) fn is_approver(&self, channel: Channel, sender_id: &str, project: Option<&str>) -> bool {
        let config = self.config();
        let listed = project.and_then(|name| config.projects.iter().find(|p| p.name == name)).map(|p| &p.approvers);
        match (channel, listed.filter(|a| !a.is_empty())) {
            (Channel::Web, _) => true,
            (_, Some(approvers)) => approvers.iter().any(|a| a == sender_id),
            (Channel::Telegram, None) => {
                config.telegram.as_ref().is_some_and(|t| t.allowed_users.iter().any(|u| u.to_string() == sender_id))
            }
            (Channel::Feishu, None) => {
                config.feishu.as_ref().is_some_and(|f| f.allowed_users.iter().any(|u| u == sender_id))
            }
        }
    }

    /// A person's plan with the decisions they may not make taken out. An approve or deny they
    /// may not make becomes one line saying who can; a stop keeps its interrupt (the turn ends,
    /// and what it waited on expires with it) without deciding for anyone.
    pub(super) async fn guard_decisions(
        &self,
        plan: Plan,
        channel: Channel,
        sender_id: &str,
        person: Id,
    ) -> StoreResult<Plan> {
        let mut refused = false;
        let mut kept = Plan::default();
        let interrupts = plan.effects.iter().any(|e| matches!(e, Effect::InterruptTurn { .. }));
        for effect in plan.effects {
            if let Effect::Resolve { approval, .. } = &effect {
                let row = self.store().approval(*approval).await?;
                if !self.may_decide(channel, sender_id, person, &row).await? {
                    tracing::info!(approval, %channel, sender = %sender_id, "a decision from someone not allowed to make it; refused");
                    refused = true;
                    continue;
                }
            }
            kept.effects.push(effect);
        }
        if refused && !interrupts {
            let mut only = Plan::default();
            only.reply("Only the project's approvers (or whoever started the task) can decide this approval.");
            return Ok(only);
        }
        Ok(kept)
    }
}
