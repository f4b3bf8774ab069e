//! Leader election for the singletons of a replica set (the Telegram poller, a Feishu long
//! connection, one channel's inbox drain or outbox sender): exactly one replica on a database
//! runs each, the others wait and take over when it goes.
//!
//! On PostgreSQL a lease is a session-level `pg_try_advisory_lock` held on a connection of its
//! own. The lock lives exactly as long as that session: when the leader's process dies or its
//! connection drops, the server releases it and a follower's next try wins. The connection is
//! opened beside the store's pool, not taken from it, so a handful of leases never starve the
//! engine of pooled connections, and closing the store does not wait for a lease.
//! On SQLite a lease is always granted: the store already refuses a second process.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::sqlx::{Connection, PgConnection};
use sea_orm::{DbBackend, DbErr};
use sha2::{Digest, Sha256};

use super::SeaStore;

#[derive(Debug, Clone)]
pub struct LeaseOptions {
    /// How often a follower tries to take the lease.
    pub retry: Duration,
    /// How often the leader checks its connection (`SELECT 1`).
    pub heartbeat: Duration,
    /// How long one check, connect or lock attempt may take before it counts as failed.
    pub timeout: Duration,
}

impl Default for LeaseOptions {
    /// A leader that lost its connection stops within `heartbeat + timeout` (≤ 5 s), well
    /// before the server gives up on a silent session (TCP keepalive, ~25 s, set below), so
    /// the old leader has stopped before a follower can win the lock.
    fn default() -> Self {
        Self { retry: Duration::from_secs(3), heartbeat: Duration::from_secs(2), timeout: Duration::from_secs(3) }
    }
}

/// Server-side keepalive for lease sessions: a leader that vanished without closing its socket
/// (host gone, network cut) loses its lock after about idle + interval × count seconds.
const KEEPALIVE: &str = "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3";

/// One named singleton on one database; [`Singleton::try_acquire`] campaigns once,
/// [`Singleton::run`] keeps the guarded work running on whichever replica leads.
#[derive(Clone)]
pub struct Singleton {
    name: Arc<str>,
    key: i64,
    /// `None` on SQLite, where every lease is granted.
    postgres: Option<Arc<PgConnectOptions>>,
    options: LeaseOptions,
}

impl SeaStore {
    /// The singleton `name` (e.g. `telegram-poller:<bot id>`, `outbox:telegram`) on this
    /// store's database. Holds no connection until acquired.
    pub fn singleton(&self, name: &str, options: LeaseOptions) -> Singleton {
        let postgres = (self.backend() == DbBackend::Postgres)
            .then(|| self.connection().get_postgres_connection_pool().connect_options());
        Singleton { name: name.into(), key: lock_key(name), postgres, options }
    }
}

/// A stable 64-bit advisory-lock key for `name`: the same in every process and build (so not
/// `std`'s randomly seeded hasher).
pub fn lock_key(name: &str) -> i64 {
    let digest = Sha256::digest(format!("taskgate-singleton:{name}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// Leadership of one singleton, held until dropped (or [`Leadership::release`]d) or lost.
pub struct Leadership {
    name: Arc<str>,
    /// The session holding the advisory lock; `None` on SQLite.
    conn: Option<PgConnection>,
    options: LeaseOptions,
}

impl Singleton {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One attempt: the lease when this process now leads, `None` when another does.
    pub async fn try_acquire(&self) -> Result<Option<Leadership>, DbErr> {
        let Some(connect) = &self.postgres else {
            return Ok(Some(Leadership { name: self.name.clone(), conn: None, options: self.options.clone() }));
        };
        let bounded = self.options.timeout;
        let mut conn = within(bounded, PgConnection::connect_with(connect.as_ref())).await?;
        within(bounded, sea_orm::sqlx::raw_sql(KEEPALIVE).execute(&mut conn)).await?;
        let granted: bool = within(
            bounded,
            sea_orm::sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(self.key).fetch_one(&mut conn),
        )
        .await?;
        if !granted {
            // Closing the session is all the cleanup a refused attempt needs.
            let _ = tokio::time::timeout(bounded, conn.close()).await;
            return Ok(None);
        }
        Ok(Some(Leadership { name: self.name.clone(), conn: Some(conn), options: self.options.clone() }))
    }

    /// Waits until this process leads; errors (database down) are logged and retried.
    pub async fn acquire(&self) -> Leadership {
        loop {
            match self.try_acquire().await {
                Ok(Some(lease)) => return lease,
                Ok(None) => {}
                Err(e) => tracing::warn!(singleton = %self.name, error = %e, "lease: campaigning failed; retrying"),
            }
            tokio::time::sleep(self.options.retry).await;
        }
    }

    /// Runs the guarded work forever, on this replica only while it leads: campaigns, runs
    /// `work()` until leadership is lost (the work future is then dropped, i.e. cancelled, so
    /// two replicas never run it at once), and campaigns again. `work` should not return; if
    /// it does, leadership is given up and taken again after `retry`.
    pub async fn run<F, Fut>(self, mut work: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            let mut lease = self.acquire().await;
            tracing::info!(singleton = %self.name, "lease: leading");
            tokio::select! {
                () = work() => {
                    tracing::warn!(singleton = %self.name, "lease: the guarded work ended; stepping down");
                    lease.release().await;
                }
                () = lease.lost() => {
                    tracing::warn!(singleton = %self.name, "lease: leadership lost; the guarded work is stopped");
                }
            }
            tokio::time::sleep(self.options.retry).await;
        }
    }
}

impl Leadership {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One check that the session holding the lock is still there.
    pub async fn alive(&mut self) -> bool {
        let Some(conn) = &mut self.conn else { return true };
        let bounded = self.options.timeout;
        matches!(tokio::time::timeout(bounded, sea_orm::sqlx::raw_sql("SELECT 1").execute(conn)).await, Ok(Ok(_)))
    }

    /// Resolves when leadership is lost (never on SQLite): the first failed heartbeat. The
    /// lock may outlive the failure on the server for a while; the work stops at once anyway.
    pub async fn lost(&mut self) {
        if self.conn.is_none() {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(self.options.heartbeat).await;
            if !self.alive().await {
                self.conn = None;
                return;
            }
        }
    }

    /// Gives leadership up now, so a follower's next try wins.
    pub async fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            // Ending the session releases its locks; a plain drop would too, less politely.
            let _ = tokio::time::timeout(self.options.timeout, conn.close()).await;
        }
    }
}

/// `fut` with a time bound, as a `DbErr`.
async fn within<T>(bound: Duration, fut: impl Future<Output = Result<T, sea_orm::sqlx::Error>>) -> Result<T, DbErr> {
    match tokio::time::timeout(bound, fut).await {
        Ok(result) => result.map_err(|e| DbErr::Custom(format!("lease: {e}"))),
        Err(_) => Err(DbErr::Custom(format!("lease: no answer within {bound:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::lock_key;

    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(lock_key("outbox:telegram"), lock_key("outbox:telegram"));
        assert_ne!(lock_key("outbox:telegram"), lock_key("inbox:telegram"));
        assert_ne!(lock_key("telegram-poller:1"), lock_key("telegram-poller:2"));
    }
}
