//! Status moves that always go through the state machines, re-reading versioned rows on a
//! conflict (another replica moved them). An illegal move is skipped and logged, never forced:
//! a late event must not drag a task back into a state it already left.

use taskgate_core::model::{
    ExecutionStatus, Id, RuntimeSession, SessionStatus, StateMachine, TaskStatus, Turn, TurnStatus,
};
use taskgate_core::store::{Store, StoreError, StoreResult};

const ATTEMPTS: usize = 3;

/// Moves a task to `to`, through `Running` when the direct move is not allowed (an idle task
/// that starts waiting for approval was running in between).
pub async fn task(store: &dyn Store, id: Id, to: TaskStatus) -> StoreResult<()> {
    for _ in 0..ATTEMPTS {
        let mut task = store.task(id).await?;
        if task.status == to {
            return Ok(());
        }
        let next = match task.status.transition(to) {
            Ok(next) => next,
            Err(_) => match task.status.transition(TaskStatus::Running).and_then(|r| r.transition(to)) {
                Ok(next) => next,
                Err(e) => {
                    tracing::debug!(task = id, "skipped: {e}");
                    return Ok(());
                }
            },
        };
        task.status = next;
        match store.update_task(&task).await {
            Err(StoreError::Conflict { .. }) => continue,
            other => return other.map(|_| ()),
        }
    }
    Err(StoreError::Conflict { entity: "task", id, expected: -1 })
}

pub async fn execution(store: &dyn Store, id: Id, to: ExecutionStatus) -> StoreResult<()> {
    for _ in 0..ATTEMPTS {
        let mut exec = store.execution(id).await?;
        if exec.status == to {
            return Ok(());
        }
        match exec.status.transition(to) {
            Ok(next) => exec.status = next,
            Err(e) => {
                tracing::debug!(execution = id, "skipped: {e}");
                return Ok(());
            }
        }
        match store.update_execution(&exec).await {
            Err(StoreError::Conflict { .. }) => continue,
            other => return other.map(|_| ()),
        }
    }
    Err(StoreError::Conflict { entity: "execution", id, expected: -1 })
}

/// Moves a session row (held in memory by its runner) and writes it.
pub async fn session(store: &dyn Store, row: &mut RuntimeSession, to: SessionStatus) -> StoreResult<()> {
    if row.status == to {
        return Ok(());
    }
    // A session that starts a turn before its ready event was read is ready in between.
    let next = match row.status.transition(to) {
        Ok(next) => next,
        Err(_) if row.status == SessionStatus::Starting && to == SessionStatus::Busy => SessionStatus::Busy,
        Err(e) => {
            tracing::debug!(session = row.id, "skipped: {e}");
            return Ok(());
        }
    };
    row.status = next;
    *row = store.update_session(row).await?;
    Ok(())
}

pub async fn turn(store: &dyn Store, row: &mut Turn, to: TurnStatus, summary: Option<String>) -> StoreResult<()> {
    if row.status != to {
        match row.status.transition(to) {
            Ok(next) => row.status = next,
            Err(e) => {
                tracing::debug!(turn = row.id, "skipped: {e}");
                return Ok(());
            }
        }
    }
    if summary.is_some() {
        row.summary = summary;
    }
    *row = store.update_turn(row).await?;
    Ok(())
}
