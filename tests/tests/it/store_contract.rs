//! The store contract: one suite, run against SQLite always and against PostgreSQL when
//! `TASKGATE_TEST_DATABASE_URL` names a server. Each case gets a fresh database. Without that
//! variable the PostgreSQL cases are reported as ignored (never as passed), and under `CI=true`
//! they fail.

use chrono::{Duration, Utc};
use serde_json::json;
use taskgate_core::model::*;
use taskgate_core::store::*;
use taskgate_tests::db::{self, Backend, TestDb};
use taskgate_tests::harness::{Flavor, Trial};

const CASES: &[(&str, db::Case)] = taskgate_tests::db_cases![
    inbox_dedupes_on_channel_and_external_id,
    outbox_is_ordered_per_chat_with_retries,
    outbox_sends_urgent_rows_first_and_counts_what_it_drops,
    tasks_use_optimistic_concurrency,
    executions_use_optimistic_concurrency,
    approvals_resolve_once_across_workers,
    timeline_is_append_only_and_ordered,
    people_identities_and_conversations,
    sessions_and_turns_follow_the_sticky_rule,
    restart_note_entries_keep_evidence,
    migrations_are_idempotent_and_safe_when_concurrent,
    transactions_apply_all_or_nothing,
    references_are_enforced,
    engine_lookups_find_open_work_and_chat_tasks,
    console_feeds_and_settings,
    link_codes_redeem_once_and_merge_people,
    executions_are_owned_through_leases_with_fencing,
    work_is_flagged_by_turns_and_orders,
    text_with_nul_is_stored_faithfully,
    poison_inbox_rows_are_set_aside_with_their_error,
    rules_approve_exactly_their_action_until_revoked,
    the_audit_log_is_a_chain_that_detects_edits,
];

/// Every case on both backends: `store_contract::sqlite::…` and `store_contract::postgres::…`.
pub fn trials() -> Vec<Trial> {
    [Backend::Sqlite, Backend::Postgres]
        .into_iter()
        .flat_map(|backend| db::trials(module_path!(), backend, CASES, Flavor::CurrentThread, None))
        .collect()
}

async fn task(store: &dyn Store, title: &str) -> anyhow::Result<Task> {
    Ok(store
        .create_task(NewTask { project_id: None, title: title.into(), goal: title.into(), created_by: None })
        .await?)
}

async fn inbox_dedupes_on_channel_and_external_id(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let update = |channel, id: &str| NewInbound {
        channel,
        external_id: id.into(),
        payload: json!({"update_id": id, "text": "make the button green"}),
    };
    let InboxOutcome::Accepted(first) = store.inbox_accept(update(Channel::Telegram, "100")).await? else {
        anyhow::bail!("first delivery was not accepted");
    };
    // A redelivery is a no-op reported as a duplicate of the stored row.
    assert_eq!(store.inbox_accept(update(Channel::Telegram, "100")).await?, InboxOutcome::Duplicate(first));
    // The key is (channel, external id): the same id on another channel is another update.
    let InboxOutcome::Accepted(other) = store.inbox_accept(update(Channel::Feishu, "100")).await? else {
        anyhow::bail!("same id on another channel was not accepted");
    };
    assert_ne!(first, other);

    // Each channel drains its own updates.
    let pending = store.inbox_pending(Channel::Telegram, 10).await?;
    assert_eq!(pending.iter().map(|i| i.id).collect::<Vec<_>>(), vec![first]);
    assert_eq!(pending[0].payload["text"], "make the button green");
    let feishu = store.inbox_pending(Channel::Feishu, 10).await?;
    assert_eq!(feishu.iter().map(|i| i.id).collect::<Vec<_>>(), vec![other]);
    assert!(store.inbox_done(first).await?, "the first call marks it handled");
    assert!(!store.inbox_done(first).await?, "a second call finds it handled");
    assert!(store.inbox_pending(Channel::Telegram, 10).await?.is_empty());
    assert_eq!(store.inbox_pending(Channel::Feishu, 10).await?.len(), 1);
    // Still a duplicate after processing: a late redelivery must not run twice.
    assert_eq!(store.inbox_accept(update(Channel::Telegram, "100")).await?, InboxOutcome::Duplicate(first));
    assert!(matches!(store.inbox_done(9999).await, Err(StoreError::NotFound { .. })));
    Ok(())
}

