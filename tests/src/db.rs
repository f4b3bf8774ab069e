//! Fresh databases for tests: a SQLite file in a temp dir, or a new PostgreSQL database on the
//! server named by `TASKGATE_TEST_DATABASE_URL`, dropped again afterwards.

use std::sync::atomic::{AtomicU32, Ordering};

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use taskgate_adapters::store::SeaStore;

pub const PG_URL_VAR: &str = "TASKGATE_TEST_DATABASE_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The PostgreSQL server for tests, if one is configured.
pub fn postgres_url() -> Option<String> {
    std::env::var(PG_URL_VAR).ok().filter(|url| !url.trim().is_empty())
}

/// A database that exists for one test. Call `drop_db` at the end so PostgreSQL databases do
/// not pile up; the SQLite temp dir goes away with the value.
pub struct TestDb {
    pub url: String,
    admin: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub async fn create(backend: Backend) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("taskgate.db").display());
                Ok(Self { url, admin: None, _dir: Some(dir) })
            }
            Backend::Postgres => {
                let admin_url = postgres_url().ok_or_else(|| anyhow::anyhow!("{PG_URL_VAR} is not set"))?;
                let name = format!(
                    "taskgate_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed),
                    chrono::Utc::now().timestamp_subsec_nanos()
                );
                let admin = Database::connect(&admin_url).await?;
                admin
                    .execute_raw(Statement::from_string(DbBackend::Postgres, format!("CREATE DATABASE \"{name}\"")))
                    .await?;
                admin.close().await?;
                Ok(Self { url: with_database(&admin_url, &name), admin: Some((admin_url, name)), _dir: None })
            }
        }
    }

    /// A connected, migrated store on this database.
    pub async fn store(&self) -> anyhow::Result<SeaStore> {
        let store = SeaStore::connect(&self.url).await?;
        store.migrate().await?;
        Ok(store)
    }

    pub async fn drop_db(self) -> anyhow::Result<()> {
        if let Some((admin_url, name)) = &self.admin {
            let admin = Database::connect(admin_url).await?;
            admin
                .execute_raw(Statement::from_string(
                    DbBackend::Postgres,
                    format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                ))
                .await?;
            admin.close().await?;
        }
        Ok(())
    }
}

/// `postgres://user@host:port/db?opts` with `db` replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            super::with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://u:p@h/db?sslmode=disable", "y"),
            "postgres://u:p@h/y?sslmode=disable"
        );
        assert_eq!(super::with_database("postgres://h:5432", "z"), "postgres://h:5432/z");
    }
}
