//! The `taskgate` binary as a user runs it: `--version`, `serve` in an empty directory,
//! config errors, `migrate` and `doctor`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use taskgate_tests::harness::Trial;

pub fn trials() -> Vec<Trial> {
    taskgate_tests::trials! {
        blocking: [
            version_prints_the_crate_version,
            serve_in_an_empty_directory_answers_health_ready_and_metrics_then_stops_on_sigterm,
            bad_config_is_one_clear_line_naming_the_key,
            migrate_then_doctor_reports_each_check,
            classify_scores_the_dev_corpus_and_answers_each_line,
            classify_help_points_to_the_contract_in_the_repository,
            audit_verify_detects_an_edited_row,
            token_needs_the_gateways_database_and_says_which_it_used,
            doctor_on_a_fresh_install_checks_paths_programs_and_logins,
            config_errors_say_what_is_accepted,
        ],
    }
}

/// The `taskgate` binary: bot/src/main.rs built as this package's `taskgate-cli` (see
/// tests/Cargo.toml). `env!("CARGO_BIN_EXE_taskgate")` exists only for the bot crate's own
/// integration tests, and a path guessed next to this executable (`target/debug/taskgate`)
/// may be missing or stale, since nothing makes Cargo build the bot's binary for this test.
/// Cargo builds `taskgate-cli` before this binary and names it here, so it is always the
/// current code.
const BIN: &str = env!("CARGO_BIN_EXE_taskgate-cli");

/// A `taskgate` command in `dir` with a clean taskgate environment.
fn taskgate(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("TASKGATE_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("taskgate runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// A running `serve`, killed on drop if the test did not stop it.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` on a free port and waits for its "listening" line.
fn serve(dir: &Path) -> Server {
    let mut child = taskgate(dir)
        .arg("serve")
        .env("TASKGATE_SERVER__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("listening on http://").nth(1) {
                let addr = addr.split_whitespace().next().unwrap_or_default();
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(20)).expect("serve prints its address");
    Server { child, addr }
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let res = reqwest::get(format!("http://{addr}{path}")).await.expect("request");
        let status = res.status().as_u16();
        (status, res.text().await.unwrap())
    })
}

fn version_prints_the_crate_version() {
    let dir = tempfile::tempdir().unwrap();
    let (out, stdout, _) = run(taskgate(dir.path()).arg("--version"));
    assert!(out.status.success());
    // This crate has the workspace version, as the bot crate does.
    assert_eq!(stdout.trim(), format!("taskgate {}", env!("CARGO_PKG_VERSION")));
}

fn serve_in_an_empty_directory_answers_health_ready_and_metrics_then_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut server = serve(dir.path());
    let (status, body) = get(&server.addr, "/healthz");
    eprintln!("healthz answered {:?} after start", started.elapsed());
    assert_eq!((status, body.as_str()), (200, "ok"));
    assert_eq!(get(&server.addr, "/readyz"), (200, "ready".to_owned()));
    let (status, metrics) = get(&server.addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"taskgate_http_requests_total{method="GET",route="/healthz",status="200"} 1"#),
        "{metrics}"
    );
    assert!(dir.path().join("data/taskgate.db").exists(), "SQLite file under the data dir");

    // The container health check: `taskgate health` asks /healthz at server.listen.
    let (out, stdout, stderr) = run(taskgate(dir.path()).arg("health").env("TASKGATE_SERVER__LISTEN", &server.addr));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), format!("ok (http://{}/healthz)", server.addr));

    // A second gateway on the same SQLite file is refused with a reason.
    let (out, _, stderr) = run(taskgate(dir.path()).arg("serve").env("TASKGATE_SERVER__LISTEN", "127.0.0.1:0"));
    assert!(!out.status.success());
    assert!(stderr.contains("another taskgate process is using"), "{stderr}");

    // SIGTERM: graceful stop with exit 0.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");

    let (out, _, stderr) = run(taskgate(dir.path()).arg("health").env("TASKGATE_SERVER__LISTEN", &server.addr));
    assert!(!out.status.success(), "healthy after stopping");
    assert!(stderr.starts_with(&format!("taskgate: GET http://{}/healthz", server.addr)), "{stderr}");
}