/// Within a chat, an approval card (or a question) is the head before the chatter queued ahead
/// of it, and a refusal to a stranger waits behind everything; across chats urgent heads come
/// first. Dropped rows are done and counted; a flood's tail is set aside in one go.
async fn outbox_sends_urgent_rows_first_and_counts_what_it_drops(db: &TestDb) -> anyhow::Result<()> {
    use taskgate_core::reply::{Reply, ReplyKind};
    let store = db.store().await?;
    let msg = |chat: &str, kind: ReplyKind| NewOutbound {
        channel: Channel::Telegram,
        chat_id: chat.into(),
        task_id: None,
        approval_id: None,
        payload: Reply::text(format!("{kind:?}")).kind(kind),
    };
    let ids = |v: Vec<Outbound>| v.into_iter().map(|o| o.id).collect::<Vec<_>>();
    let refusal = store.outbox_enqueue(msg("a", ReplyKind::Refusal)).await?;
    let chatter = store.outbox_enqueue(msg("a", ReplyKind::Status)).await?;
    let answer = store.outbox_enqueue(msg("a", ReplyKind::Final)).await?;
    let other = store.outbox_enqueue(msg("b", ReplyKind::Answer)).await?;
    let card = store.outbox_enqueue(msg("a", ReplyKind::Approval)).await?;
    let question = store.outbox_enqueue(msg("a", ReplyKind::Question)).await?;
    let now = Utc::now() + Duration::seconds(1);
    assert_eq!(ids(store.outbox_due(Channel::Telegram, now, 10).await?), vec![card.id, other.id], "urgent first");
    store.outbox_sent(card.id, Some("1")).await?;
    assert_eq!(ids(store.outbox_due(Channel::Telegram, now, 10).await?), vec![question.id, other.id]);
    store.outbox_sent(question.id, Some("2")).await?;
    assert_eq!(ids(store.outbox_due(Channel::Telegram, now, 10).await?), vec![chatter.id, other.id]);
    // A rate-limited head holds its chat (nothing overtakes a 429).
    store.outbox_retry(chatter.id, now + Duration::seconds(60), "rate limited").await?;
    assert_eq!(ids(store.outbox_due(Channel::Telegram, now, 10).await?), vec![other.id]);
    store.outbox_sent(chatter.id, Some("3")).await?;
    assert_eq!(ids(store.outbox_due(Channel::Telegram, now, 1).await?), vec![answer.id]);
    store.outbox_dropped(answer.id, "Forbidden: bot was blocked by the user").await?;
    assert_eq!(
        ids(store.outbox_due(Channel::Telegram, now, 10).await?),
        vec![other.id, refusal.id],
        "strangers last, in their chat and across chats"
    );
    let stats = store.stats().await?;
    assert_eq!(stats.outbox_dropped, 1);
    let dropped = store.outbound(answer.id).await?;
    assert!(dropped.sent_at.is_some() && dropped.external_message_id.is_none());
    assert_eq!(dropped.last_error.as_deref(), Some("Forbidden: bot was blocked by the user"));
    // Listed as undelivered; sent rows (and rows marked done without a message) are not.
    store.outbox_sent(other.id, None).await?;
    assert_eq!(ids(store.outbox_given_up(10).await?), vec![answer.id]);

    let mut flood = Vec::new();
    for n in 0..700 {
        let row = store
            .inbox_accept(taskgate_core::model::NewInbound {
                channel: Channel::Telegram,
                external_id: format!("flood-{n}"),
                payload: serde_json::json!({"n": n}),
            })
            .await?;
        if let taskgate_core::model::InboxOutcome::Accepted(row) = row {
            flood.push(row);
        }
    }
    store.inbox_set_aside_many(&flood[1..], "set aside unanswered").await?;
    assert_eq!(ids_in(store.inbox_pending(Channel::Telegram, 1000).await?), vec![flood[0]]);
    assert_eq!(store.stats().await?.inbox_set_aside, 699);
    Ok(())
}

fn ids_in(rows: Vec<taskgate_core::model::Inbound>) -> Vec<Id> {
    rows.into_iter().map(|r| r.id).collect()
}

async fn outbox_is_ordered_per_chat_with_retries(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let msg = |chat: &str, text: &str| NewOutbound {
        channel: Channel::Telegram,
        chat_id: chat.into(),
        task_id: None,
        approval_id: None,
        payload: taskgate_core::reply::Reply::text(text),
    };
    let a1 = store.outbox_enqueue(msg("a", "a1")).await?;
    let a2 = store.outbox_enqueue(msg("a", "a2")).await?;
    let b1 = store.outbox_enqueue(msg("b", "b1")).await?;
    // Another channel's chat with the same id is another queue, for another sender.
    let f1 = store.outbox_enqueue(NewOutbound { channel: Channel::Feishu, ..msg("a", "f1") }).await?;
    let ids = |v: Vec<Outbound>| v.into_iter().map(|o| o.id).collect::<Vec<_>>();
    let now = Utc::now() + Duration::seconds(1);

    // Only the head of each chat is due.
    assert_eq!(ids(store.outbox_due(Channel::Telegram, now, 10).await?), vec![a1.id, b1.id]);

    // a1 hits a rate limit: it and everything behind it in chat a wait; chat b goes on.
    let later = now + Duration::seconds(60);
    store.outbox_retry(a1.id, later, "429 retry after 60").await?;
    assert_eq!(ids(store.outbox_due(Channel::Telegram, now, 10).await?), vec![b1.id]);
    store.outbox_sent(b1.id, Some("m-77")).await?;
    assert_eq!(ids(store.outbox_due(Channel::Telegram, now, 10).await?), Vec::<Id>::new());

    let due = store.outbox_due(Channel::Telegram, later, 10).await?;
    assert_eq!(ids(due.clone()), vec![a1.id]);
    assert_eq!(due[0].attempts, 1);
    assert_eq!(due[0].last_error.as_deref(), Some("429 retry after 60"));
    store.outbox_sent(a1.id, Some("m-78")).await?;
    assert_eq!(ids(store.outbox_due(Channel::Telegram, later, 10).await?), vec![a2.id]);

    assert_eq!(ids(store.outbox_due(Channel::Feishu, later, 10).await?), vec![f1.id]);

    // Replies to a sent message find it again.
    let found = store.outbound_by_external_id(Channel::Telegram, "b", "m-77").await?;
    assert_eq!(found.map(|o| o.id), Some(b1.id));
    assert_eq!(store.outbound_by_external_id(Channel::Telegram, "a", "m-77").await?, None);
    // And by id (a button press names the row its keyboard belongs to).
    let by_id = store.outbound(b1.id).await?;
    assert_eq!((by_id.chat_id.as_str(), by_id.external_message_id.as_deref()), ("b", Some("m-77")));
    assert!(matches!(store.outbound(9999).await, Err(StoreError::NotFound { .. })));
    Ok(())
}

