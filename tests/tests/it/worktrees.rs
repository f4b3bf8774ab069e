//! Git worktrees per execution (issue 20), end to end with real git in a temp dir: the fake
//! agents write files where the gateway put them, the console's API shows each execution's
//! diff, and `/merge` hands a branch back only when that cannot lose anything.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use taskgate::engine::{Engine, IncomingMessage};
use taskgate_adapters::store::SeaStore;
use taskgate_core::model::*;
use taskgate_core::store::Store;
use taskgate_core::worktree::{Isolation, WorktreeState};
use taskgate_tests::app::{TestApp, spawn_app};
use taskgate_tests::db::{self, TestDb};
use taskgate_tests::harness::{Flavor, Trial, eventually};
use taskgate_tests::reads::{completed_turns, outbox_texts};
use taskgate_tests::world::{World, message};

pub fn trials() -> Vec<Trial> {
    let mut trials: Vec<Trial> = [db::Backend::Sqlite, db::Backend::Postgres]
        .into_iter()
        .flat_map(|backend| db::trials(module_path!(), backend, DB_CASES, Flavor::CurrentThread, None))
        .collect();
    trials.extend(cases());
    trials
}

const DB_CASES: &[(&str, db::Case)] = taskgate_tests::db_cases![worktree_records_round_trip];

fn cases() -> Vec<Trial> {
    taskgate_tests::trials! {
        current_thread: [
            a_spawned_tester_writes_on_its_branch_and_merges_once_rebased,
            worktree_isolation_merges_the_first_editor_and_refuses_the_conflicting_second,
            discard_drops_the_worktree_and_the_branch,
            a_finished_task_loses_its_worktree_but_keeps_the_branch_for_merge,
            a_reviewer_works_read_only_where_the_work_lives,
        ],
    }
}

/// The records of executions' worktrees: one per execution, found by execution, task, branch
/// state; moved through their states; replaced when a discarded one is made again.
async fn worktree_records_round_trip(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let task = store
        .create_task(taskgate_core::store::NewTask {
            project_id: None,
            title: "fix login".into(),
            goal: "fix login".into(),
            created_by: None,
        })
        .await?;
    let mut ids = Vec::new();
    for role in [Role::Editor, Role::Tester] {
        let new = taskgate_core::store::NewExecution { task_id: task.id, agent: "codex".into(), role };
        ids.push(store.create_execution(new).await?.id);
    }
    let record = |execution: Id, branch: &str| taskgate_core::worktree::Worktree {
        execution,
        task: task.id,
        project_dir: "/srv/web".into(),
        path: format!("/data/worktrees/web/{}-{execution}", task.id),
        branch: branch.into(),
        base: "0123abcd".into(),
        state: WorktreeState::Active,
    };
    assert!(store.worktree(ids[0]).await?.is_none());
    store.record_worktree(&record(ids[0], "taskgate/1-fix-login")).await?;
    store.record_worktree(&record(ids[1], "taskgate/1-fix-login-2")).await?;
    assert!(store.record_worktree(&record(ids[1], "again")).await.is_err(), "one record per execution");
    assert_eq!(store.worktree(ids[0]).await?, Some(record(ids[0], "taskgate/1-fix-login")));
    let branches: Vec<String> = store.task_worktrees(task.id).await?.into_iter().map(|w| w.branch).collect();
    assert_eq!(branches, ["taskgate/1-fix-login", "taskgate/1-fix-login-2"]);

    store.set_worktree_state(ids[0], WorktreeState::Closed).await?;
    store.set_worktree_state(ids[1], WorktreeState::Removed).await?;
    let live: Vec<(Id, WorktreeState)> =
        store.live_worktrees().await?.into_iter().map(|w| (w.execution, w.state)).collect();
    assert_eq!(live, [(ids[0], WorktreeState::Closed)], "a removed worktree has no branch left");

    store.forget_worktree(ids[1]).await?;
    store.record_worktree(&record(ids[1], "taskgate/1-fix-login-2")).await?;
    assert_eq!(store.worktree(ids[1]).await?.map(|w| w.state), Some(WorktreeState::Active));
    Ok(())
}

/// `git <args>` in `dir`, which must succeed; its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A repository in `dir` on `main` with one commit holding `shared.txt`.
pub fn repository(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("shared.txt"), "original\n").unwrap();
    git(dir, &["add", "shared.txt"]);
    git(dir, &["commit", "-q", "-m", "first"]);
}