/// `token` never creates a database: with a wrong --config or working directory it would
/// put the login token where no gateway looks.
fn token_needs_the_gateways_database_and_says_which_it_used() {
    let dir = tempfile::tempdir().unwrap();
    let (out, stdout, stderr) = run(taskgate(dir.path()).arg("token"));
    assert!(!out.status.success());
    assert_eq!(stdout, "");
    assert!(stderr.contains("no database at") && stderr.contains("data/taskgate.db"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing created");

    assert!(run(taskgate(dir.path()).arg("migrate")).0.status.success());
    let (out, first, stderr) = run(taskgate(dir.path()).arg("token"));
    assert!(out.status.success(), "{stderr}");
    assert!(first.trim().starts_with("tgw_"), "{first}");
    assert!(stderr.contains("database: sqlite://./data/taskgate.db"), "{stderr}");
    let (out, rotated, _) = run(taskgate(dir.path()).args(["token", "--rotate"]));
    assert!(out.status.success());
    assert!(rotated.trim().starts_with("tgw_") && rotated != first);
}

/// A bad config is one line naming what is wrong, and a non-zero exit.
fn assert_config_error(dir: &Path, toml: &str, expected: &[&str]) {
    let file = dir.join("bad.toml");
    std::fs::write(&file, toml).unwrap();
    let (out, stdout, stderr) = run(taskgate(dir).arg("--config").arg(&file).arg("doctor"));
    assert!(!out.status.success(), "accepted: {toml}");
    assert_eq!(stdout, "", "nothing but the error");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    for needle in expected {
        assert!(stderr.contains(needle), "{stderr:?} lacks {needle:?}");
    }
}

fn bad_config_is_one_clear_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    assert_config_error(dir.path(), "[server]\nlisten_on = \"1.2.3.4:1\"\n", &["server", "listen_on"]);
    assert_config_error(dir.path(), "[server]\nlisten = 8700\n", &["server.listen"]);
    assert_config_error(
        dir.path(),
        "[telegram]\ntoken = \"x\"\nallowed_users = \"alice\"\n",
        &["telegram.allowed_users"],
    );
    assert_config_error(dir.path(), "[agents.gem]\nkind = \"gemini\"\n", &["agents.gem.kind", "gemini"]);
    assert_config_error(
        dir.path(),
        "[[projects]]\nname = \"web\"\npath = \"/srv\"\ndefault_agent = \"nope\"\n",
        &["projects[0].default_agent", "nope"],
    );
    assert_config_error(dir.path(), "[server\n", &["config"]);

    let (out, _, stderr) = run(taskgate(dir.path()).args(["--config", "/nonexistent/taskgate.toml", "doctor"]));
    assert!(!out.status.success());
    assert!(stderr.contains("cannot read config file /nonexistent/taskgate.toml"), "{stderr}");

    // Environment overrides are checked the same way.
    let (out, _, stderr) = run(taskgate(dir.path()).arg("doctor").env("TASKGATE_SERVER__LISTEN", "nowhere"));
    assert!(!out.status.success());
    assert!(stderr.contains("server.listen"), "{stderr}");
}

fn migrate_then_doctor_reports_each_check() {
    let dir = tempfile::tempdir().unwrap();
    // A fake agent CLI that answers --version, and one that does not exist.
    let agent = dir.path().join("fake-codex");
    std::fs::write(&agent, "#!/bin/sh\necho 'codex-cli 0.169.0'\n").unwrap();
    let mut perms = std::fs::metadata(&agent).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&agent, perms).unwrap();
    std::fs::write(
        dir.path().join("taskgate.toml"),
        format!(
            "[agents.codex]\nkind = \"codex\"\ncommand = [\"{}\", \"app-server\"]\n\n[agents.ghost]\nkind = \"claude\"\ncommand = \"no-such-agent-cli --verbose\"\n\n[telegram]\ntoken = \"123:SECRET-TOKEN\"\nallowed_users = [1]\n# nothing listens on port 1\napi_url = \"http://127.0.0.1:1/\"\n",
            agent.display()
        ),
    )
    .unwrap();

    // Before migrate: the database is missing, and doctor says so (serve would create it).
    let (_, stdout, _) = run(taskgate(dir.path()).arg("doctor"));
    assert!(stdout.contains("WARN database:") && stdout.contains("no database yet"), "{stdout}");
    assert!(!dir.path().join("data").exists(), "doctor creates nothing");

    let (out, stdout, stderr) = run(taskgate(dir.path()).arg("migrate"));
    assert!(out.status.success(), "{stderr}");
    let applied: usize =
        stdout.trim().strip_prefix("applied ").and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
    assert!(applied >= 1, "{stdout}");
    // A second run finds nothing to do.
    let (_, stdout, _) = run(taskgate(dir.path()).arg("migrate"));
    assert_eq!(stdout.trim(), "applied 0 migration(s)");

    let (out, stdout, _) = run(taskgate(dir.path()).arg("doctor"));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with("ok   config: parsed")), "{stdout}");
    assert!(lines.iter().any(|l| l.starts_with("ok   database:") && l.contains("schema up to date")), "{stdout}");
    assert!(lines.iter().any(|l| l.starts_with("ok   agent codex:") && l.contains("codex-cli 0.169.0")), "{stdout}");
    assert!(
        lines.iter().any(|l| l.starts_with("FAIL agent ghost: command `no-such-agent-cli` not found on PATH")),
        "{stdout}"
    );
    assert!(lines.iter().any(|l| l.starts_with("ok   telegram: token present; polling")), "{stdout}");
    // Telegram unreachable: a warning (serve starts and retries), with the token kept out.
    assert!(
        lines.iter().any(|l| l.starts_with("WARN telegram api: telegram getMe")
            && l.ends_with("serve starts anyway and retries the channel")),
        "{stdout}"
    );
    assert!(lines.iter().any(|l| l.starts_with("--   feishu: not configured")), "{stdout}");
    assert!(!stdout.contains("SECRET-TOKEN"));
    // One failing check fails the command.
    assert!(!out.status.success());
}

