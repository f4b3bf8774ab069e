//! Indexes for reading a conversation's context in bounded time, however long its history:
//! a chat's newest outbox rows (which tasks it has seen) are read newest first through
//! `(channel, chat_id, id)`, without grouping every row the chat ever had.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name("ix_outbox_channel_chat_id_id")
                .table("outbox")
                .col("channel")
                .col("chat_id")
                .col("id")
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("ix_outbox_channel_chat_id_id").table("outbox").to_owned()).await
    }
}
