//! Table-driven router tests over one realistic conversation.

use chrono::TimeZone;

use super::*;
use crate::classify::{Decision, Intent};
use crate::model::*;

fn at(h: u32, m: u32) -> Timestamp {
    chrono::Utc.with_ymd_and_hms(2026, 11, 22, h, m, 0).unwrap()
}

fn task(id: Id, title: &str, status: TaskStatus) -> Task {
    Task {
        id,
        project_id: Some(1),
        title: title.into(),
        goal: title.into(),
        status,
        objective: None,
        reproduction: None,
        next_action: None,
        created_by: None,
        version: 3,
        created_at: at(9, 0),
        updated_at: at(9, 0),
    }
}

fn exec(id: Id, task_id: Id, agent: &str, role: Role, session: Option<SessionStatus>, busy: bool) -> ExecutionState {
    ExecutionState {
        execution: Execution {
            id,
            task_id,
            agent: agent.into(),
            role,
            status: if busy { ExecutionStatus::Running } else { ExecutionStatus::Idle },
            version: 1,
            created_at: at(9, 0),
            updated_at: at(9, 0),
        },
        session: session.map(|status| RuntimeSession {
            id: id * 10,
            execution_id: id,
            provider_session_id: Some(format!("thread-{id}")),
            model: None,
            pid: None,
            status,
            created_at: at(9, 0),
            updated_at: at(9, 0),
        }),
        busy,
        queued: 0,
        can_steer: agent == "codex",
        pending_question: None,
    }
}

fn approval(id: Id, task_id: Id, action: &str, decided: Option<(&str, Channel)>) -> ApprovalState {
    ApprovalState {
        approval: Approval {
            id,
            task_id,
            execution_id: None,
            nonce: String::new(),
            rule_id: None,
            turn_id: None,
            request_id: format!("req-{id}"),
            action: action.into(),
            status: if decided.is_some() { ApprovalStatus::Approved } else { ApprovalStatus::Pending },
            scope: decided.map(|_| Scope::Once),
            decided_by: decided.map(|_| 7),
            decided_channel: decided.map(|(_, c)| c),
            decided_at: decided.map(|_| at(10, 42)),
            version: 0,
            created_at: at(10, 0),
        },
        agent: "Codex".into(),
        decided_by_name: decided.map(|(name, _)| name.to_owned()),
    }
}

/// t1 is running with a pending approval, t2 is idle, t3 is done and its session was closed.
fn state(policy: BusyPolicy) -> ConversationState {
    let with = |task: Task, executions, approvals| TaskState {
        task,
        executions,
        approvals,
        restart_note: Some("verified: the 404 comes from the v2 prefix".into()),
        latest_result: Some("routes fixed, 2 tests added".into()),
        changed_files: vec!["src/routes.rs".into()],
    };
    ConversationState {
        conversation_id: 1,
        focused_task: Some(1),
        project: ProjectInfo {
            id: 1,
            name: "web".into(),
            default_agent: "codex".into(),
            busy_policy: policy,
            handoff: false,
        },
        tasks: vec![
            with(
                task(1, "fix routing for /api/v2", TaskStatus::WaitingApproval),
                vec![exec(11, 1, "codex", Role::Editor, Some(SessionStatus::Busy), true)],
                vec![approval(101, 1, "run `npm test`", None)],
            ),
            with(
                task(2, "write release notes", TaskStatus::Idle),
                vec![exec(21, 2, "claude", Role::Editor, Some(SessionStatus::Ready), false)],
                vec![],
            ),
            with(
                task(3, "add dark mode", TaskStatus::Completed),
                vec![exec(31, 3, "codex", Role::Editor, Some(SessionStatus::Closed), false)],
                vec![approval(301, 3, "run `rm -rf dist`", Some(("Alice", Channel::Telegram)))],
            ),
        ],
    }
}

fn decision(intent: Intent) -> Decision {
    Decision {
        intent,
        task: None,
        agent: None,
        role: None,
        approval: None,
        scope: None,
        confidence: 0.9,
        reason: "test".into(),
    }
}

fn on(mut d: Decision, task: Id) -> Decision {
    d.task = Some(task.to_string());
    d
}

fn sender() -> Sender {
    Sender { person_id: 7, name: "Alice".into(), channel: Channel::Telegram, at: at(11, 0) }
}

