use chrono::{TimeZone, Utc};

use super::*;
use crate::model::{NoteEntry, NoteKind, Task, TaskStatus};

fn task() -> Task {
    let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    Task {
        id: 7,
        project_id: Some(1),
        title: "login fails after restart".into(),
        goal: "login fails after restart".into(),
        status: TaskStatus::Idle,
        objective: Some("make login survive a restart".into()),
        reproduction: Some("restart the server, log in: 500".into()),
        next_action: Some("check the session table migration".into()),
        created_by: None,
        version: 1,
        created_at: at,
        updated_at: at,
    }
}

fn entry(id: i64, kind: NoteKind, text: &str, evidence: &[&str], commit: Option<&str>) -> NoteEntry {
    NoteEntry {
        id,
        task_id: 7,
        kind,
        text: text.into(),
        evidence: evidence.iter().map(|s| s.to_string()).collect(),
        author: "execution:3".into(),
        commit: commit.map(str::to_owned),
        at: Utc.with_ymd_and_hms(2026, 1, 2, 4, 0, 0).unwrap(),
    }
}

#[test]
fn evidence_files_come_from_file_ids_and_cited_turns() {
    let evidence =
        ["turn:12".to_string(), "file:./src/db.rs".into(), "cmd:cargo test".into(), "turn:99".into(), "file:".into()];
    let files = evidence_files(&evidence, |turn| {
        if turn == 12 { vec!["src/session.rs".into(), "src/db.rs".into()] } else { Vec::new() }
    });
    assert_eq!(files, ["src/db.rs", "src/session.rs"]);
    assert_eq!(Evidence::parse("turn:x"), Evidence::Other("turn:x"));
    assert_eq!(Evidence::parse(" turn:4 "), Evidence::Turn(4));
    assert_eq!(turn_evidence_id(4), "turn:4");
}

#[test]
fn an_entry_is_stale_only_when_a_file_it_depends_on_changed() {
    let files = vec!["src/db.rs".to_string(), "src/session.rs".into()];
    assert_eq!(stale_files(&files, &["./src/db.rs".into(), "README.md".into()]), ["src/db.rs"]);
    assert!(stale_files(&files, &["README.md".into()]).is_empty());
    assert!(stale_files(&[], &["src/db.rs".into()]).is_empty(), "no evidence files, nothing to invalidate");
    assert!(stale_files(&files, &[]).is_empty());
}

#[test]
fn condensed_note_lists_everything_in_order_and_flags_stale_entries() {
    let verified = ShownEntry {
        entry: entry(
            1,
            NoteKind::Verified,
            "the session row is written\nbefore commit",
            &["turn:12", "file:src/db.rs"],
            Some("0123456789abcdef0123"),
        ),
        files: vec!["src/db.rs".into()],
        stale_because: vec!["src/db.rs".into()],
    };
    let rejected = ShownEntry::new(entry(2, NoteKind::Rejected, "cookie expiry is not the cause", &[], None));
    let note = RestartNote::new(&task(), vec![verified, rejected]);
    let text = note.condensed().expect("a note");
    assert_eq!(
        text,
        "objective: make login survive a restart\n\
         reproduction: restart the server, log in: 500\n\
         stale (was verified; src/db.rs changed since 0123456789ab): the session row is written before commit (#1; evidence: turn:12, file:src/db.rs)\n\
         rejected: cookie expiry is not the cause (#2)\n\
         next action: check the session table migration"
    );
    assert!(note.entries[0].is_stale() && !note.entries[1].is_stale());
}

#[test]
fn an_empty_note_says_nothing() {
    let mut t = task();
    t.objective = None;
    t.reproduction = Some("  ".into());
    t.next_action = None;
    let note = RestartNote::new(&t, Vec::new());
    assert!(note.is_empty());
    assert_eq!(note.condensed(), None);
    assert!(note.markdown().contains("**Objective:** login fails after restart"), "the goal stands in");
    assert!(note.markdown().contains("None yet."));
}

