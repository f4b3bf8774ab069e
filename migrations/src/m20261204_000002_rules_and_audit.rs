//! Standing approvals ("always allow `npm test` in this project") and the audit log of every
//! approval decision, chained by hashes so an edited row is detected.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table("approvals").add_column(big_integer_null("rule_id")).take()).await?;
        m.create_table(
            Table::create()
                .table("approval_rules")
                .col(big_integer("id").auto_increment().primary_key())
                .col(big_integer_null("project_id"))
                .col(string("agent"))
                .col(text("action"))
                .col(big_integer_null("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("revoked_at"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_approval_rules_project_id_agent")
                .table("approval_rules")
                .col("project_id")
                .col("agent")
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("audit")
                .col(big_integer("id").auto_increment().primary_key())
                .col(timestamp_with_time_zone("at"))
                .col(big_integer("approval_id"))
                .col(big_integer("task_id"))
                .col(text("who"))
                .col(big_integer_null("person_id"))
                .col(string_null("channel"))
                .col(text("place"))
                .col(text("action"))
                .col(string("decision"))
                .col(string_null("scope"))
                .col(big_integer_null("rule_id"))
                .col(string("prev_hash"))
                .col(string("hash"))
                .take(),
        )
        .await?;
        m.create_index(Index::create().name("ix_outbox_approval_id").table("outbox").col("approval_id").take()).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("audit").take()).await?;
        m.drop_table(Table::drop().table("approval_rules").take()).await?;
        m.alter_table(Table::alter().table("approvals").drop_column("rule_id").take()).await
    }
}
