//! The sea-orm implementation of the `Store` port, for SQLite (embedded default) and
//! PostgreSQL (several replicas). Both run the same contract suite.

mod attachments;
mod convert;
mod entities;
mod lease;
mod web;
mod worktree;

pub use lease::{Leadership, LeaseOptions, Singleton, lock_key};
pub use web::WebSession;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Select,
    Set, SqlErr, TransactionTrait, TryInsertResult,
};
use taskgate_core::model::*;
use taskgate_core::store::*;
use tokio::sync::{Mutex, MutexGuard, OwnedMutexGuard};

use entities::*;

/// The store over a pooled connection, or (from [`SeaStore::begin`]) over one transaction:
/// the same `Store` methods either way, so a router plan is applied all or nothing.
///
/// SQLite has one writer. Rather than let writers collide inside SQLite (where a transaction
/// that read first and then writes fails outright, and waiting writers sleep in the busy
/// handler), every write of this process passes one FIFO gate: a write method takes it for
/// its statement, a transaction holds it from `begin` until it ends. Readers never wait (WAL).
/// PostgreSQL has no gate. Inside a transaction, use only the transaction's store: the pooled
/// store's writes would wait for the gate the transaction holds.
pub struct SeaStore<C = DatabaseConnection> {
    db: C,
    /// SQLite's write gate (pooled store only).
    gate: Option<Arc<Mutex<()>>>,
    /// A transaction on SQLite holds the gate until it ends (declared after `db`, so the
    /// transaction ends first).
    _held: Option<OwnedMutexGuard<()>>,
}

impl SeaStore<DatabaseTransaction> {
    pub async fn commit(self) -> StoreResult<()> {
        self.db.commit().await.map_err(db_err)
    }
}

impl SeaStore {
    /// Starts a transaction. On SQLite it holds one pooled connection and the write gate until
    /// committed or dropped (rolled back), so use only the transaction's store meanwhile.
    pub async fn begin(&self) -> StoreResult<SeaStore<DatabaseTransaction>> {
        let held = match &self.gate {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        };
        Ok(SeaStore { db: self.db.begin().await.map_err(db_err)?, gate: None, _held: held })
    }

    /// Opens the database at `url` (`sqlite://PATH?mode=rwc` or `postgres://...`).
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        let mut options = ConnectOptions::new(url);
        options.sqlx_logging(false).acquire_timeout(Duration::from_secs(10));
        if url.starts_with("sqlite:") {
            // WAL lets readers proceed while a write commits; the busy timeout makes concurrent
            // writers wait instead of failing; SQLite leaves foreign keys off unless asked.
            options.max_connections(if url.contains(":memory:") { 1 } else { 4 }).map_sqlx_sqlite_opts(
                |o: SqliteConnectOptions| {
                    o.journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .busy_timeout(Duration::from_secs(5))
                        .foreign_keys(true)
                        .create_if_missing(true)
                },
            );
        }
        let gate = url.starts_with("sqlite:").then(|| Arc::new(Mutex::new(())));
        Ok(Self { db: Database::connect(options).await?, gate, _held: None })
    }

    /// Applies pending migrations (serialized across replicas on PostgreSQL).
    pub async fn migrate(&self) -> Result<(), DbErr> {
        taskgate_migrations::migrate(&self.db).await
    }

    /// Names of migrations not yet applied.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, DbErr> {
        taskgate_migrations::pending(&self.db).await
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    pub async fn close(self) -> Result<(), DbErr> {
        self.db.close().await
    }
}

impl<C> SeaStore<C> {
    /// The write gate for one statement (SQLite pooled store), `None` where no gate applies.
    async fn writing(&self) -> Option<MutexGuard<'_, ()>> {
        match &self.gate {
            Some(gate) => Some(gate.lock().await),
            None => None,
        }
    }
}

/// A database error; the transient kinds (SQLite busy, PostgreSQL deadlock or serialization
/// failure, a pool that timed out) are `Busy`, which callers may retry.
fn db_err(e: DbErr) -> StoreError {
    let text = e.to_string();
    if is_transient(&text) { StoreError::Busy(text) } else { StoreError::Backend(text) }
}

fn is_transient(text: &str) -> bool {
    const SIGNS: [&str; 7] = [
        "database is locked",
        "database table is locked",
        "(code: 5)",
        "40001",
        "40P01",
        "could not serialize access",
        "pool timed out",
    ];
    SIGNS.iter().any(|sign| text.contains(sign)) || text.contains("deadlock detected")
}

/// Text as the store keeps it: PostgreSQL cannot hold NUL in text (nor `\u0000` in JSON), so
/// on both backends a NUL becomes U+FFFD, the replacement character, and everything else is
/// kept as it is. Done here, at the edge, so no message is refused or lost for it.
fn txt(s: impl Into<String>) -> String {
    let s = s.into();
    if s.contains('\0') { s.replace('\0', "\u{FFFD}") } else { s }
}

/// [`txt`] for every string (and key) of a JSON value.
fn js(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(txt(s)),
        Value::Array(items) => Value::Array(items.into_iter().map(js).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (txt(k), js(v))).collect()),
        other => other,
    }
}

