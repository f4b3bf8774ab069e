//! Clarify offers the likeliest readings as buttons (rule 10).

use taskgate_core::classify::{Classifier, Context, Intent};

fn ctx(json: &str) -> Context {
    serde_json::from_str(json).unwrap()
}

const TWO_PENDING: &str = r#"{"chat":"direct","mentioned":false,"reply_to":null,"active_task":"1",
  "tasks":[{"id":"1","title":"fix routing for /api/v2","status":"waiting_approval","agents":["codex"]},
           {"id":"2","title":"flaky checkout test","status":"waiting_approval","agents":["claude"]}],
  "pending_approvals":[{"id":"10","task":"1","agent":"codex","action":"run `npm test`"},
                       {"id":"20","task":"2","agent":"claude","action":"run `pytest -x`"}],
  "agents":["codex","claude"]}"#;

#[test]
fn a_yes_with_two_pending_approvals_offers_each_approval() {
    let c = Classifier::default();
    let ctx = ctx(TWO_PENDING);
    assert_eq!(c.classify("ok", &ctx).intent, Intent::Clarify);
    let readings = c.readings("ok", &ctx);
    let got: Vec<_> = readings.iter().map(|d| (d.intent, d.approval.as_deref(), d.task.as_deref())).collect();
    assert_eq!(got, vec![(Intent::Approve, Some("10"), Some("1")), (Intent::Approve, Some("20"), Some("2"))]);

    let denials: Vec<_> = c.readings("no", &ctx).iter().map(|d| (d.intent, d.approval.clone())).collect();
    assert_eq!(denials, vec![(Intent::Deny, Some("10".into())), (Intent::Deny, Some("20".into()))]);
}

#[test]
fn an_unclear_follow_up_offers_the_best_fitting_tasks() {
    let c = Classifier::default();
    let ctx = ctx(r#"{"chat":"direct","mentioned":false,"reply_to":null,"active_task":"2",
  "tasks":[{"id":"1","title":"fix routing for /api/v2","status":"idle","agents":["codex"]},
           {"id":"2","title":"release notes for v2.3","status":"idle","agents":["claude"]},
           {"id":"3","title":"dark mode for settings","status":"idle","agents":["codex"]}],
  "pending_approvals":[],"agents":["codex","claude"]}"#);
    let readings = c.readings("the routing part needs another look", &ctx);
    assert_eq!(readings.len(), 2);
    assert_eq!((readings[0].intent, readings[0].task.as_deref()), (Intent::Continue, Some("1")));
    // Second: the focused task, ahead of the others with no overlap.
    assert_eq!((readings[1].intent, readings[1].task.as_deref()), (Intent::Continue, Some("2")));
}

#[test]
fn with_no_tasks_a_goal_reads_as_a_new_task() {
    let c = Classifier::default();
    let ctx = ctx(r#"{"chat":"direct","tasks":[],"pending_approvals":[],"agents":["codex"]}"#);
    let readings = c.readings("set up renovate", &ctx);
    assert_eq!(readings.iter().map(|d| d.intent).collect::<Vec<_>>(), vec![Intent::NewTask]);
}
