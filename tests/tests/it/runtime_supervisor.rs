//! The supervisor over real adapters and the fake agents: crash → resume → fresh with the
//! restart note, the per-turn time limit (interrupt, then kill), and the process cap.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use taskgate_adapters::runtime::{AgentRuntimes, RuntimeOptions, SupervisedSession, Supervisor, SupervisorOptions};
use taskgate_core::runtime::{AgentKind, AgentSession, RuntimeEvent, SessionSpec, TurnOutcome};
use taskgate_tests::harness::Trial;
use taskgate_tests::sessions::*;

pub fn trials() -> Vec<Trial> {
    taskgate_tests::trials! {
        current_thread: [
            codex_crash_mid_turn_resumes_and_finishes_the_turn,
            claude_crash_mid_turn_resumes_and_finishes_the_turn,
            acp_crash_mid_turn_resumes_and_finishes_the_turn,
            failed_resume_starts_fresh_seeded_with_the_restart_note,
            time_limit_interrupts_a_runaway_turn_and_says_so,
            time_limit_kills_an_agent_that_ignores_the_interrupt,
            process_cap_queues_extra_sessions,
            repeated_crashes_give_up_with_one_final_died,
        ],
    }
}

fn supervisor(options: SupervisorOptions) -> Supervisor {
    let runtime = AgentRuntimes::new(RuntimeOptions {
        shutdown_grace: Duration::from_millis(300),
        ..taskgate_tests::sessions::options()
    });
    Supervisor::new(Arc::new(runtime), options)
}

fn quick() -> SupervisorOptions {
    SupervisorOptions {
        max_concurrent: 4,
        default_turn_timeout: None,
        interrupt_grace: Duration::from_millis(300),
        max_restarts: 2,
    }
}

fn spec(h: &Workspace, kind: AgentKind) -> SessionSpec {
    let mut spec = h.spec(kind);
    if kind == AgentKind::Acp {
        spec.args.push("--acp-load".into());
    }
    spec
}

async fn start(sup: &Supervisor, spec: SessionSpec, note: Option<&str>) -> Box<dyn AgentSession> {
    let session: SupervisedSession = sup.start_supervised(spec, note.map(str::to_owned)).await.expect("starts");
    Box::new(session.into_handle())
}

fn outcome(events: &[RuntimeEvent]) -> TurnOutcome {
    match last(events) {
        RuntimeEvent::TurnFinished { outcome, .. } => outcome.clone(),
        other => panic!("{other:?}"),
    }
}

