//! taskgate's schema. Migrations name tables and columns as strings rather than using the
//! store's entities, so an old migration keeps meaning what it meant when the entities move on.

use sea_orm_migration::MigrationStatus;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};

mod m20261122_000001_init;
mod m20261201_000001_web_console;
mod m20261204_000001_ownership;
mod m20261204_000002_rules_and_audit;
mod m20261205_000001_attachments;
mod m20261205_000001_execution_worktree;
mod m20261205_000001_outbox_priority;
mod m20261210_000001_web_sessions;
mod m20261211_000001_bounded_context;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_init::Migration),
            Box::new(m20261201_000001_web_console::Migration),
            Box::new(m20261204_000001_ownership::Migration),
            Box::new(m20261204_000002_rules_and_audit::Migration),
            Box::new(m20261210_000001_web_sessions::Migration),
            Box::new(m20261211_000001_bounded_context::Migration),
            Box::new(m20261205_000001_execution_worktree::Migration),
            Box::new(m20261205_000001_outbox_priority::Migration),
            Box::new(m20261205_000001_attachments::Migration),
        ]
    }
}

/// Key of the PostgreSQL advisory lock that serializes migrations across replicas.
const MIGRATION_LOCK: i64 = 0x7461_736b_6761_7465; // "taskgate"

/// Applies pending migrations, safely when several processes start at once.
///
/// On PostgreSQL every replica takes a transaction-scoped advisory lock first, so exactly one
/// applies the migrations while the others wait and then find nothing pending (Postgres DDL is
/// transactional, so the whole run commits or none of it does). SQLite needs no lock: the store
/// refuses a second process on the same file.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Migrator::up(db, None).await;
    }
    let txn = db.begin().await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1)",
        [MIGRATION_LOCK.into()],
    ))
    .await?;
    Migrator::up(&txn, None).await?;
    txn.commit().await
}

/// Migrations known to this binary but not applied to the database.
pub async fn pending(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    Ok(Migrator::get_migration_with_status_read_only(db)
        .await?
        .into_iter()
        .filter(|m| m.status() == MigrationStatus::Pending)
        .map(|m| m.name().to_owned())
        .collect())
}