fn classify_help_points_to_the_contract_in_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    let (out, stdout, _) = run(taskgate(dir.path()).args(["classify", "--help"]));
    assert!(out.status.success());
    assert!(stdout.contains("docs/classify.md"), "{stdout}");
    assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/classify.md").exists());
}

fn classify_scores_the_dev_corpus_and_answers_each_line() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/intents-dev.jsonl");
    let (out, stdout, stderr) = run(taskgate(dir.path()).arg("classify").arg("--eval").arg(&corpus));
    assert!(out.status.success(), "{stderr}");
    let last = stdout.trim_end().lines().last().unwrap();
    let accuracy: f64 = last.strip_prefix("accuracy: ").expect("last line is the accuracy").parse().unwrap();
    assert!(accuracy >= 0.97, "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("wrong_action: ")), "{stdout}");

    // JSON Lines in, one line out per line in, errors included; exit 0.
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        concat!(
            r#"{"id":"a","text":"/status","context":{"chat":"direct","mentioned":false,"reply_to":null,"active_task":null,"tasks":[],"pending_approvals":[],"agents":["codex"]}}"#,
            "\nnot json\n",
        ),
    )
    .unwrap();
    let (out, stdout, _) = run(taskgate(dir.path()).arg("classify").arg("--input").arg(&input));
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0]["id"].as_str(), lines[0]["intent"].as_str()), (Some("a"), Some("status")));
    assert!(lines[1]["id"].is_null() && lines[1]["error"].is_string());
}

fn executable(path: &Path, script: &str) {
    std::fs::write(path, script).unwrap();
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(path, perms).unwrap();
}