/// The shared world with its project in a git repository, data in the world's dir, `u1` an
/// approver (who may merge), and the given isolation.
fn world(isolation: Option<Isolation>) -> World {
    let world = World::with(|config| {
        config.projects[0].approvers = vec!["u1".into()];
        config.projects[0].isolation = isolation;
        config.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    });
    let mut world = world;
    world.config.server.data_dir = world.dir.path().join("data");
    repository(&world.config.projects[0].path);
    world
}

fn msg(text: &str) -> IncomingMessage {
    message("chat-1", "u1", "Ada", text)
}

/// The console user, who may decide any approval.
fn web() -> IncomingMessage {
    IncomingMessage { channel: Channel::Web, chat_id: "web".into(), ..message("web", "web", "Ada (web)", "") }
}

/// Approves the pending approval of `exec` (waiting for it first).
async fn approve(app: &TestApp, exec: Id) {
    let store = app.store.clone();
    let approval = eventually("an approval of the execution", || async {
        store.pending_approvals(None).await.ok()?.into_iter().find(|a| a.execution_id == Some(exec))
    })
    .await;
    app.engine.decide(&web(), approval.id, None, Answer::Approve(Scope::Once)).await.expect("decide");
}

async fn turns_done(store: &SeaStore, exec: Id, n: usize) {
    eventually(&format!("{n} turns of execution {exec} done"), || async {
        (completed_turns(store, exec).await >= n).then_some(())
    })
    .await;
}

async fn new_execution(store: &SeaStore, task: Id, n: usize) -> Execution {
    eventually(&format!("execution {n} of the task"), || async {
        store.executions(task).await.ok()?.into_iter().nth(n - 1)
    })
    .await
}

async fn diff(app: &TestApp, exec: Id) -> Value {
    let url = format!("{}/api/executions/{exec}/diff", app.url);
    let res = reqwest::Client::new().get(url).bearer_auth(&app.token).send().await.expect("GET diff");
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    res.json().await.expect("json")
}

/// The chat's newest line that starts with `prefix`, waiting for it.
async fn said(store: &SeaStore, prefix: &str) -> String {
    eventually(&format!("a line starting {prefix:?}"), || async {
        outbox_texts(store).await.into_iter().rev().map(|(_, _, t)| t).find(|t| t.starts_with(prefix))
    })
    .await
}

