//! sea-orm entities, one module per table. Statuses and kinds are stored as their snake_case
//! names (see `taskgate_core::model`), so the rows read well in `psql` and `sqlite3`.

macro_rules! entity {
    ($module:ident, $table:literal { $($field:ident : $ty:ty),+ $(,)? }) => {
        pub mod $module {
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                #[sea_orm(primary_key)]
                pub id: i64,
                $(pub $field: $ty,)+
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

entity!(persons, "persons" { name: String, created_at: DateTimeUtc });

entity!(identities, "identities" {
    person_id: i64, channel: String, external_id: String, display_name: Option<String>,
    created_at: DateTimeUtc,
});

entity!(projects, "projects" {
    name: String, path: String, default_agent: Option<String>, created_at: DateTimeUtc,
});

entity!(conversations, "conversations" {
    channel: String, chat_id: String, thread_id: String, focused_task_id: Option<i64>,
    created_at: DateTimeUtc,
});

entity!(tasks, "tasks" {
    project_id: Option<i64>, title: String, goal: String, status: String,
    objective: Option<String>, reproduction: Option<String>, next_action: Option<String>,
    created_by: Option<i64>, version: i32, created_at: DateTimeUtc, updated_at: DateTimeUtc,
});

entity!(executions, "executions" {
    task_id: i64, agent: String, role: String, status: String, version: i32,
    created_at: DateTimeUtc, updated_at: DateTimeUtc,
    owner: Option<String>, lease_expires_at: Option<DateTimeUtc>, fence: i64, work_seq: i64,
    has_work: bool,
});

entity!(runtime_sessions, "runtime_sessions" {
    execution_id: i64, provider_session_id: Option<String>, model: Option<String>,
    pid: Option<i64>, status: String, created_at: DateTimeUtc, updated_at: DateTimeUtc,
});

entity!(turns, "turns" {
    session_id: i64, input: String, summary: Option<String>, status: String,
    created_at: DateTimeUtc, updated_at: DateTimeUtc,
});

entity!(approvals, "approvals" {
    task_id: i64, turn_id: Option<i64>, request_id: String, action: String, status: String,
    scope: Option<String>, decided_by: Option<i64>, decided_channel: Option<String>,
    decided_at: Option<DateTimeUtc>, version: i32, created_at: DateTimeUtc,
    execution_id: Option<i64>, nonce: String, rule_id: Option<i64>,
});

entity!(approval_rules, "approval_rules" {
    project_id: Option<i64>, agent: String, action: String, created_by: Option<i64>,
    created_at: DateTimeUtc, revoked_at: Option<DateTimeUtc>,
});

entity!(audit, "audit" {
    at: DateTimeUtc, approval_id: i64, task_id: i64, who: String, person_id: Option<i64>,
    channel: Option<String>, place: String, action: String, decision: String, scope: Option<String>,
    rule_id: Option<i64>, prev_hash: String, hash: String,
});

entity!(events, "events" {
    task_id: i64, execution_id: Option<i64>, kind: String, channel: Option<String>,
    actor: Option<String>, body: Json, at: DateTimeUtc,
});

entity!(note_entries, "note_entries" {
    task_id: i64, kind: String, text: String, evidence: Json, author: String,
    commit: Option<String>, at: DateTimeUtc,
});

entity!(inbox, "inbox" {
    channel: String, external_id: String, payload: Json, received_at: DateTimeUtc,
    processed_at: Option<DateTimeUtc>, attempts: i32, last_error: Option<String>,
});

entity!(orders, "orders" {
    execution_id: i64, body: Json, created_at: DateTimeUtc, done_at: Option<DateTimeUtc>,
});

entity!(outbox, "outbox" {
    channel: String, chat_id: String, task_id: Option<i64>, approval_id: Option<i64>,
    payload: Json, attempts: i32, next_attempt_at: DateTimeUtc, last_error: Option<String>,
    external_message_id: Option<String>, sent_at: Option<DateTimeUtc>, created_at: DateTimeUtc,
    priority: i16, dropped: bool,
});

entity!(settings, "settings" { key: String, value: String, updated_at: DateTimeUtc });

entity!(link_codes, "link_codes" {
    code: String, person_id: i64, channel: String, expires_at: DateTimeUtc,
    used_at: Option<DateTimeUtc>, created_at: DateTimeUtc,
});
