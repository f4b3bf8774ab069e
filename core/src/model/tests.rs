use super::*;
use chrono::TimeZone;

fn at(minute: u32) -> Timestamp {
    chrono::Utc.with_ymd_and_hms(2026, 11, 22, 10, minute, 0).unwrap()
}

fn approval() -> Approval {
    Approval {
        id: 1,
        task_id: 1,
        execution_id: Some(1),
        nonce: "n".into(),
        rule_id: None,
        turn_id: Some(1),
        request_id: "r-1".into(),
        action: "run `npm test`".into(),
        status: ApprovalStatus::Pending,
        scope: None,
        decided_by: None,
        decided_channel: None,
        decided_at: None,
        version: 0,
        created_at: at(0),
    }
}

#[test]
fn sticky_rule_finished_or_failed_turn_leaves_session_usable() {
    for end in [TurnStatus::Completed, TurnStatus::Failed, TurnStatus::Interrupted] {
        let turn = TurnStatus::Running.transition(end).unwrap();
        let session = SessionStatus::Busy.transition(turn.session_after()).unwrap();
        assert_eq!(session, SessionStatus::Ready, "after a {end} turn");
        assert!(session.is_usable());
        // And the next turn goes to the same session.
        assert_eq!(session.transition(SessionStatus::Busy), Ok(SessionStatus::Busy));
    }
}

#[test]
fn dead_and_closed_sessions_are_final_and_unusable() {
    for end in [SessionStatus::Dead, SessionStatus::Closed] {
        assert!(end.is_terminal());
        assert!(!end.is_usable());
        for to in SessionStatus::ALL {
            assert!(end.transition(*to).is_err(), "{end} -> {to}");
        }
    }
}

#[test]
fn illegal_transition_is_an_error_naming_both_ends() {
    let err = TurnStatus::Completed.transition(TurnStatus::Running).unwrap_err();
    assert_eq!(err.to_string(), "illegal turn transition: completed -> running");
    assert!(TaskStatus::Idle.transition(TaskStatus::WaitingApproval).is_err());
    assert!(ExecutionStatus::Cancelled.transition(ExecutionStatus::Running).is_err());
    // Staying in place is not a move.
    assert!(TaskStatus::Running.transition(TaskStatus::Running).is_err());
}

#[test]
fn a_follow_up_reopens_a_finished_task() {
    for from in [TaskStatus::Completed, TaskStatus::Failed, TaskStatus::Cancelled, TaskStatus::Idle] {
        assert_eq!(from.transition(TaskStatus::Running), Ok(TaskStatus::Running), "{from}");
    }
    assert_eq!(ExecutionStatus::Failed.transition(ExecutionStatus::Running), Ok(ExecutionStatus::Running));
}

#[test]
fn turn_approval_round_trip() {
    let s = TurnStatus::Queued
        .transition(TurnStatus::Running)
        .and_then(|s| s.transition(TurnStatus::WaitingApproval))
        .and_then(|s| s.transition(TurnStatus::Running))
        .and_then(|s| s.transition(TurnStatus::Completed))
        .unwrap();
    assert!(s.is_terminal());
    assert!(!TurnStatus::Running.is_terminal());
}

#[test]
fn approval_resolves_once_and_reports_the_first_decider() {
    let mut a = approval();
    a.decide(Answer::Approve(Scope::Always), 7, Channel::Telegram, at(42)).unwrap();
    assert_eq!(a.status, ApprovalStatus::Approved);
    assert_eq!(a.scope, Some(Scope::Always));

    let second = a.decide(Answer::Deny, 8, Channel::Feishu, at(43)).unwrap_err();
    assert_eq!(second.status, ApprovalStatus::Approved);
    assert_eq!(second.by, Some(7));
    assert_eq!(second.channel, Some(Channel::Telegram));
    assert_eq!(second.at, Some(at(42)));
    // The stored decision did not change.
    assert_eq!(
        (a.status, a.decided_by, a.decided_channel),
        (ApprovalStatus::Approved, Some(7), Some(Channel::Telegram))
    );
}

#[test]
fn deny_and_stop_cancels() {
    let mut a = approval();
    a.decide(Answer::DenyAndStop, 7, Channel::Web, at(1)).unwrap();
    assert_eq!(a.status, ApprovalStatus::Cancelled);
    assert_eq!(a.scope, None);
}

#[test]
fn names_round_trip_through_str_and_serde() {
    for s in TaskStatus::ALL {
        assert_eq!(s.name().parse::<TaskStatus>(), Ok(*s));
        assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.name()));
    }
    for k in NoteKind::ALL {
        assert_eq!(k.name().parse::<NoteKind>(), Ok(*k));
    }
    let err = "sleeping".parse::<TaskStatus>().unwrap_err();
    assert_eq!(err.to_string(), "unknown task status `sleeping`");
}