/// Default isolation: the editor writes `shared.txt` in the project while a spawned tester
/// writes the same file on its own branch. Neither write is lost, the API shows both diffs,
/// `/merge` of the tester's branch reports the conflict and touches nothing; once the editor's
/// change is committed and the branch rebased, `/merge` fast-forwards.
async fn a_spawned_tester_writes_on_its_branch_and_merges_once_rebased() {
    let world = world(None);
    let project = world.config.projects[0].path.clone();
    let app = spawn_app(&world.config).await.expect("app");
    let store = app.store.clone();

    app.engine.handle(msg("fix the greeting in shared.txt")).await.expect("task");
    let task = eventually("the task", || async { store.tasks(1).await.ok()?.into_iter().next() }).await;
    let editor = new_execution(&store, task.id, 1).await;
    turns_done(&store, editor.id, 1).await;

    // The editor asks to write; while it waits, a tester joins and writes the same file.
    app.engine.handle(msg("RUN_CMD: printf 'editor\\n' > shared.txt")).await.expect("editor's turn");
    let editor_asks = eventually("the editor's approval", || async {
        store.pending_approvals(None).await.ok()?.into_iter().find(|a| a.execution_id == Some(editor.id))
    })
    .await;
    app.engine.handle(msg("use claude to test it RUN_CMD: printf 'tester\\n' > shared.txt")).await.expect("tester");
    let tester = new_execution(&store, task.id, 2).await;
    assert_eq!((tester.agent.as_str(), tester.role), ("claude", Role::Tester));
    approve(&app, tester.id).await;
    app.engine.decide(&web(), editor_asks.id, None, Answer::Approve(Scope::Once)).await.expect("decide");
    turns_done(&store, tester.id, 1).await;
    turns_done(&store, editor.id, 2).await;

    // The editor wrote in the project, the tester on its branch: both writes are there.
    let wt = app.store.worktree(tester.id).await.unwrap().expect("the tester's worktree is recorded");
    assert!(wt.branch.starts_with(&format!("taskgate/{}-fix-the-greeting", task.id)), "{}", wt.branch);
    assert_eq!(std::fs::read_to_string(project.join("shared.txt")).unwrap(), "editor\n");
    assert_eq!(git(&project, &["show", &format!("{}:shared.txt", wt.branch)]), "tester");
    assert!(app.store.worktree(editor.id).await.unwrap().is_none(), "the first editor works in the project");
    let line = said(&store, "Claude finished testing").await;
    assert!(line.ends_with(&format!("1 file changed on {}", wt.branch)), "{line}");

    // Both diffs, through the console's API.
    let editor_diff = diff(&app, editor.id).await;
    assert!(editor_diff["diff"].as_str().unwrap().contains("+editor"), "{editor_diff}");
    assert_eq!(editor_diff["branch"], Value::Null);
    let tester_diff = diff(&app, tester.id).await;
    assert!(tester_diff["diff"].as_str().unwrap().contains("+tester"), "{tester_diff}");
    assert_eq!(tester_diff["branch"], wt.branch.as_str());

    // /merge: the conflict is reported, nothing changes.
    let head = git(&project, &["rev-parse", "HEAD"]);
    app.engine.handle(msg("/merge")).await.expect("merge");
    let line = said(&store, "Not merged").await;
    assert!(line.contains("conflicts with the uncommitted changes in the project in `shared.txt`"), "{line}");
    assert_eq!(git(&project, &["rev-parse", "HEAD"]), head);
    assert_eq!(std::fs::read_to_string(project.join("shared.txt")).unwrap(), "editor\n");
    assert_eq!(status(&project), "M shared.txt");

    // The editor's change committed, the tester's branch rebased onto it (as its agent would).
    git(&project, &["commit", "-q", "-am", "editor's greeting"]);
    let wt_dir = Path::new(&wt.path);
    let _ = Command::new("git").args(["rebase", "main"]).current_dir(wt_dir).output();
    std::fs::write(wt_dir.join("shared.txt"), "editor\ntester\n").unwrap();
    git(wt_dir, &["add", "shared.txt"]);
    git(wt_dir, &["-c", "core.editor=true", "rebase", "--continue"]);
    app.engine.handle(msg(&format!("/merge {}", tester.id))).await.expect("merge again");
    let line = said(&store, "Merged").await;
    assert_eq!(line, format!("Merged {} into main (fast-forward, 1 file).", wt.branch));
    assert_eq!(std::fs::read_to_string(project.join("shared.txt")).unwrap(), "editor\ntester\n");
    assert_eq!(git(&project, &["rev-parse", "HEAD"]), git(&project, &["rev-parse", &wt.branch]));
    assert_eq!(status(&project), "");
}

/// `isolation = "worktree"`: two editors on one task, each on its branch; `/merge` of the
/// first fast-forwards, the second reports its conflict and changes nothing.
async fn worktree_isolation_merges_the_first_editor_and_refuses_the_conflicting_second() {
    let world = world(Some(Isolation::Worktree));
    let project = world.config.projects[0].path.clone();
    let app = spawn_app(&world.config).await.expect("app");
    let store = app.store.clone();

    app.engine.handle(msg("fix the greeting in shared.txt")).await.expect("task");
    let task = eventually("the task", || async { store.tasks(1).await.ok()?.into_iter().next() }).await;
    let first = new_execution(&store, task.id, 1).await;
    turns_done(&store, first.id, 1).await;
    app.engine.handle(msg("RUN_CMD: printf 'one\\n' > shared.txt")).await.expect("first editor's turn");
    approve(&app, first.id).await;
    turns_done(&store, first.id, 2).await;
    app.engine.handle(msg("let claude take a stab at it too: RUN_CMD: printf 'two\\n' > shared.txt")).await.unwrap();
    let second = new_execution(&store, task.id, 2).await;
    assert_eq!((second.agent.as_str(), second.role), ("claude", Role::Editor));
    approve(&app, second.id).await;
    turns_done(&store, second.id, 1).await;

    let one = store.worktree(first.id).await.unwrap().expect("the first editor's worktree");
    let two = store.worktree(second.id).await.unwrap().expect("the second editor's worktree");
    assert_ne!(one.branch, two.branch);
    assert_eq!(two.branch, format!("{}-{}", one.branch, second.id), "the task's second branch is named apart");
    assert_eq!(std::fs::read_to_string(project.join("shared.txt")).unwrap(), "original\n", "the project is untouched");

    // The Merge button of the first editor's final message.
    let pressed = app.engine.merge_press(&web(), first.id, true).await.expect("press Merge");
    assert_eq!(
        pressed,
        taskgate::engine::Pressed::Done(format!("Merged {} into main (fast-forward, 1 file).", one.branch))
    );
    assert_eq!(std::fs::read_to_string(project.join("shared.txt")).unwrap(), "one\n");

    let head = git(&project, &["rev-parse", "HEAD"]);
    app.engine.handle(msg(&format!("/merge {}", two.branch))).await.expect("merge the second");
    let line = said(&store, "Not merged").await;
    assert_eq!(
        line,
        format!(
            "Not merged: {} conflicts with main in `shared.txt`. Nothing was changed; rebase the branch (or ask its agent to), then /merge again.",
            two.branch
        )
    );
    assert_eq!(git(&project, &["rev-parse", "HEAD"]), head);
    assert_eq!(status(&project), "");
}

