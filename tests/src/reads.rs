//! What the end-to-end tests read back from the store: the outbox, and what a task's timeline
//! says about its turns.

use serde_json::Value;
use taskgate_adapters::store::SeaStore;
use taskgate_core::model::{Body, Channel, EventKind, Id};
use taskgate_core::store::Store;

/// Everything enqueued for Telegram since the last call, oldest first, as (task, approval,
/// text): it marks the rows it reads as sent and reads the heads one chat at a time.
pub async fn outbox_texts(store: &SeaStore) -> Vec<(Option<Id>, Option<Id>, String)> {
    let mut out = Vec::new();
    let far = chrono::Utc::now() + chrono::Duration::days(1);
    loop {
        let due = store.outbox_due(Channel::Telegram, far, 100).await.expect("outbox");
        if due.is_empty() {
            return out;
        }
        for o in due {
            out.push((o.task_id, o.approval_id, o.payload.text.clone()));
            store.outbox_sent(o.id, Some(&format!("m-{}", o.id))).await.expect("sent");
        }
    }
}

/// How many turns of execution `exec` have ended, however they ended.
pub async fn completed_turns(store: &SeaStore, exec: Id) -> usize {
    let task = store.execution(exec).await.expect("exec").task_id;
    store
        .timeline(task)
        .await
        .expect("timeline")
        .into_iter()
        .filter(|e| e.kind == EventKind::Result && e.execution_id == Some(exec))
        .count()
}

/// The end-of-turn events of the task, oldest first.
pub async fn results(store: &SeaStore, task: Id) -> Vec<Value> {
    let timeline = store.timeline(task).await.expect("timeline");
    timeline.into_iter().filter(|e| e.kind == EventKind::Result).map(|e| e.body.to_json()).collect()
}

/// Everything the agent said on the task, in one string.
pub async fn agent_text(store: &SeaStore, task: Id) -> String {
    let timeline = store.timeline(task).await.expect("timeline");
    timeline
        .iter()
        .filter_map(|e| match e.body.known() {
            Some(Body::AgentText { text }) => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}