/// The plan without its timeline records and replies, which are checked on their own.
fn actions(plan: &Plan) -> Vec<Effect> {
    plan.effects
        .iter()
        .filter(|e| !matches!(e, Effect::Record { .. } | Effect::Reply(_) | Effect::Ack(_)))
        .cloned()
        .collect()
}

#[test]
fn table() {
    use Effect::*;
    let spawn_review = {
        let mut d = on(decision(Intent::Spawn), 1);
        d.agent = Some("claude".into());
        d.role = Some(Role::Reviewer);
        d
    };
    let new_task_claude = {
        let mut d = decision(Intent::NewTask);
        d.agent = Some("claude".into());
        d
    };
    let approve = |id: &str, scope| {
        let mut d = decision(Intent::Approve);
        d.approval = Some(id.into());
        d.scope = scope;
        d
    };
    let deny = |id: &str| {
        let mut d = decision(Intent::Deny);
        d.approval = Some(id.into());
        d
    };

    struct Case {
        name: &'static str,
        policy: BusyPolicy,
        decision: Decision,
        text: &'static str,
        actions: Vec<Effect>,
        reply: &'static str,
    }
    let cases = vec![
        Case {
            name: "continue an idle task: next turn in its sticky session, focus moves",
            policy: BusyPolicy::Queue,
            decision: on(decision(Intent::Continue), 2),
            text: "add a line about the v1 sunset",
            actions: vec![
                Focus { task: TaskRef::Existing(2) },
                StartTurn {
                    execution: ExecRef::Existing(21),
                    input: "add a line about the v1 sunset".into(),
                    fresh_session: false,
                },
            ],
            reply: "",
        },
        Case {
            name: "continue a busy task, queue policy",
            policy: BusyPolicy::Queue,
            decision: on(decision(Intent::Continue), 1),
            text: "make the button green",
            actions: vec![QueueTurn { execution: 11, input: "make the button green".into() }],
            reply: "Queued for Codex, 1 ahead",
        },
        Case {
            name: "continue a busy task, steer policy, agent can steer",
            policy: BusyPolicy::Steer,
            decision: on(decision(Intent::Continue), 1),
            text: "also handle /api/v3",
            actions: vec![SteerTurn { execution: 11, input: "also handle /api/v3".into() }],
            reply: "Passed to Codex while it works",
        },
        Case {
            name: "continue a busy task, interrupt policy",
            policy: BusyPolicy::Interrupt,
            decision: on(decision(Intent::Continue), 1),
            text: "no wait, use the v3 router",
            actions: vec![
                InterruptTurn { execution: 11 },
                StartTurn {
                    execution: ExecRef::Existing(11),
                    input: "no wait, use the v3 router".into(),
                    fresh_session: false,
                },
            ],
            reply: "Codex stopped its last turn to take this one",
        },
        Case {
            name: "continue after /new: a fresh session seeded with the restart note",
            policy: BusyPolicy::Queue,
            decision: on(decision(Intent::Continue), 3),
            text: "now the header too",
            actions: vec![
                Focus { task: TaskRef::Existing(3) },
                StartTurn {
                    execution: ExecRef::Existing(31),
                    input: prompt::reseeded(&state(BusyPolicy::Queue).tasks[2], "now the header too"),
                    fresh_session: true,
                },
            ],
            reply: "",
        },
        Case {
            name: "spawn a reviewer under the same task",
            policy: BusyPolicy::Queue,
            decision: spawn_review.clone(),
            text: "use cc to review it too",
            actions: vec![
                CreateExecution { task: TaskRef::Existing(1), agent: "claude".into(), role: Role::Reviewer },
                StartTurn {
                    execution: ExecRef::Created,
                    input: prompt::first_turn(
                        &state(BusyPolicy::Queue).tasks[0],
                        Role::Reviewer,
                        "use cc to review it too",
                    ),
                    fresh_session: true,
                },
            ],
            reply: "Claude is reviewing 'fix routing for /api/v2'",
        },
        Case {
            name: "new task with a named agent",
            policy: BusyPolicy::Queue,
            decision: new_task_claude,
            text: "fix the login bug on Safari",
            actions: vec![
                CreateTask {
                    title: "fix the login bug on Safari".into(),
                    goal: "fix the login bug on Safari".into(),
                    project_id: 1,
                },
                CreateExecution { task: TaskRef::Created, agent: "claude".into(), role: Role::Editor },
                Focus { task: TaskRef::Created },
                StartTurn {
                    execution: ExecRef::Created,
                    input: "fix the login bug on Safari".into(),
                    fresh_session: true,
                },
            ],
            reply: "New task 'fix the login bug on Safari': Claude is on it",
        },
        Case {
            name: "new session closes the sticky session",
            policy: BusyPolicy::Queue,
            decision: on(decision(Intent::NewSession), 2),
            text: "/new",
            actions: vec![CloseSession { execution: 21 }],
            reply: "Fresh session for 'write release notes': the next message starts clean, with the restart note.",
        },
        Case {
            name: "approve once",
            policy: BusyPolicy::Queue,
            decision: approve("101", Some(Scope::Once)),
            text: "ok",
            actions: vec![Resolve { approval: 101, answer: Answer::Approve(Scope::Once), note: None }],
            reply: "",
        },
        Case {
            name: "approve always",
            policy: BusyPolicy::Queue,
            decision: approve("101", Some(Scope::Always)),
            text: "approve all, don't ask again",
            actions: vec![Resolve { approval: 101, answer: Answer::Approve(Scope::Always), note: None }],
            reply: "",
        },
        Case {
            name: "deny with an instruction that travels with it",
            policy: BusyPolicy::Queue,
            decision: deny("101"),
            text: "no, run only the unit tests",
            actions: vec![Resolve {
                approval: 101,
                answer: Answer::Deny,
                note: Some("no, run only the unit tests".into()),
            }],
            reply: "",
        },
        Case {
            name: "stop answering an approval denies it and stops the turn",
            policy: BusyPolicy::Queue,
            decision: deny("101"),
            text: "stop!",
            actions: vec![Resolve { approval: 101, answer: Answer::DenyAndStop, note: None }],
            reply: "",
        },
        Case {
            name: "停下 answering an approval stops too",
            policy: BusyPolicy::Queue,
            decision: deny("101"),
            text: "停下",
            actions: vec![Resolve { approval: 101, answer: Answer::DenyAndStop, note: None }],
            reply: "",
        },
        Case {
            name: "a second answer says who decided first",
            policy: BusyPolicy::Queue,
            decision: deny("301"),
            text: "no",
            actions: vec![],
            reply: "Already approved by Alice (Telegram, 10:42).",
        },
        Case {
            name: "an unknown approval is not resolved",
            policy: BusyPolicy::Queue,
            decision: approve("999", None),
            text: "yes",
            actions: vec![],
            reply: "That approval is no longer open.",
        },
        Case {
            name: "cancel denies what the turn waits on and interrupts it, session stays",
            policy: BusyPolicy::Queue,
            decision: on(decision(Intent::Cancel), 1),
            text: "stop",
            actions: vec![
                Resolve { approval: 101, answer: Answer::DenyAndStop, note: None },
                InterruptTurn { execution: 11 },
            ],
            reply: "Stopping Codex…",
        },
        Case {
            name: "cancel with nothing running",
            policy: BusyPolicy::Queue,
            decision: on(decision(Intent::Cancel), 2),
            text: "stop",
            actions: vec![],
            reply: "Nothing is running on 'write release notes'.",
        },
        Case {
            name: "status of one task",
            policy: BusyPolicy::Queue,
            decision: on(decision(Intent::Status), 1),
            text: "what happened with that thing?",
            actions: vec![],
            reply: "'fix routing for /api/v2' (#1) is waiting for approval · Codex\nCodex is waiting for approval: run `npm test`\nLatest: routes fixed, 2 tests added",
        },
        Case {
            name: "status of everything lists active tasks",
            policy: BusyPolicy::Queue,
            decision: decision(Intent::Status),
            text: "what's running?",
            actions: vec![],
            reply: "2 active task(s):\n• #1 fix routing for /api/v2 — waiting for approval\n• #2 write release notes — idle",
        },
        Case {
            name: "ignore does nothing at all",
            policy: BusyPolicy::Queue,
            decision: decision(Intent::Ignore),
            text: "lunch?",
            actions: vec![],
            reply: "",
        },
    ];

    for case in cases {
        let plan = route(&case.decision, &[], case.text, &sender(), &state(case.policy));
        assert_eq!(actions(&plan), case.actions, "{}", case.name);
        assert_eq!(plan.reply_text(), case.reply, "{}", case.name);
        // The tasks whose context a first prompt carries are named, so the engine reads their
        // restart notes only then: exactly when the plan starts a session.
        let fresh = case.actions.iter().any(|a| matches!(a, Effect::StartTurn { fresh_session: true, .. }));
        let on_task = !case.actions.iter().any(|a| matches!(a, Effect::CreateTask { .. }));
        assert_eq!(!plan.seeded.is_empty(), fresh && on_task, "{}: seeded {:?}", case.name, plan.seeded);
    }
}

