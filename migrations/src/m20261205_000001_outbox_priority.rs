//! A quieter phone: outbox rows carry a priority (approval cards and agent questions are sent
//! before informational rows of their chat; refusals to strangers after everything else) and
//! say whether they were dropped (never delivered: counted in `/metrics`, shown in the console).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// SQLite adds one column per statement.
async fn add(m: &SchemaManager<'_>, column: ColumnDef) -> Result<(), DbErr> {
    m.alter_table(Table::alter().table("outbox").add_column(column).take()).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        add(m, small_integer("priority").default(0).take()).await?;
        add(m, boolean("dropped").default(false).take()).await?;
        m.create_index(
            Index::create()
                .name("ix_outbox_unsent_chat_priority")
                .table("outbox")
                .col("channel")
                .col("chat_id")
                .col("priority")
                .col("sent_at")
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("ix_outbox_unsent_chat_priority").table("outbox").to_owned()).await?;
        for column in ["dropped", "priority"] {
            m.alter_table(Table::alter().table("outbox").drop_column(column).take()).await?;
        }
        Ok(())
    }
}
