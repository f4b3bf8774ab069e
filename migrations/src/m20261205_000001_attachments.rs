//! Files that came with a person's message and go to the agent with a queued turn: one row per
//! file of a turn (the file's metadata and where its content is stored, as JSON).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("turn_attachments")
                .col(big_integer("id").auto_increment().primary_key())
                .col(big_integer("turn_id"))
                .col(json("body"))
                .col(timestamp_with_time_zone("created_at"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create().name("ix_turn_attachments_turn_id").table("turn_attachments").col("turn_id").take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("turn_attachments").take()).await
    }
}