/// A follow-up to a turn blocked on the agent's question answers it, whatever the busy policy;
/// without a question (or on an idle execution) the usual rules stand.
#[test]
fn continue_answers_a_pending_question() {
    use Effect::*;
    let asking = |policy, question: Option<&str>, busy: bool| {
        let mut s = state(policy);
        s.tasks[0].task.status = if question.is_some() { TaskStatus::WaitingInput } else { TaskStatus::Running };
        s.tasks[0].approvals.clear();
        s.tasks[0].executions[0].busy = busy;
        s.tasks[0].executions[0].pending_question = question.map(str::to_owned);
        s
    };
    let text = "use the blue one";
    let answer = vec![AnswerQuestion { execution: 11, text: text.into() }];
    let cases: Vec<(&str, ConversationState, Vec<Effect>, &str)> = vec![
        ("queue policy", asking(BusyPolicy::Queue, Some("q-1"), true), answer.clone(), "Codex got your answer"),
        ("steer policy", asking(BusyPolicy::Steer, Some("q-1"), true), answer.clone(), "Codex got your answer"),
        ("interrupt policy", asking(BusyPolicy::Interrupt, Some("q-1"), true), answer, "Codex got your answer"),
        (
            "no question: queued as before",
            asking(BusyPolicy::Queue, None, true),
            vec![QueueTurn { execution: 11, input: text.into() }],
            "Queued for Codex, 1 ahead",
        ),
        (
            "a stale question on an idle execution: a new turn",
            asking(BusyPolicy::Queue, Some("q-1"), false),
            vec![StartTurn { execution: ExecRef::Existing(11), input: text.into(), fresh_session: false }],
            "",
        ),
    ];
    for (name, state, effects, reply) in cases {
        let plan = route(&on(decision(Intent::Continue), 1), &[], text, &sender(), &state);
        assert_eq!(actions(&plan), effects, "{name}");
        assert_eq!(plan.reply_text(), reply, "{name}");
    }
}

