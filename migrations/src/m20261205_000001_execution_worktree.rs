//! Git worktrees of executions (issue 20): where an isolated execution works, on which branch,
//! from which base commit, and whether its branch was merged or dropped. One row per execution
//! that got a worktree, so the worktree outlives restarts.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("execution_worktrees")
                .col(big_integer("execution_id").primary_key())
                .col(big_integer("task_id"))
                .col(text("project_dir"))
                .col(text("path"))
                .col(text("branch"))
                .col(text("base"))
                .col(string("state"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_execution_worktrees_execution")
                        .from("execution_worktrees", "execution_id")
                        .to("executions", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create().name("ix_execution_worktrees_task_id").table("execution_worktrees").col("task_id").take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("execution_worktrees").take()).await
    }
}