/// A fresh install passes doctor (so the unit's `ExecStartPre=taskgate doctor` lets `serve`
/// start) while it warns about projects that are not git checkouts or missing, and about an
/// agent that is not logged in; a data dir that cannot be created fails.
fn doctor_on_a_fresh_install_checks_paths_programs_and_logins() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    // Stand-ins that answer like the real CLIs: codex not logged in, claude with an API key.
    executable(
        &bin.join("codex"),
        "#!/bin/sh\ncase \"$1\" in\n--version) echo 'codex-cli 0.169.0';;\nlogin) echo 'Not logged in' >&2; exit 1;;\nesac\n",
    );
    executable(
        &bin.join("claude"),
        "#!/bin/sh\ncase \"$1\" in\n--version) echo '2.1.197 (Claude Code)';;\nauth) echo '{\"loggedIn\": true, \"authMethod\": \"api_key\"}';;\nesac\n",
    );
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let git = Command::new("git").arg("init").arg("-q").arg(&repo).status().expect("git runs");
    assert!(git.success());
    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let config = format!(
        "[server]\ndata_dir = \"{data}\"\n\n\
         [[projects]]\nname = \"repo\"\npath = \"{repo}\"\ndefault_agent = \"codex\"\n\n\
         [[projects]]\nname = \"plain\"\npath = \"{plain}\"\n\n\
         [[projects]]\nname = \"gone\"\npath = \"{gone}\"\n\n\
         [agents.codex]\nkind = \"codex\"\ncommand = [\"{bin}/codex\", \"app-server\"]\n\n\
         [agents.claude]\nkind = \"claude\"\ncommand = \"{bin}/claude\"\n",
        data = dir.path().join("state/data").display(),
        repo = repo.display(),
        plain = plain.display(),
        gone = dir.path().join("gone").display(),
        bin = bin.display(),
    );
    std::fs::write(dir.path().join("taskgate.toml"), &config).unwrap();
    let (out, stdout, stderr) = run(taskgate(dir.path()).arg("doctor"));
    let has = |prefix: &str, needle: &str| stdout.lines().any(|l| l.starts_with(prefix) && l.contains(needle));
    assert!(has("ok   data dir:", "not there yet; serve creates it"), "{stdout}");
    assert!(has("WARN database:", "no database yet"), "{stdout}");
    assert!(has("ok   project repo:", "a git checkout"), "{stdout}");
    assert!(has("WARN project plain:", "not a git repository"), "{stdout}");
    assert!(has("WARN project gone:", "No such file or directory"), "{stdout}");
    assert!(has("ok   agent codex:", "codex-cli 0.169.0"), "{stdout}");
    assert!(has("WARN agent codex login:", "not logged in as"), "{stdout}");
    assert!(has("ok   agent claude:", "2.1.197 (Claude Code)"), "{stdout}");
    assert!(has("ok   agent claude login:", "logged in with an API key"), "{stdout}");
    assert!(out.status.success(), "warnings only: {stdout}{stderr}");

    // A data dir that cannot be created is a failure.
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let (out, stdout, _) =
        run(taskgate(dir.path()).arg("doctor").env("TASKGATE_SERVER__DATA_DIR", blocker.join("data")));
    assert!(stdout.lines().any(|l| l.starts_with("FAIL data dir:")), "{stdout}");
    assert!(!out.status.success());
}

fn config_errors_say_what_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    assert_config_error(
        dir.path(),
        "[agents.x]\nkind = \"codexx\"\n",
        &["agents.x.kind", "unknown value `codexx`; expected one of: codex, claude, acp"],
    );
    assert_config_error(
        dir.path(),
        "[server]\nlisten = \"localhost:8700\"\n",
        &["server.listen", "is not an IP address and port", "127.0.0.1:8700"],
    );
    assert_config_error(dir.path(), "[telegram]\ntoken = \"\"\n", &["telegram.token", "is empty"]);
}

/// `taskgate audit` prints every approval decision; `--verify` checks the hash chain and
/// fails, naming the entry, once a row was edited behind its back.
fn audit_verify_detects_an_edited_row() {
    use sea_orm::ConnectionTrait;
    use taskgate_core::model::{ApprovalStatus, Channel, NewAuditEntry, Scope};
    use taskgate_core::store::Store;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let url = format!("sqlite://{}?mode=rwc", data.join("taskgate.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let store = runtime.block_on(async {
        let store = taskgate_adapters::store::SeaStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        for (n, who) in [(1, "Ada"), (2, "Bob")] {
            store
                .append_audit(NewAuditEntry {
                    approval_id: n,
                    task_id: 1,
                    who: who.into(),
                    person_id: None,
                    channel: Some(Channel::Telegram),
                    place: "555".into(),
                    action: format!("run `step {n}`"),
                    decision: ApprovalStatus::Approved,
                    scope: Some(Scope::Once),
                    rule_id: None,
                })
                .await
                .unwrap();
        }
        store
    });
    let (out, stdout, stderr) = run(taskgate(dir.path()).args(["audit", "--verify"]));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("approved (once) by Ada via telegram in 555: run `step 1`"), "{stdout}");
    assert!(stdout.contains("audit chain verified: 2 entries"), "{stdout}");

    runtime.block_on(async {
        store.connection().execute_unprepared("UPDATE audit SET who = 'Mallory' WHERE id = 1").await.unwrap();
    });
    let (out, stdout, stderr) = run(taskgate(dir.path()).args(["audit", "--verify"]));
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("broken at entry #1"), "{stderr}");
}
