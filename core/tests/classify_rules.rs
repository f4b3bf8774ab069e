//! One or more tests per labelling rule of the contract (rules 1–10), plus the cross-cutting
//! cases the issue names: negation, `@botname`, agents as nouns, reply targeting, the clarify
//! band, Chinese and mixed text, configured aliases.

use taskgate_core::classify::{
    ApprovalRef, Chat, Classifier, Context, Decision, Intent, Role, Scope, TaskRef, TaskStatus,
};

const AGENTS: [&str; 3] = ["codex", "claude", "gemini"];

fn task(id: &str, title: &str, status: TaskStatus, agents: &[&str]) -> TaskRef {
    TaskRef { id: id.into(), title: title.into(), status, agents: agents.iter().map(|a| a.to_string()).collect() }
}

fn approval(id: &str, task: &str, action: &str) -> ApprovalRef {
    ApprovalRef { id: id.into(), task: task.into(), agent: Some("codex".into()), action: action.into() }
}

/// A direct chat focused on `active`.
fn ctx(tasks: Vec<TaskRef>, active: Option<&str>) -> Context {
    Context {
        chat: Chat::Direct,
        mentioned: false,
        reply_to: None,
        active_task: active.map(Into::into),
        tasks,
        pending_approvals: vec![],
        agents: AGENTS.iter().map(|a| a.to_string()).collect(),
    }
}

fn routing(status: TaskStatus) -> TaskRef {
    task("t1", "fix routing for /api/v2", status, &["codex"])
}

fn release(status: TaskStatus) -> TaskRef {
    task("t2", "write release notes for v2.3", status, &["claude"])
}

fn classify(text: &str, c: &Context) -> Decision {
    let d = Classifier::default().classify(text, c);
    assert!((0.0..=1.0).contains(&d.confidence), "confidence {} out of range", d.confidence);
    assert!(!d.reason.is_empty(), "every decision carries a reason");
    d
}

fn assert_intent(text: &str, c: &Context, intent: Intent, task: Option<&str>) -> Decision {
    let d = classify(text, c);
    assert_eq!((d.intent, d.task.as_deref()), (intent, task), "{text:?} → {d:?}");
    d
}

// Rule 1: group chats.

#[test]
fn rule1_group_message_not_addressed_is_ignored_whatever_it_says() {
    let mut c = ctx(vec![routing(TaskStatus::WaitingApproval)], Some("t1"));
    c.pending_approvals = vec![approval("a1", "t1", "run `npm test`")];
    c.chat = Chat::Group;
    for text in ["ok", "stop", "/status", "have claude review it"] {
        assert_intent(text, &c, Intent::Ignore, None);
    }
    c.mentioned = true;
    assert_intent("ok", &c, Intent::Approve, Some("t1"));
}

// Rule 2: explicit commands.

#[test]
fn rule2_commands_mean_what_they_say() {
    let c = ctx(vec![routing(TaskStatus::Running), release(TaskStatus::Idle)], Some("t1"));
    assert_intent("/status", &c, Intent::Status, Some("t1"));
    assert_intent("/cancel", &c, Intent::Cancel, Some("t1"));
    assert_intent("/new", &c, Intent::NewSession, Some("t1"));
    let d = assert_intent("/new add a dark mode toggle to the settings page", &c, Intent::NewTask, None);
    assert_eq!(d.agent, None);
    let none = ctx(vec![routing(TaskStatus::Running)], None);
    assert_intent("/status", &ctx(vec![], None), Intent::Status, None);
    assert_intent("/status everything", &none, Intent::Status, None);
}

#[test]
fn rule2_agent_commands_follow_rule_6() {
    let c = ctx(vec![task("t1", "migration: add owner_id to teams", TaskStatus::Idle, &["codex"])], Some("t1"));
    let d = assert_intent("/cc review the diff", &c, Intent::Spawn, Some("t1"));
    assert_eq!((d.agent.as_deref(), d.role), (Some("claude"), Some(Role::Reviewer)));
    let d = assert_intent("/gemini write tests for it", &c, Intent::Spawn, Some("t1"));
    assert_eq!((d.agent.as_deref(), d.role), (Some("gemini"), Some(Role::Tester)));
    let d = assert_intent("/cc draft the release notes for v2.4", &c, Intent::NewTask, None);
    assert_eq!(d.agent.as_deref(), Some("claude"));
}

