//! Rows to domain values. A stored name that no longer parses is reported as a backend error
//! naming the value, rather than guessed at.

use std::str::FromStr;

use taskgate_core::model::*;
use taskgate_core::store::StoreError;

use super::entities::*;

fn parse<T: FromStr<Err = UnknownName>>(s: &str) -> Result<T, StoreError> {
    s.parse().map_err(|e: UnknownName| StoreError::Backend(format!("stored row: {e}")))
}

fn parse_opt<T: FromStr<Err = UnknownName>>(s: Option<&str>) -> Result<Option<T>, StoreError> {
    s.map(parse).transpose()
}

pub fn person(m: persons::Model) -> Person {
    Person { id: m.id, name: m.name, created_at: m.created_at }
}

pub fn identity(m: identities::Model) -> Result<Identity, StoreError> {
    Ok(Identity {
        id: m.id,
        person_id: m.person_id,
        channel: parse(&m.channel)?,
        external_id: m.external_id,
        display_name: m.display_name,
        created_at: m.created_at,
    })
}

pub fn project(m: projects::Model) -> Project {
    Project { id: m.id, name: m.name, path: m.path, default_agent: m.default_agent, created_at: m.created_at }
}

pub fn conversation(m: conversations::Model) -> Result<Conversation, StoreError> {
    Ok(Conversation {
        id: m.id,
        channel: parse(&m.channel)?,
        chat_id: m.chat_id,
        thread_id: m.thread_id,
        focused_task_id: m.focused_task_id,
        created_at: m.created_at,
    })
}

pub fn task(m: tasks::Model) -> Result<Task, StoreError> {
    Ok(Task {
        id: m.id,
        project_id: m.project_id,
        title: m.title,
        goal: m.goal,
        status: parse(&m.status)?,
        objective: m.objective,
        reproduction: m.reproduction,
        next_action: m.next_action,
        created_by: m.created_by,
        version: m.version,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

pub fn execution(m: executions::Model) -> Result<Execution, StoreError> {
    Ok(Execution {
        id: m.id,
        task_id: m.task_id,
        agent: m.agent,
        role: parse(&m.role)?,
        status: parse(&m.status)?,
        version: m.version,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

pub fn session(m: runtime_sessions::Model) -> Result<RuntimeSession, StoreError> {
    Ok(RuntimeSession {
        id: m.id,
        execution_id: m.execution_id,
        provider_session_id: m.provider_session_id,
        model: m.model,
        pid: m.pid,
        status: parse(&m.status)?,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

pub fn turn(m: turns::Model) -> Result<Turn, StoreError> {
    Ok(Turn {
        id: m.id,
        session_id: m.session_id,
        input: m.input,
        summary: m.summary,
        status: parse(&m.status)?,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

pub fn approval(m: approvals::Model) -> Result<Approval, StoreError> {
    Ok(Approval {
        id: m.id,
        task_id: m.task_id,
        execution_id: m.execution_id,
        turn_id: m.turn_id,
        nonce: m.nonce,
        request_id: m.request_id,
        action: m.action,
        status: parse(&m.status)?,
        scope: parse_opt(m.scope.as_deref())?,
        decided_by: m.decided_by,
        decided_channel: parse_opt(m.decided_channel.as_deref())?,
        decided_at: m.decided_at,
        rule_id: m.rule_id,
        version: m.version,
        created_at: m.created_at,
    })
}

pub fn event(m: events::Model) -> Result<Event, StoreError> {
    Ok(Event {
        id: m.id,
        task_id: m.task_id,
        execution_id: m.execution_id,
        kind: parse(&m.kind)?,
        channel: parse_opt(m.channel.as_deref())?,
        actor: m.actor,
        body: EventBody::from_json(m.body),
        at: m.at,
    })
}

pub fn note_entry(m: note_entries::Model) -> Result<NoteEntry, StoreError> {
    Ok(NoteEntry {
        id: m.id,
        task_id: m.task_id,
        kind: parse(&m.kind)?,
        text: m.text,
        evidence: serde_json::from_value(m.evidence)
            .map_err(|e| StoreError::Backend(format!("stored note evidence: {e}")))?,
        author: m.author,
        commit: m.commit,
        at: m.at,
    })
}

pub fn inbound(m: inbox::Model) -> Result<Inbound, StoreError> {
    Ok(Inbound {
        id: m.id,
        channel: parse(&m.channel)?,
        external_id: m.external_id,
        payload: m.payload,
        received_at: m.received_at,
        processed_at: m.processed_at,
        attempts: m.attempts,
        last_error: m.last_error,
    })
}

pub fn outbound(m: outbox::Model) -> Result<Outbound, StoreError> {
    Ok(Outbound {
        id: m.id,
        channel: parse(&m.channel)?,
        chat_id: m.chat_id,
        task_id: m.task_id,
        approval_id: m.approval_id,
        payload: taskgate_core::reply::Reply::from_json(m.payload),
        attempts: m.attempts,
        next_attempt_at: m.next_attempt_at,
        last_error: m.last_error,
        external_message_id: m.external_message_id,
        sent_at: m.sent_at,
        created_at: m.created_at,
    })
}

pub fn link_code(m: link_codes::Model) -> Result<LinkCode, StoreError> {
    Ok(LinkCode {
        code: m.code,
        person_id: m.person_id,
        channel: parse(&m.channel)?,
        expires_at: m.expires_at,
        used_at: m.used_at,
    })
}

pub fn order(m: orders::Model) -> Result<PendingOrder, StoreError> {
    Ok(PendingOrder {
        id: m.id,
        execution_id: m.execution_id,
        order: serde_json::from_value(m.body).map_err(|e| StoreError::Backend(format!("stored order: {e}")))?,
        created_at: m.created_at,
    })
}

pub fn rule(m: approval_rules::Model) -> ApprovalRule {
    ApprovalRule {
        id: m.id,
        project_id: m.project_id,
        agent: m.agent,
        action: m.action,
        created_by: m.created_by,
        created_at: m.created_at,
        revoked_at: m.revoked_at,
    }
}

pub fn audit_entry(m: audit::Model) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: m.id,
        at: m.at,
        approval_id: m.approval_id,
        task_id: m.task_id,
        who: m.who,
        person_id: m.person_id,
        channel: parse_opt(m.channel.as_deref())?,
        place: m.place,
        action: m.action,
        decision: parse(&m.decision)?,
        scope: parse_opt(m.scope.as_deref())?,
        rule_id: m.rule_id,
        prev_hash: m.prev_hash,
        hash: m.hash,
    })
}
