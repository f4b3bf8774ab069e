//! Fresh databases for tests: a SQLite file in a temp dir, or a new PostgreSQL database on the
//! server named by `TASKGATE_TEST_DATABASE_URL`, dropped again afterwards.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use taskgate_adapters::store::SeaStore;

use crate::harness::{self, Failed, Flavor, Trial};

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

/// One case of a database suite: it gets a fresh database of the trial's backend.
pub type Case = fn(&TestDb) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + '_>>;

/// `[(name, Case)]` from `async fn name(db: &TestDb) -> anyhow::Result<()>` functions.
#[macro_export]
macro_rules! db_cases {
    ($($name:ident),+ $(,)?) => {
        &[$((
            stringify!($name),
            |db| ::std::boxed::Box::pin($name(db))
                as ::std::pin::Pin<::std::boxed::Box<dyn ::std::future::Future<Output = _> + '_>>,
        )),+]
    };
}

/// The trials of a database suite on `backend`, named `module::backend::case` (`module` from
/// the caller's `module_path!()`). Each case runs on its own runtime of `flavor`, bounded by
/// `limit` when given, with a fresh database that is dropped afterwards even when the case
/// fails. The PostgreSQL trials need [`PG_URL_VAR`]: without it they are reported ignored
/// (never passed), and under `CI=true` they fail (see [`harness::requires`]).
pub fn trials(
    module_path: &str,
    backend: Backend,
    cases: &'static [(&'static str, Case)],
    flavor: Flavor,
    limit: Option<Duration>,
) -> Vec<Trial> {
    cases
        .iter()
        .map(|&(case_name, case)| {
            let name = harness::name(module_path, &format!("{}::{case_name}", backend.name()));
            let found = match backend {
                Backend::Sqlite => Ok(()),
                Backend::Postgres => postgres_url()
                    .map(drop)
                    .ok_or_else(|| format!("{PG_URL_VAR} is not set: the PostgreSQL half did not run")),
            };
            harness::requires(name, found, move |()| run(backend, case, flavor, limit))
        })
        .collect()
}

fn run(backend: Backend, case: Case, flavor: Flavor, limit: Option<Duration>) -> Result<(), Failed> {
    harness::block_on(flavor, async {
        let db = TestDb::create(backend).await.map_err(|e| format!("creating test database: {e:#}"))?;
        // A failed assertion (a panic) must not leave the PostgreSQL database behind either.
        let ran = AssertUnwindSafe(case(&db)).catch_unwind();
        let result = match limit {
            Some(limit) => tokio::time::timeout(limit, ran).await.ok(),
            None => Some(ran.await),
        };
        db.drop_db().await.map_err(|e| format!("dropping test database: {e:#}"))?;
        match result {
            Some(Ok(result)) => result.map_err(|e| Failed::from(format!("{e:#}"))),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Err(format!("the case did not finish within {} s", limit.unwrap_or_default().as_secs()).into()),
        }
    })
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