#[test]
fn rule2_review_picks_the_named_or_first_free_agent() {
    let c = ctx(vec![routing(TaskStatus::Idle)], Some("t1"));
    let d = assert_intent("/review", &c, Intent::Spawn, Some("t1"));
    assert_eq!((d.agent.as_deref(), d.role), (Some("claude"), Some(Role::Reviewer)));
    let d = assert_intent("/review gemini", &c, Intent::Spawn, Some("t1"));
    assert_eq!(d.agent.as_deref(), Some("gemini"));
}

#[test]
fn commands_addressed_to_another_bot_are_ignored() {
    let mut c = ctx(vec![routing(TaskStatus::Running)], Some("t1"));
    c.chat = Chat::Group;
    c.mentioned = true;
    let bot = Classifier::default().with_bot_username("@taskgate_bot");
    assert_eq!(bot.classify("/cancel@other_bot", &c).intent, Intent::Ignore);
    assert_eq!(bot.classify("/cancel@taskgate_bot", &c).intent, Intent::Cancel);
    assert_eq!(bot.classify("/cancel@TaskGate_Bot", &c).intent, Intent::Cancel);
    // Without a configured username the command is taken as ours.
    assert_eq!(Classifier::default().classify("/status@taskgate_bot", &c).intent, Intent::Status);
    // A leading @mention is no command and no topic.
    assert_intent("@taskgate try again, the runner was down", &c, Intent::Continue, Some("t1"));
}

#[test]
fn a_path_is_not_a_command() {
    let c = ctx(vec![routing(TaskStatus::Idle)], Some("t1"));
    assert_intent("/api/v2/users still returns 404", &c, Intent::Continue, Some("t1"));
}

// Rule 3: pending approvals.

#[test]
fn rule3_yes_and_no_answer_the_only_pending_approval() {
    let mut c = ctx(vec![routing(TaskStatus::Running), release(TaskStatus::WaitingApproval)], Some("t1"));
    c.pending_approvals = vec![approval("a1", "t2", "run `gh release create v2.3.0`")];
    for yes in ["ok", "yes", "go ahead", "👍", "同意", "可以", "yeah yeah go ahead run it"] {
        let d = assert_intent(yes, &c, Intent::Approve, Some("t2"));
        assert_eq!((d.approval.as_deref(), d.scope), (Some("a1"), Some(Scope::Once)), "{yes}");
    }
    // With the approval's own task in focus, "stop" is a plain no as well.
    c.active_task = Some("t2".into());
    for no in ["no", "don't", "nope", "👎", "拒绝", "stop, not that"] {
        let d = assert_intent(no, &c, Intent::Deny, Some("t2"));
        assert_eq!((d.approval.as_deref(), d.scope), (Some("a1"), None), "{no}");
    }
}

#[test]
fn rule3_a_message_that_only_looks_like_a_no_continues() {
    let mut c = ctx(vec![task("t1", "note ada-0", TaskStatus::WaitingApproval, &["codex"])], Some("t1"));
    c.pending_approvals = vec![approval("a1", "t1", "run `echo burst`")];
    for text in ["note ada-5", "note 7: the header is blue", "notes on the login page"] {
        assert_intent(text, &c, Intent::Continue, Some("t1"));
    }
}

#[test]
fn rule3_a_no_carries_its_instruction() {
    let mut c = ctx(vec![routing(TaskStatus::WaitingApproval)], Some("t1"));
    c.pending_approvals = vec![approval("a1", "t1", "run `npm test`")];
    for text in
        ["no, run only the unit tests", "不行，别动生产库，先在 staging 上跑", "不要 push，先开个 PR", "nope, use pnpm"]
    {
        assert_intent(text, &c, Intent::Deny, Some("t1"));
    }
}

#[test]
fn rule3_scope_always_and_once() {
    let mut c = ctx(vec![routing(TaskStatus::WaitingApproval)], Some("t1"));
    c.pending_approvals = vec![approval("a1", "t1", "run `npm test`")];
    for text in [
        "approve all",
        "always allow it",
        "sure, don't ask again for this",
        "以后都同意",
        "行，这个命令以后不用再问我了",
        "yes and don't ask me about tests again",
    ] {
        assert_eq!(classify(text, &c).scope, Some(Scope::Always), "{text}");
    }
    for text in ["ok", "ok 这次可以，下次还是先问我", "yes, just this once"] {
        assert_eq!(classify(text, &c).scope, Some(Scope::Once), "{text}");
    }
}