/// The reviewer asked while the editor works: the answer goes to the one that asked.
#[test]
fn the_answer_goes_to_the_execution_that_asked() {
    let mut s = state(BusyPolicy::Queue);
    let mut reviewer = exec(12, 1, "claude", Role::Reviewer, Some(SessionStatus::Busy), true);
    reviewer.pending_question = Some("toolu_1".into());
    s.tasks[0].executions.push(reviewer);
    s.tasks[0].approvals.clear();
    let plan = route(&on(decision(Intent::Continue), 1), &[], "yes", &sender(), &s);
    assert_eq!(actions(&plan), vec![Effect::AnswerQuestion { execution: 12, text: "yes".into() }]);
}

#[test]
fn ignore_is_an_empty_plan() {
    let plan = route(&decision(Intent::Ignore), &[], "lunch?", &sender(), &state(BusyPolicy::Queue));
    assert!(plan.effects.is_empty());
}

#[test]
fn messages_on_a_task_are_recorded_with_the_decision() {
    let plan = route(&on(decision(Intent::Continue), 2), &[], "add a line", &sender(), &state(BusyPolicy::Queue));
    let records: Vec<_> = plan
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Record { task, body } => Some((*task, body.kind(), EventBody::from(body.clone()).to_json())),
            _ => None,
        })
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!((records[0].0, records[0].1), (TaskRef::Existing(2), EventKind::Message));
    assert_eq!(records[0].2["text"], "add a line");
    assert_eq!(records[0].2["channel"], "telegram");
    assert_eq!(records[1].1, EventKind::Decision);
    assert_eq!(records[1].2["intent"], "continue");
    assert_eq!(records[1].2["reason"], "test");
}

