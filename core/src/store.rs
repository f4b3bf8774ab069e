//! The storage port. One trait, implemented by the sea-orm adapter for SQLite and PostgreSQL
//! and checked by one contract suite against both (tests/tests/it/store_contract.rs).

use async_trait::async_trait;

use crate::model::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    /// Optimistic concurrency: someone else changed the row since it was read. Re-read, re-apply.
    #[error("{entity} {id} was changed concurrently (expected version {expected})")]
    Conflict { entity: &'static str, id: Id, expected: i32 },
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The caller's lease on an execution is gone (expired and taken over, or released):
    /// it must stop acting for that execution.
    #[error("execution {0}: this replica no longer owns it")]
    Fenced(Id),
    #[error("database: {0}")]
    Backend(String),
    /// The database was briefly unable to take the write (a lock held elsewhere, a deadlock
    /// or serialization failure): the same write may succeed when tried again.
    #[error("database busy: {0}")]
    Busy(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub project_id: Option<Id>,
    pub title: String,
    pub goal: String,
    pub created_by: Option<Id>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewExecution {
    pub task_id: Id,
    pub agent: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewApproval {
    pub task_id: Id,
    pub execution_id: Option<Id>,
    pub turn_id: Option<Id>,
    pub request_id: String,
    pub action: String,
}

/// What `/metrics` reports about the durable queues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Inbound updates accepted and not handled yet.
    pub inbox_pending: u64,
    /// Inbound updates set aside after failing (see `Store::inbox_failed`).
    pub inbox_set_aside: u64,
    /// Outbound messages not delivered yet.
    pub outbox_pending: u64,
    /// Outbound messages given up on (the platform refused them for good).
    pub outbox_dropped: u64,
    /// Executions with work waiting for a runner.
    pub executions_with_work: u64,
}

#[async_trait]
pub trait Store: Send + Sync {
    // People and places.
    async fn create_person(&self, name: &str) -> StoreResult<Person>;
    async fn person(&self, id: Id) -> StoreResult<Person>;
    /// Links `(channel, external_id)` to a person; fails with `AlreadyExists` when linked.
    async fn link_identity(
        &self,
        person_id: Id,
        channel: Channel,
        external_id: &str,
        display_name: Option<&str>,
    ) -> StoreResult<Identity>;
    async fn find_identity(&self, channel: Channel, external_id: &str) -> StoreResult<Option<Identity>>;
    /// Creates the project or updates its path and default agent (projects come from config).
    async fn upsert_project(&self, name: &str, path: &str, default_agent: Option<&str>) -> StoreResult<Project>;
    async fn projects(&self) -> StoreResult<Vec<Project>>;
    /// The conversation for a chat (and thread), created on first sight.
    async fn conversation(&self, channel: Channel, chat_id: &str, thread_id: &str) -> StoreResult<Conversation>;
    async fn set_focus(&self, conversation_id: Id, task_id: Option<Id>) -> StoreResult<()>;

    // Work. `update_*` take the row as read and fail with `Conflict` when its version moved.
    async fn create_task(&self, new: NewTask) -> StoreResult<Task>;
    async fn task(&self, id: Id) -> StoreResult<Task>;
    async fn update_task(&self, task: &Task) -> StoreResult<Task>;
    /// Tasks, most recently updated first.
    async fn tasks(&self, limit: u64) -> StoreResult<Vec<Task>>;
    async fn create_execution(&self, new: NewExecution) -> StoreResult<Execution>;
    async fn execution(&self, id: Id) -> StoreResult<Execution>;
    async fn update_execution(&self, execution: &Execution) -> StoreResult<Execution>;
    async fn executions(&self, task_id: Id) -> StoreResult<Vec<Execution>>;
    async fn create_session(&self, execution_id: Id, model: Option<&str>) -> StoreResult<RuntimeSession>;
    async fn session(&self, id: Id) -> StoreResult<RuntimeSession>;
    async fn update_session(&self, session: &RuntimeSession) -> StoreResult<RuntimeSession>;
    /// The newest session of an execution, usable or not.
    async fn latest_session(&self, execution_id: Id) -> StoreResult<Option<RuntimeSession>>;
    /// A queued turn; its execution is flagged as having work (see [`Store::work`]).
    async fn create_turn(&self, session_id: Id, input: &str) -> StoreResult<Turn>;
    async fn turn(&self, id: Id) -> StoreResult<Turn>;
    async fn update_turn(&self, turn: &Turn) -> StoreResult<Turn>;
    /// Turns not yet ended (queued, running, waiting for approval), oldest first; of one
    /// session, or of all.
    async fn open_turns(&self, session_id: Option<Id>) -> StoreResult<Vec<Turn>>;
    /// An execution's turns not yet ended, in every session of it, oldest first.
    async fn execution_turns(&self, execution_id: Id) -> StoreResult<Vec<Turn>>;
    /// Files that go to the agent with `turn` (written with the turn, in its transaction).
    async fn attach_to_turn(&self, turn: Id, files: &[crate::attachment::Attachment]) -> StoreResult<()>;
    /// The files of `turn`, in the order they were attached.
    async fn turn_attachments(&self, turn: Id) -> StoreResult<Vec<crate::attachment::Attachment>>;

    // Ownership: one live replica runs an execution with open work (see `Lease`).
    /// Takes `execution` for `owner` until `until` when nobody holds it, its holder's lease
    /// expired before `now`, or `owner` holds it already. Every claim gets a new fence.
    async fn claim(&self, execution: Id, owner: &str, now: Timestamp, until: Timestamp) -> StoreResult<Option<Lease>>;
    /// Extends every lease `owner` holds; returns how many.
    async fn renew_leases(&self, owner: &str, until: Timestamp) -> StoreResult<u64>;
    /// Fails with `Fenced` unless `lease` is still current (then extends it to `until`). The
    /// first statement of every transaction an owner writes for its execution.
    async fn check_lease(&self, lease: &Lease, until: Timestamp) -> StoreResult<()>;
    /// Gives the execution up now (its work, if any, is taken by the next claim).
    async fn release(&self, lease: &Lease) -> StoreResult<()>;
    /// Drops every lease: only where no other process can hold one (SQLite, one process).
    async fn release_all(&self) -> StoreResult<u64>;
    /// Executions with work waiting (queued turns, orders), at most `limit`.
    async fn work(&self, limit: u64) -> StoreResult<Vec<Work>>;
    /// The owner has nothing left to do for its execution: clears the work flag unless work
    /// arrived after `seen` (the `Work::seq` it acted on). Returns whether it was cleared.
    async fn work_done(&self, lease: &Lease, seen: i64) -> StoreResult<bool>;
    /// The execution's current work sequence number.
    async fn work_seq(&self, execution: Id) -> StoreResult<i64>;
    /// Leaves an order for the execution's owner (and flags the execution as having work).
    async fn give_order(&self, execution: Id, order: &Order) -> StoreResult<Id>;
    /// Orders not yet carried out, oldest first.
    async fn orders(&self, execution: Id) -> StoreResult<Vec<PendingOrder>>;
    async fn order_done(&self, id: Id) -> StoreResult<()>;

    // Approvals.
    async fn create_approval(&self, new: NewApproval) -> StoreResult<Approval>;
    async fn approval(&self, id: Id) -> StoreResult<Approval>;
    async fn update_approval(&self, approval: &Approval) -> StoreResult<Approval>;
    /// Pending approvals, oldest first; of one task, or of all.
    async fn pending_approvals(&self, task_id: Option<Id>) -> StoreResult<Vec<Approval>>;
    /// A task's approvals in any status, newest first (a late answer may name a decided one).
    async fn approvals(&self, task_id: Id, limit: u64) -> StoreResult<Vec<Approval>>;
    /// Standing approvals: stored, listed (active ones, of a project or all), revoked, matched.
    async fn add_rule(&self, rule: NewApprovalRule) -> StoreResult<ApprovalRule>;
    async fn rules(&self, project_id: Option<Id>) -> StoreResult<Vec<ApprovalRule>>;
    /// Revokes an active rule; `false` when there is none with that id.
    async fn revoke_rule(&self, id: Id) -> StoreResult<bool>;
    /// The active rule that approves exactly `action` of `agent` in `project_id`.
    async fn matching_rule(
        &self,
        project_id: Option<Id>,
        agent: &str,
        action: &str,
    ) -> StoreResult<Option<ApprovalRule>>;
    /// Appends a decision to the audit log, chained to the entry before (the chain is
    /// extended by one writer at a time on every backend).
    async fn append_audit(&self, entry: NewAuditEntry) -> StoreResult<AuditEntry>;
    /// Audit entries after `after`, oldest first.
    async fn audit(&self, after: Id, limit: u64) -> StoreResult<Vec<AuditEntry>>;

    // The timeline and the restart note: append-only.
    async fn append_event(&self, event: NewEvent) -> StoreResult<Event>;
    /// A task's events in the order they were appended.
    async fn timeline(&self, task_id: Id) -> StoreResult<Vec<Event>>;
    /// A task's newest `limit` events, oldest first: what reading a conversation needs,
    /// in time that does not grow with the task's history.
    async fn recent_events(&self, task_id: Id, limit: u64) -> StoreResult<Vec<Event>>;
    /// The newest `per_kind` events of each of `kinds`, of each of `tasks`, oldest first: what
    /// a decision reads of every visible task, in one query whatever their number or history.
    async fn recent_events_of(&self, tasks: &[Id], kinds: &[EventKind], per_kind: u64) -> StoreResult<Vec<Event>>;
    async fn add_note_entry(&self, entry: NewNoteEntry) -> StoreResult<NoteEntry>;
    async fn note_entries(&self, task_id: Id) -> StoreResult<Vec<NoteEntry>>;

    // Inbox: persisted before the platform is acknowledged.
    async fn inbox_accept(&self, inbound: NewInbound) -> StoreResult<InboxOutcome>;
    /// A channel's accepted and not yet processed updates, oldest first. Per channel: each
    /// channel's worker drains its own, so one slow channel never starves another.
    async fn inbox_pending(&self, channel: Channel, limit: u64) -> StoreResult<Vec<Inbound>>;
    /// Marks the update handled. `true` when this call did it, `false` when it was handled
    /// already: inside a decision's transaction that makes each update decided once, even
    /// when a drain leader died between deciding and saying so, or two leaders overlapped.
    async fn inbox_done(&self, id: Id) -> StoreResult<bool>;
    /// Handling the update failed: counts the attempt and keeps the error. With `set_aside` the
    /// row is done (never handled again) and stays visible with its error.
    async fn inbox_failed(&self, id: Id, error: &str, set_aside: bool) -> StoreResult<()>;
    /// Sets these updates aside unhandled, all with `reason` (a flood beyond the sender's
    /// `max_waiting`): done, and visible like the failed ones.
    async fn inbox_set_aside_many(&self, ids: &[Id], reason: &str) -> StoreResult<()>;
    /// Updates set aside after failing, newest first.
    async fn inbox_set_aside(&self, limit: u64) -> StoreResult<Vec<Inbound>>;

    // Outbox: ordered per chat, retried with a next-attempt time.
    async fn outbox_enqueue(&self, message: NewOutbound) -> StoreResult<Outbound>;
    /// The next message of each chat whose next attempt is due: the oldest unsent one of the
    /// highest priority waiting in that chat (`ReplyKind::priority`: approval cards and
    /// questions before informational rows), so within a priority a chat never sees messages
    /// out of order. Urgent chats' heads first.
    /// Per channel, like the inbox: each channel's sender takes only its own.
    async fn outbox_due(&self, channel: Channel, now: Timestamp, limit: u64) -> StoreResult<Vec<Outbound>>;
    async fn outbox_sent(&self, id: Id, external_message_id: Option<&str>) -> StoreResult<()>;
    async fn outbox_retry(&self, id: Id, next_attempt_at: Timestamp, error: &str) -> StoreResult<()>;
    /// Gives up on a message the platform will never accept (bot blocked, chat gone, refused
    /// for good): done, without a message, marked dropped with its error (counted in
    /// [`StoreStats::outbox_dropped`]).
    async fn outbox_dropped(&self, id: Id, error: &str) -> StoreResult<()>;
    /// Messages given up on ([`Store::outbox_dropped`]), newest first: what the console lists
    /// as undelivered. Superseded live updates are not among them.
    async fn outbox_given_up(&self, limit: u64) -> StoreResult<Vec<Outbound>>;
    /// One outbound message (a button press names the message its keyboard belongs to).
    async fn outbound(&self, id: Id) -> StoreResult<Outbound>;
    /// The outbound message the platform knows as `external_message_id`, to route replies.
    async fn outbound_by_external_id(
        &self,
        channel: Channel,
        chat_id: &str,
        external_message_id: &str,
    ) -> StoreResult<Option<Outbound>>;

    /// Tasks the outbox has written about in a chat, most recently first: the tasks that chat
    /// has seen, whichever channel started them. Read from the chat's newest rows only (a
    /// bounded window), so a long history costs nothing: a task the chat has not heard of in
    /// the last few hundred messages is no longer "visible" there.
    async fn chat_tasks(&self, channel: Channel, chat_id: &str, limit: u64) -> StoreResult<Vec<Id>>;
    // Several rows in one read each, so a conversation's context costs a fixed number of
    // queries however many tasks it shows.
    /// The tasks of `ids` that exist, in no particular order.
    async fn tasks_by_id(&self, ids: &[Id]) -> StoreResult<Vec<Task>>;
    /// The executions of several tasks, oldest first.
    async fn executions_of(&self, task_ids: &[Id]) -> StoreResult<Vec<Execution>>;
    /// Each execution's newest session, for several executions (those that have one).
    async fn latest_sessions(&self, execution_ids: &[Id]) -> StoreResult<Vec<RuntimeSession>>;
    /// The open turns (queued, running, waiting) of several sessions, oldest first.
    async fn open_turns_of(&self, session_ids: &[Id]) -> StoreResult<Vec<Turn>>;
    /// The pending approvals of several tasks, oldest first.
    async fn pending_approvals_of(&self, task_ids: &[Id]) -> StoreResult<Vec<Approval>>;
    /// The newest outbound message about a task: where its news goes when no one is asking.
    async fn latest_outbound(&self, task_id: Id) -> StoreResult<Option<Outbound>>;
    /// The cards that showed `approval` (outbound messages carrying it), oldest first: every
    /// copy is edited when it is decided.
    async fn approval_cards(&self, approval: Id) -> StoreResult<Vec<Outbound>>;
    /// Whether the outbox wrote about `approval` (or, with `approval` `None`, about `task`) to
    /// this chat: a button press counts only where its message was shown.
    async fn shown_in(
        &self,
        channel: Channel,
        chat_id: &str,
        approval: Option<Id>,
        task: Option<Id>,
    ) -> StoreResult<bool>;

    /// Whether the database answers (readiness).
    async fn ping(&self) -> StoreResult<()>;
    /// Counts an operator watches (`/metrics`).
    async fn stats(&self) -> StoreResult<StoreStats>;

    // The web console: change feeds, chat history, settings.
    /// Events of every task appended after event `after`, oldest first, at most `limit`: what
    /// changed since the last look (the console's live-update hints).
    async fn events_after(&self, after: Id, limit: u64) -> StoreResult<Vec<Event>>;
    /// A channel's newest `limit` inbound updates, processed or not, oldest first.
    async fn inbox_recent(&self, channel: Channel, limit: u64) -> StoreResult<Vec<Inbound>>;
    /// A chat's newest `limit` outbound messages, sent or not, oldest first.
    async fn outbox_recent(&self, channel: Channel, chat_id: &str, limit: u64) -> StoreResult<Vec<Outbound>>;
    /// A small named value (e.g. the console login token's hash); `None` when never set.
    async fn setting(&self, key: &str) -> StoreResult<Option<String>>;
    /// Sets or replaces a named value.
    async fn put_setting(&self, key: &str, value: &str) -> StoreResult<()>;

    // Linking identities across channels.
    /// Stores a one-time link code issued to `code.person_id`; `AlreadyExists` if the code is taken.
    async fn create_link_code(&self, code: &LinkCode) -> StoreResult<()>;
    /// Uses a link code up: returns it the first time it is redeemed before `expires_at`, and
    /// `None` when unknown, expired or already used (also when two redeem it at once).
    async fn redeem_link_code(&self, code: &str, now: Timestamp) -> StoreResult<Option<LinkCode>>;
    /// Makes `from` and `into` one person: `from`'s identities, the tasks it created and the
    /// approvals it decided move to `into`. The `from` row stays, unused, for the audit trail.
    async fn merge_person(&self, from: Id, into: Id) -> StoreResult<()>;
}