#[test]
fn rule3_several_pending_need_a_way_to_tell() {
    let mut c = ctx(
        vec![
            task("t1", "fix flaky test checkout.spec.ts", TaskStatus::WaitingApproval, &["codex"]),
            task("t2", "migration: add owner_id to teams", TaskStatus::WaitingApproval, &["codex"]),
        ],
        None,
    );
    c.pending_approvals =
        vec![approval("a1", "t1", "run `npm test`"), approval("a2", "t2", "run `npx prisma migrate deploy`")];
    assert_intent("ok", &c, Intent::Clarify, None);
    // The text names which one.
    let d = assert_intent("yes, run the migration", &c, Intent::Approve, Some("t2"));
    assert_eq!(d.approval.as_deref(), Some("a2"));
    // Reply targeting picks it.
    c.reply_to = Some("t1".into());
    let d = assert_intent("no", &c, Intent::Deny, Some("t1"));
    assert_eq!(d.approval.as_deref(), Some("a1"));
}

#[test]
fn rule3_yes_no_without_pending_answers_a_question_or_asks() {
    let waiting = ctx(vec![routing(TaskStatus::WaitingInput)], Some("t1"));
    assert_intent("yes", &waiting, Intent::Continue, Some("t1"));
    assert_intent("👍", &waiting, Intent::Continue, Some("t1"));
    assert_intent("no, leave the v1 routes alone", &waiting, Intent::Continue, Some("t1"));
    for status in [TaskStatus::Idle, TaskStatus::Running, TaskStatus::Completed, TaskStatus::Failed] {
        assert_intent("ok", &ctx(vec![routing(status)], Some("t1")), Intent::Clarify, None);
    }
}

#[test]
fn rule3_a_longer_message_starting_with_ok_is_not_an_answer() {
    let mut c = ctx(
        vec![task("t1", "fix settings page Save button not responding", TaskStatus::WaitingApproval, &["codex"])],
        Some("t1"),
    );
    c.pending_approvals = vec![approval("a1", "t1", "run `npm test`")];
    let text = "ok so the thing is the save button on the settings page only breaks after you switch to dark mode and back so can you look at the theme provider";
    assert_intent(text, &c, Intent::Continue, Some("t1"));
    // "no idea" opens with "no" but refuses nothing.
    assert_ne!(classify("no idea why the provider resets, can you dig in", &c).intent, Intent::Deny);
}

// Rule 4: target task.

#[test]
fn rule4_reply_wins_then_topic_then_active() {
    let mut c = ctx(
        vec![
            routing(TaskStatus::Running),
            task("t3", "debug intermittent 403 after accepting an invite", TaskStatus::Idle, &["claude"]),
        ],
        Some("t1"),
    );
    assert_intent("make the error message friendlier", &c, Intent::Continue, Some("t1"));
    assert_intent("403 那个，再多打点日志", &c, Intent::Continue, Some("t3"));
    c.reply_to = Some("t3".into());
    assert_intent("this still happens on safari btw", &c, Intent::Continue, Some("t3"));
    assert_intent("rerun it with verbose logging", &c, Intent::Continue, Some("t3"));
}

#[test]
fn rule4_topic_matches_across_languages_and_versions() {
    let c = ctx(
        vec![
            task("t1", "修复 main 分支 CI 构建失败", TaskStatus::Running, &["codex"]),
            task("t2", "设置页支持暗色模式", TaskStatus::Running, &["claude"]),
        ],
        Some("t1"),
    );
    assert_intent("dark mode 那个搞完没", &c, Intent::Status, Some("t2"));
    let c = ctx(vec![routing(TaskStatus::Idle), release(TaskStatus::Idle)], Some("t1"));
    assert_intent("also bump the version in package.json to 2.3.0", &c, Intent::Continue, Some("t2"));
}

// Rule 5: continue vs new_task.

#[test]
fn rule5_back_references_continue() {
    let c = ctx(
        vec![task("t1", "fix Save/Cancel button alignment on settings page", TaskStatus::Idle, &["codex"])],
        Some("t1"),
    );
    for text in [
        "make it match the figma, buttons 8px apart",
        "same for the dark mode toggle, it's 4px too low",
        "instead of skipping the test, fix the race in the setup",
        "revert the last change, it broke the header",
        "继续",
        "再试一次",
        "改成用 CSS 变量，不要把颜色写死",
        "use the staging db, not prod",
    ] {
        assert_intent(text, &c, Intent::Continue, Some("t1"));
    }
}

