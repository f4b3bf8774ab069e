//! The task page's controls: Stop, New session, Rename, and another agent on the task. Each
//! goes through the engine the way the same request typed in a chat would (so it is recorded,
//! routed and announced once, on every replica), except Rename, which the engine has no verb
//! for: the title is changed in the store and the change put on the timeline.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use taskgate_core::model::{Body, Channel, Id, NewEvent, Role, Task};
use taskgate_core::store::{Store, StoreError};

use super::sse::Hint;
use super::{ApiError, Console};
use crate::engine::Pressed;

/// Longest title accepted (characters).
const MAX_TITLE: usize = 200;

type Answer = Result<Json<Value>, ApiError>;

/// `POST /api/tasks/{id}/stop`: interrupts the task's running turn (what "stop" in a chat
/// does). 409 when nothing runs.
pub async fn stop(Extension(console): Extension<Arc<Console>>, Path(id): Path<Id>) -> Answer {
    let task = console.store.task(id).await?;
    if !task.status.is_active() {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("nothing is running on task {id} ({})", task.status)));
    }
    let by = console.user(Some(id), "");
    let pressed = console.engine.stop(&by, id).await?;
    done(&console, id, pressed)
}

/// `POST /api/tasks/{id}/new-session`: the task's agents start fresh sessions seeded with its
/// restart note (what `/new` on the task does).
pub async fn new_session(Extension(console): Extension<Arc<Console>>, Path(id): Path<Id>) -> Answer {
    console.store.task(id).await?;
    console.engine.handle(console.user(Some(id), "/new")).await?;
    done(&console, id, Pressed::Done("A new session starts from the task's restart note.".into()))
}

#[derive(Debug, Deserialize)]
pub struct Rename {
    title: String,
}

/// `POST /api/tasks/{id}/rename`, body `{"title": "..."}`: the task's title people read; the
/// old one stays on the timeline.
pub async fn rename(
    Extension(console): Extension<Arc<Console>>,
    Path(id): Path<Id>,
    Json(rename): Json<Rename>,
) -> Result<Json<Task>, ApiError> {
    let title = rename.title.split_whitespace().collect::<Vec<_>>().join(" ");
    if title.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "the title is empty"));
    }
    if title.chars().count() > MAX_TITLE {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("a title has at most {MAX_TITLE} characters")));
    }
    // The engine writes tasks too (status moves): on a concurrent write, read again and retry.
    let mut attempts = 0;
    let task = loop {
        attempts += 1;
        match retitle(&console, id, &title).await {
            Err(StoreError::Conflict { .. }) if attempts < 5 => continue,
            other => break other?,
        }
    };
    if let Err(e) = console.engine.notes().load_and_export(&task).await {
        tracing::warn!(task = id, error = %e, "the renamed task's note could not be exported");
    }
    console.hub.send(Hint::Task { task: id });
    Ok(Json(task))
}

async fn retitle(console: &Console, id: Id, title: &str) -> Result<Task, StoreError> {
    let tx = console.store.begin().await?;
    let mut task = tx.task(id).await?;
    if task.title == title {
        return Ok(task);
    }
    let previous = std::mem::replace(&mut task.title, title.to_owned());
    let task = tx.update_task(&task).await?;
    tx.append_event(NewEvent {
        task_id: id,
        execution_id: None,
        channel: Some(Channel::Web),
        actor: Some(console.display_name.clone()),
        body: Body::NoteField { field: "title".into(), value: title.to_owned(), previous: Some(previous) }.into(),
    })
    .await?;
    tx.commit().await?;
    Ok(task)
}

#[derive(Debug, Deserialize)]
pub struct Spawn {
    agent: String,
    /// `editor`, `reviewer` (default) or `tester`.
    role: Option<String>,
}

/// `POST /api/tasks/{id}/agents`, body `{"agent": "claude", "role": "reviewer"}`: another
/// agent joins the task. Sent to the engine as the sentence a person would type on the task
/// ("/review claude", "use claude to test it"), so it is routed like one; 409 when that
/// started no new execution (the agent already works on it in that role, say).
pub async fn spawn(
    Extension(console): Extension<Arc<Console>>,
    Path(id): Path<Id>,
    Json(spawn): Json<Spawn>,
) -> Answer {
    let store = console.store.as_ref();
    store.task(id).await?;
    let agent = spawn.agent.trim();
    if !console.engine.config().agents.contains_key(agent) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("no agent named `{agent}` is configured")));
    }
    let role = match spawn.role.as_deref() {
        None | Some("") => Role::Reviewer,
        Some(r) => r.parse::<Role>().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?,
    };
    let before: Vec<Id> = store.executions(id).await?.into_iter().map(|e| e.id).collect();
    let text = match role {
        Role::Reviewer => format!("/review {agent}"),
        Role::Tester => format!("use {agent} to test it"),
        Role::Editor => format!("use {agent} to work on it too"),
    };
    console.engine.handle(console.user(Some(id), &text)).await?;
    console.outbox.notify_one();
    console.hub.send(Hint::Task { task: id });
    let started = store.executions(id).await?.into_iter().find(|e| !before.contains(&e.id));
    match started {
        Some(execution) => Ok(Json(json!({
            "done": format!("{} joined as {}", execution.agent, execution.role),
            "execution": execution,
        }))),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("{agent} did not join as {role}: the chat says why (already on the task?)"),
        )),
    }
}

fn done(console: &Console, id: Id, pressed: Pressed) -> Answer {
    console.outbox.notify_one();
    console.hub.send(Hint::Task { task: id });
    match pressed {
        Pressed::Done(line) => Ok(Json(json!({"done": line}))),
        Pressed::Refused(why) => Err(ApiError::new(StatusCode::CONFLICT, why)),
    }
}