#[test]
fn markdown_keeps_authors_times_commits_and_evidence() {
    let shown = ShownEntry {
        entry: entry(
            4,
            NoteKind::Open,
            "why does it only fail on\nthe second start?",
            &["file:src/db.rs"],
            Some("abc"),
        ),
        files: vec!["src/db.rs".into()],
        stale_because: Vec::new(),
    };
    let md = RestartNote::new(&task(), vec![shown]).markdown();
    assert!(md.starts_with("# Task 7: login fails after restart\n"), "{md}");
    assert!(md.contains("**Next action:** check the session table migration"), "{md}");
    assert!(md.contains("- **open** #4: why does it only fail on\n    the second start?\n"), "{md}");
    assert!(md.contains("  - by execution:3 · 2026-01-02T04:00:00Z · commit abc\n"), "{md}");
    assert!(md.contains("  - evidence: `file:src/db.rs`\n  - depends on: `src/db.rs`\n"), "{md}");
}

#[test]
fn note_commands() {
    assert_eq!(parse_command("/note"), Some(NoteCommand::Show));
    assert_eq!(parse_command("  /note@taskgate_bot  "), Some(NoteCommand::Show));
    assert_eq!(parse_command("/notes"), None);
    assert_eq!(parse_command("please note this"), None);
    assert_eq!(
        parse_command("/note verified: login works after the fix (evidence: turn:3, file:src/db.rs)"),
        Some(NoteCommand::Record {
            kind: NoteKind::Verified,
            text: "login works after the fix".into(),
            evidence: vec!["turn:3".into(), "file:src/db.rs".into()]
        })
    );
    assert_eq!(
        parse_command("/note Rejected: it is the cache"),
        Some(NoteCommand::Record { kind: NoteKind::Rejected, text: "it is the cache".into(), evidence: Vec::new() })
    );
    assert_eq!(
        parse_command("/note next: bisect the migration"),
        Some(NoteCommand::NextAction("bisect the migration".into()))
    );
    assert_eq!(
        parse_command("/note repro: restart, log in"),
        Some(NoteCommand::Reproduction("restart, log in".into()))
    );
    assert_eq!(parse_command("/note objective: ship it"), Some(NoteCommand::Objective("ship it".into())));
    for bad in ["/note hello", "/note maybe: x", "/note verified:   ", "/note verified: (evidence: turn:1)"] {
        assert!(matches!(parse_command(bad), Some(NoteCommand::Help(_))), "{bad}");
    }
}

mod captured {
    use chrono::{Duration, TimeZone, Utc};

    use super::task;
    use crate::classify::Intent;
    use crate::model::{
        ApprovalStatus, Body, Channel, Event, Execution, ExecutionStatus, Id, NoteEntry, NoteKind, Role, TurnEvidence,
    };
    use crate::notes::{RestartNote, Section, ShownEntry, capture, is_test_command};
    use crate::runtime::{ApprovalKind, ApprovalRequest, CommandStatus, FileChange, TurnOutcome};

