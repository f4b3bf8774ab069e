//! Executions' git worktrees (`execution_worktrees`): recorded when one is made, so a restart
//! finds it again; marked merged or removed when its branch is handed back. Methods of
//! [`SeaStore`] itself rather than of the `Store` port: only the bot's worktree code uses them,
//! never a plan.

use chrono::Utc;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use taskgate_core::model::Id;
use taskgate_core::store::{StoreError, StoreResult};
use taskgate_core::worktree::{Worktree, WorktreeState};

use super::{SeaStore, db_err, txt};

mod execution_worktrees {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "execution_worktrees")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub execution_id: i64,
        pub task_id: i64,
        pub project_dir: String,
        pub path: String,
        pub branch: String,
        pub base: String,
        pub state: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use execution_worktrees::Column as W;

fn worktree(m: execution_worktrees::Model) -> StoreResult<Worktree> {
    let state = WorktreeState::parse(&m.state)
        .ok_or_else(|| StoreError::Backend(format!("unknown worktree state `{}`", m.state)))?;
    Ok(Worktree {
        execution: m.execution_id,
        task: m.task_id,
        project_dir: m.project_dir,
        path: m.path,
        branch: m.branch,
        base: m.base,
        state,
    })
}

impl<C: ConnectionTrait + Send + Sync> SeaStore<C> {
    /// Records an execution's new worktree.
    pub async fn record_worktree(&self, w: &Worktree) -> StoreResult<()> {
        let _w = self.writing().await;
        let now = Utc::now();
        execution_worktrees::Entity::insert(execution_worktrees::ActiveModel {
            execution_id: Set(w.execution),
            task_id: Set(w.task),
            project_dir: Set(txt(w.project_dir.as_str())),
            path: Set(txt(w.path.as_str())),
            branch: Set(txt(w.branch.as_str())),
            base: Set(txt(w.base.as_str())),
            state: Set(w.state.name().to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec(&self.db)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// The worktree of `execution`, if it ever got one.
    pub async fn worktree(&self, execution: Id) -> StoreResult<Option<Worktree>> {
        let found = execution_worktrees::Entity::find_by_id(execution).one(&self.db).await.map_err(db_err)?;
        found.map(worktree).transpose()
    }

    /// The worktrees of `task`'s executions, oldest first.
    pub async fn task_worktrees(&self, task: Id) -> StoreResult<Vec<Worktree>> {
        let rows = execution_worktrees::Entity::find()
            .filter(W::TaskId.eq(task))
            .order_by_asc(W::ExecutionId)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        rows.into_iter().map(worktree).collect()
    }

    /// Every worktree whose branch still exists by the records (on disk, or closed).
    pub async fn live_worktrees(&self) -> StoreResult<Vec<Worktree>> {
        let rows = execution_worktrees::Entity::find()
            .filter(W::State.is_in([WorktreeState::Active.name(), WorktreeState::Closed.name()]))
            .order_by_asc(W::ExecutionId)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        rows.into_iter().map(worktree).collect()
    }

    /// Forgets `execution`'s worktree record (before a new one replaces it).
    pub async fn forget_worktree(&self, execution: Id) -> StoreResult<()> {
        let _w = self.writing().await;
        execution_worktrees::Entity::delete_by_id(execution).exec(&self.db).await.map_err(db_err)?;
        Ok(())
    }

    /// Moves `execution`'s worktree to `state`.
    pub async fn set_worktree_state(&self, execution: Id, state: WorktreeState) -> StoreResult<()> {
        let _w = self.writing().await;
        execution_worktrees::Entity::update_many()
            .col_expr(W::State, sea_orm::sea_query::Expr::value(state.name()))
            .col_expr(W::UpdatedAt, sea_orm::sea_query::Expr::value(Utc::now()))
            .filter(W::ExecutionId.eq(execution))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