/// `/discard` removes the worktree and its branch; the record says so.
async fn discard_drops_the_worktree_and_the_branch() {
    let world = world(Some(Isolation::Worktree));
    let project = world.config.projects[0].path.clone();
    let app = spawn_app(&world.config).await.expect("app");
    let store = app.store.clone();

    app.engine.handle(msg("RUN_CMD: printf 'mine\\n' > new.txt")).await.expect("task");
    let task = eventually("the task", || async { store.tasks(1).await.ok()?.into_iter().next() }).await;
    let exec = new_execution(&store, task.id, 1).await;
    approve(&app, exec.id).await;
    turns_done(&store, exec.id, 1).await;
    let wt = store.worktree(exec.id).await.unwrap().expect("worktree");
    assert!(Path::new(&wt.path).join("new.txt").exists());
    assert!(!project.join("new.txt").exists());
    // The final message hands the branch back, with Merge and Discard buttons.
    let rows = store.outbox_recent(Channel::Telegram, "chat-1", 50).await.unwrap();
    let last = rows.iter().find(|r| r.payload.text.contains("changed on")).expect("the final message");
    assert!(last.payload.text.ends_with(&format!("1 file changed on {}", wt.branch)), "{}", last.payload.text);
    let labels: Vec<&str> = last.payload.buttons.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(labels, ["Merge", "Discard"]);

    // What the agent records in the restart note names its branch.
    let write = taskgate::notes::NoteWrite::Entry {
        kind: NoteKind::Verified,
        text: "new.txt is written".into(),
        evidence: vec!["file:new.txt".into()],
    };
    app.engine.notes().write(task.id, write, &format!("execution:{}", exec.id)).await.expect("note");
    let entries = store.note_entries(task.id).await.unwrap();
    assert_eq!(entries[0].evidence, ["file:new.txt".to_owned(), format!("branch:{}", wt.branch)]);

    app.engine.handle(msg("/discard")).await.expect("discard");
    let line = said(&store, "Discarded").await;
    assert_eq!(line, format!("Discarded {}: its worktree and branch are gone.", wt.branch));
    assert!(!Path::new(&wt.path).exists());
    assert_eq!(git(&project, &["branch", "--list", &wt.branch]), "");
    assert_eq!(store.worktree(exec.id).await.unwrap().unwrap().state, WorktreeState::Removed);
    app.engine.handle(msg("/merge")).await.expect("merge nothing");
    said(&store, "Nothing to merge").await;

    // `taskgate doctor` names a taskgate worktree nobody recorded as stale.
    let stray = world.dir.path().join("stray");
    git(&project, &["worktree", "add", "-q", "-b", "taskgate/99-stray", &stray.to_string_lossy()]);
    app.stop().await.expect("the gateway stops");
    let checks = taskgate::doctor::run(&world.config, "test").await;
    let check = checks.iter().find(|c| c.name == "worktrees demo").expect("a worktrees check");
    assert_eq!(check.verdict, taskgate::doctor::Verdict::Warn, "{check}");
    assert!(check.detail.starts_with("1 stale of 1"), "{check}");
    assert!(check.detail.contains("(taskgate/99-stray: not recorded on any execution)"), "{check}");
}