/// Runs one autocommit write again while the database reports itself busy, with a short
/// backoff: a webhook must not be refused because another writer held the lock a moment.
async fn retrying<T, F, Fut>(mut attempt: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let mut delay = Duration::from_millis(5);
    for _ in 0..8 {
        match attempt().await {
            Err(StoreError::Busy(why)) => {
                tracing::debug!(%why, "store: busy; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            other => return other,
        }
    }
    attempt().await
}

fn not_found(entity: &'static str, id: impl ToString) -> StoreError {
    StoreError::NotFound { entity, id: id.to_string() }
}

/// Runs a query and converts every row: the tail of every list method.
async fn rows<E: EntityTrait, T>(
    db: &impl ConnectionTrait,
    query: Select<E>,
    convert: impl Fn(E::Model) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    query.all(db).await.map_err(db_err)?.into_iter().map(convert).collect()
}

/// Runs a query for at most one row and converts it.
async fn row<E: EntityTrait, T>(
    db: &impl ConnectionTrait,
    query: Select<E>,
    convert: impl Fn(E::Model) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    query.one(db).await.map_err(db_err)?.map(convert).transpose()
}

/// Reads one row by id or reports which one is missing.
async fn by_id<E: EntityTrait>(db: &impl ConnectionTrait, entity: &'static str, id: Id) -> StoreResult<E::Model>
where
    <E::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType: From<i64>,
{
    E::find_by_id(id).one(db).await.map_err(db_err)?.ok_or_else(|| not_found(entity, id))
}

/// Optimistic concurrency: writes `row` only if its version is still `expected`, bumping it.
/// Zero rows touched means either a concurrent writer (Conflict) or no such row (NotFound).
async fn update_versioned<E, A>(
    db: &impl ConnectionTrait,
    entity: &'static str,
    id: Id,
    expected: i32,
    row: A,
    id_col: E::Column,
    version_col: E::Column,
) -> StoreResult<E::Model>
where
    E: EntityTrait,
    A: ActiveModelTrait<Entity = E> + Send,
    <E::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType: From<i64>,
{
    let result = E::update_many()
        .set(row)
        .col_expr(version_col, Expr::col(version_col).add(1))
        .filter(id_col.eq(id))
        .filter(version_col.eq(expected))
        .exec(db)
        .await
        .map_err(db_err)?;
    let current = by_id::<E>(db, entity, id).await?;
    if result.rows_affected == 0 {
        return Err(StoreError::Conflict { entity, id, expected });
    }
    Ok(current)
}

#[async_trait]
impl<C: ConnectionTrait + Send + Sync> Store for SeaStore<C> {
    async fn create_person(&self, name: &str) -> StoreResult<Person> {
        let _w = self.writing().await;
        let row = persons::ActiveModel { id: NotSet, name: Set(txt(name)), created_at: Set(Utc::now()) };
        Ok(convert::person(row.insert(&self.db).await.map_err(db_err)?))
    }

    async fn person(&self, id: Id) -> StoreResult<Person> {
        Ok(convert::person(by_id::<persons::Entity>(&self.db, "person", id).await?))
    }

    async fn link_identity(
        &self,
        person_id: Id,
        channel: Channel,
        external_id: &str,
        display_name: Option<&str>,
    ) -> StoreResult<Identity> {
        let _w = self.writing().await;
        let row = identities::ActiveModel {
            id: NotSet,
            person_id: Set(person_id),
            channel: Set(channel.name().into()),
            external_id: Set(txt(external_id)),
            display_name: Set(display_name.map(txt)),
            created_at: Set(Utc::now()),
        };
        match row.insert(&self.db).await {
            Ok(m) => convert::identity(m),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Err(StoreError::AlreadyExists(format!("{channel} identity {external_id}")))
            }
            Err(e) => Err(db_err(e)),
        }
    }

    async fn find_identity(&self, channel: Channel, external_id: &str) -> StoreResult<Option<Identity>> {
        let query = identities::Entity::find()
            .filter(identities::Column::Channel.eq(channel.name()))
            .filter(identities::Column::ExternalId.eq(txt(external_id)));
        row(&self.db, query, convert::identity).await
    }

    async fn upsert_project(&self, name: &str, path: &str, default_agent: Option<&str>) -> StoreResult<Project> {
        let _w = self.writing().await;
        let existing =
            projects::Entity::find().filter(projects::Column::Name.eq(name)).one(&self.db).await.map_err(db_err)?;
        let row = match existing {
            Some(m) => {
                let mut row = m.into_active_model();
                row.path = Set(path.into());
                row.default_agent = Set(default_agent.map(Into::into));
                row.update(&self.db).await
            }
            None => {
                projects::ActiveModel {
                    id: NotSet,
                    name: Set(name.into()),
                    path: Set(path.into()),
                    default_agent: Set(default_agent.map(Into::into)),
                    created_at: Set(Utc::now()),
                }
                .insert(&self.db)
                .await
            }
        };
        Ok(convert::project(row.map_err(db_err)?))
    }

    async fn projects(&self) -> StoreResult<Vec<Project>> {
        let rows = projects::Entity::find().order_by_asc(projects::Column::Id).all(&self.db).await.map_err(db_err)?;
        Ok(rows.into_iter().map(convert::project).collect())
    }

    async fn conversation(&self, channel: Channel, chat_id: &str, thread_id: &str) -> StoreResult<Conversation> {
        use conversations::Column as C;
        let find = || {
            conversations::Entity::find()
                .filter(C::Channel.eq(channel.name()))
                .filter(C::ChatId.eq(txt(chat_id)))
                .filter(C::ThreadId.eq(txt(thread_id)))
                .one(&self.db)
        };
        // Every message asks; only a chat's first one writes (a read costs no write lock).
        if let Some(row) = find().await.map_err(db_err)? {
            return convert::conversation(row);
        }
        let _w = self.writing().await;
        // Insert-if-absent then read: two workers seeing a new chat at once get the same row.
        conversations::Entity::insert(conversations::ActiveModel {
            id: NotSet,
            channel: Set(channel.name().into()),
            chat_id: Set(txt(chat_id)),
            thread_id: Set(txt(thread_id)),
            focused_task_id: Set(None),
            created_at: Set(Utc::now()),
        })
        .on_conflict_do_nothing_on([C::Channel, C::ChatId, C::ThreadId])
        .exec(&self.db)
        .await
        .map_err(db_err)?;
        let row = find().await.map_err(db_err)?.ok_or_else(|| not_found("conversation", chat_id))?;
        convert::conversation(row)
    }

    async fn set_focus(&self, conversation_id: Id, task_id: Option<Id>) -> StoreResult<()> {
        let _w = self.writing().await;
        let result = conversations::Entity::update_many()
            .col_expr(conversations::Column::FocusedTaskId, Expr::value(task_id))
            .filter(conversations::Column::Id.eq(conversation_id))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        if result.rows_affected == 0 {
            return Err(not_found("conversation", conversation_id));
        }
        Ok(())
    }

    async fn create_task(&self, new: NewTask) -> StoreResult<Task> {
        let _w = self.writing().await;
        let now = Utc::now();
        let row = tasks::ActiveModel {
            id: NotSet,
            project_id: Set(new.project_id),
            title: Set(txt(new.title)),
            goal: Set(txt(new.goal)),
            status: Set(TaskStatus::Idle.name().into()),
            objective: Set(None),
            reproduction: Set(None),
            next_action: Set(None),
            created_by: Set(new.created_by),
            version: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
        };
        convert::task(row.insert(&self.db).await.map_err(db_err)?)
    }

    async fn task(&self, id: Id) -> StoreResult<Task> {
        convert::task(by_id::<tasks::Entity>(&self.db, "task", id).await?)
    }

    async fn update_task(&self, task: &Task) -> StoreResult<Task> {
        let _w = self.writing().await;
        let row = tasks::ActiveModel {
            project_id: Set(task.project_id),
            title: Set(txt(task.title.as_str())),
            goal: Set(txt(task.goal.as_str())),
            status: Set(task.status.name().into()),
            objective: Set(task.objective.clone().map(txt)),
            reproduction: Set(task.reproduction.clone().map(txt)),
            next_action: Set(task.next_action.clone().map(txt)),
            updated_at: Set(Utc::now()),
            ..Default::default()
        };
        let m =
            update_versioned(&self.db, "task", task.id, task.version, row, tasks::Column::Id, tasks::Column::Version)
                .await?;
        convert::task(m)
    }

    async fn tasks(&self, limit: u64) -> StoreResult<Vec<Task>> {
        let query =
            tasks::Entity::find().order_by_desc(tasks::Column::UpdatedAt).order_by_desc(tasks::Column::Id).limit(limit);
        rows(&self.db, query, convert::task).await
    }

    async fn create_execution(&self, new: NewExecution) -> StoreResult<Execution> {
        let _w = self.writing().await;
        let now = Utc::now();
        let row = executions::ActiveModel {
            id: NotSet,
            task_id: Set(new.task_id),
            agent: Set(new.agent),
            role: Set(new.role.name().into()),
            status: Set(ExecutionStatus::Pending.name().into()),
            version: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            owner: Set(None),
            lease_expires_at: Set(None),
            fence: Set(0),
            work_seq: Set(0),
            has_work: Set(false),
        };
        convert::execution(row.insert(&self.db).await.map_err(db_err)?)
    }

    async fn execution(&self, id: Id) -> StoreResult<Execution> {
        convert::execution(by_id::<executions::Entity>(&self.db, "execution", id).await?)
    }

    async fn update_execution(&self, execution: &Execution) -> StoreResult<Execution> {
        let _w = self.writing().await;
        let row = executions::ActiveModel {
            agent: Set(execution.agent.clone()),
            role: Set(execution.role.name().into()),
            status: Set(execution.status.name().into()),
            updated_at: Set(Utc::now()),
            ..Default::default()
        };
        let m = update_versioned(
            &self.db,
            "execution",
            execution.id,
            execution.version,
            row,
            executions::Column::Id,
            executions::Column::Version,
        )
        .await?;
        convert::execution(m)
    }

    async fn executions(&self, task_id: Id) -> StoreResult<Vec<Execution>> {
        let query = executions::Entity::find()
            .filter(executions::Column::TaskId.eq(task_id))
            .order_by_asc(executions::Column::Id);
        rows(&self.db, query, convert::execution).await
    }

    async fn create_session(&self, execution_id: Id, model: Option<&str>) -> StoreResult<RuntimeSession> {
        let _w = self.writing().await;
        let now = Utc::now();
        let row = runtime_sessions::ActiveModel {
            id: NotSet,
            execution_id: Set(execution_id),
            provider_session_id: Set(None),
            model: Set(model.map(Into::into)),
            pid: Set(None),
            status: Set(SessionStatus::Starting.name().into()),
            created_at: Set(now),
            updated_at: Set(now),
        };
        convert::session(row.insert(&self.db).await.map_err(db_err)?)
    }

    async fn session(&self, id: Id) -> StoreResult<RuntimeSession> {
        convert::session(by_id::<runtime_sessions::Entity>(&self.db, "runtime session", id).await?)
    }

    async fn update_session(&self, session: &RuntimeSession) -> StoreResult<RuntimeSession> {
        let _w = self.writing().await;
        let row = runtime_sessions::ActiveModel {
            id: Set(session.id),
            provider_session_id: Set(session.provider_session_id.clone().map(txt)),
            model: Set(session.model.clone()),
            pid: Set(session.pid),
            status: Set(session.status.name().into()),
            updated_at: Set(Utc::now()),
            ..Default::default()
        };
        match row.update(&self.db).await {
            Ok(m) => convert::session(m),
            Err(DbErr::RecordNotUpdated) => Err(not_found("runtime session", session.id)),
            Err(e) => Err(db_err(e)),
        }
    }

    async fn latest_session(&self, execution_id: Id) -> StoreResult<Option<RuntimeSession>> {
        let query = runtime_sessions::Entity::find()
            .filter(runtime_sessions::Column::ExecutionId.eq(execution_id))
            .order_by_desc(runtime_sessions::Column::Id);
        row(&self.db, query, convert::session).await
    }

    async fn create_turn(&self, session_id: Id, input: &str) -> StoreResult<Turn> {
        let _w = self.writing().await;
        let now = Utc::now();
        let row = turns::ActiveModel {
            id: NotSet,
            session_id: Set(session_id),
            input: Set(txt(input)),
            summary: Set(None),
            status: Set(TurnStatus::Queued.name().into()),
            created_at: Set(now),
            updated_at: Set(now),
        };
        let turn = convert::turn(row.insert(&self.db).await.map_err(db_err)?)?;
        let execution = by_id::<runtime_sessions::Entity>(&self.db, "runtime session", session_id).await?.execution_id;
        add_work(&self.db, execution).await?;
        Ok(turn)
    }

    async fn turn(&self, id: Id) -> StoreResult<Turn> {
        convert::turn(by_id::<turns::Entity>(&self.db, "turn", id).await?)
    }

    async fn attach_to_turn(&self, turn: Id, files: &[taskgate_core::attachment::Attachment]) -> StoreResult<()> {
        self.insert_turn_files(turn, files).await
    }

    async fn turn_attachments(&self, turn: Id) -> StoreResult<Vec<taskgate_core::attachment::Attachment>> {
        self.select_turn_files(turn).await
    }

    async fn execution_turns(&self, execution_id: Id) -> StoreResult<Vec<Turn>> {
        let open = [TurnStatus::Queued, TurnStatus::Running, TurnStatus::WaitingApproval];
        let sessions = Query::select()
            .column(runtime_sessions::Column::Id)
            .from(runtime_sessions::Entity)
            .and_where(Expr::col(runtime_sessions::Column::ExecutionId).eq(execution_id))
            .take();
        let query = turns::Entity::find()
            .filter(turns::Column::SessionId.in_subquery(sessions))
            .filter(turns::Column::Status.is_in(open.map(TurnStatus::name)))
            .order_by_asc(turns::Column::Id);
        rows(&self.db, query, convert::turn).await
    }

    async fn claim(&self, execution: Id, owner: &str, now: Timestamp, until: Timestamp) -> StoreResult<Option<Lease>> {
        use executions::Column as C;
        let _w = self.writing().await;
        let free = sea_orm::Condition::any()
            .add(C::Owner.is_null())
            .add(C::Owner.eq(owner))
            .add(C::LeaseExpiresAt.is_null())
            .add(C::LeaseExpiresAt.lt(now));
        let claimed = executions::Entity::update_many()
            .col_expr(C::Owner, Expr::value(owner))
            .col_expr(C::LeaseExpiresAt, Expr::value(until))
            .col_expr(C::Fence, Expr::col(C::Fence).add(1))
            .filter(C::Id.eq(execution))
            .filter(free)
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        if claimed.rows_affected == 0 {
            return Ok(None);
        }
        let row = by_id::<executions::Entity>(&self.db, "execution", execution).await?;
        // Read back in the same statement's wake: another claim can only follow after expiry.
        Ok((row.owner.as_deref() == Some(owner)).then(|| Lease {
            execution,
            owner: owner.to_owned(),
            fence: row.fence,
        }))
    }

    async fn renew_leases(&self, owner: &str, until: Timestamp) -> StoreResult<u64> {
        let _w = self.writing().await;
        let result = executions::Entity::update_many()
            .col_expr(executions::Column::LeaseExpiresAt, Expr::value(until))
            .filter(executions::Column::Owner.eq(owner))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        Ok(result.rows_affected)
    }

    async fn check_lease(&self, lease: &Lease, until: Timestamp) -> StoreResult<()> {
        let _w = self.writing().await;
        let result = executions::Entity::update_many()
            .col_expr(executions::Column::LeaseExpiresAt, Expr::value(until))
            .filter(executions::Column::Id.eq(lease.execution))
            .filter(executions::Column::Owner.eq(lease.owner.as_str()))
            .filter(executions::Column::Fence.eq(lease.fence))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        if result.rows_affected == 0 {
            return Err(StoreError::Fenced(lease.execution));
        }
        Ok(())
    }

    async fn release(&self, lease: &Lease) -> StoreResult<()> {
        let _w = self.writing().await;
        executions::Entity::update_many()
            .col_expr(executions::Column::Owner, Expr::value(Option::<String>::None))
            .col_expr(executions::Column::LeaseExpiresAt, Expr::value(Option::<Timestamp>::None))
            .filter(executions::Column::Id.eq(lease.execution))
            .filter(executions::Column::Owner.eq(lease.owner.as_str()))
            .filter(executions::Column::Fence.eq(lease.fence))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn release_all(&self) -> StoreResult<u64> {
        let _w = self.writing().await;
        let result = executions::Entity::update_many()
            .col_expr(executions::Column::Owner, Expr::value(Option::<String>::None))
            .col_expr(executions::Column::LeaseExpiresAt, Expr::value(Option::<Timestamp>::None))
            .filter(executions::Column::Owner.is_not_null())
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        Ok(result.rows_affected)
    }

    async fn work(&self, limit: u64) -> StoreResult<Vec<Work>> {
        let rows = executions::Entity::find()
            .filter(executions::Column::HasWork.eq(true))
            .order_by_asc(executions::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|m| Work { execution: m.id, owner: m.owner, lease_expires_at: m.lease_expires_at, seq: m.work_seq })
            .collect())
    }

    async fn work_done(&self, lease: &Lease, seen: i64) -> StoreResult<bool> {
        let _w = self.writing().await;
        let result = executions::Entity::update_many()
            .col_expr(executions::Column::HasWork, Expr::value(false))
            .filter(executions::Column::Id.eq(lease.execution))
            .filter(executions::Column::Owner.eq(lease.owner.as_str()))
            .filter(executions::Column::Fence.eq(lease.fence))
            .filter(executions::Column::WorkSeq.eq(seen))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        Ok(result.rows_affected > 0)
    }

    async fn work_seq(&self, execution: Id) -> StoreResult<i64> {
        Ok(by_id::<executions::Entity>(&self.db, "execution", execution).await?.work_seq)
    }

    async fn give_order(&self, execution: Id, order: &Order) -> StoreResult<Id> {
        let _w = self.writing().await;
        let body = serde_json::to_value(order).map_err(|e| StoreError::Backend(format!("order: {e}")))?;
        let row = orders::ActiveModel {
            id: NotSet,
            execution_id: Set(execution),
            body: Set(js(body)),
            created_at: Set(Utc::now()),
            done_at: Set(None),
        };
        let id = row.insert(&self.db).await.map_err(db_err)?.id;
        add_work(&self.db, execution).await?;
        Ok(id)
    }

    async fn orders(&self, execution: Id) -> StoreResult<Vec<PendingOrder>> {
        let query = orders::Entity::find()
            .filter(orders::Column::ExecutionId.eq(execution))
            .filter(orders::Column::DoneAt.is_null())
            .order_by_asc(orders::Column::Id);
        rows(&self.db, query, convert::order).await
    }

    async fn order_done(&self, id: Id) -> StoreResult<()> {
        let _w = self.writing().await;
        orders::Entity::update_many()
            .col_expr(orders::Column::DoneAt, Expr::value(Utc::now()))
            .filter(orders::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn update_turn(&self, turn: &Turn) -> StoreResult<Turn> {
        let _w = self.writing().await;
        let row = turns::ActiveModel {
            id: Set(turn.id),
            summary: Set(turn.summary.clone().map(txt)),
            status: Set(turn.status.name().into()),
            updated_at: Set(Utc::now()),
            ..Default::default()
        };
        match row.update(&self.db).await {
            Ok(m) => convert::turn(m),
            Err(DbErr::RecordNotUpdated) => Err(not_found("turn", turn.id)),
            Err(e) => Err(db_err(e)),
        }
    }

    async fn open_turns(&self, session_id: Option<Id>) -> StoreResult<Vec<Turn>> {
        let open = [TurnStatus::Queued, TurnStatus::Running, TurnStatus::WaitingApproval];
        let mut query = turns::Entity::find().filter(turns::Column::Status.is_in(open.map(TurnStatus::name)));
        if let Some(session_id) = session_id {
            query = query.filter(turns::Column::SessionId.eq(session_id));
        }
        let query = query.order_by_asc(turns::Column::Id);
        rows(&self.db, query, convert::turn).await
    }

    async fn create_approval(&self, new: NewApproval) -> StoreResult<Approval> {
        let _w = self.writing().await;
        let row = approvals::ActiveModel {
            id: NotSet,
            task_id: Set(new.task_id),
            execution_id: Set(new.execution_id),
            nonce: Set(nonce()),
            rule_id: Set(None),
            turn_id: Set(new.turn_id),
            request_id: Set(txt(new.request_id)),
            action: Set(txt(new.action)),
            status: Set(ApprovalStatus::Pending.name().into()),
            scope: Set(None),
            decided_by: Set(None),
            decided_channel: Set(None),
            decided_at: Set(None),
            version: Set(0),
            created_at: Set(Utc::now()),
        };
        convert::approval(row.insert(&self.db).await.map_err(db_err)?)
    }

    async fn approval(&self, id: Id) -> StoreResult<Approval> {
        convert::approval(by_id::<approvals::Entity>(&self.db, "approval", id).await?)
    }

    async fn update_approval(&self, approval: &Approval) -> StoreResult<Approval> {
        let _w = self.writing().await;
        let row = approvals::ActiveModel {
            status: Set(approval.status.name().into()),
            scope: Set(approval.scope.map(|s| s.name().into())),
            decided_by: Set(approval.decided_by),
            decided_channel: Set(approval.decided_channel.map(|c| c.name().into())),
            decided_at: Set(approval.decided_at),
            rule_id: Set(approval.rule_id),
            ..Default::default()
        };
        let m = update_versioned(
            &self.db,
            "approval",
            approval.id,
            approval.version,
            row,
            approvals::Column::Id,
            approvals::Column::Version,
        )
        .await?;
        convert::approval(m)
    }

    async fn pending_approvals(&self, task_id: Option<Id>) -> StoreResult<Vec<Approval>> {
        let mut query = approvals::Entity::find().filter(approvals::Column::Status.eq(ApprovalStatus::Pending.name()));
        if let Some(task_id) = task_id {
            query = query.filter(approvals::Column::TaskId.eq(task_id));
        }
        let query = query.order_by_asc(approvals::Column::Id);
        rows(&self.db, query, convert::approval).await
    }

    async fn approvals(&self, task_id: Id, limit: u64) -> StoreResult<Vec<Approval>> {
        let query = approvals::Entity::find()
            .filter(approvals::Column::TaskId.eq(task_id))
            .order_by_desc(approvals::Column::Id)
            .limit(limit);
        rows(&self.db, query, convert::approval).await
    }

    async fn add_rule(&self, rule: NewApprovalRule) -> StoreResult<ApprovalRule> {
        let _w = self.writing().await;
        let row = approval_rules::ActiveModel {
            id: NotSet,
            project_id: Set(rule.project_id),
            agent: Set(txt(rule.agent)),
            action: Set(txt(rule.action)),
            created_by: Set(rule.created_by),
            created_at: Set(Utc::now()),
            revoked_at: Set(None),
        };
        Ok(convert::rule(row.insert(&self.db).await.map_err(db_err)?))
    }

    async fn rules(&self, project_id: Option<Id>) -> StoreResult<Vec<ApprovalRule>> {
        let mut query = approval_rules::Entity::find().filter(approval_rules::Column::RevokedAt.is_null());
        if let Some(project) = project_id {
            query = query.filter(approval_rules::Column::ProjectId.eq(project));
        }
        let rows = query.order_by_asc(approval_rules::Column::Id).all(&self.db).await.map_err(db_err)?;
        Ok(rows.into_iter().map(convert::rule).collect())
    }

    async fn revoke_rule(&self, id: Id) -> StoreResult<bool> {
        let _w = self.writing().await;
        let result = approval_rules::Entity::update_many()
            .col_expr(approval_rules::Column::RevokedAt, Expr::value(Utc::now()))
            .filter(approval_rules::Column::Id.eq(id))
            .filter(approval_rules::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        Ok(result.rows_affected > 0)
    }

    async fn matching_rule(
        &self,
        project_id: Option<Id>,
        agent: &str,
        action: &str,
    ) -> StoreResult<Option<ApprovalRule>> {
        let project = match project_id {
            Some(p) => approval_rules::Column::ProjectId.eq(p),
            None => approval_rules::Column::ProjectId.is_null(),
        };
        let query = approval_rules::Entity::find()
            .filter(project)
            .filter(approval_rules::Column::Agent.eq(agent))
            .filter(approval_rules::Column::Action.eq(txt(action)))
            .filter(approval_rules::Column::RevokedAt.is_null())
            .order_by_asc(approval_rules::Column::Id);
        Ok(query.one(&self.db).await.map_err(db_err)?.map(convert::rule))
    }

    async fn append_audit(&self, entry: NewAuditEntry) -> StoreResult<AuditEntry> {
        let _w = self.writing().await;
        if self.db.get_database_backend() == DbBackend::Postgres {
            // One chain: appenders on every replica take turns (the lock ends with the
            // transaction; outside one, with the statement).
            self.db
                .execute_raw(sea_orm::Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT pg_advisory_xact_lock($1)",
                    [AUDIT_LOCK.into()],
                ))
                .await
                .map_err(db_err)?;
        }
        let last = audit::Entity::find().order_by_desc(audit::Column::Id).one(&self.db).await.map_err(db_err)?;
        let mut row = AuditEntry {
            id: 0,
            at: Utc::now(),
            approval_id: entry.approval_id,
            task_id: entry.task_id,
            who: txt(entry.who),
            person_id: entry.person_id,
            channel: entry.channel,
            place: txt(entry.place),
            action: txt(entry.action),
            decision: entry.decision,
            scope: entry.scope,
            rule_id: entry.rule_id,
            prev_hash: last.map(|l| l.hash).unwrap_or_default(),
            hash: String::new(),
        };
        // Stored at microsecond precision on both backends: hash what will be read back.
        row.at = chrono::DateTime::from_timestamp_micros(row.at.timestamp_micros()).unwrap_or(row.at);
        row.hash = audit_hash(&row.preimage());
        let model = audit::ActiveModel {
            id: NotSet,
            at: Set(row.at),
            approval_id: Set(row.approval_id),
            task_id: Set(row.task_id),
            who: Set(row.who.clone()),
            person_id: Set(row.person_id),
            channel: Set(row.channel.map(|c| c.name().into())),
            place: Set(row.place.clone()),
            action: Set(row.action.clone()),
            decision: Set(row.decision.name().into()),
            scope: Set(row.scope.map(|s| s.name().into())),
            rule_id: Set(row.rule_id),
            prev_hash: Set(row.prev_hash.clone()),
            hash: Set(row.hash.clone()),
        };
        convert::audit_entry(model.insert(&self.db).await.map_err(db_err)?)
    }

    async fn audit(&self, after: Id, limit: u64) -> StoreResult<Vec<AuditEntry>> {
        let query =
            audit::Entity::find().filter(audit::Column::Id.gt(after)).order_by_asc(audit::Column::Id).limit(limit);
        rows(&self.db, query, convert::audit_entry).await
    }

    async fn append_event(&self, event: NewEvent) -> StoreResult<Event> {
        let _w = self.writing().await;
        let row = events::ActiveModel {
            id: NotSet,
            task_id: Set(event.task_id),
            execution_id: Set(event.execution_id),
            kind: Set(event.body.kind().name().into()),
            channel: Set(event.channel.map(|c| c.name().into())),
            actor: Set(event.actor.map(txt)),
            body: Set(js(event.body.to_json())),
            at: Set(Utc::now()),
        };
        convert::event(row.insert(&self.db).await.map_err(db_err)?)
    }

    async fn timeline(&self, task_id: Id) -> StoreResult<Vec<Event>> {
        let query = events::Entity::find().filter(events::Column::TaskId.eq(task_id)).order_by_asc(events::Column::Id);
        rows(&self.db, query, convert::event).await
    }

    async fn recent_events(&self, task_id: Id, limit: u64) -> StoreResult<Vec<Event>> {
        let query = events::Entity::find()
            .filter(events::Column::TaskId.eq(task_id))
            .order_by_desc(events::Column::Id)
            .limit(limit);
        let mut events = rows(&self.db, query, convert::event).await?;
        events.reverse();
        Ok(events)
    }

    async fn recent_events_of(&self, tasks: &[Id], kinds: &[EventKind], per_kind: u64) -> StoreResult<Vec<Event>> {
        if tasks.is_empty() || kinds.is_empty() {
            return Ok(Vec::new());
        }
        // A window per (task, kind): the newest rows of each, in one indexed read. Raw SQL
        // because the query builder has no window functions; both backends have had them
        // for years (SQLite 3.25, PostgreSQL 8.4).
        let backend = self.db.get_database_backend();
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(tasks.len() + kinds.len() + 1);
        let mut slot = |value: sea_orm::Value| {
            values.push(value);
            match backend {
                DbBackend::Postgres => format!("${}", values.len()),
                _ => "?".to_owned(),
            }
        };
        let task_slots: Vec<String> = tasks.iter().map(|t| slot((*t).into())).collect();
        let kind_slots: Vec<String> = kinds.iter().map(|k| slot(k.name().into())).collect();
        let limit = slot((per_kind as i64).into());
        let sql = format!(
            "SELECT * FROM (SELECT events.*, ROW_NUMBER() OVER (PARTITION BY task_id, kind ORDER BY id DESC) AS newest \
             FROM events WHERE task_id IN ({}) AND kind IN ({})) AS recent WHERE newest <= {limit} ORDER BY id",
            task_slots.join(", "),
            kind_slots.join(", ")
        );
        let query = events::Entity::find().from_raw_sql(sea_orm::Statement::from_sql_and_values(backend, sql, values));
        let found = query.all(&self.db).await.map_err(db_err)?;
        found.into_iter().map(convert::event).collect()
    }

    async fn add_note_entry(&self, entry: NewNoteEntry) -> StoreResult<NoteEntry> {
        let _w = self.writing().await;
        let row = note_entries::ActiveModel {
            id: NotSet,
            task_id: Set(entry.task_id),
            kind: Set(entry.kind.name().into()),
            text: Set(txt(entry.text)),
            evidence: Set(js(serde_json::json!(entry.evidence))),
            author: Set(txt(entry.author)),
            commit: Set(entry.commit),
            at: Set(Utc::now()),
        };
        convert::note_entry(row.insert(&self.db).await.map_err(db_err)?)
    }

    async fn note_entries(&self, task_id: Id) -> StoreResult<Vec<NoteEntry>> {
        let query = note_entries::Entity::find()
            .filter(note_entries::Column::TaskId.eq(task_id))
            .order_by_asc(note_entries::Column::Id);
        rows(&self.db, query, convert::note_entry).await
    }

    async fn inbox_accept(&self, inbound: NewInbound) -> StoreResult<InboxOutcome> {
        let inbound = NewInbound { external_id: txt(inbound.external_id), payload: js(inbound.payload), ..inbound };
        retrying(|| async {
            let _w = self.writing().await;
            accept(&self.db, &inbound).await
        })
        .await
    }

    async fn inbox_pending(&self, channel: Channel, limit: u64) -> StoreResult<Vec<Inbound>> {
        let query = inbox::Entity::find()
            .filter(inbox::Column::Channel.eq(channel.name()))
            .filter(inbox::Column::ProcessedAt.is_null())
            .order_by_asc(inbox::Column::Id)
            .limit(limit);
        rows(&self.db, query, convert::inbound).await
    }

    async fn inbox_failed(&self, id: Id, error: &str, set_aside: bool) -> StoreResult<()> {
        let _w = self.writing().await;
        let mut update = inbox::Entity::update_many()
            .col_expr(inbox::Column::Attempts, Expr::col(inbox::Column::Attempts).add(1))
            .col_expr(inbox::Column::LastError, Expr::value(txt(error)));
        if set_aside {
            update = update.col_expr(inbox::Column::ProcessedAt, Expr::value(Utc::now()));
        }
        update.filter(inbox::Column::Id.eq(id)).exec(&self.db).await.map_err(db_err)?;
        Ok(())
    }

    async fn inbox_set_aside(&self, limit: u64) -> StoreResult<Vec<Inbound>> {
        let query = inbox::Entity::find()
            .filter(inbox::Column::ProcessedAt.is_not_null())
            .filter(inbox::Column::LastError.is_not_null())
            .order_by_desc(inbox::Column::Id)
            .limit(limit);
        rows(&self.db, query, convert::inbound).await
    }

    async fn inbox_done(&self, id: Id) -> StoreResult<bool> {
        let _w = self.writing().await;
        let result = inbox::Entity::update_many()
            .col_expr(inbox::Column::ProcessedAt, Expr::value(Utc::now()))
            .filter(inbox::Column::Id.eq(id))
            .filter(inbox::Column::ProcessedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        if result.rows_affected == 1 {
            return Ok(true);
        }
        match inbox::Entity::find_by_id(id).one(&self.db).await.map_err(db_err)? {
            Some(_) => Ok(false),
            None => Err(not_found("inbound", id)),
        }
    }

    async fn inbox_set_aside_many(&self, ids: &[Id], reason: &str) -> StoreResult<()> {
        let _w = self.writing().await;
        // In slices: SQLite bounds the variables of one statement.
        for slice in ids.chunks(500) {
            inbox::Entity::update_many()
                .col_expr(inbox::Column::ProcessedAt, Expr::value(Utc::now()))
                .col_expr(inbox::Column::LastError, Expr::value(txt(reason)))
                .filter(inbox::Column::Id.is_in(slice.iter().copied()))
                .filter(inbox::Column::ProcessedAt.is_null())
                .exec(&self.db)
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }

    async fn outbox_enqueue(&self, message: NewOutbound) -> StoreResult<Outbound> {
        let _w = self.writing().await;
        let now = Utc::now();
        let row = outbox::ActiveModel {
            id: NotSet,
            channel: Set(message.channel.name().into()),
            chat_id: Set(txt(message.chat_id)),
            task_id: Set(message.task_id),
            approval_id: Set(message.approval_id),
            payload: Set(js(message.payload.to_json())),
            attempts: Set(0),
            next_attempt_at: Set(now),
            last_error: Set(None),
            external_message_id: Set(None),
            sent_at: Set(None),
            created_at: Set(now),
            priority: Set(message.payload.kind.priority()),
            dropped: Set(false),
        };
        convert::outbound(row.insert(&self.db).await.map_err(db_err)?)
    }

    async fn outbox_due(&self, channel: Channel, now: Timestamp, limit: u64) -> StoreResult<Vec<Outbound>> {
        use outbox::Column as C;
        // The head of each chat's queue: its oldest unsent message of the highest priority
        // waiting (an approval card goes before the chatter queued ahead of it). Only heads
        // are eligible, and only when due, so a message waiting out a rate limit holds back
        // the ones behind it. Candidates: the oldest unsent row per chat and priority.
        let heads = Query::select()
            .expr(Expr::col(C::Id).min())
            .from(outbox::Entity)
            .and_where(Expr::col(C::SentAt).is_null())
            .and_where(Expr::col(C::Channel).eq(channel.name()))
            .group_by_col(C::ChatId)
            .group_by_col(C::Priority)
            .take();
        let candidates = outbox::Entity::find().filter(C::Id.in_subquery(heads)).all(&self.db).await.map_err(db_err)?;
        let mut best: HashMap<String, outbox::Model> = HashMap::new();
        for row in candidates {
            match best.get(&row.chat_id) {
                Some(b) if b.priority >= row.priority => {}
                _ => {
                    best.insert(row.chat_id.clone(), row);
                }
            }
        }
        let mut due: Vec<outbox::Model> = best.into_values().filter(|r| r.next_attempt_at <= now).collect();
        // Urgent rows of every chat first, then the oldest.
        due.sort_by_key(|r| (std::cmp::Reverse(r.priority), r.id));
        due.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        due.into_iter().map(convert::outbound).collect()
    }

    async fn outbox_sent(&self, id: Id, external_message_id: Option<&str>) -> StoreResult<()> {
        let _w = self.writing().await;
        let result = outbox::Entity::update_many()
            .col_expr(outbox::Column::SentAt, Expr::value(Utc::now()))
            .col_expr(outbox::Column::ExternalMessageId, Expr::value(external_message_id))
            .col_expr(outbox::Column::Attempts, Expr::col(outbox::Column::Attempts).add(1))
            .filter(outbox::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        if result.rows_affected == 0 {
            return Err(not_found("outbound", id));
        }
        Ok(())
    }

    async fn outbox_retry(&self, id: Id, next_attempt_at: Timestamp, error: &str) -> StoreResult<()> {
        let _w = self.writing().await;
        let result = outbox::Entity::update_many()
            .col_expr(outbox::Column::NextAttemptAt, Expr::value(next_attempt_at))
            .col_expr(outbox::Column::LastError, Expr::value(txt(error)))
            .col_expr(outbox::Column::Attempts, Expr::col(outbox::Column::Attempts).add(1))
            .filter(outbox::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        if result.rows_affected == 0 {
            return Err(not_found("outbound", id));
        }
        Ok(())
    }

    async fn outbox_given_up(&self, limit: u64) -> StoreResult<Vec<Outbound>> {
        let query = outbox::Entity::find()
            .filter(outbox::Column::Dropped.eq(true))
            .order_by_desc(outbox::Column::Id)
            .limit(limit);
        rows(&self.db, query, convert::outbound).await
    }

    async fn outbox_dropped(&self, id: Id, error: &str) -> StoreResult<()> {
        let _w = self.writing().await;
        let result = outbox::Entity::update_many()
            .col_expr(outbox::Column::SentAt, Expr::value(Utc::now()))
            .col_expr(outbox::Column::Dropped, Expr::value(true))
            .col_expr(outbox::Column::LastError, Expr::value(txt(error)))
            .col_expr(outbox::Column::Attempts, Expr::col(outbox::Column::Attempts).add(1))
            .filter(outbox::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        if result.rows_affected == 0 {
            return Err(not_found("outbound", id));
        }
        Ok(())
    }

    async fn outbound(&self, id: Id) -> StoreResult<Outbound> {
        outbox::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(db_err)?
            .ok_or_else(|| not_found("outbound", id))
            .and_then(convert::outbound)
    }

    async fn outbound_by_external_id(
        &self,
        channel: Channel,
        chat_id: &str,
        external_message_id: &str,
    ) -> StoreResult<Option<Outbound>> {
        let query = outbox::Entity::find()
            .filter(outbox::Column::Channel.eq(channel.name()))
            .filter(outbox::Column::ChatId.eq(chat_id))
            .filter(outbox::Column::ExternalMessageId.eq(external_message_id));
        row(&self.db, query, convert::outbound).await
    }

    async fn chat_tasks(&self, channel: Channel, chat_id: &str, limit: u64) -> StoreResult<Vec<Id>> {
        use outbox::Column as C;
        // The chat's newest rows through (channel, chat_id, id), tasks in order of first
        // appearance: newest message per task, newest first, within the window.
        let newest: Vec<Option<i64>> = outbox::Entity::find()
            .select_only()
            .column(C::TaskId)
            .filter(C::Channel.eq(channel.name()))
            .filter(C::ChatId.eq(chat_id))
            .order_by_desc(C::Id)
            .limit(CHAT_TASKS_WINDOW)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_err)?;
        let mut tasks: Vec<Id> = Vec::new();
        for task in newest.into_iter().flatten() {
            if !tasks.contains(&task) {
                tasks.push(task);
                if tasks.len() as u64 == limit {
                    break;
                }
            }
        }
        Ok(tasks)
    }

    async fn tasks_by_id(&self, ids: &[Id]) -> StoreResult<Vec<Task>> {
        let query = tasks::Entity::find().filter(tasks::Column::Id.is_in(ids.iter().copied()));
        rows(&self.db, query, convert::task).await
    }

    async fn executions_of(&self, task_ids: &[Id]) -> StoreResult<Vec<Execution>> {
        let query = executions::Entity::find()
            .filter(executions::Column::TaskId.is_in(task_ids.iter().copied()))
            .order_by_asc(executions::Column::Id);
        rows(&self.db, query, convert::execution).await
    }

    async fn latest_sessions(&self, execution_ids: &[Id]) -> StoreResult<Vec<RuntimeSession>> {
        // Newest first, then the first of each execution: an execution has a few sessions
        // (one per fresh start), so reading them all stays small.
        let query = runtime_sessions::Entity::find()
            .filter(runtime_sessions::Column::ExecutionId.is_in(execution_ids.iter().copied()))
            .order_by_desc(runtime_sessions::Column::Id);
        let mut seen = std::collections::HashSet::new();
        Ok(rows(&self.db, query, convert::session).await?.into_iter().filter(|s| seen.insert(s.execution_id)).collect())
    }

    async fn open_turns_of(&self, session_ids: &[Id]) -> StoreResult<Vec<Turn>> {
        let open = [TurnStatus::Queued, TurnStatus::Running, TurnStatus::WaitingApproval];
        let query = turns::Entity::find()
            .filter(turns::Column::SessionId.is_in(session_ids.iter().copied()))
            .filter(turns::Column::Status.is_in(open.map(TurnStatus::name)))
            .order_by_asc(turns::Column::Id);
        rows(&self.db, query, convert::turn).await
    }

    async fn pending_approvals_of(&self, task_ids: &[Id]) -> StoreResult<Vec<Approval>> {
        let query = approvals::Entity::find()
            .filter(approvals::Column::TaskId.is_in(task_ids.iter().copied()))
            .filter(approvals::Column::Status.eq(ApprovalStatus::Pending.name()))
            .order_by_asc(approvals::Column::Id);
        rows(&self.db, query, convert::approval).await
    }

    async fn latest_outbound(&self, task_id: Id) -> StoreResult<Option<Outbound>> {
        let query = outbox::Entity::find().filter(outbox::Column::TaskId.eq(task_id)).order_by_desc(outbox::Column::Id);
        row(&self.db, query, convert::outbound).await
    }

    async fn approval_cards(&self, approval: Id) -> StoreResult<Vec<Outbound>> {
        let query =
            outbox::Entity::find().filter(outbox::Column::ApprovalId.eq(approval)).order_by_asc(outbox::Column::Id);
        rows(&self.db, query, convert::outbound).await
    }

    async fn shown_in(
        &self,
        channel: Channel,
        chat_id: &str,
        approval: Option<Id>,
        task: Option<Id>,
    ) -> StoreResult<bool> {
        let mut query = outbox::Entity::find()
            .filter(outbox::Column::Channel.eq(channel.name()))
            .filter(outbox::Column::ChatId.eq(txt(chat_id)));
        query = match (approval, task) {
            (Some(approval), _) => query.filter(outbox::Column::ApprovalId.eq(approval)),
            (None, Some(task)) => query.filter(outbox::Column::TaskId.eq(task)),
            (None, None) => return Ok(false),
        };
        Ok(query.one(&self.db).await.map_err(db_err)?.is_some())
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        use sea_orm::PaginatorTrait;
        let inbox_pending =
            inbox::Entity::find().filter(inbox::Column::ProcessedAt.is_null()).count(&self.db).await.map_err(db_err)?;
        let inbox_set_aside = inbox::Entity::find()
            .filter(inbox::Column::ProcessedAt.is_not_null())
            .filter(inbox::Column::LastError.is_not_null())
            .count(&self.db)
            .await
            .map_err(db_err)?;
        let outbox_pending =
            outbox::Entity::find().filter(outbox::Column::SentAt.is_null()).count(&self.db).await.map_err(db_err)?;
        let outbox_dropped =
            outbox::Entity::find().filter(outbox::Column::Dropped.eq(true)).count(&self.db).await.map_err(db_err)?;
        let executions_with_work = executions::Entity::find()
            .filter(executions::Column::HasWork.eq(true))
            .count(&self.db)
            .await
            .map_err(db_err)?;
        Ok(StoreStats { inbox_pending, inbox_set_aside, outbox_pending, outbox_dropped, executions_with_work })
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db.execute_unprepared("SELECT 1").await.map(|_| ()).map_err(db_err)
    }

    async fn events_after(&self, after: Id, limit: u64) -> StoreResult<Vec<Event>> {
        let query =
            events::Entity::find().filter(events::Column::Id.gt(after)).order_by_asc(events::Column::Id).limit(limit);
        rows(&self.db, query, convert::event).await
    }

    async fn inbox_recent(&self, channel: Channel, limit: u64) -> StoreResult<Vec<Inbound>> {
        let mut rows = inbox::Entity::find()
            .filter(inbox::Column::Channel.eq(channel.name()))
            .order_by_desc(inbox::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        rows.reverse();
        rows.into_iter().map(convert::inbound).collect()
    }

    async fn outbox_recent(&self, channel: Channel, chat_id: &str, limit: u64) -> StoreResult<Vec<Outbound>> {
        let mut rows = outbox::Entity::find()
            .filter(outbox::Column::Channel.eq(channel.name()))
            .filter(outbox::Column::ChatId.eq(chat_id))
            .order_by_desc(outbox::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        rows.reverse();
        rows.into_iter().map(convert::outbound).collect()
    }

    async fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(settings::Entity::find()
            .filter(settings::Column::Key.eq(key))
            .one(&self.db)
            .await
            .map_err(db_err)?
            .map(|m| m.value))
    }

    async fn put_setting(&self, key: &str, value: &str) -> StoreResult<()> {
        let _w = self.writing().await;
        use sea_orm::sea_query::OnConflict;
        settings::Entity::insert(settings::ActiveModel {
            id: NotSet,
            key: Set(key.into()),
            value: Set(txt(value)),
            updated_at: Set(Utc::now()),
        })
        .on_conflict(
            OnConflict::column(settings::Column::Key)
                .update_columns([settings::Column::Value, settings::Column::UpdatedAt])
                .to_owned(),
        )
        .exec(&self.db)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn create_link_code(&self, code: &LinkCode) -> StoreResult<()> {
        let _w = self.writing().await;
        let row = link_codes::ActiveModel {
            id: NotSet,
            code: Set(code.code.clone()),
            person_id: Set(code.person_id),
            channel: Set(code.channel.name().into()),
            expires_at: Set(code.expires_at),
            used_at: Set(code.used_at),
            created_at: Set(Utc::now()),
        };
        match row.insert(&self.db).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Err(StoreError::AlreadyExists("link code".into()))
            }
            Err(e) => Err(db_err(e)),
        }
    }

    async fn redeem_link_code(&self, code: &str, now: Timestamp) -> StoreResult<Option<LinkCode>> {
        let _w = self.writing().await;
        use link_codes::Column as C;
        // One conditional UPDATE: of two concurrent redeemers exactly one touches the row.
        let result = link_codes::Entity::update_many()
            .col_expr(C::UsedAt, Expr::value(now))
            .filter(C::Code.eq(code))
            .filter(C::UsedAt.is_null())
            .filter(C::ExpiresAt.gt(now))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        if result.rows_affected == 0 {
            return Ok(None);
        }
        let query = link_codes::Entity::find().filter(C::Code.eq(code));
        row(&self.db, query, convert::link_code).await
    }

    async fn merge_person(&self, from: Id, into: Id) -> StoreResult<()> {
        let _w = self.writing().await;
        if from == into {
            return Ok(());
        }
        // Both must exist: a merge into nothing would orphan the identities.
        by_id::<persons::Entity>(&self.db, "person", from).await?;
        by_id::<persons::Entity>(&self.db, "person", into).await?;
        identities::Entity::update_many()
            .col_expr(identities::Column::PersonId, Expr::value(into))
            .filter(identities::Column::PersonId.eq(from))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        tasks::Entity::update_many()
            .col_expr(tasks::Column::CreatedBy, Expr::value(into))
            .filter(tasks::Column::CreatedBy.eq(from))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        approvals::Entity::update_many()
            .col_expr(approvals::Column::DecidedBy, Expr::value(into))
            .filter(approvals::Column::DecidedBy.eq(from))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

/// Flags `execution` as having work for its owner (see `Store::work`).
async fn add_work(db: &impl ConnectionTrait, execution: Id) -> StoreResult<()> {
    executions::Entity::update_many()
        .col_expr(executions::Column::WorkSeq, Expr::col(executions::Column::WorkSeq).add(1))
        .col_expr(executions::Column::HasWork, Expr::value(true))
        .filter(executions::Column::Id.eq(execution))
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// One inbox insert, deduplicated on (channel, external id).
async fn accept(db: &impl ConnectionTrait, inbound: &NewInbound) -> StoreResult<InboxOutcome> {
    use inbox::Column as C;
    let inserted = inbox::Entity::insert(inbox::ActiveModel {
        id: NotSet,
        channel: Set(inbound.channel.name().into()),
        external_id: Set(inbound.external_id.clone()),
        payload: Set(inbound.payload.clone()),
        received_at: Set(Utc::now()),
        processed_at: Set(None),
        attempts: Set(0),
        last_error: Set(None),
    })
    .on_conflict_do_nothing_on([C::Channel, C::ExternalId])
    .exec(db)
    .await
    .map_err(db_err)?;
    if let TryInsertResult::Inserted(result) = inserted {
        return Ok(InboxOutcome::Accepted(result.last_insert_id));
    }
    let existing = inbox::Entity::find()
        .filter(C::Channel.eq(inbound.channel.name()))
        .filter(C::ExternalId.eq(&inbound.external_id))
        .one(db)
        .await
        .map_err(db_err)?
        .ok_or_else(|| not_found("inbound", &inbound.external_id))?;
    Ok(InboxOutcome::Duplicate(existing.id))
}

/// An approval's nonce: 12 random base-36 characters (about 62 bits).
fn nonce() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut bytes = [0u8; 12];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back to the thread-local generator rather than fail a request.
        for b in &mut bytes {
            *b = fastrand::u8(..);
        }
    }
    bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

/// Key of the PostgreSQL advisory lock that makes the audit chain one chain.
const AUDIT_LOCK: i64 = 0x6175_6469_745f_6c6f; // "audit_lo"

/// The whole audit log, oldest first, and the id of the first entry where its hash chain breaks
/// (`None`: it verifies).
pub async fn audit_log(store: &dyn Store) -> StoreResult<(Vec<AuditEntry>, Option<Id>)> {
    let mut all: Vec<AuditEntry> = Vec::new();
    loop {
        let more = store.audit(all.last().map_or(0, |e| e.id), 1000).await?;
        if more.is_empty() {
            break;
        }
        all.extend(more);
    }
    let broken_at = audit_break(&all, audit_hash);
    Ok((all, broken_at))
}

/// The audit chain's hash: lowercase hex SHA-256.
pub fn audit_hash(preimage: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(preimage.as_bytes()))
}

/// How many of a chat's newest outbox rows `chat_tasks` reads: enough for the visible tasks of
/// a busy chat (a turn writes a handful of rows), few enough that reading them is one short
/// index range.
const CHAT_TASKS_WINDOW: u64 = 500;
