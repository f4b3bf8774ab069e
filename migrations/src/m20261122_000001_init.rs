use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn id() -> ColumnDef {
    big_integer("id").auto_increment().primary_key().take()
}

fn at(name: &'static str) -> ColumnDef {
    timestamp_with_time_zone(name)
}

fn at_null(name: &'static str) -> ColumnDef {
    timestamp_with_time_zone_null(name)
}

fn fk(table: &'static str, column: &'static str, parent: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_{column}"))
        .from(table, column)
        .to(parent, "id")
        .on_delete(ForeignKeyAction::Cascade)
        .take()
}

fn index(table: &'static str, columns: &[&'static str], unique: bool) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(format!("ix_{table}_{}", columns.join("_"))).table(table);
    for column in columns {
        index.col(*column);
    }
    if unique {
        index.unique();
    }
    index.take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            Table::create().table("persons").col(id()).col(string("name")).col(at("created_at")).take(),
            Table::create()
                .table("identities")
                .col(id())
                .col(big_integer("person_id"))
                .col(string("channel"))
                .col(string("external_id"))
                .col(string_null("display_name"))
                .col(at("created_at"))
                .foreign_key(&mut fk("identities", "person_id", "persons"))
                .take(),
            Table::create()
                .table("projects")
                .col(id())
                .col(string_uniq("name"))
                .col(text("path"))
                .col(string_null("default_agent"))
                .col(at("created_at"))
                .take(),
            Table::create()
                .table("tasks")
                .col(id())
                .col(big_integer_null("project_id"))
                .col(text("title"))
                .col(text("goal"))
                .col(string("status"))
                .col(text_null("objective"))
                .col(text_null("reproduction"))
                .col(text_null("next_action"))
                .col(big_integer_null("created_by"))
                .col(integer("version"))
                .col(at("created_at"))
                .col(at("updated_at"))
                .foreign_key(&mut fk("tasks", "project_id", "projects"))
                .foreign_key(&mut fk("tasks", "created_by", "persons").on_delete(ForeignKeyAction::SetNull).take())
                .take(),
            Table::create()
                .table("conversations")
                .col(id())
                .col(string("channel"))
                .col(string("chat_id"))
                .col(string("thread_id"))
                .col(big_integer_null("focused_task_id"))
                .col(at("created_at"))
                .foreign_key(
                    &mut fk("conversations", "focused_task_id", "tasks").on_delete(ForeignKeyAction::SetNull).take(),
                )
                .take(),
            Table::create()
                .table("executions")
                .col(id())
                .col(big_integer("task_id"))
                .col(string("agent"))
                .col(string("role"))
                .col(string("status"))
                .col(integer("version"))
                .col(at("created_at"))
                .col(at("updated_at"))
                .foreign_key(&mut fk("executions", "task_id", "tasks"))
                .take(),
            Table::create()
                .table("runtime_sessions")
                .col(id())
                .col(big_integer("execution_id"))
                .col(string_null("provider_session_id"))
                .col(string_null("model"))
                .col(big_integer_null("pid"))
                .col(string("status"))
                .col(at("created_at"))
                .col(at("updated_at"))
                .foreign_key(&mut fk("runtime_sessions", "execution_id", "executions"))
                .take(),
            Table::create()
                .table("turns")
                .col(id())
                .col(big_integer("session_id"))
                .col(text("input"))
                .col(text_null("summary"))
                .col(string("status"))
                .col(at("created_at"))
                .col(at("updated_at"))
                .foreign_key(&mut fk("turns", "session_id", "runtime_sessions"))
                .take(),
            Table::create()
                .table("approvals")
                .col(id())
                .col(big_integer("task_id"))
                .col(big_integer_null("turn_id"))
                .col(string("request_id"))
                .col(text("action"))
                .col(string("status"))
                .col(string_null("scope"))
                .col(big_integer_null("decided_by"))
                .col(string_null("decided_channel"))
                .col(at_null("decided_at"))
                .col(integer("version"))
                .col(at("created_at"))
                .foreign_key(&mut fk("approvals", "task_id", "tasks"))
                .foreign_key(&mut fk("approvals", "turn_id", "turns").on_delete(ForeignKeyAction::SetNull).take())
                .foreign_key(&mut fk("approvals", "decided_by", "persons").on_delete(ForeignKeyAction::SetNull).take())
                .take(),
            Table::create()
                .table("events")
                .col(id())
                .col(big_integer("task_id"))
                .col(big_integer_null("execution_id"))
                .col(string("kind"))
                .col(string_null("channel"))
                .col(string_null("actor"))
                .col(json("body"))
                .col(at("at"))
                .foreign_key(&mut fk("events", "task_id", "tasks"))
                .take(),
            Table::create()
                .table("note_entries")
                .col(id())
                .col(big_integer("task_id"))
                .col(string("kind"))
                .col(text("text"))
                .col(json("evidence"))
                .col(string("author"))
                .col(string_null("commit"))
                .col(at("at"))
                .foreign_key(&mut fk("note_entries", "task_id", "tasks"))
                .take(),
            Table::create()
                .table("inbox")
                .col(id())
                .col(string("channel"))
                .col(string("external_id"))
                .col(json("payload"))
                .col(at("received_at"))
                .col(at_null("processed_at"))
                .take(),
            Table::create()
                .table("outbox")
                .col(id())
                .col(string("channel"))
                .col(string("chat_id"))
                .col(big_integer_null("task_id"))
                .col(big_integer_null("approval_id"))
                .col(json("payload"))
                .col(integer("attempts"))
                .col(at("next_attempt_at"))
                .col(text_null("last_error"))
                .col(string_null("external_message_id"))
                .col(at_null("sent_at"))
                .col(at("created_at"))
                .take(),
        ];
        for table in tables {
            m.create_table(table).await?;
        }

        let indexes = [
            index("identities", &["channel", "external_id"], true),
            index("conversations", &["channel", "chat_id", "thread_id"], true),
            index("executions", &["task_id"], false),
            index("runtime_sessions", &["execution_id"], false),
            index("approvals", &["task_id", "status"], false),
            index("events", &["task_id", "id"], false),
            index("note_entries", &["task_id"], false),
            // The dedupe key: a redelivered update hits this and is reported as a duplicate.
            index("inbox", &["channel", "external_id"], true),
            index("inbox", &["processed_at"], false),
            index("outbox", &["sent_at", "channel", "chat_id", "id"], false),
            index("outbox", &["channel", "chat_id", "external_message_id"], false),
        ];
        for index in indexes {
            m.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "outbox",
            "inbox",
            "note_entries",
            "events",
            "approvals",
            "turns",
            "runtime_sessions",
            "executions",
            "conversations",
            "tasks",
            "projects",
            "identities",
            "persons",
        ] {
            m.drop_table(Table::drop().table(table).take()).await?;
        }
        Ok(())
    }
}