#[test]
fn rule5_unrelated_goals_are_new_tasks_even_with_also() {
    let c = ctx(vec![task("t1", "add a login page", TaskStatus::Idle, &["codex"])], Some("t1"));
    for text in [
        "also set up Renovate for dependency updates",
        "now write release notes for 2.3",
        "帮我写个数据库迁移，给 users 表加 last_login_at 字段",
        "新任务：e2e 在 CI 里老是超时，帮我看看",
    ] {
        let d = assert_intent(text, &c, Intent::NewTask, None);
        assert_eq!(d.agent, None);
    }
    let c = ctx(vec![release(TaskStatus::Idle)], Some("t2"));
    assert_intent("also update the changelog", &c, Intent::Continue, Some("t2"));
}

#[test]
fn rule5_a_pronoun_after_a_new_description_points_at_it() {
    let c = ctx(vec![routing(TaskStatus::Idle)], Some("t1"));
    assert_intent(
        "when I open the settings page in dark mode the buttons are invisible, can you fix that",
        &c,
        Intent::NewTask,
        None,
    );
    assert_intent("also add a test for it", &c, Intent::Continue, Some("t1"));
}

#[test]
fn rule5_with_no_task_a_goal_is_new() {
    let c = ctx(vec![], None);
    assert_intent("fix the flaky test in checkout.spec.ts", &c, Intent::NewTask, None);
    assert_intent("设置页的保存按钮点了没反应，帮忙修一下", &c, Intent::NewTask, None);
    // Worded like a follow-up, but there is nothing to follow up: still a goal, never "which task?".
    for text in ["make it green", "make\u{FFFD}it green", "make the button green", "fix it please"] {
        assert_intent(text, &c, Intent::NewTask, None);
    }
    // A question only an agent can answer is a goal too (rule 7), not a status question.
    for text in ["which colour should the header be?", "what does this screen say?"] {
        assert_intent(text, &c, Intent::NewTask, None);
    }
}

// Rule 6: spawn vs new_task.

#[test]
fn rule6_another_agent_on_the_current_work_spawns() {
    let c = ctx(vec![routing(TaskStatus::Idle)], Some("t1"));
    let cases = [
        ("use cc to review it too", "claude", Role::Reviewer),
        ("have gemini write tests for this", "gemini", Role::Tester),
        ("let claude take a stab at it too", "claude", Role::Editor),
        ("switch to claude for this, codex keeps going in circles", "claude", Role::Editor),
        ("ask claude code to check the fix", "claude", Role::Reviewer),
        ("让 claude 也 review 一下", "claude", Role::Reviewer),
        ("叫 gemini 给这个补几个测试", "gemini", Role::Tester),
        ("claude-code 帮忙 audit 一下这个路由改动", "claude", Role::Reviewer),
    ];
    for (text, agent, role) in cases {
        let d = assert_intent(text, &c, Intent::Spawn, Some("t1"));
        assert_eq!((d.agent.as_deref(), d.role), (Some(agent), Some(role)), "{text}");
    }
}

#[test]
fn rule6_another_agent_on_an_unrelated_goal_is_a_new_task() {
    let c = ctx(vec![routing(TaskStatus::Running)], Some("t1"));
    for (text, agent) in [
        ("have claude fix the login bug on the signup form", "claude"),
        ("claude, review the migration in PR #482", "claude"),
        ("用 gemini 查一下接受邀请后偶发 403 的问题", "gemini"),
    ] {
        let d = assert_intent(text, &c, Intent::NewTask, None);
        assert_eq!(d.agent.as_deref(), Some(agent), "{text}");
    }
}

#[test]
fn agents_used_as_nouns_do_not_act() {
    let c = ctx(vec![task("t1", "verify webhook signatures", TaskStatus::Idle, &["codex", "claude"])], Some("t1"));
    for text in [
        "the codex output looks wrong",
        "claude's version is cleaner, go with that",
        "codex 那边的输出看着不对，再查一下",
        "claude said the tests pass but they don't",
    ] {
        let d = assert_intent(text, &c, Intent::Continue, Some("t1"));
        assert_eq!(d.agent, None);
    }
    // The noun names the task its agent works in.
    let c = ctx(
        vec![routing(TaskStatus::Idle), task("t2", "fix flaky test", TaskStatus::Running, &["gemini"])],
        Some("t1"),
    );
    assert_intent("what's gemini working on?", &c, Intent::Status, Some("t2"));
}

