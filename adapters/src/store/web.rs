//! The web console's own rows: its login sessions, and the first-start login token written
//! once. Methods of [`SeaStore`] itself rather than of the `Store` port: only the console
//! (`bot/src/web`) and the CLI use them, never the engine or a plan.

use chrono::Utc;
use sea_orm::ActiveValue::NotSet;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set, TryInsertResult};
use taskgate_core::model::{Id, Timestamp};
use taskgate_core::store::StoreResult;

use super::{SeaStore, db_err, entities::settings, retrying, txt};

/// A logged-in browser, as `taskgate sessions` lists it. Its secret is never stored: only the
/// secret's SHA-256, which is not shown either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub id: Id,
    /// The browser's `User-Agent` when it logged in (cut to 200 characters).
    pub user_agent: String,
    pub created_at: Timestamp,
    /// Last request seen with it (updated at most every few minutes).
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
}

mod web_sessions {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "web_sessions")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub secret_sha256: String,
        pub user_agent: String,
        pub created_at: DateTimeUtc,
        pub last_seen_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use web_sessions::Column as S;

fn session(m: web_sessions::Model) -> WebSession {
    WebSession {
        id: m.id,
        user_agent: m.user_agent,
        created_at: m.created_at,
        last_seen_at: m.last_seen_at,
        expires_at: m.expires_at,
    }
}

impl<C: ConnectionTrait + Send + Sync> SeaStore<C> {
    /// Sets a named value only when it has none: one atomic insert, so of several processes
    /// racing to set it exactly one gets `true` (the others `false`, the value untouched).
    pub async fn insert_setting(&self, key: &str, value: &str) -> StoreResult<bool> {
        let _w = self.writing().await;
        retrying(|| async {
            let inserted = settings::Entity::insert(settings::ActiveModel {
                id: NotSet,
                key: Set(key.into()),
                value: Set(txt(value)),
                updated_at: Set(Utc::now()),
            })
            .on_conflict_do_nothing_on([settings::Column::Key])
            .exec(&self.db)
            .await
            .map_err(db_err)?;
            Ok(matches!(inserted, TryInsertResult::Inserted(_)))
        })
        .await
    }

    /// Stores a new session under its secret's hash.
    pub async fn create_web_session(
        &self,
        secret_sha256: &str,
        user_agent: &str,
        expires_at: Timestamp,
    ) -> StoreResult<WebSession> {
        let _w = self.writing().await;
        let now = Utc::now();
        let agent: String = txt(user_agent).chars().take(200).collect();
        let row = web_sessions::Entity::insert(web_sessions::ActiveModel {
            id: NotSet,
            secret_sha256: Set(secret_sha256.to_owned()),
            user_agent: Set(agent.clone()),
            created_at: Set(now),
            last_seen_at: Set(now),
            expires_at: Set(expires_at),
        })
        .exec(&self.db)
        .await
        .map_err(db_err)?;
        Ok(WebSession { id: row.last_insert_id, user_agent: agent, created_at: now, last_seen_at: now, expires_at })
    }

    /// The session with this secret hash, unless it expired (or never existed).
    pub async fn web_session(&self, secret_sha256: &str, now: Timestamp) -> StoreResult<Option<WebSession>> {
        let found = web_sessions::Entity::find()
            .filter(S::SecretSha256.eq(secret_sha256))
            .filter(S::ExpiresAt.gt(now))
            .one(&self.db)
            .await
            .map_err(db_err)?;
        Ok(found.map(session))
    }

    /// Records that the session was used at `now`.
    pub async fn touch_web_session(&self, id: Id, now: Timestamp) -> StoreResult<()> {
        let _w = self.writing().await;
        web_sessions::Entity::update_many()
            .col_expr(S::LastSeenAt, sea_orm::sea_query::Expr::value(now))
            .filter(S::Id.eq(id))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Ends the session with this secret hash (logging out); `false` when there was none.
    pub async fn delete_web_session(&self, secret_sha256: &str) -> StoreResult<bool> {
        let _w = self.writing().await;
        let done = web_sessions::Entity::delete_many()
            .filter(S::SecretSha256.eq(secret_sha256))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected > 0)
    }

    /// Sessions that have not expired at `now`, newest first.
    pub async fn web_sessions(&self, now: Timestamp) -> StoreResult<Vec<WebSession>> {
        let rows = web_sessions::Entity::find()
            .filter(S::ExpiresAt.gt(now))
            .order_by_desc(S::Id)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        Ok(rows.into_iter().map(session).collect())
    }

    /// Ends one session by its id (`taskgate sessions --revoke`); `false` when there was none.
    pub async fn revoke_web_session(&self, id: Id) -> StoreResult<bool> {
        let _w = self.writing().await;
        let done = web_sessions::Entity::delete_by_id(id).exec(&self.db).await.map_err(db_err)?;
        Ok(done.rows_affected > 0)
    }

    /// Ends every session (and forgets expired ones); how many rows went.
    pub async fn revoke_web_sessions(&self) -> StoreResult<u64> {
        let _w = self.writing().await;
        let done = web_sessions::Entity::delete_many().exec(&self.db).await.map_err(db_err)?;
        Ok(done.rows_affected)
    }

    /// Forgets sessions that expired before `now`.
    pub async fn purge_web_sessions(&self, now: Timestamp) -> StoreResult<u64> {
        let _w = self.writing().await;
        let done =
            web_sessions::Entity::delete_many().filter(S::ExpiresAt.lte(now)).exec(&self.db).await.map_err(db_err)?;
        Ok(done.rows_affected)
    }
}
