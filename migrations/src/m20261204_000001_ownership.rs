//! Executions owned through the database: the replica running an execution holds a lease on
//! its row (owner, expiry, a fencing token bumped on every claim), and work for it (a queued
//! turn, an order such as "interrupt" or "deliver this decision") is flagged on the row so any
//! replica can see what needs a runner. Orders wait in their own table until the owner takes
//! them. Approvals name their execution and carry a random nonce that buttons must repeat.
//! Inbox rows count their failed attempts, so a poison row is set aside with its error.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// SQLite adds one column per statement.
async fn add(m: &SchemaManager<'_>, table: &'static str, column: ColumnDef) -> Result<(), DbErr> {
    m.alter_table(Table::alter().table(table).add_column(column).take()).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        add(m, "executions", string_null("owner")).await?;
        add(m, "executions", timestamp_with_time_zone_null("lease_expires_at")).await?;
        add(m, "executions", big_integer("fence").default(0).take()).await?;
        add(m, "executions", big_integer("work_seq").default(0).take()).await?;
        add(m, "executions", boolean("has_work").default(false).take()).await?;
        m.create_index(Index::create().name("ix_executions_has_work").table("executions").col("has_work").take())
            .await?;
        m.create_index(Index::create().name("ix_executions_owner").table("executions").col("owner").take()).await?;

        m.create_table(
            Table::create()
                .table("orders")
                .col(big_integer("id").auto_increment().primary_key())
                .col(big_integer("execution_id"))
                .col(json("body"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("done_at"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_orders_execution_id")
                        .from("orders", "execution_id")
                        .to("executions", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_orders_execution_id_done_at")
                .table("orders")
                .col("execution_id")
                .col("done_at")
                .take(),
        )
        .await?;

        add(m, "approvals", big_integer_null("execution_id")).await?;
        add(m, "approvals", string("nonce").default("").take()).await?;

        add(m, "inbox", integer("attempts").default(0).take()).await?;
        add(m, "inbox", text_null("last_error")).await?;

        m.create_index(
            Index::create().name("ix_turns_session_id_status").table("turns").col("session_id").col("status").take(),
        )
        .await?;
        m.create_index(Index::create().name("ix_turns_status").table("turns").col("status").take()).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("orders").take()).await?;
        for (table, column) in [
            ("executions", "owner"),
            ("executions", "lease_expires_at"),
            ("executions", "fence"),
            ("executions", "work_seq"),
            ("executions", "has_work"),
            ("approvals", "execution_id"),
            ("approvals", "nonce"),
            ("inbox", "attempts"),
            ("inbox", "last_error"),
        ] {
            m.alter_table(Table::alter().table(table).drop_column(column).take()).await?;
        }
        Ok(())
    }
}