/// A task completed while its execution idles: when the owner leaves it, the worktree goes
/// and its branch stays, still mergeable.
async fn a_finished_task_loses_its_worktree_but_keeps_the_branch_for_merge() {
    let mut world = world(Some(Isolation::Worktree));
    world.config.runtime.idle_secs = 1;
    let project = world.config.projects[0].path.clone();
    let app = spawn_app(&world.config).await.expect("app");
    let store = app.store.clone();

    app.engine.handle(msg("RUN_CMD: printf 'done\\n' > new.txt")).await.expect("task");
    let task = eventually("the task", || async { store.tasks(1).await.ok()?.into_iter().next() }).await;
    let exec = new_execution(&store, task.id, 1).await;
    approve(&app, exec.id).await;
    turns_done(&store, exec.id, 1).await;
    let wt = store.worktree(exec.id).await.unwrap().expect("worktree");
    let mut finished = eventually("the task idle", || async {
        store.task(task.id).await.ok().filter(|t| t.status == TaskStatus::Idle)
    })
    .await;
    finished.status = TaskStatus::Completed;
    store.update_task(&finished).await.expect("complete the task");

    eventually("the worktree closed", || async {
        let w = store.worktree(exec.id).await.ok()??;
        (w.state == WorktreeState::Closed).then_some(())
    })
    .await;
    assert!(!Path::new(&wt.path).exists(), "the worktree is removed");
    assert_eq!(git(&project, &["branch", "--list", &wt.branch, "--format=%(refname:short)"]), wt.branch);
    app.engine.handle(msg(&format!("/merge {}", wt.branch))).await.expect("merge");
    let line = said(&store, "Merged").await;
    assert_eq!(line, format!("Merged {} into main (fast-forward, 1 file).", wt.branch));
    assert_eq!(std::fs::read_to_string(project.join("new.txt")).unwrap(), "done\n");
}

/// A reviewer under isolation works where the work it reviews lives (the tester's worktree
/// when it reviews that, here the editor's project directory), and its session is read-only.
async fn a_reviewer_works_read_only_where_the_work_lives() {
    let world = world(Some(Isolation::Worktree));
    let app = spawn_app(&world.config).await.expect("app");
    let store = app.store.clone();

    app.engine.handle(msg("fix the greeting in shared.txt")).await.expect("task");
    let task = eventually("the task", || async { store.tasks(1).await.ok()?.into_iter().next() }).await;
    let editor = new_execution(&store, task.id, 1).await;
    turns_done(&store, editor.id, 1).await;
    let wt = store.worktree(editor.id).await.unwrap().expect("the editor's worktree");
    app.engine.handle(msg("use cc to review it too RUN_CMD: cat shared.txt")).await.expect("review");
    let reviewer = new_execution(&store, task.id, 2).await;
    assert_eq!(reviewer.role, Role::Reviewer);
    // Its command would run in the editor's worktree: the card says where.
    let asks = eventually("the reviewer's approval", || async {
        store.pending_approvals(None).await.ok()?.into_iter().find(|a| a.execution_id == Some(reviewer.id))
    })
    .await;
    let cards = store.approval_cards(asks.id).await.unwrap();
    let detail = cards.first().and_then(|c| c.payload.detail.clone()).unwrap_or_default();
    assert!(detail.starts_with(&format!("in {}\n", wt.path)), "{detail}");
    app.engine.decide(&web(), asks.id, None, Answer::Deny).await.expect("deny");
    turns_done(&store, reviewer.id, 1).await;
    assert!(store.worktree(reviewer.id).await.unwrap().is_none(), "a reviewer gets no worktree");
}