async fn tasks_use_optimistic_concurrency(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let created = task(&store, "fix routing for /api/v2").await?;
    assert_eq!((created.status, created.version), (TaskStatus::Idle, 0));

    let mut first = store.task(created.id).await?;
    let mut second = store.task(created.id).await?;
    first.status = first.status.transition(TaskStatus::Running)?;
    let saved = store.update_task(&first).await?;
    assert_eq!((saved.status, saved.version), (TaskStatus::Running, 1));

    // The second writer read version 0: its write is refused, not silently applied.
    second.status = TaskStatus::Cancelled;
    let err = store.update_task(&second).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { entity: "task", expected: 0, .. }), "{err}");
    assert_eq!(store.task(created.id).await?.status, TaskStatus::Running);

    // Re-read and re-apply works.
    let mut fresh = store.task(created.id).await?;
    fresh.next_action = Some("run the e2e suite".into());
    assert_eq!(store.update_task(&fresh).await?.version, 2);

    let mut ghost = fresh.clone();
    ghost.id = 9999;
    assert!(matches!(store.update_task(&ghost).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(store.task(9999).await, Err(StoreError::NotFound { .. })));

    let newer = task(&store, "write release notes").await?;
    let listed: Vec<Id> = store.tasks(10).await?.iter().map(|t| t.id).collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&newer.id) && listed.contains(&created.id));
    Ok(())
}

async fn executions_use_optimistic_concurrency(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let t = task(&store, "add dark mode").await?;
    let editor =
        store.create_execution(NewExecution { task_id: t.id, agent: "codex".into(), role: Role::Editor }).await?;
    let reviewer =
        store.create_execution(NewExecution { task_id: t.id, agent: "claude".into(), role: Role::Reviewer }).await?;
    assert_eq!(editor.status, ExecutionStatus::Pending);

    let mut a = store.execution(editor.id).await?;
    let mut b = a.clone();
    a.status = a.status.transition(ExecutionStatus::Running)?;
    assert_eq!(store.update_execution(&a).await?.version, 1);
    b.status = ExecutionStatus::Cancelled;
    assert!(matches!(store.update_execution(&b).await, Err(StoreError::Conflict { entity: "execution", .. })));

    let all = store.executions(t.id).await?;
    assert_eq!(
        all.iter().map(|e| (e.id, e.agent.as_str(), e.role, e.status)).collect::<Vec<_>>(),
        vec![
            (editor.id, "codex", Role::Editor, ExecutionStatus::Running),
            (reviewer.id, "claude", Role::Reviewer, ExecutionStatus::Pending),
        ]
    );
    Ok(())
}

async fn approvals_resolve_once_across_workers(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let alice = store.create_person("Alice").await?;
    let bob = store.create_person("Bob").await?;
    let t = task(&store, "fix flaky checkout test").await?;
    let approval = store
        .create_approval(NewApproval {
            task_id: t.id,
            execution_id: None,
            turn_id: None,
            request_id: "req-7".into(),
            action: "run `npm test`".into(),
        })
        .await?;
    assert_eq!(store.pending_approvals(Some(t.id)).await?.len(), 1);

    // Two workers (a Telegram button and a Feishu card) read the same pending approval.
    let mut via_telegram = store.approval(approval.id).await?;
    let mut via_feishu = store.approval(approval.id).await?;
    via_telegram.decide(Answer::Approve(Scope::Once), alice.id, Channel::Telegram, Utc::now())?;
    via_feishu.decide(Answer::Deny, bob.id, Channel::Feishu, Utc::now())?;
    store.update_approval(&via_telegram).await?;
    assert!(matches!(store.update_approval(&via_feishu).await, Err(StoreError::Conflict { entity: "approval", .. })));

    // The loser re-reads and learns who decided first; the stored answer is Alice's.
    let mut reread = store.approval(approval.id).await?;
    let already = reread.decide(Answer::Deny, bob.id, Channel::Feishu, Utc::now()).unwrap_err();
    assert_eq!(
        (already.status, already.by, already.channel),
        (ApprovalStatus::Approved, Some(alice.id), Some(Channel::Telegram))
    );
    assert!(already.at.is_some());
    assert_eq!(reread.scope, Some(Scope::Once));
    assert!(store.pending_approvals(Some(t.id)).await?.is_empty());
    assert!(store.pending_approvals(None).await?.is_empty());
    Ok(())
}