/// The texts of every turn the fake agent was sent, whatever the protocol.
fn turn_inputs(h: &Workspace) -> Vec<String> {
    h.received()
        .iter()
        .filter_map(|m| {
            m.pointer("/params/input/0/text")
                .or_else(|| m.pointer("/params/prompt/0/text"))
                .or_else(|| if m["type"] == "user" { m.pointer("/message/content") } else { None })
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

async fn crash_mid_turn_resumes_and_finishes(kind: AgentKind) {
    let h = Workspace::new();
    let sup = supervisor(quick());
    let mut s = start(&sup, spec(&h, kind), None).await;
    s.send_turn("remember this").await.unwrap();
    until_turn_finished(&mut s).await;
    let id = s.provider_session_id().expect("provider id after a turn");

    s.send_turn("CRASH_ONCE now").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    let died = events.iter().position(|e| matches!(e, RuntimeEvent::Died { restarting: true, .. })).expect("Died");
    let ready = events
        .iter()
        .position(|e| matches!(e, RuntimeEvent::SessionReady { resumed: true, provider_session_id } if *provider_session_id == id))
        .unwrap_or_else(|| panic!("resumed SessionReady in {events:?}"));
    assert!(died < ready);
    assert_eq!(outcome(&events), TurnOutcome::Completed);
    assert!(text_of(&events).ends_with("FAKE-REPLY: survived"), "{events:?}");
    assert_eq!(s.provider_session_id(), Some(id));

    // The resumed session remembers what came before the crash.
    s.send_turn("RECALL").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(text_of(&events).contains("previous input was 'CRASH_ONCE now'"), "{events:?}");
    s.shutdown().await;
}

async fn codex_crash_mid_turn_resumes_and_finishes_the_turn() {
    crash_mid_turn_resumes_and_finishes(AgentKind::Codex).await;
}

async fn claude_crash_mid_turn_resumes_and_finishes_the_turn() {
    crash_mid_turn_resumes_and_finishes(AgentKind::Claude).await;
}

async fn acp_crash_mid_turn_resumes_and_finishes_the_turn() {
    crash_mid_turn_resumes_and_finishes(AgentKind::Acp).await;
}

async fn failed_resume_starts_fresh_seeded_with_the_restart_note() {
    let h = Workspace::new();
    let sup = supervisor(quick());
    let session = sup.start_supervised(spec(&h, AgentKind::Codex), Some("old note".into())).await.unwrap();
    session.set_restart_note("NOTE: objective is the green button");
    let mut s: Box<dyn AgentSession> = Box::new(session.into_handle());
    let Some(RuntimeEvent::SessionReady { provider_session_id: first, .. }) = next(&mut s).await else { panic!() };

    // The crash also loses the stored session, so resume fails.
    s.send_turn("CRASH_FORGET make it green").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(events.iter().any(|e| matches!(e, RuntimeEvent::Died { restarting: true, .. })));
    let fresh = events.iter().find_map(|e| match e {
        RuntimeEvent::SessionReady { provider_session_id, resumed: false } => Some(provider_session_id.clone()),
        _ => None,
    });
    let fresh = fresh.unwrap_or_else(|| panic!("fresh SessionReady in {events:?}"));
    assert_ne!(fresh, first);
    assert_eq!(s.provider_session_id(), Some(fresh));
    assert_eq!(outcome(&events), TurnOutcome::Completed);

    let inputs = turn_inputs(&h);
    let seed = inputs.last().unwrap();
    assert!(seed.starts_with("NOTE: objective is the green button"), "{seed}");
    assert!(seed.ends_with("CRASH_FORGET make it green"), "{seed}");
    // The note is used once, not glued to every later turn.
    s.send_turn("next").await.unwrap();
    until_turn_finished(&mut s).await;
    assert_eq!(turn_inputs(&h).last().unwrap(), "next");
    s.shutdown().await;
}

async fn time_limit_interrupts_a_runaway_turn_and_says_so() {
    let h = Workspace::new();
    let sup = supervisor(quick());
    let mut spec = spec(&h, AgentKind::Claude);
    spec.turn_timeout = Some(Duration::from_millis(300));
    let mut s = start(&sup, spec, None).await;
    s.send_turn("SLOW_REPLY please").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert_eq!(outcome(&events), TurnOutcome::TimedOut { limit_secs: 1 });
    assert!(h.received().iter().any(|m| m["request"]["subtype"] == "interrupt"));
    // Same process, next turn.
    s.send_turn("after").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert_eq!(text_of(&events), "FAKE-REPLY: you said 'after'");
    assert!(!events.iter().any(|e| matches!(e, RuntimeEvent::SessionReady { .. })));
    s.shutdown().await;
}

async fn time_limit_kills_an_agent_that_ignores_the_interrupt() {
    let h = Workspace::new();
    let sup = supervisor(quick());
    let mut spec = spec(&h, AgentKind::Codex);
    spec.turn_timeout = Some(Duration::from_millis(300));
    let mut s = start(&sup, spec, None).await;
    let Some(RuntimeEvent::SessionReady { provider_session_id: id, .. }) = next(&mut s).await else { panic!() };
    let begun = std::time::Instant::now();
    s.send_turn("STUBBORN").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert_eq!(outcome(&events), TurnOutcome::TimedOut { limit_secs: 1 });
    assert!(begun.elapsed() < Duration::from_secs(10), "killed, not waited out");
    // The next turn brings the agent back, resumed.
    s.send_turn("next").await.unwrap();
    let events = until_turn_finished(&mut s).await;
    assert!(events.contains(&RuntimeEvent::SessionReady { provider_session_id: id, resumed: true }), "{events:?}");
    assert_eq!(text_of(&events), "FAKE-REPLY: you said 'next'");
    s.shutdown().await;
}

async fn process_cap_queues_extra_sessions() {
    let h = Workspace::new();
    let sup = supervisor(SupervisorOptions { max_concurrent: 1, ..quick() });
    let mut first = start(&sup, spec(&h, AgentKind::Codex), None).await;
    assert_eq!(sup.available_slots(), 0);
    let second = {
        let sup = sup.clone();
        // Another configuration: another app-server (one of the same would be a thread of
        // the first; see runtime_codex::the_process_cap_counts_processes_not_threads).
        let mut spec = spec(&h, AgentKind::Codex);
        spec.env.push(("CODEX_HOME".into(), h.path("second-home").to_string_lossy().into_owned()));
        tokio::spawn(async move { sup.start_supervised(spec, None).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second session waits for a slot");
    first.shutdown().await;
    let second = tokio::time::timeout(STEP, second).await.expect("second starts").unwrap().expect("ok");
    let mut second: Box<dyn AgentSession> = Box::new(second.into_handle());
    second.send_turn("hello").await.unwrap();
    assert_eq!(outcome(&until_turn_finished(&mut second).await), TurnOutcome::Completed);
    second.shutdown().await;
    assert_eq!(sup.available_slots(), 1);
}

async fn repeated_crashes_give_up_with_one_final_died() {
    let h = Workspace::new();
    let sup = supervisor(quick());
    let mut s = start(&sup, spec(&h, AgentKind::Codex), None).await;
    s.send_turn("CRASH always").await.unwrap();
    let mut events = Vec::new();
    while let Some(event) = next(&mut s).await {
        events.push(event);
    }
    let restarts = events.iter().filter(|e| matches!(e, RuntimeEvent::Died { restarting: true, .. })).count();
    assert_eq!(restarts, 2, "{events:?}");
    assert!(matches!(events.last(), Some(RuntimeEvent::Died { restarting: false, .. })), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, RuntimeEvent::TurnFinished { outcome: TurnOutcome::Failed { .. }, .. })));
    assert!(s.send_turn("x").await.is_err());
}
