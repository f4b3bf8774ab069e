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