async fn timeline_is_append_only_and_ordered(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let t1 = task(&store, "fix routing").await?;
    let t2 = task(&store, "release notes").await?;
    let event = |task_id, body: Body| NewEvent {
        task_id,
        execution_id: None,
        channel: Some(Channel::Web),
        actor: Some("alice".into()),
        body: body.into(),
    };
    let said = |text: &str| Body::Message {
        text: text.into(),
        from: "alice".into(),
        person_id: None,
        channel: Some(Channel::Web),
    };
    store.append_event(event(t1.id, said("fix it"))).await?;
    store.append_event(event(t2.id, said("other task"))).await?;
    let ran = Body::CommandFinished {
        id: "c1".into(),
        command: "npm test".into(),
        status: taskgate_core::runtime::CommandStatus::Failed,
        exit_code: Some(1),
        output_tail: String::new(),
    };
    store.append_event(event(t1.id, ran.clone())).await?;
    let ended = Body::TurnFinished {
        turn: 1,
        outcome: taskgate_core::runtime::TurnOutcome::Failed { message: "tests still red".into() },
        usage: None,
        summary: "tests still red".into(),
        evidence: TurnEvidence::default(),
    };
    store.append_event(event(t1.id, ended)).await?;

    let timeline = store.timeline(t1.id).await?;
    assert_eq!(
        timeline.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![EventKind::Message, EventKind::Command, EventKind::Result]
    );
    assert!(timeline.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(timeline[1].body, EventBody::from(ran), "a typed body comes back as it went in");
    assert_eq!(timeline[0].channel, Some(Channel::Web));
    assert_eq!(store.timeline(t2.id).await?.len(), 1);
    Ok(())
}

async fn people_identities_and_conversations(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let alice = store.create_person("Alice").await?;
    let tg = store.link_identity(alice.id, Channel::Telegram, "1001", Some("@alice")).await?;
    store.link_identity(alice.id, Channel::Feishu, "ou_abc", None).await?;
    let found = store.find_identity(Channel::Telegram, "1001").await?.expect("linked identity");
    assert_eq!((found.id, found.person_id), (tg.id, alice.id));
    assert_eq!(store.find_identity(Channel::Telegram, "ou_abc").await?, None);
    let bob = store.create_person("Bob").await?;
    assert!(matches!(
        store.link_identity(bob.id, Channel::Telegram, "1001", None).await,
        Err(StoreError::AlreadyExists(_))
    ));

    let conv = store.conversation(Channel::Telegram, "-100", "").await?;
    let topic = store.conversation(Channel::Telegram, "-100", "42").await?;
    assert_ne!(conv.id, topic.id, "a forum topic is its own conversation");
    assert_eq!(store.conversation(Channel::Telegram, "-100", "").await?.id, conv.id);
    let t = task(&store, "fix routing").await?;
    store.set_focus(conv.id, Some(t.id)).await?;
    assert_eq!(store.conversation(Channel::Telegram, "-100", "").await?.focused_task_id, Some(t.id));
    assert_eq!(store.conversation(Channel::Telegram, "-100", "42").await?.focused_task_id, None);

    let p = store.upsert_project("web", "/srv/web", Some("codex")).await?;
    let p2 = store.upsert_project("web", "/srv/web2", Some("claude")).await?;
    assert_eq!(p.id, p2.id);
    assert_eq!(
        store.projects().await?.iter().map(|p| (p.path.as_str(), p.default_agent.as_deref())).collect::<Vec<_>>(),
        vec![("/srv/web2", Some("claude"))]
    );
    Ok(())
}

async fn sessions_and_turns_follow_the_sticky_rule(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let t = task(&store, "fix routing").await?;
    let exec =
        store.create_execution(NewExecution { task_id: t.id, agent: "codex".into(), role: Role::Editor }).await?;
    assert_eq!(store.latest_session(exec.id).await?, None);

    let mut session = store.create_session(exec.id, Some("gpt-5")).await?;
    session.status = session.status.transition(SessionStatus::Ready)?;
    session.provider_session_id = Some("thread-1".into());
    let mut session = store.update_session(&session).await?;

    for (input, end) in [("fix it", TurnStatus::Failed), ("try again", TurnStatus::Completed)] {
        let mut turn = store.create_turn(session.id, input).await?;
        turn.status = turn.status.transition(TurnStatus::Running)?;
        session.status = session.status.transition(SessionStatus::Busy)?;
        session = store.update_session(&session).await?;
        turn.status = turn.status.transition(end)?;
        turn.summary = Some(format!("{end}"));
        let turn = store.update_turn(&turn).await?;
        session.status = session.status.transition(turn.status.session_after())?;
        session = store.update_session(&session).await?;
    }
    // Both turns ran in the same session, which is still the one a follow-up goes to.
    let latest = store.latest_session(exec.id).await?.expect("session");
    assert_eq!((latest.id, latest.status), (session.id, SessionStatus::Ready));
    assert_eq!(latest.provider_session_id.as_deref(), Some("thread-1"));

    // A crash: the session is dead, the replacement becomes the latest.
    session.status = session.status.transition(SessionStatus::Dead)?;
    store.update_session(&session).await?;
    let replacement = store.create_session(exec.id, Some("gpt-5")).await?;
    assert_eq!(store.latest_session(exec.id).await?.map(|s| s.id), Some(replacement.id));
    Ok(())
}

async fn restart_note_entries_keep_evidence(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let t = task(&store, "checkout test flakes").await?;
    let entry = |kind, text: &str, evidence: &[&str]| NewNoteEntry {
        task_id: t.id,
        kind,
        text: text.into(),
        evidence: evidence.iter().map(|s| s.to_string()).collect(),
        author: "execution:1".into(),
        commit: Some("abc123".into()),
    };
    store.add_note_entry(entry(NoteKind::Verified, "fails only with TZ=UTC", &["turn:3", "cmd:7"])).await?;
    store.add_note_entry(entry(NoteKind::Rejected, "not a race in the cart store", &["turn:4"])).await?;
    // A contradiction is a new entry, never an overwrite.
    store.add_note_entry(entry(NoteKind::Stale, "fails only with TZ=UTC", &["commit:def456"])).await?;
    let entries = store.note_entries(t.id).await?;
    assert_eq!(
        entries.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![NoteKind::Verified, NoteKind::Rejected, NoteKind::Stale]
    );
    assert_eq!(entries[0].evidence, vec!["turn:3".to_string(), "cmd:7".to_string()]);
    assert_eq!(entries[0].commit.as_deref(), Some("abc123"));
    Ok(())
}

async fn migrations_are_idempotent_and_safe_when_concurrent(db: &TestDb) -> anyhow::Result<()> {
    // Several replicas (separate connection pools) start at once on a fresh PostgreSQL database.
    // SQLite has one process by design (`serve` locks the data dir), so there it is one.
    let count = if db.url.starts_with("postgres") { 4 } else { 1 };
    let mut replicas = tokio::task::JoinSet::new();
    for _ in 0..count {
        let url = db.url.clone();
        replicas.spawn(async move {
            let store = taskgate_adapters::store::SeaStore::connect(&url).await?;
            store.migrate().await?;
            anyhow::Ok(store)
        });
    }
    let mut stores = Vec::new();
    while let Some(joined) = replicas.join_next().await {
        stores.push(joined??);
    }
    for store in &stores {
        assert!(store.pending_migrations().await?.is_empty());
    }
    // And once more: nothing to do, no error.
    stores[0].migrate().await?;
    let t = task(&stores[0], "works after migrate").await?;
    assert_eq!(stores[count - 1].task(t.id).await?.title, "works after migrate");
    Ok(())
}

async fn transactions_apply_all_or_nothing(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    // Dropped without commit: nothing of it stays.
    let tx = store.begin().await?;
    let lost = task(&tx, "never committed").await?;
    tx.append_event(NewEvent {
        task_id: lost.id,
        execution_id: None,
        channel: None,
        actor: None,
        body: Body::AgentText { text: "lost".into() }.into(),
    })
    .await?;
    drop(tx);
    assert!(matches!(store.task(lost.id).await, Err(StoreError::NotFound { .. })));

    let tx = store.begin().await?;
    let kept = task(&tx, "committed").await?;
    tx.create_execution(NewExecution { task_id: kept.id, agent: "codex".into(), role: Role::Editor }).await?;
    tx.commit().await?;
    assert_eq!(store.task(kept.id).await?.title, "committed");
    assert_eq!(store.executions(kept.id).await?.len(), 1);
    Ok(())
}

async fn references_are_enforced(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    // An execution of a task that does not exist is refused, not stored dangling.
    let orphan =
        store.create_execution(NewExecution { task_id: 4242, agent: "codex".into(), role: Role::Editor }).await;
    assert!(matches!(orphan, Err(StoreError::Backend(_))), "{orphan:?}");
    if db.url.starts_with("sqlite") {
        use sea_orm::ConnectionTrait;
        let row = store
            .connection()
            .query_one_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Sqlite, "PRAGMA journal_mode"))
            .await?
            .expect("a row");
        assert_eq!(row.try_get_by_index::<String>(0)?, "wal");
    }
    Ok(())
}

