//! When each task last had something happen, for the task list's order ("last activity"):
//! the newest timeline entry of each task, read incrementally from the store's change feed,
//! so it sees work done by any replica and costs one small query per look.

use std::collections::HashMap;

use taskgate_core::model::{Id, Timestamp};
use taskgate_core::store::{Store, StoreResult};
use tokio::sync::Mutex;

/// Events read per query; a longer backlog (the first look) is read in several.
const PAGE: u64 = 1000;

#[derive(Default)]
pub struct Activity {
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    last_event: Id,
    at: HashMap<Id, Timestamp>,
}

impl Activity {
    /// Each task's newest timeline entry time, as of now.
    pub async fn latest(&self, store: &dyn Store) -> StoreResult<HashMap<Id, Timestamp>> {
        let mut seen = self.seen.lock().await;
        loop {
            let page = store.events_after(seen.last_event, PAGE).await?;
            let full = page.len() as u64 == PAGE;
            for event in page {
                seen.last_event = seen.last_event.max(event.id);
                let at = seen.at.entry(event.task_id).or_insert(event.at);
                *at = (*at).max(event.at);
            }
            if !full {
                break;
            }
        }
        Ok(seen.at.clone())
    }
}