#[test]
fn only_configured_agents_are_returned() {
    let mut c = ctx(vec![routing(TaskStatus::Idle)], Some("t1"));
    c.agents = vec!["codex".into(), "claude".into()];
    assert_intent("have gemini review it", &c, Intent::Clarify, None);
    assert_eq!(classify("have claude review it", &c).agent.as_deref(), Some("claude"));
}

#[test]
fn configured_aliases_name_agents() {
    let mut c = ctx(vec![routing(TaskStatus::Idle)], Some("t1"));
    c.agents.push("qwen".into());
    let classifier = Classifier::new([("qw".to_string(), "qwen".to_string())]);
    let d = classifier.classify("let qw review it", &c);
    assert_eq!((d.intent, d.agent.as_deref()), (Intent::Spawn, Some("qwen")));
    let d = classifier.classify("/qw write tests for it", &c);
    assert_eq!((d.intent, d.role), (Intent::Spawn, Some(Role::Tester)));
    // The default classifier does not know the alias.
    assert_ne!(Classifier::default().classify("let qw review it", &c).agent.as_deref(), Some("qwen"));
}

// Rule 7: status vs continue.

#[test]
fn rule7_progress_questions_are_status_why_questions_continue() {
    let c = ctx(vec![task("t1", "fix CI build failure on main", TaskStatus::Running, &["codex"])], Some("t1"));
    for text in
        ["done yet?", "did the build pass?", "CI 过了吗", "进度怎么样", "是不是卡住了？半天没动静", "any blockers?"]
    {
        assert_intent(text, &c, Intent::Status, Some("t1"));
    }
    for text in ["why did the build fail?", "explain the error", "为什么 CI 挂了？", "what does ECONNRESET mean here?"]
    {
        assert_intent(text, &c, Intent::Continue, Some("t1"));
    }
    let two = ctx(vec![routing(TaskStatus::Running), release(TaskStatus::Idle)], Some("t1"));
    assert_intent("how's everything going?", &two, Intent::Status, None);
    assert_intent("所有任务现在都什么情况？", &two, Intent::Status, None);
    assert_intent("where are we on the release notes", &two, Intent::Status, Some("t2"));
}

// Rule 8: cancel, and negation.

#[test]
fn rule8_stop_cancels_running_work() {
    let c = ctx(vec![routing(TaskStatus::Running), release(TaskStatus::Running)], Some("t1"));
    for text in ["stop", "abort", "kill it", "停下", "stop stop stop it's rewriting the whole file", "算了，别跑了"]
    {
        assert_intent(text, &c, Intent::Cancel, Some("t1"));
    }
    assert_intent("stop the release one", &c, Intent::Cancel, Some("t2"));
    let waiting = ctx(vec![routing(TaskStatus::WaitingInput)], Some("t1"));
    assert_intent("never mind, stop this one", &waiting, Intent::Cancel, Some("t1"));
}

#[test]
fn negation_keeps_work_going() {
    let c = ctx(vec![routing(TaskStatus::Running)], Some("t1"));
    for text in
        ["don't stop, keep going", "不用停，继续跑完", "别停", "stop using inline styles, move them to the stylesheet"]
    {
        assert_intent(text, &c, Intent::Continue, Some("t1"));
    }
    // Negated role words do not spawn.
    let c = ctx(vec![task("t1", "支付回调签名校验", TaskStatus::Idle, &["codex"])], Some("t1"));
    assert_intent("不用审查了，直接合并吧", &c, Intent::Continue, Some("t1"));
    let mut c = ctx(vec![routing(TaskStatus::WaitingApproval)], Some("t1"));
    c.pending_approvals = vec![approval("a1", "t1", "run `git push`")];
    assert_intent("don't approve that", &c, Intent::Deny, Some("t1"));
}

#[test]
fn rule8_stop_answering_an_approval_denies_it() {
    let mut c = ctx(vec![routing(TaskStatus::WaitingApproval)], Some("t1"));
    c.pending_approvals = vec![approval("a1", "t1", "run `npm test`")];
    let d = assert_intent("stop", &c, Intent::Deny, Some("t1"));
    assert_eq!(d.approval.as_deref(), Some("a1"));
}

// Rule 9: fresh sessions.