/// The reads the engine needs: open turns (for recovery), a task's approvals newest first, the
/// tasks a chat has seen (from the outbox), where a task's news last went, and rows by id.
async fn engine_lookups_find_open_work_and_chat_tasks(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let person = store.create_person("Ada").await?;
    assert_eq!(store.person(person.id).await?.name, "Ada");
    assert!(matches!(store.person(person.id + 100).await, Err(StoreError::NotFound { .. })));

    let t1 = task(&store, "fix routing").await?;
    let t2 = task(&store, "release notes").await?;
    let exec =
        store.create_execution(NewExecution { task_id: t1.id, agent: "codex".into(), role: Role::Editor }).await?;
    let session = store.create_session(exec.id, None).await?;
    assert_eq!(store.session(session.id).await?, session);

    let mut done = store.create_turn(session.id, "first").await?;
    done.status = done.status.transition(TurnStatus::Running)?.transition(TurnStatus::Completed)?;
    store.update_turn(&done).await?;
    let mut waiting = store.create_turn(session.id, "second").await?;
    waiting.status = waiting.status.transition(TurnStatus::Running)?.transition(TurnStatus::WaitingApproval)?;
    let waiting = store.update_turn(&waiting).await?;
    let queued = store.create_turn(session.id, "third").await?;
    let ids = |v: Vec<Turn>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(store.open_turns(Some(session.id)).await?), vec![waiting.id, queued.id]);
    assert_eq!(ids(store.open_turns(None).await?), vec![waiting.id, queued.id]);
    assert_eq!(ids(store.open_turns(Some(session.id + 100)).await?), Vec::<Id>::new());

    let new = |request: &str| NewApproval {
        task_id: t1.id,
        execution_id: None,
        turn_id: Some(waiting.id),
        request_id: request.into(),
        action: "run `ls`".into(),
    };
    let mut first = store.create_approval(new("0")).await?;
    first.decide(Answer::Approve(Scope::Once), person.id, Channel::Telegram, Utc::now())?;
    store.update_approval(&first).await?;
    let second = store.create_approval(new("1")).await?;
    let found = store.approvals(t1.id, 10).await?;
    assert_eq!(found.iter().map(|a| a.id).collect::<Vec<_>>(), vec![second.id, first.id]);
    assert_eq!(found[1].status, ApprovalStatus::Approved);
    assert_eq!(store.approvals(t1.id, 1).await?.len(), 1);
    assert!(store.approvals(t2.id, 10).await?.is_empty());

    // The same, for several rows at once (a conversation's context).
    let mut both: Vec<Id> = store.tasks_by_id(&[t2.id, t1.id, t2.id + 100]).await?.iter().map(|t| t.id).collect();
    both.sort();
    assert_eq!(both, vec![t1.id, t2.id], "missing ids are left out");
    let execs = store.executions_of(&[t1.id, t2.id]).await?;
    assert_eq!(execs.iter().map(|e| e.id).collect::<Vec<_>>(), vec![exec.id]);
    let newer = store.create_session(exec.id, None).await?;
    assert_eq!(store.latest_sessions(&[exec.id]).await?.iter().map(|s| s.id).collect::<Vec<_>>(), vec![newer.id]);
    assert!(store.latest_sessions(&[exec.id + 100]).await?.is_empty());
    assert_eq!(ids(store.open_turns_of(&[session.id, newer.id]).await?), vec![waiting.id, queued.id]);
    assert!(store.open_turns_of(&[newer.id]).await?.is_empty());
    let pending: Vec<Id> = store.pending_approvals_of(&[t1.id, t2.id]).await?.iter().map(|a| a.id).collect();
    assert_eq!(pending, vec![second.id], "the decided one is not pending");
    assert!(store.pending_approvals_of(&[t2.id]).await?.is_empty());

    let msg = |chat: &str, task: Option<Id>| NewOutbound {
        channel: Channel::Telegram,
        chat_id: chat.into(),
        task_id: task,
        approval_id: None,
        payload: taskgate_core::reply::Reply::text("x"),
    };
    assert_eq!(store.latest_outbound(t1.id).await?, None);
    store.outbox_enqueue(msg("a", Some(t1.id))).await?;
    store.outbox_enqueue(msg("a", Some(t2.id))).await?;
    store.outbox_enqueue(msg("a", None)).await?;
    store.outbox_enqueue(msg("b", Some(t2.id))).await?;
    let last_t1 = store.outbox_enqueue(msg("a", Some(t1.id))).await?;
    assert_eq!(store.chat_tasks(Channel::Telegram, "a", 10).await?, vec![t1.id, t2.id]);
    assert_eq!(store.chat_tasks(Channel::Telegram, "a", 1).await?, vec![t1.id]);
    assert_eq!(store.chat_tasks(Channel::Telegram, "b", 10).await?, vec![t2.id]);
    assert_eq!(store.chat_tasks(Channel::Feishu, "a", 10).await?, Vec::<Id>::new());
    // Rows without a task (refusals, help) take no place among the tasks.
    store.outbox_enqueue(msg("a", None)).await?;
    assert_eq!(store.chat_tasks(Channel::Telegram, "a", 10).await?, vec![t1.id, t2.id]);
    assert_eq!(store.latest_outbound(t1.id).await?.map(|o| o.id), Some(last_t1.id));
    Ok(())
}