#[test]
fn clarify_offers_the_two_likeliest_readings_as_buttons() {
    let mut approve = decision(Intent::Approve);
    approve.approval = Some("101".into());
    let cont = on(decision(Intent::Continue), 2);
    let plan = route(
        &decision(Intent::Clarify),
        &[approve.clone(), cont.clone(), cont.clone()],
        "ok",
        &sender(),
        &state(BusyPolicy::Queue),
    );
    use crate::reply::{Action, Button, Reply};
    assert_eq!(
        plan.effects,
        vec![Effect::Reply(Reply {
            text: "Did you mean:".into(),
            buttons: vec![
                Button {
                    label: "Approve run `npm test`".into(),
                    action: Action::Choose { choice: 0, reading: approve }
                },
                Button {
                    label: "Continue 'write release notes'".into(),
                    action: Action::Choose { choice: 1, reading: cont }
                },
            ],
            ..Reply::default()
        })]
    );
}

#[test]
fn spawn_first_prompt_carries_the_task_context_and_role() {
    let st = state(BusyPolicy::Queue);
    let prompt = prompt::first_turn(&st.tasks[0], Role::Reviewer, "use cc to review it too");
    for needle in [
        "Task: fix routing for /api/v2",
        "verified: the 404 comes from the v2 prefix",
        "Latest result: routes fixed, 2 tests added",
        "Changed files: src/routes.rs",
        "Do not edit files unless asked",
        "Request: use cc to review it too",
    ] {
        assert!(prompt.contains(needle), "{needle} missing from:\n{prompt}");
    }
    assert!(prompt::first_turn(&st.tasks[0], Role::Tester, "x").contains("Write tests"));
}

#[test]
fn titles_are_short_and_drop_commands() {
    assert_eq!(words::title_from("/cc fix the login bug\nmore detail"), "fix the login bug");
    let long = "refactor the payment service so that retries are idempotent and the ledger never double counts";
    let title = words::title_from(long);
    assert!(title.ends_with('…') && title.chars().count() <= 61, "{title}");
    assert_eq!(words::title_from("修复登录页面的跳转问题"), "修复登录页面的跳转问题");
    assert_eq!(words::title_from("RUN_CMD: echo hello > out.txt"), "echo hello > out.txt");
    assert_eq!(words::title_from("/new please can you fix the flaky checkout test?"), "fix the flaky checkout test");
    assert_eq!(words::title_from("@taskgate_bot use codex to add rate limiting"), "add rate limiting");
    assert_eq!(words::title_from("have claude write the release notes"), "write the release notes");
    assert_eq!(words::title_from("帮我把首页的按钮改成绿色"), "把首页的按钮改成绿色");
    assert_eq!(words::title_from("BUG: login fails on Safari"), "login fails on Safari");
    assert_eq!(words::title_from("/new"), "/new", "nothing left: the text as it was");
}

#[test]
fn new_asks_a_usable_session_for_a_handoff_unless_told_not_to() {
    let mut s = state(BusyPolicy::Queue);
    s.project.handoff = true;
    let new = on(decision(Intent::NewSession), 2);
    let plan = route(&new, &[], "/new", &sender(), &s);
    assert_eq!(actions(&plan), [Effect::Handoff { execution: 21, input: prompt::HANDOFF.to_owned() }]);
    assert!(plan.reply_text().contains("first writes down what it found"), "{}", plan.reply_text());

    let plan = route(&new, &[], "/new!", &sender(), &s);
    assert_eq!(actions(&plan), [Effect::CloseSession { execution: 21 }]);
    assert!(plan.reply_text().ends_with("No handoff (/new!)."), "{}", plan.reply_text());

    // A busy session is not asked: its turn is not over.
    let plan = route(&on(decision(Intent::NewSession), 1), &[], "/new", &sender(), &s);
    assert_eq!(actions(&plan), [Effect::CloseSession { execution: 11 }]);
    assert!(plan.reply_text().ends_with("No handoff: the old session is not usable."), "{}", plan.reply_text());

    // A message while the handoff runs (the session closed, its last turn busy) is queued as
    // the fresh session's first prompt, with the note.
    s.tasks[1].executions[0].session.as_mut().expect("session").status = SessionStatus::Closed;
    s.tasks[1].executions[0].busy = true;
    let plan = route(&on(decision(Intent::Continue), 2), &[], "go on", &sender(), &s);
    match actions(&plan).as_slice() {
        [Effect::Focus { .. }, Effect::QueueTurn { execution: 21, input }] => {
            assert!(input.contains("verified: the 404 comes from the v2 prefix") && input.ends_with("go on"), "{input}")
        }
        other => panic!("{other:?}"),
    }
}