#[test]
fn rule9_only_an_explicit_ask_for_a_clean_context_is_new_session() {
    let c = ctx(vec![routing(TaskStatus::Idle), release(TaskStatus::Idle)], Some("t1"));
    for text in [
        "start over with a clean context",
        "fresh session pls, it keeps thinking we're on express 4",
        "清空上下文，重新开始",
    ] {
        assert_intent(text, &c, Intent::NewSession, Some("t1"));
    }
    assert_intent("wipe the context on the release task and start fresh", &c, Intent::NewSession, Some("t2"));
    assert_intent("retry", &c, Intent::Continue, Some("t1"));
    assert_intent("try again", &c, Intent::Continue, Some("t1"));
}

// Rule 10: the clarify band.

#[test]
fn rule10_two_readings_that_both_act_ask() {
    // Deny the approval, or cancel the running task?
    let mut c = ctx(vec![routing(TaskStatus::Running), release(TaskStatus::WaitingApproval)], Some("t1"));
    c.pending_approvals = vec![approval("a1", "t2", "run `gh release create`")];
    assert_intent("stop", &c, Intent::Clarify, None);
    // Which task does "it" mean?
    let c = ctx(vec![routing(TaskStatus::Idle), release(TaskStatus::Idle)], None);
    assert_intent("have claude review it", &c, Intent::Clarify, None);
    assert_intent("retry it", &c, Intent::Clarify, None);
    // Answer the approval, or the active task's question?
    let mut c = ctx(vec![routing(TaskStatus::WaitingInput), release(TaskStatus::WaitingApproval)], Some("t1"));
    c.pending_approvals = vec![approval("a1", "t2", "run `gh release create`")];
    assert_intent("yes", &c, Intent::Clarify, None);
    // Several running, none focused.
    let c = ctx(vec![routing(TaskStatus::Running), release(TaskStatus::Running)], None);
    assert_intent("停", &c, Intent::Clarify, None);
}

#[test]
fn classification_is_deterministic_and_pure() {
    let c = ctx(vec![routing(TaskStatus::Idle)], Some("t1"));
    let k = Classifier::default();
    let a = k.classify("use cc to review it too", &c);
    let b = k.classify("use cc to review it too", &c);
    assert_eq!(a, b);
    assert_eq!(c, ctx(vec![routing(TaskStatus::Idle)], Some("t1")));
}

#[test]
fn odd_inputs_classify_without_panicking() {
    let mut c = ctx(vec![routing(TaskStatus::Running), release(TaskStatus::WaitingApproval)], Some("t1"));
    c.pending_approvals = vec![approval("a1", "t2", "run `gh release create`")];
    c.reply_to = Some("t9".into()); // not among the visible tasks
    let long = "stop ".repeat(2000) + &"继续".repeat(2000);
    for text in [
        "",
        "   ",
        "?!",
        "/",
        "/ ",
        "@",
        "@taskgate",
        "👍👎",
        "\u{200b}",
        "ÀÉÎ õü",
        "'s",
        "don'",
        "it's",
        "/new@",
        "/status@x y",
        "ｓｔｏｐ",
        "一",
        "v.1.2.",
        "..",
        "_",
        &long,
    ] {
        let d = classify(text, &c);
        assert!(d.intent != Intent::Ignore || c.chat == Chat::Group, "{text:?} → {d:?}");
    }
    assert_intent("", &c, Intent::Clarify, None);
    // Full-width letters fold to ASCII.
    assert_eq!(classify("ｓｔｏｐ", &ctx(vec![routing(TaskStatus::Running)], Some("t1"))).intent, Intent::Cancel);
}

#[test]
fn a_self_contained_goal_among_many_idle_tasks_is_a_new_task() {
    let topics = [
        "invoice pdf export",
        "redis cache warmup",
        "login rate limit",
        "avatar upload resize",
        "search index rebuild",
    ];
    let tasks: Vec<TaskRef> = (0..1000)
        .map(|i| task(&format!("t{i}"), &format!("{} #{i}", topics[i % topics.len()]), TaskStatus::Idle, &["codex"]))
        .collect();
    let c = ctx(tasks, None);
    let d = classify("set up a nightly backup of the postgres database to S3", &c);
    assert_eq!(d.intent, Intent::NewTask, "{d:?}");
    // A message that names one of them by topic continues it.
    let d = classify("the redis cache warmup #1 one: raise the batch size", &c);
    assert_ne!(d.intent, Intent::NewTask, "{d:?}");
}