async fn console_feeds_and_settings(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let t1 = task(&store, "one").await?;
    let t2 = task(&store, "two").await?;
    let event = |task_id: Id, n: i64| NewEvent {
        task_id,
        execution_id: None,
        channel: None,
        actor: None,
        body: Body::AgentText { text: n.to_string() }.into(),
    };
    let e1 = store.append_event(event(t1.id, 1)).await?;
    let e2 = store.append_event(event(t2.id, 2)).await?;
    let e3 = store.append_event(event(t1.id, 3)).await?;
    let ids = |v: Vec<Event>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(store.events_after(0, 10).await?), vec![e1.id, e2.id, e3.id]);
    assert_eq!(ids(store.events_after(e1.id, 10).await?), vec![e2.id, e3.id]);
    assert_eq!(ids(store.events_after(e1.id, 1).await?), vec![e2.id]);
    assert!(store.events_after(e3.id, 10).await?.is_empty());
    // A task's newest events, oldest first, of that task only.
    assert_eq!(ids(store.recent_events(t1.id, 10).await?), vec![e1.id, e3.id]);
    assert_eq!(ids(store.recent_events(t1.id, 1).await?), vec![e3.id]);
    assert_eq!(ids(store.recent_events(t2.id, 10).await?), vec![e2.id]);
    // The newest few of some kinds, of several tasks at once, oldest first.
    let decision = |task_id: Id| NewEvent {
        body: Body::Decision { intent: taskgate_core::classify::Intent::Continue, confidence: 1.0, reason: "r".into() }
            .into(),
        ..event(task_id, 0)
    };
    let d1 = store.append_event(decision(t1.id)).await?;
    let d2 = store.append_event(decision(t2.id)).await?;
    let e4 = store.append_event(event(t2.id, 4)).await?;
    let both = [t1.id, t2.id];
    let runtime = [EventKind::Runtime];
    assert_eq!(ids(store.recent_events_of(&both, &runtime, 1).await?), vec![e3.id, e4.id]);
    assert_eq!(ids(store.recent_events_of(&both, &runtime, 5).await?), vec![e1.id, e2.id, e3.id, e4.id]);
    let kinds = [EventKind::Runtime, EventKind::Decision];
    assert_eq!(ids(store.recent_events_of(&both, &kinds, 1).await?), vec![e3.id, d1.id, d2.id, e4.id]);
    assert_eq!(ids(store.recent_events_of(&[t2.id], &[EventKind::Decision], 9).await?), vec![d2.id]);
    assert!(store.recent_events_of(&[], &kinds, 9).await?.is_empty());

    // Chat history: the newest rows, oldest first, sent or not, of one chat only.
    let out = |chat: &str, n: i64| NewOutbound {
        channel: Channel::Web,
        chat_id: chat.into(),
        task_id: None,
        approval_id: None,
        payload: taskgate_core::reply::Reply::text(n.to_string()),
    };
    let o1 = store.outbox_enqueue(out("console", 1)).await?;
    store.outbox_enqueue(out("elsewhere", 2)).await?;
    let o3 = store.outbox_enqueue(out("console", 3)).await?;
    let o4 = store.outbox_enqueue(out("console", 4)).await?;
    store.outbox_sent(o1.id, None).await?;
    let recent = |v: Vec<Outbound>| v.into_iter().map(|o| o.id).collect::<Vec<_>>();
    assert_eq!(recent(store.outbox_recent(Channel::Web, "console", 10).await?), vec![o1.id, o3.id, o4.id]);
    assert_eq!(recent(store.outbox_recent(Channel::Web, "console", 2).await?), vec![o3.id, o4.id]);
    assert!(store.outbox_recent(Channel::Telegram, "console", 10).await?.is_empty());

    let inbound = |channel, id: &str| NewInbound { channel, external_id: id.into(), payload: json!({"text": id}) };
    store.inbox_accept(inbound(Channel::Web, "a")).await?;
    store.inbox_accept(inbound(Channel::Telegram, "b")).await?;
    store.inbox_accept(inbound(Channel::Web, "c")).await?;
    let web: Vec<String> = store.inbox_recent(Channel::Web, 10).await?.into_iter().map(|i| i.external_id).collect();
    assert_eq!(web, vec!["a", "c"]);
    assert_eq!(store.inbox_recent(Channel::Web, 1).await?.len(), 1);

    assert_eq!(store.setting("web.token_sha256").await?, None);
    store.put_setting("web.token_sha256", "first").await?;
    store.put_setting("web.token_sha256", "second").await?;
    store.put_setting("other", "x").await?;
    assert_eq!(store.setting("web.token_sha256").await?.as_deref(), Some("second"));
    assert_eq!(store.setting("other").await?.as_deref(), Some("x"));
    Ok(())
}

