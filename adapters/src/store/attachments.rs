//! The files a queued turn carries to its agent (`turn_attachments`): written with the turn in
//! the plan's transaction, read by the execution's owner when it starts the turn.

use chrono::Utc;
use sea_orm::ActiveValue::NotSet;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use taskgate_core::attachment::Attachment;
use taskgate_core::model::Id;
use taskgate_core::store::{StoreError, StoreResult};

use super::{SeaStore, db_err};

pub(super) mod turn_attachments {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "turn_attachments")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub turn_id: i64,
        pub body: Json,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use turn_attachments::Column as A;

impl<C: ConnectionTrait + Send + Sync> SeaStore<C> {
    pub(super) async fn insert_turn_files(&self, turn: Id, files: &[Attachment]) -> StoreResult<()> {
        if files.is_empty() {
            return Ok(());
        }
        let _w = self.writing().await;
        let now = Utc::now();
        let mut rows = Vec::with_capacity(files.len());
        for file in files {
            let body = serde_json::to_value(file).map_err(|e| StoreError::Backend(format!("attachment: {e}")))?;
            rows.push(turn_attachments::ActiveModel {
                id: NotSet,
                turn_id: Set(turn),
                body: Set(body),
                created_at: Set(now),
            });
        }
        turn_attachments::Entity::insert_many(rows).exec(&self.db).await.map_err(db_err)?;
        Ok(())
    }

    pub(super) async fn select_turn_files(&self, turn: Id) -> StoreResult<Vec<Attachment>> {
        let found = turn_attachments::Entity::find()
            .filter(A::TurnId.eq(turn))
            .order_by_asc(A::Id)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        found
            .into_iter()
            .map(|row| {
                serde_json::from_value(row.body)
                    .map_err(|e| StoreError::Backend(format!("turn {turn}: attachment row {}: {e}", row.id)))
            })
            .collect()
    }
}