/// Compatibility tier (`compat_real_clis::codex::…`): the real codex CLI as both editor and
/// reviewer, against the fake model. Under `isolation = "worktree"` the editor works in its
/// worktree; the reviewer joins it there with codex's `read-only` sandbox and runs the
/// `touch` the model asks for: the file appears nowhere, and the model got the command's
/// failure back.
pub async fn real_codex_reviewer_is_read_only(bin: std::path::PathBuf) -> Result<(), String> {
    use std::sync::Arc;

    use taskgate::config::{AgentConfig, AgentKind, Command as Argv};
    use taskgate_tests::fake_model::FakeModel;
    use taskgate_tests::real_cli::CodexSandbox;

    let fake = FakeModel::start().await.map_err(|e| format!("starting the fake model: {e}"))?;
    // Under target/tmp, not /tmp: see CodexSandbox::new.
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compat-real-clis");
    let sandbox = CodexSandbox::new(&base, &fake).map_err(|e| format!("preparing the codex sandbox: {e}"))?;
    let project = sandbox.workdir.clone();
    repository(&project);
    let data = project.parent().ok_or("the workdir has a parent")?.join("data");

    let mut world = World::with(|config| {
        config.projects[0].path = project.clone();
        config.projects[0].isolation = Some(Isolation::Worktree);
        let mut codex = AgentConfig::new(AgentKind::Codex);
        codex.command = Some(Argv::Argv(vec![bin.to_string_lossy().into_owned(), "app-server".into()]));
        codex.env = sandbox.env().into_iter().collect();
        // The editor may write without asking; the reviewer's session is read-only anyway.
        codex.approval_policy = taskgate::config::ApprovalPolicy::Never;
        codex.sandbox = taskgate::config::SandboxMode::DangerFullAccess;
        config.agents.insert("codex".into(), codex);
        config.runtime.turn_timeout_secs = 90;
    });
    world.config.server.data_dir = data;
    let store = world.store_on("taskgate.db").await;
    let engine = Engine::new(
        Arc::new(store),
        Arc::new(world.config.clone()),
        Arc::new(taskgate_adapters::runtime::AgentRuntimes::default()),
    );
    engine.start();
    let store = engine.store().clone();
    let wait = |what: &'static str| move |ok: bool| if ok { Ok(()) } else { Err(format!("timed out: {what}")) };

    engine.handle(msg("fix the greeting in shared.txt")).await.map_err(|e| e.to_string())?;
    let task = poll(|| async { store.tasks(1).await.ok()?.into_iter().next() }).await.ok_or("no task")?;
    let editor =
        poll(|| async { store.executions(task.id).await.ok()?.into_iter().next() }).await.ok_or("no editor")?;
    wait("the editor's turn")(
        poll(|| async { (completed_turns(&store, editor.id).await >= 1).then_some(()) }).await.is_some(),
    )?;
    let wt = store.worktree(editor.id).await.map_err(|e| e.to_string())?.ok_or("the editor has no worktree")?;

    engine.handle(msg("use codex to review it too RUN_CMD: touch reviewed.txt")).await.map_err(|e| e.to_string())?;
    let reviewer = poll(|| async { store.executions(task.id).await.ok()?.into_iter().nth(1) })
        .await
        .ok_or_else(|| "no reviewer joined".to_owned())?;
    if reviewer.role != Role::Reviewer {
        return Err(format!("the second execution is a {}, not a reviewer", reviewer.role));
    }
    let done = poll(|| async { (completed_turns(&store, reviewer.id).await >= 1).then_some(()) }).await;
    let requests = fake.summary();
    wait("the reviewer's turn")(done.is_some()).map_err(|e| format!("{e}\nmodel requests:\n{requests}"))?;
    let tried = fake.requests_to("/v1/responses").iter().any(|r| r.body.to_string().contains("function_call_output"));
    if !tried {
        return Err(format!("the reviewer never ran the command\nmodel requests:\n{requests}"));
    }
    for dir in [Path::new(&wt.path), project.as_path()] {
        if dir.join("reviewed.txt").exists() {
            return Err(format!("the read-only reviewer wrote {}", dir.join("reviewed.txt").display()));
        }
    }
    engine.shutdown(std::time::Duration::from_secs(1)).await;
    Ok(())
}

/// Polls like `eventually` within the real CLIs' turn limit, without panicking.
async fn poll<T, F, Fut>(mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    while tokio::time::Instant::now() < deadline {
        if let Some(v) = probe().await {
            return Some(v);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}

/// `git status --porcelain` of the project, taskgate's own `.taskgate/` (the exported restart
/// notes) left out as the gateway leaves it out.
fn status(project: &Path) -> String {
    git(project, &["status", "--porcelain", "--", ".", ":(top,exclude).taskgate"])
}