async fn link_codes_redeem_once_and_merge_people(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let web = store.create_person("Ada (web)").await?;
    store.link_identity(web.id, Channel::Web, "console", None).await?;
    let tg = store.create_person("Ada").await?;
    store.link_identity(tg.id, Channel::Telegram, "111", Some("Ada")).await?;
    let now = Utc::now();
    let code = LinkCode {
        code: "K7Q2-M9XD".into(),
        person_id: web.id,
        channel: Channel::Web,
        expires_at: now + Duration::minutes(10),
        used_at: None,
    };
    store.create_link_code(&code).await?;
    assert!(matches!(store.create_link_code(&code).await, Err(StoreError::AlreadyExists(_))));
    assert_eq!(store.redeem_link_code("NOPE-NOPE", now).await?, None);

    // Two redeemers race: exactly one gets the code.
    let store2 = db.store().await?;
    let (a, b) = tokio::join!(store.redeem_link_code(&code.code, now), store2.redeem_link_code(&code.code, now));
    let winners: Vec<LinkCode> = [a?, b?].into_iter().flatten().collect();
    assert_eq!(winners.len(), 1, "a link code redeems once");
    assert_eq!((winners[0].person_id, winners[0].channel), (web.id, Channel::Web));
    assert!(winners[0].used_at.is_some());
    assert_eq!(store.redeem_link_code(&code.code, now).await?, None);

    let expired = LinkCode { code: "OLD0-0000".into(), expires_at: now - Duration::seconds(1), ..code.clone() };
    store.create_link_code(&expired).await?;
    assert_eq!(store.redeem_link_code(&expired.code, now).await?, None, "an expired code is refused");

    // The Telegram person joins the web person, with its tasks and decisions.
    let started = store
        .create_task(NewTask { project_id: None, title: "t".into(), goal: "g".into(), created_by: Some(tg.id) })
        .await?;
    store.merge_person(tg.id, web.id).await?;
    assert_eq!(store.find_identity(Channel::Telegram, "111").await?.map(|i| i.person_id), Some(web.id));
    assert_eq!(store.find_identity(Channel::Web, "console").await?.map(|i| i.person_id), Some(web.id));
    assert_eq!(store.task(started.id).await?.created_by, Some(web.id));
    store.merge_person(web.id, web.id).await?;
    assert!(matches!(store.merge_person(tg.id, web.id + 100).await, Err(StoreError::NotFound { .. })));
    Ok(())
}

/// A task with one execution and one session, for the ownership cases.
async fn execution(store: &dyn Store) -> anyhow::Result<(Task, Execution, RuntimeSession)> {
    let t = task(store, "own it").await?;
    let exec =
        store.create_execution(NewExecution { task_id: t.id, agent: "codex".into(), role: Role::Editor }).await?;
    let session = store.create_session(exec.id, None).await?;
    Ok((t, exec, session))
}

async fn executions_are_owned_through_leases_with_fencing(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let (_, exec, _) = execution(&store).await?;
    let now = Utc::now();
    let a = store.claim(exec.id, "replica-a", now, now + Duration::seconds(15)).await?.expect("free: a claims it");
    assert_eq!((a.owner.as_str(), a.execution), ("replica-a", exec.id));
    // A live lease is not taken by another replica.
    assert_eq!(store.claim(exec.id, "replica-b", now, now + Duration::seconds(15)).await?, None);
    store.check_lease(&a, now + Duration::seconds(15)).await?;
    assert_eq!(store.renew_leases("replica-a", now + Duration::seconds(30)).await?, 1);
    // Expired: b takes it over with a newer fence, and a's writes are refused from then on.
    let later = now + Duration::seconds(31);
    let b =
        store.claim(exec.id, "replica-b", later, later + Duration::seconds(15)).await?.expect("expired: b takes it");
    assert!(b.fence > a.fence, "{a:?} then {b:?}");
    assert!(matches!(store.check_lease(&a, later).await, Err(StoreError::Fenced(id)) if id == exec.id));
    assert!(!store.work_done(&a, 0).await?, "a stale owner clears nothing");
    // A stale release does not free b's execution; b's own does.
    store.release(&a).await?;
    assert_eq!(store.claim(exec.id, "replica-c", later, later + Duration::seconds(15)).await?, None);
    store.release(&b).await?;
    let c = store.claim(exec.id, "replica-c", later, later + Duration::seconds(15)).await?.expect("released: c claims");
    assert!(c.fence > b.fence);
    assert_eq!(store.release_all().await?, 1);
    assert!(store.claim(exec.id, "replica-d", later, later + Duration::seconds(15)).await?.is_some());
    Ok(())
}

async fn work_is_flagged_by_turns_and_orders(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let (_, exec, session) = execution(&store).await?;
    let (_, idle, _) = execution(&store).await?;
    assert!(store.work(10).await?.is_empty(), "nothing to run yet");
    let turn = store.create_turn(session.id, "make it green").await?;
    let work = store.work(10).await?;
    assert_eq!(work.iter().map(|w| w.execution).collect::<Vec<_>>(), vec![exec.id], "{work:?}");
    assert_eq!(work[0].owner, None);
    assert_eq!(store.execution_turns(exec.id).await?.iter().map(|t| t.id).collect::<Vec<_>>(), vec![turn.id]);
    assert!(store.execution_turns(idle.id).await?.is_empty());

    let now = Utc::now();
    let lease = store.claim(exec.id, "replica-a", now, now + Duration::seconds(15)).await?.expect("claim");
    let seen = store.work_seq(exec.id).await?;
    // An order arriving after the owner looked keeps the flag up.
    let order = store.give_order(exec.id, &Order::Answer { text: "the blue one".into() }).await?;
    assert!(!store.work_done(&lease, seen).await?, "work arrived after `seen`");
    let orders = store.orders(exec.id).await?;
    assert_eq!(orders.len(), 1);
    assert_eq!((orders[0].id, &orders[0].order), (order, &Order::Answer { text: "the blue one".into() }));
    store.order_done(order).await?;
    assert!(store.orders(exec.id).await?.is_empty());
    assert!(store.work_done(&lease, store.work_seq(exec.id).await?).await?);
    assert!(store.work(10).await?.is_empty());
    Ok(())
}