    fn execution(id: Id, agent: &str, role: Role) -> Execution {
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 0, 0).unwrap();
        Execution {
            id,
            task_id: 7,
            agent: agent.into(),
            role,
            status: ExecutionStatus::Idle,
            version: 1,
            created_at: at,
            updated_at: at,
        }
    }

    /// A timeline built in order: ids and times grow with each event.
    #[derive(Default)]
    struct Timeline(Vec<Event>);

    impl Timeline {
        fn push(&mut self, exec: Option<Id>, body: Body) -> &mut Self {
            let id = self.0.len() as Id + 1;
            let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 0, 0).unwrap() + Duration::minutes(id);
            self.0.push(Event {
                id,
                task_id: 7,
                execution_id: exec,
                kind: body.kind(),
                channel: None,
                actor: None,
                body: body.into(),
                at,
            });
            self
        }

        fn said(&mut self, text: &str, intent: Intent) -> &mut Self {
            self.push(
                None,
                Body::Message {
                    text: text.into(),
                    from: "Ada".into(),
                    person_id: Some(1),
                    channel: Some(Channel::Telegram),
                },
            );
            self.push(None, Body::Decision { intent, confidence: 0.9, reason: "test".into() })
        }

        fn finished(&mut self, exec: Id, turn: Id, outcome: TurnOutcome, summary: &str) -> &mut Self {
            self.push(
                Some(exec),
                Body::TurnFinished {
                    turn,
                    outcome,
                    usage: None,
                    summary: summary.into(),
                    evidence: TurnEvidence::default(),
                },
            )
        }

        fn command(&mut self, exec: Id, command: &str, code: i32, tail: &str) -> &mut Self {
            let status = if code == 0 { CommandStatus::Succeeded } else { CommandStatus::Failed };
            self.push(
                Some(exec),
                Body::CommandFinished {
                    id: "c".into(),
                    command: command.into(),
                    status,
                    exit_code: Some(code),
                    output_tail: tail.into(),
                },
            )
        }

        fn approval(&mut self, exec: Id, approval: Id, action: &str) -> &mut Self {
            self.push(
                Some(exec),
                Body::ApprovalRequested {
                    approval,
                    request: ApprovalRequest {
                        request_id: format!("r{approval}"),
                        kind: ApprovalKind::Command,
                        action: action.into(),
                        detail: None,
                        cwd: None,
                        reason: None,
                    },
                },
            )
        }

        fn decided(&mut self, approval: Id, action: &str, status: ApprovalStatus, note: Option<&str>) -> &mut Self {
            self.push(
                None,
                Body::ApprovalDecided {
                    approval,
                    action: action.into(),
                    status,
                    scope: None,
                    decided_by: Some(1),
                    rule: None,
                    note: note.map(str::to_owned),
                },
            )
        }
    }

    fn executions() -> Vec<Execution> {
        vec![execution(1, "codex", Role::Editor), execution(2, "claude", Role::Reviewer)]
    }

    fn texts(captured: &crate::notes::Captured, section: Section) -> Vec<String> {
        captured.section(section).map(|e| e.text.clone()).collect()
    }

    #[test]
    fn a_timeline_becomes_instructions_rejections_evidence_outcomes_and_open_items() {
        let mut t = Timeline::default();
        t.said("make the button blue", Intent::NewTask)
            .finished(1, 10, TurnOutcome::Completed, "made it blue")
            .said("make the button green", Intent::Continue)
            .command(1, "ls /nope", 2, "ls: cannot access '/nope': No such file or directory")
            .command(1, "cargo test -q", 101, "test result: FAILED. 1 passed; 1 failed")
            .push(
                Some(1),
                Body::FileChanged {
                    id: "f".into(),
                    changes: vec![FileChange {
                        path: "src/button.css".into(),
                        diff: Some("--- a\n+++ b\n@@ -1 +1 @@\n-blue\n+green\n+bold\n".into()),
                    }],
                    applied: true,
                },
            )
            .finished(1, 11, TurnOutcome::Completed, "green now")
            .approval(1, 5, "run `crontab -e`")
            .said("no crontab on the shared box, use a systemd timer", Intent::Deny)
            .decided(
                5,
                "run `crontab -e`",
                ApprovalStatus::Denied,
                Some("no crontab on the shared box, use a systemd timer"),
            )
            .approval(1, 6, "run `rm -rf build`")
            .said("use cc to review it", Intent::Spawn)
            .finished(2, 12, TurnOutcome::Completed, "contrast of green on white fails WCAG AA")
            .said("/status", Intent::Status)
            .said("stop", Intent::Cancel)
            .finished(1, 13, TurnOutcome::Interrupted, "")
            .push(Some(2), Body::Question { request_id: "q".into(), text: "which shade?".into() })
            .finished(1, 14, TurnOutcome::TimedOut { limit_secs: 60 }, "");
        let c = capture(&t.0, &executions());

        let instructions = texts(&c, Section::Instruction);
        assert_eq!(instructions.len(), 3, "{instructions:#?}");
        assert!(instructions[0].starts_with("make the button blue (Ada, telegram, 2026-01-02 03:01 UTC)"));
        assert!(instructions[1].starts_with("make the button green (Ada, telegram,"));
        assert!(instructions[2].starts_with("use cc to review it"));
        assert_eq!(
            texts(&c, Section::Rejected),
            [
                "denied run `crontab -e`: \"no crontab on the shared box, use a systemd timer\"",
                "editor (codex) turn 13 interrupted (stopped by a person: stop)"
            ]
        );
        assert_eq!(
            texts(&c, Section::Evidence),
            [
                "`ls /nope` exit 2: ls: cannot access '/nope': No such file or directory",
                "tests `cargo test -q` FAILED (exit 101): test result: FAILED. 1 passed; 1 failed",
                "changed src/button.css (+2 −1)",
            ]
        );
        let change = c.section(Section::Evidence).nth(2).expect("the file change");
        assert_eq!(change.files, ["src/button.css"]);
        assert!(change.settled_at > change.at, "judged stale from its turn's end on, not from the edit");
        assert_eq!(
            texts(&c, Section::Outcome),
            [
                "editor (codex) turn 10 finished: made it blue",
                "editor (codex) turn 11 finished: green now",
                "reviewer (claude) turn 12 reviewer's findings: contrast of green on white fails WCAG AA",
            ]
        );
        assert_eq!(
            texts(&c, Section::Open),
            [
                "approval pending: run `rm -rf build`",
                "reviewer (claude) asked: which shade?",
                "editor (codex) turn 14 timed out after 60 s"
            ],
            "the decided approval is settled"
        );
        assert_eq!(c.next_action, None, "the last request (the review) completed");
    }

    #[test]
    fn the_next_action_is_the_last_request_when_its_turn_did_not_complete() {
        let mut t = Timeline::default();
        t.said("fix the login", Intent::NewTask)
            .finished(1, 1, TurnOutcome::Failed { message: "model overloaded".into() }, "")
            .said("try again with the cache off", Intent::Continue);
        let c = capture(&t.0, &executions());
        assert_eq!(c.next_action.as_deref(), Some("finish what was last asked: try again with the cache off"));
        assert_eq!(texts(&c, Section::Open), ["editor (codex) turn 1 failed: model overloaded"]);
        // `/new`: the old session's handoff turn completes, the request is still to do.
        let mut with_new = Timeline(t.0.clone());
        with_new.said("/new", Intent::NewSession).finished(1, 9, TurnOutcome::Completed, "noted two findings");
        let c = capture(&with_new.0, &executions());
        assert_eq!(c.next_action.as_deref(), Some("finish what was last asked: try again with the cache off"));
        assert_eq!(texts(&c, Section::Outcome), ["editor (codex) turn 9 handoff: noted two findings"]);
        // A later success settles the failure and the request.
        t.finished(1, 2, TurnOutcome::Completed, "done");
        let c = capture(&t.0, &executions());
        assert!(texts(&c, Section::Open).is_empty());
        assert_eq!(c.next_action, None);
        // An answered question is an instruction, not open any more.
        t.push(Some(1), Body::Question { request_id: "q".into(), text: "which db?".into() })
            .push(Some(1), Body::QuestionAnswered { text: "postgres".into(), person_id: 1 });
        let c = capture(&t.0, &executions());
        assert!(texts(&c, Section::Open).is_empty());
        assert_eq!(
            texts(&c, Section::Instruction).last().map(String::as_str),
            Some("answered editor (codex) asked: which db?: postgres")
        );
    }

    #[test]
    fn test_commands_are_recognised() {
        for yes in
            ["cargo test", "npm test", "pytest -q", "go test ./...", "npm run test:unit", "/bin/bash -lc 'cargo test'"]
        {
            assert!(is_test_command(yes), "{yes}");
        }
        for no in ["ls", "cat latest.txt", "cargo build", "git status"] {
            assert!(!is_test_command(no), "{no}");
        }
    }

    fn agent_entry(id: Id, kind: NoteKind, text: &str) -> ShownEntry {
        ShownEntry::new(NoteEntry {
            id,
            task_id: 7,
            kind,
            text: text.into(),
            evidence: Vec::new(),
            author: "execution:1".into(),
            commit: None,
            at: Utc.with_ymd_and_hms(2026, 1, 2, 4, 0, 0).unwrap(),
        })
    }

    #[test]
    fn agent_entries_stay_on_top_and_their_next_action_wins() {
        let mut t = Timeline::default();
        t.said("fix the login", Intent::NewTask).command(1, "ls /nope", 2, "no such file");
        let note = RestartNote::new(&task(), vec![agent_entry(1, NoteKind::Verified, "the cookie is fine")])
            .with_captured(capture(&t.0, &executions()));
        let text = note.condensed().expect("a note");
        let verified = text.find("verified: the cookie is fine").expect("agent entry");
        let evidence = text.find("evidence:\n- `ls /nope` exit 2: no such file").expect("captured");
        assert!(verified < evidence, "{text}");
        assert!(text.ends_with("next action: check the session table migration"), "{text}");
        let md = note.markdown();
        assert!(md.contains("## Captured by taskgate"), "{md}");
        assert!(
            md.contains("### Evidence\n\n- `ls /nope` exit 2: no such file (2026-01-02T03:03:00Z, event 3)"),
            "{md}"
        );
        let mut t2 = task();
        t2.next_action = None;
        let note = RestartNote::new(&t2, Vec::new()).with_captured(capture(&t.0, &executions()));
        assert!(note.condensed().unwrap().ends_with("next action: finish what was last asked: fix the login"));
    }

    #[test]
    fn the_seed_fits_its_budget_newest_and_verified_first() {
        let mut t = Timeline::default();
        t.said("the goal: make the dashboard fast", Intent::NewTask);
        for i in 0..120 {
            let tail = format!("line {i} {}", "x".repeat(200));
            t.command(1, &format!("bench run {i}"), i % 3, &tail);
        }
        t.said("make the button green", Intent::Continue);
        let entries = vec![
            agent_entry(1, NoteKind::Rejected, &"old rejected idea ".repeat(10)),
            agent_entry(2, NoteKind::Verified, "the query plan uses the index"),
        ];
        let note = RestartNote::new(&task(), entries).with_captured(capture(&t.0, &executions()));
        assert!(note.condensed().unwrap().chars().count() > 20_000, "the whole note is big");
        for budget in [4000, 1500, 600, 200, 40, 0] {
            let seed = note.seed(budget).expect("a seed");
            assert!(seed.chars().count() <= budget, "{budget}: {}", seed.chars().count());
        }
        let seed = note.seed(4000).unwrap();
        assert!(seed.contains("verified: the query plan uses the index (#2)"), "{seed}");
        assert!(seed.contains("make the button green"), "the newest instruction: {seed}");
        assert!(seed.contains("`bench run 119` exit 2: line 119 xxx"), "the newest evidence whole: {seed}");
        assert!(seed.contains("- `bench run 100` exit 1\n"), "older evidence one line: {seed}");
        assert!(seed.contains("older entries: see the full note"), "{seed}");
        assert!(seed.starts_with("objective: make login survive a restart"), "{seed}");
        assert!(seed.ends_with("next action: check the session table migration"), "{seed}");
        // Shown in order: the agents' entries before the captured sections.
        assert!(seed.find("verified:").unwrap() < seed.find("evidence:").unwrap(), "{seed}");
        // Small notes are not cut at all.
        let small = RestartNote::new(&task(), Vec::new());
        assert_eq!(small.seed(4000), small.condensed());
    }
}
