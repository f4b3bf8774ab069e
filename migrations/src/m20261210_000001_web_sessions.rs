//! Web console sessions: logging in with the token creates one; the browser holds a random
//! session id, the database only its SHA-256. Logging out deletes the row, `taskgate sessions`
//! lists and revokes them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("web_sessions")
                .col(big_integer("id").auto_increment().primary_key())
                .col(string_uniq("secret_sha256"))
                .col(text("user_agent"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("last_seen_at"))
                .col(timestamp_with_time_zone("expires_at"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create().name("ix_web_sessions_expires_at").table("web_sessions").col("expires_at").take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("web_sessions").take()).await
    }
}