async fn text_with_nul_is_stored_faithfully(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let nul = "make\u{0}it green";
    let cleaned = "make\u{FFFD}it green";
    let accepted = store
        .inbox_accept(NewInbound {
            channel: Channel::Telegram,
            external_id: "1\u{0}".into(),
            payload: json!({"text": nul, nul: [nul]}),
        })
        .await?;
    assert!(matches!(accepted, InboxOutcome::Accepted(_)));
    let stored = store.inbox_pending(Channel::Telegram, 10).await?;
    assert_eq!(stored[0].payload["text"], cleaned);
    assert_eq!(stored[0].payload[cleaned][0], cleaned, "keys and nested strings too");
    // The same update again is a duplicate, not a second row.
    let again = NewInbound { channel: Channel::Telegram, external_id: "1\u{0}".into(), payload: json!({}) };
    assert!(matches!(store.inbox_accept(again).await?, InboxOutcome::Duplicate(_)));

    let t =
        store.create_task(NewTask { project_id: None, title: nul.into(), goal: nul.into(), created_by: None }).await?;
    assert_eq!(store.task(t.id).await?.title, cleaned);
    let person = store.create_person(nul).await?;
    store.link_identity(person.id, Channel::Feishu, "ou_\u{0}", Some(nul)).await?;
    assert!(store.find_identity(Channel::Feishu, "ou_\u{0}").await?.is_some(), "looked up the way it was stored");
    store
        .append_event(NewEvent {
            task_id: t.id,
            execution_id: None,
            channel: None,
            actor: Some(nul.into()),
            body: Body::AgentText { text: nul.into() }.into(),
        })
        .await?;
    assert_eq!(store.timeline(t.id).await?[0].body, EventBody::from(Body::AgentText { text: cleaned.into() }));
    let out = store
        .outbox_enqueue(NewOutbound {
            channel: Channel::Telegram,
            chat_id: "c".into(),
            task_id: Some(t.id),
            approval_id: None,
            payload: taskgate_core::reply::Reply::text(nul),
        })
        .await?;
    assert_eq!(store.outbound(out.id).await?.payload.text, cleaned);
    Ok(())
}

async fn poison_inbox_rows_are_set_aside_with_their_error(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let update = |id: &str| NewInbound { channel: Channel::Feishu, external_id: id.into(), payload: json!({"n": id}) };
    let InboxOutcome::Accepted(bad) = store.inbox_accept(update("bad")).await? else { anyhow::bail!("accepted") };
    store.inbox_accept(update("good")).await?;
    store.inbox_failed(bad, "cannot parse", false).await?;
    let pending = store.inbox_pending(Channel::Feishu, 10).await?;
    assert_eq!((pending[0].id, pending[0].attempts, pending[0].last_error.as_deref()), (bad, 1, Some("cannot parse")));
    store.inbox_failed(bad, "cannot parse, again", true).await?;
    let pending = store.inbox_pending(Channel::Feishu, 10).await?;
    assert_eq!(pending.len(), 1, "set aside: the row behind it is next");
    assert_ne!(pending[0].id, bad);
    let aside = store.inbox_set_aside(10).await?;
    assert_eq!((aside[0].id, aside[0].attempts, aside[0].last_error.as_deref()), (bad, 2, Some("cannot parse, again")));
    let stats = store.stats().await?;
    assert_eq!((stats.inbox_pending, stats.inbox_set_aside), (1, 1));
    Ok(())
}

async fn rules_approve_exactly_their_action_until_revoked(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let project = store.upsert_project("web", "/srv/web", Some("codex")).await?;
    let rule = store
        .add_rule(NewApprovalRule {
            project_id: Some(project.id),
            agent: "codex".into(),
            action: "run `npm test`".into(),
            created_by: None,
        })
        .await?;
    let find = |agent: &'static str, action: &'static str| store.matching_rule(Some(project.id), agent, action);
    assert_eq!(find("codex", "run `npm test`").await?.map(|r| r.id), Some(rule.id));
    assert_eq!(find("codex", "run `npm test -- --all`").await?, None, "exactly the action");
    assert_eq!(find("claude", "run `npm test`").await?, None, "of that agent");
    assert_eq!(store.matching_rule(None, "codex", "run `npm test`").await?, None, "in that project");
    assert_eq!(store.rules(Some(project.id)).await?.len(), 1);
    assert!(store.revoke_rule(rule.id).await?);
    assert!(!store.revoke_rule(rule.id).await?, "once");
    assert_eq!(find("codex", "run `npm test`").await?, None);
    assert!(store.rules(None).await?.is_empty());
    Ok(())
}

async fn the_audit_log_is_a_chain_that_detects_edits(db: &TestDb) -> anyhow::Result<()> {
    use sea_orm::ConnectionTrait;
    let store = db.store().await?;
    let t = task(&store, "audit me").await?;
    let entry = |n: i64| NewAuditEntry {
        approval_id: n,
        task_id: t.id,
        who: "Ada".into(),
        person_id: None,
        channel: Some(Channel::Telegram),
        place: "chat-1".into(),
        action: format!("run `step {n}`"),
        decision: ApprovalStatus::Approved,
        scope: Some(Scope::Once),
        rule_id: None,
    };
    let first = store.append_audit(entry(1)).await?;
    let second = store.append_audit(entry(2)).await?;
    assert_eq!(first.prev_hash, "");
    assert_eq!(second.prev_hash, first.hash);
    let (entries, broken) = taskgate_adapters::store::audit_log(&store).await?;
    assert_eq!((entries.len(), broken), (2, None));
    // Someone with database access rewrites history: the chain says where.
    store
        .connection()
        .execute_unprepared(&format!("UPDATE audit SET decision = 'denied' WHERE id = {}", first.id))
        .await?;
    let (_, broken) = taskgate_adapters::store::audit_log(&store).await?;
    assert_eq!(broken, Some(first.id));
    Ok(())
}
