//! Compatibility tier against the real, pinned agent CLIs (issue 4).
//!
//! Each CLI runs through its taskgate runtime adapter, offline, against the fake model server
//! on 127.0.0.1: one turn asks to run a command that creates a file; the approval is accepted
//! (the file appears) or denied (it does not, and the turn still finishes). Another turn runs
//! with taskgate's MCP server (the engine's `/mcp` route on 127.0.0.1): the model must be
//! offered the note tools, and its `record_entry` call must land in the store without anyone
//! approving it. The installed
//! version must equal the pin in `tests/agent-clis.toml`, so a bump that changes the protocol
//! fails here.
//!
//! Needs `TASKGATE_CODEX_BIN` / `TASKGATE_CLAUDE_BIN` (printed by `bash .ci/agent-clis`).
//! Unset, the CLI's tests are reported as ignored; unset with `CI=true`, they fail.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use taskgate::engine::Engine;
use taskgate_adapters::runtime::AgentRuntimes;
use taskgate_core::model::{Id, NoteKind, Role};
use taskgate_core::runtime::{
    AgentRuntime, AgentSession, ApprovalDecision, ApprovalKind, InputFile, RuntimeEvent, SessionSpec, TurnInput,
    TurnOutcome,
};
use taskgate_core::store::{NewExecution, NewTask, Store};
use taskgate_tests::app::{Port, Server};
use taskgate_tests::fake_model::FakeModel;
use taskgate_tests::harness::{self, Failed, Flavor, Trial};
use taskgate_tests::real_cli::{ClaudeSandbox, Cli, CodexSandbox, installed_version, pin};
use taskgate_tests::world::World;
use tokio::time::{Instant, timeout};

/// Spawn plus handshake; codex needs a few seconds on a cold, busy machine.
const START_LIMIT: Duration = Duration::from_secs(60);
/// One turn of two fake model round trips and one `touch`.
const TURN_LIMIT: Duration = Duration::from_secs(90);
/// Everything in one trial, shutdown included: a hung CLI fails instead of hanging CI.
const TRIAL_LIMIT: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, Copy)]
enum Check {
    VersionMatchesPin,
    ApprovalAccepted,
    ApprovalDenied,
    NoteTools,
    StopKillsTheCommand,
    ImageInput,
}

impl Check {
    const ALL: [Check; 6] = [
        Check::VersionMatchesPin,
        Check::ApprovalAccepted,
        Check::ApprovalDenied,
        Check::NoteTools,
        Check::StopKillsTheCommand,
        Check::ImageInput,
    ];

    fn name(self) -> &'static str {
        match self {
            Check::VersionMatchesPin => "version_matches_pin",
            Check::ApprovalAccepted => "command_approval_accepted",
            Check::ApprovalDenied => "command_approval_denied",
            Check::NoteTools => "mcp_note_tools_record_an_entry",
            Check::StopKillsTheCommand => "stop_interrupts_an_approved_command_and_its_process",
            Check::ImageInput => "an_image_input_reaches_the_model",
        }
    }
}

pub fn trials() -> Vec<Trial> {
    let name = |test: &str| harness::name(module_path!(), test);
    let mut trials = vec![harness::trial(name("fake_model::serves_both_apis"), || run(fake_model_serves_both_apis()))];
    for cli in [Cli::Codex, Cli::Claude] {
        for check in Check::ALL {
            let found = cli.bin().ok_or_else(|| {
                format!("{} is unset: run `bash .ci/agent-clis` and export the paths it prints", cli.bin_var())
            });
            let name = name(&format!("{}::{}", cli.name(), check.name()));
            trials.push(harness::requires(name, found, move |bin| run(check_cli(cli, bin, check))));
        }
    }
    let codex = Cli::Codex.bin().ok_or_else(|| {
        format!("{} is unset: run `bash .ci/agent-clis` and export the paths it prints", Cli::Codex.bin_var())
    });
    trials.push(harness::requires(name("codex::two_threads_share_one_app_server"), codex.clone(), |bin| {
        run(two_threads_on_one_app_server(bin))
    }));
    trials.push(harness::requires(name("codex::a_reviewer_cannot_write_in_the_editors_worktree"), codex, |bin| {
        run(crate::worktrees::real_codex_reviewer_is_read_only(bin))
    }));
    trials
}

/// Runs one trial on its own runtime, bounded by [`TRIAL_LIMIT`].
fn run(trial: impl Future<Output = Result<(), String>>) -> Result<(), Failed> {
    // The timer must be made inside the runtime.
    match harness::block_on(Flavor::MultiThread(2), async { timeout(TRIAL_LIMIT, trial).await }) {
        Ok(result) => result.map_err(Failed::from),
        Err(_) => Err(format!("trial took longer than {TRIAL_LIMIT:?}").into()),
    }
}

/// The temp home and working dir of one CLI run.
enum Sandbox {
    Codex(CodexSandbox),
    Claude(ClaudeSandbox),
}

impl Sandbox {
    fn new(cli: Cli, fake: &FakeModel) -> Result<Self, String> {
        // Under target/tmp, not /tmp: see CodexSandbox::new.
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compat-real-clis");
        let made = match cli {
            Cli::Codex => CodexSandbox::new(&base, fake).map(Sandbox::Codex),
            Cli::Claude => ClaudeSandbox::new(&base, fake).map(Sandbox::Claude),
        };
        made.map_err(|e| format!("preparing the {} sandbox: {e}", cli.name()))
    }

    fn spec(&self, bin: &Path) -> SessionSpec {
        match self {
            Sandbox::Codex(s) => s.spec(bin),
            Sandbox::Claude(s) => s.spec(bin),
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        match self {
            Sandbox::Codex(s) => s.env(),
            Sandbox::Claude(s) => s.env(),
        }
    }

    fn workdir(&self) -> &Path {
        match self {
            Sandbox::Codex(s) => &s.workdir,
            Sandbox::Claude(s) => &s.workdir,
        }
    }
}

async fn check_cli(cli: Cli, bin: PathBuf, check: Check) -> Result<(), String> {
    let fake = FakeModel::start().await.map_err(|e| format!("starting the fake model: {e}"))?;
    let sandbox = Sandbox::new(cli, &fake)?;
    match check {
        Check::VersionMatchesPin => {
            let pinned = pin(cli);
            let installed = installed_version(&bin, &sandbox.env()).await?;
            if installed != pinned.version {
                return Err(format!(
                    "{} is {installed} but tests/agent-clis.toml pins {}@{}: rerun `bash .ci/agent-clis`",
                    bin.display(),
                    pinned.package,
                    pinned.version
                ));
            }
            Ok(())
        }
        Check::ApprovalAccepted => approval_turn(cli, &bin, &sandbox, &fake, ApprovalDecision::AllowOnce).await,
        Check::ApprovalDenied => approval_turn(cli, &bin, &sandbox, &fake, ApprovalDecision::Deny).await,
        Check::NoteTools => note_tools_turn(cli, &bin, &sandbox, &fake).await,
        Check::StopKillsTheCommand => stop_turn(cli, &bin, &sandbox, &fake).await,
        Check::ImageInput => image_turn(cli, &bin, &sandbox, &fake).await,
    }
}

/// A 1×1 PNG: a real image, since the CLIs decode (and may resize) what they are given.
const ONE_PIXEL_PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

/// A screenshot sent from the phone: the adapter gives it as the protocol's image input (codex
/// `localImage`, claude a base64 image block), and the CLI's request to the model carries it.
async fn image_turn(cli: Cli, bin: &Path, sandbox: &Sandbox, fake: &FakeModel) -> Result<(), String> {
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD.decode(ONE_PIXEL_PNG).map_err(|e| e.to_string())?;
    let path = sandbox.workdir().join("screenshot.png");
    std::fs::write(&path, &png).map_err(|e| format!("writing the image: {e}"))?;
    let runtime = AgentRuntimes::default();
    let mut session = match timeout(START_LIMIT, runtime.start(sandbox.spec(bin))).await {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => return Err(format!("starting {}: {e}\nmodel requests:\n{}", cli.name(), fake.summary())),
        Err(_) => return Err(format!("starting {} took longer than {START_LIMIT:?}", cli.name())),
    };
    let mut seen = Vec::new();
    let result = async {
        let deadline = Instant::now() + TURN_LIMIT;
        let input = TurnInput {
            text: "What does the attached screenshot show?".into(),
            files: vec![InputFile {
                path: path.clone(),
                name: "screenshot.png".into(),
                mime: "image/png".into(),
                image: true,
            }],
        };
        session.send_input(&input).await.map_err(|e| format!("send_input: {e}"))?;
        let outcome = loop {
            if let RuntimeEvent::TurnFinished { outcome, .. } = next_event(&mut *session, deadline, &mut seen).await? {
                break outcome;
            }
        };
        if outcome != TurnOutcome::Completed {
            return Err(format!("the turn ended {outcome:?}, expected Completed"));
        }
        let (route, image) = match cli {
            Cli::Codex => ("/v1/responses", "input_image"),
            Cli::Claude => ("/v1/messages", "image"),
        };
        let requests = fake.requests_to(route);
        let carried = requests.iter().any(|r| {
            let body = r.body.to_string();
            body.contains(&format!("\"type\":\"{image}\"")) && body.contains("image/png")
        });
        if !carried {
            return Err(format!("no {route} request carries an {image} item"));
        }
        Ok(())
    }
    .await;
    session.shutdown().await;
    result.map_err(|e| format!("{}: {e}\nevents:\n{}\nmodel requests:\n{}", cli.name(), lines(&seen), fake.summary()))
}

/// The agent runs `sleep 37` after approval; the interrupt (what "stop" sends) ends the turn
/// within 2 s and the command's process is gone.
async fn stop_turn(cli: Cli, bin: &Path, sandbox: &Sandbox, fake: &FakeModel) -> Result<(), String> {
    let runtime = AgentRuntimes::default();
    let mut session = match timeout(START_LIMIT, runtime.start(sandbox.spec(bin))).await {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => return Err(format!("starting {}: {e}", cli.name())),
        Err(_) => return Err(format!("starting {} took longer than {START_LIMIT:?}", cli.name())),
    };
    let mut seen = Vec::new();
    let result = async {
        let deadline = Instant::now() + TURN_LIMIT;
        session
            .send_turn("Please wait a while.\nRUN_CMD: sleep 37 && touch stopped.txt")
            .await
            .map_err(|e| format!("send_turn: {e}"))?;
        let request = loop {
            match next_event(&mut *session, deadline, &mut seen).await? {
                RuntimeEvent::ApprovalRequested(request) => break request,
                RuntimeEvent::TurnFinished { outcome, .. } => {
                    return Err(format!("ended ({outcome:?}) without asking"));
                }
                _ => {}
            }
        };
        session.decide(&request.request_id, ApprovalDecision::AllowOnce).await.map_err(|e| format!("decide: {e}"))?;
        // The command is running once a process with its arguments exists.
        let started = Instant::now() + Duration::from_secs(30);
        while sleepers().is_empty() {
            if Instant::now() > started {
                return Err("the approved command never started".into());
            }
            if let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(100), session.next_event()).await {
                seen.push(event);
            }
        }
        let stopped = Instant::now();
        session.interrupt().await.map_err(|e| format!("interrupt: {e}"))?;
        let outcome = loop {
            if let RuntimeEvent::TurnFinished { outcome, .. } = next_event(&mut *session, deadline, &mut seen).await? {
                break outcome;
            }
        };
        let took = stopped.elapsed();
        if outcome != TurnOutcome::Interrupted {
            return Err(format!("the turn ended {outcome:?}, expected Interrupted"));
        }
        if took > Duration::from_secs(2) {
            return Err(format!("the interrupt took {took:?}"));
        }
        let gone = Instant::now() + Duration::from_secs(2);
        while !sleepers().is_empty() {
            if Instant::now() > gone {
                return Err(format!("the command still runs after the stop: pids {:?}", sleepers()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
    .await;
    session.shutdown().await;
    result.map_err(|e| format!("{}: {e}\nevents:\n{}\nmodel requests:\n{}", cli.name(), lines(&seen), fake.summary()))
}

/// Processes running `sleep 37` (the stop test's command), from /proc.
fn sleepers() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            (args.first().is_some_and(|a| a.ends_with(b"sleep")) && args.get(1) == Some(&&b"37"[..])).then_some(pid)
        })
        .collect()
}

/// One turn through the adapter: the agent asks to `touch` a file, the person decides.
async fn approval_turn(
    cli: Cli,
    bin: &Path,
    sandbox: &Sandbox,
    fake: &FakeModel,
    decision: ApprovalDecision,
) -> Result<(), String> {
    let runtime = AgentRuntimes::default();
    let mut session = match timeout(START_LIMIT, runtime.start(sandbox.spec(bin))).await {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => {
            return Err(format!("starting {}: {e}\nmodel requests:\n{}", cli.name(), fake.summary()));
        }
        Err(_) => return Err(format!("starting {} took longer than {START_LIMIT:?}", cli.name())),
    };
    let mut seen = Vec::new();
    let result = drive_turn(&mut *session, sandbox.workdir(), decision, &mut seen).await;
    // Bounded: the trial limit catches a shutdown that hangs.
    session.shutdown().await;
    let result = result.and_then(|()| check_model_saw_tool_result(cli, fake, decision));
    result.map_err(|e| {
        format!("{} with {decision:?}: {e}\nevents:\n{}\nmodel requests:\n{}", cli.name(), lines(&seen), fake.summary())
    })
}

async fn drive_turn(
    session: &mut dyn AgentSession,
    workdir: &Path,
    decision: ApprovalDecision,
    seen: &mut Vec<RuntimeEvent>,
) -> Result<(), String> {
    let file = if decision.allows() { "approved.txt" } else { "denied.txt" };
    let marker = workdir.join(file);
    let deadline = Instant::now() + TURN_LIMIT;
    session
        .send_turn(&format!("Please create a marker file.\nRUN_CMD: touch {file}"))
        .await
        .map_err(|e| format!("send_turn: {e}"))?;

    let request = loop {
        match next_event(session, deadline, seen).await? {
            RuntimeEvent::ApprovalRequested(request) => break request,
            RuntimeEvent::TurnFinished { outcome, .. } => {
                return Err(format!("the turn ended ({outcome:?}) without asking for approval"));
            }
            _ => {}
        }
    };
    if request.kind != ApprovalKind::Command {
        return Err(format!("expected a command approval, got {request:?}"));
    }
    let described = format!("{} {}", request.action, request.detail.as_deref().unwrap_or(""));
    if !described.contains(&format!("touch {file}")) {
        return Err(format!("the approval does not show the command: {request:?}"));
    }
    if marker.exists() {
        return Err(format!("{file} exists before the approval was decided"));
    }
    session.decide(&request.request_id, decision).await.map_err(|e| format!("decide: {e}"))?;

    let outcome = loop {
        if let RuntimeEvent::TurnFinished { outcome, .. } = next_event(session, deadline, seen).await? {
            break outcome;
        }
    };
    if outcome != TurnOutcome::Completed {
        return Err(format!("the turn ended {outcome:?}, expected Completed"));
    }
    let resolved = seen.iter().any(|e| {
        matches!(e, RuntimeEvent::ApprovalResolved { request_id, decision: d }
            if *request_id == request.request_id && *d == Some(decision))
    });
    if !resolved {
        return Err("no ApprovalResolved event for the decision".into());
    }
    if marker.exists() != decision.allows() {
        let state = if marker.exists() { "exists" } else { "is missing" };
        return Err(format!("{file} {state} after {decision:?}"));
    }
    // The agent went back to the model with the tool's result and streamed its closing reply.
    let text: String = seen
        .iter()
        .filter_map(|e| match e {
            RuntimeEvent::AgentText { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    if !text.contains("FAKE-REPLY: tool finished") {
        return Err(format!("the closing reply did not arrive; agent text: {text:?}"));
    }
    Ok(())
}

async fn next_event(
    session: &mut dyn AgentSession,
    deadline: Instant,
    seen: &mut Vec<RuntimeEvent>,
) -> Result<RuntimeEvent, String> {
    match tokio::time::timeout_at(deadline, session.next_event()).await {
        Ok(Some(event)) => {
            seen.push(event.clone());
            Ok(event)
        }
        Ok(None) => Err("the session ended".into()),
        Err(_) => Err(format!("no turn end within {TURN_LIMIT:?}")),
    }
}

/// The second model request carries the command's result: its output when accepted, a
/// rejection when denied.
fn check_model_saw_tool_result(cli: Cli, fake: &FakeModel, decision: ApprovalDecision) -> Result<(), String> {
    match cli {
        Cli::Codex => {
            let requests = fake.requests_to("/v1/responses");
            let last = requests.last().ok_or("codex sent no /v1/responses request")?;
            let input = last.body["input"].as_array().and_then(|i| i.last()).cloned().unwrap_or(Value::Null);
            if input["type"] != "function_call_output" {
                return Err(format!("the last codex request does not end with the command's output: {input}"));
            }
            let rejected = input["output"].to_string().to_lowercase().contains("reject");
            if rejected == decision.allows() {
                return Err(format!("codex reported the command to the model as {}", input["output"]));
            }
        }
        Cli::Claude => {
            let requests = fake.requests_to("/v1/messages");
            let last = requests.last().ok_or("claude sent no /v1/messages request")?;
            let user = last.body["messages"]
                .as_array()
                .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
                .cloned()
                .unwrap_or(Value::Null);
            let result = user["content"]
                .as_array()
                .and_then(|c| c.iter().find(|b| b["type"] == "tool_result"))
                .ok_or_else(|| format!("the last claude request carries no tool_result: {user}"))?;
            let is_error = result["is_error"].as_bool().unwrap_or(false);
            if is_error == decision.allows() {
                return Err(format!("claude reported the command to the model as {result}"));
            }
        }
    }
    Ok(())
}

/// The gateway side of the note tools: a store with one task and execution, the engine's MCP
/// route on 127.0.0.1, and a token for that execution, as `taskgate serve` issues per session.
struct Gateway {
    _world: World,
    engine: Arc<Engine>,
    task: Id,
    execution: Id,
    url: String,
    token: String,
    _server: Server,
}

impl Gateway {
    async fn start() -> Result<Self, String> {
        // No agents: the engine only serves the MCP route; the CLI runs beside it.
        let world = World::bare();
        let engine = Arc::new(world.engine().await);
        let store = engine.store();
        let task = store
            .create_task(NewTask {
                project_id: None,
                title: "compat".into(),
                goal: "note tools".into(),
                created_by: None,
            })
            .await
            .map_err(|e| format!("task: {e}"))?;
        let execution = store
            .create_execution(NewExecution { task_id: task.id, agent: "real-cli".into(), role: Role::Editor })
            .await
            .map_err(|e| format!("execution: {e}"))?;
        let token = engine.notes().issue_token(task.id, execution.id).ok_or("no MCP token")?;
        let server = Port::bind().await.serve(taskgate::notes::mcp::router(engine.notes().clone()));
        Ok(Gateway {
            url: format!("http://{}{}", server.addr, taskgate::notes::mcp::PATH),
            _world: world,
            engine,
            task: task.id,
            execution: execution.id,
            token,
            _server: server,
        })
    }
}

/// Every tool name a model request offers, nested ones (namespaces) included.
fn offered_tools(body: &Value) -> Vec<String> {
    fn walk(tools: &Value, out: &mut Vec<String>) {
        for tool in tools.as_array().into_iter().flatten() {
            if let Some(name) = tool["name"].as_str() {
                out.push(name.to_owned());
            }
            walk(&tool["tools"], out);
        }
    }
    let mut out = Vec::new();
    walk(&body["tools"], &mut out);
    out
}

/// One turn with taskgate's MCP server configured: the model is offered the note tools, calls
/// `record_entry` without a person approving it, and the entry lands in the store under the
/// session's execution.
async fn note_tools_turn(cli: Cli, bin: &Path, sandbox: &Sandbox, fake: &FakeModel) -> Result<(), String> {
    let gateway = Gateway::start().await?;
    let mut spec = sandbox.spec(bin);
    spec.mcp = Some(taskgate::notes::mcp::server(gateway.url.clone(), gateway.token.clone()));
    let runtime = AgentRuntimes::default();
    let mut session = match timeout(START_LIMIT, runtime.start(spec)).await {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => {
            return Err(format!("starting {} with MCP: {e}\nmodel requests:\n{}", cli.name(), fake.summary()));
        }
        Err(_) => return Err(format!("starting {} took longer than {START_LIMIT:?}", cli.name())),
    };
    let mut seen = Vec::new();
    let result = note_turn(&mut *session, &mut seen).await;
    session.shutdown().await;
    let result = match result {
        Ok(()) => check_note_written(&gateway, fake).await,
        Err(e) => Err(e),
    };
    result.map_err(|e| {
        let offered: Vec<Vec<String>> =
            fake.requests().iter().map(|r| offered_tools(&r.body)).filter(|t| !t.is_empty()).collect();
        format!(
            "{} with the taskgate MCP server: {e}\nevents:\n{}\nmodel requests:\n{}tools offered: {offered:?}",
            cli.name(),
            lines(&seen),
            fake.summary()
        )
    })
}

const NOTE_TEXT: &str = "the real CLI reached the taskgate MCP server";

async fn note_turn(session: &mut dyn AgentSession, seen: &mut Vec<RuntimeEvent>) -> Result<(), String> {
    let deadline = Instant::now() + TURN_LIMIT;
    let args = json!({"kind": "verified", "text": NOTE_TEXT, "evidence": ["file:README.md"]});
    session
        .send_turn(&format!("Write down what you found.\nCALL_TOOL: record_entry {args}"))
        .await
        .map_err(|e| format!("send_turn: {e}"))?;
    let outcome = loop {
        match next_event(session, deadline, seen).await? {
            RuntimeEvent::ApprovalRequested(request) => {
                return Err(format!("taskgate's own note tool waited for a person's approval: {request:?}"));
            }
            RuntimeEvent::TurnFinished { outcome, .. } => break outcome,
            _ => {}
        }
    };
    if outcome != TurnOutcome::Completed {
        return Err(format!("the turn ended {outcome:?}, expected Completed"));
    }
    let text: String = seen
        .iter()
        .filter_map(|e| match e {
            RuntimeEvent::AgentText { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    if !text.contains("FAKE-REPLY: tool finished") {
        return Err(format!("the model did not get the tool's result; agent text: {text:?}"));
    }
    Ok(())
}

async fn check_note_written(gateway: &Gateway, fake: &FakeModel) -> Result<(), String> {
    let offers_note_tools = fake.requests().iter().any(|r| {
        let tools = offered_tools(&r.body);
        ["read_note", "record_entry"].iter().all(|want| tools.iter().any(|t| t.contains(want)))
    });
    if !offers_note_tools {
        return Err("no model request offered read_note and record_entry".into());
    }
    let entries = gateway.engine.store().note_entries(gateway.task).await.map_err(|e| format!("entries: {e}"))?;
    let [entry] = entries.as_slice() else {
        return Err(format!("expected one note entry, got {entries:#?}"));
    };
    let expected = (NoteKind::Verified, NOTE_TEXT, format!("execution:{}", gateway.execution));
    if (entry.kind, entry.text.as_str(), entry.author.clone()) != expected || entry.evidence != ["file:README.md"] {
        return Err(format!("the entry is not what the model sent: {entry:?}"));
    }
    // The tool's answer went back to the model.
    let answered =
        fake.requests().iter().any(|r| r.body.to_string().contains(&format!("Recorded verified #{}", entry.id)));
    if !answered {
        return Err("the model never saw the tool's confirmation".into());
    }
    Ok(())
}

/// Two sessions of one codex configuration are two threads of one `codex app-server`: their
/// turns run at the same time, each asks for its own command, one is approved and the other
/// denied, and each thread gets its own outcome in its own directory. One leaving does not
/// disturb the other.
async fn two_threads_on_one_app_server(bin: PathBuf) -> Result<(), String> {
    let fake = FakeModel::start().await.map_err(|e| format!("starting the fake model: {e}"))?;
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compat-real-clis");
    let sandbox = CodexSandbox::new(&base, &fake).map_err(|e| format!("preparing the codex sandbox: {e}"))?;
    let spec = |name| sandbox.spec_in(&bin, name).map_err(|e| format!("workdir {name}: {e}"));
    let (spec_a, spec_b) = (spec("a")?, spec("b")?);
    let (dir_a, dir_b) = (spec_a.cwd.clone(), spec_b.cwd.clone());
    let runtime = AgentRuntimes::default();
    if runtime.process_key(&spec_a) != runtime.process_key(&spec_b) {
        return Err("two sessions of one configuration have different process keys".into());
    }
    let mut a = match timeout(START_LIMIT, runtime.start(spec_a)).await {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => return Err(format!("starting codex: {e}\nmodel requests:\n{}", fake.summary())),
        Err(_) => return Err(format!("starting codex took longer than {START_LIMIT:?}")),
    };
    let mut b = match timeout(START_LIMIT, runtime.start(spec_b)).await {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => {
            a.shutdown().await;
            return Err(format!("starting the second thread: {e}"));
        }
        Err(_) => return Err(format!("starting the second thread took longer than {START_LIMIT:?}")),
    };
    let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
    let result = async {
        let servers = app_servers(&sandbox.codex_home);
        if servers.len() != 1 {
            return Err(format!("expected one app-server for two threads, found pids {servers:?}"));
        }
        if a.provider_session_id() == b.provider_session_id() {
            return Err("both sessions got the same thread".into());
        }
        let deadline = Instant::now() + TURN_LIMIT;
        for (s, file) in [(&a, "a.txt"), (&b, "b.txt")] {
            s.send_turn(&format!("Please create a marker file.\nRUN_CMD: touch {file}"))
                .await
                .map_err(|e| format!("send_turn: {e}"))?;
        }
        let mut requests = Vec::new();
        for (s, seen) in [(&mut a, &mut seen_a), (&mut b, &mut seen_b)] {
            let request = loop {
                match next_event(&mut **s, deadline, seen).await? {
                    RuntimeEvent::ApprovalRequested(request) => break request,
                    RuntimeEvent::TurnFinished { outcome, .. } => {
                        return Err(format!("ended ({outcome:?}) without asking"));
                    }
                    _ => {}
                }
            };
            requests.push(request);
        }
        for (request, file) in requests.iter().zip(["a.txt", "b.txt"]) {
            if !request.action.contains(&format!("touch {file}")) {
                return Err(format!("a thread got another thread's approval: {request:?}"));
            }
        }
        a.decide(&requests[0].request_id, ApprovalDecision::AllowOnce).await.map_err(|e| format!("decide a: {e}"))?;
        b.decide(&requests[1].request_id, ApprovalDecision::Deny).await.map_err(|e| format!("decide b: {e}"))?;
        for (s, seen) in [(&mut a, &mut seen_a), (&mut b, &mut seen_b)] {
            let outcome = loop {
                if let RuntimeEvent::TurnFinished { outcome, .. } = next_event(&mut **s, deadline, seen).await? {
                    break outcome;
                }
            };
            if outcome != TurnOutcome::Completed {
                return Err(format!("a turn ended {outcome:?}, expected Completed"));
            }
            let text: String = seen
                .iter()
                .filter_map(|e| match e {
                    RuntimeEvent::AgentText { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            if !text.contains("FAKE-REPLY: tool finished") {
                return Err(format!("the closing reply did not arrive; agent text: {text:?}"));
            }
        }
        if !dir_a.join("a.txt").exists() || dir_b.join("b.txt").exists() || dir_a.join("b.txt").exists() {
            return Err("the approved command must run in a's directory only, the denied one nowhere".into());
        }
        // One thread leaves; the other goes on on the same process.
        a.shutdown().await;
        b.send_turn("still there?").await.map_err(|e| format!("send_turn: {e}"))?;
        let deadline = Instant::now() + TURN_LIMIT;
        loop {
            if let RuntimeEvent::TurnFinished { outcome, .. } = next_event(&mut *b, deadline, &mut seen_b).await? {
                if outcome != TurnOutcome::Completed {
                    return Err(format!("the remaining thread's turn ended {outcome:?}"));
                }
                break;
            }
        }
        if app_servers(&sandbox.codex_home) != servers {
            return Err("the app-server changed while a thread was left".into());
        }
        Ok(())
    }
    .await;
    a.shutdown().await;
    b.shutdown().await;
    result.map_err(|e| {
        format!(
            "two codex threads: {e}\nevents of a:\n{}events of b:\n{}model requests:\n{}",
            lines(&seen_a),
            lines(&seen_b),
            fake.summary()
        )
    })
}

/// The agent processes this test process started with `CODEX_HOME` = `codex_home` (a node
/// wrapper's own child, the native binary, is not counted).
fn app_servers(codex_home: &Path) -> Vec<u32> {
    let me = std::process::id();
    let want = format!("CODEX_HOME={}", codex_home.display());
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid: u32 = stat.rsplit(')').next()?.split_whitespace().nth(1)?.parse().ok()?;
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let ours = environ.split(|b| *b == 0).any(|kv| kv == want.as_bytes());
            (ppid == me && ours).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

fn lines(events: &[RuntimeEvent]) -> String {
    events.iter().map(|e| format!("  {e:?}\n")).collect()
}

/// The fake answers both wire APIs the way fake_llm.py does, without any CLI installed.
async fn fake_model_serves_both_apis() -> Result<(), String> {
    let fake = FakeModel::start().await.map_err(|e| e.to_string())?;
    let base = fake.origin();
    let http = reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string())?;
    let err = |e: reqwest::Error| e.to_string();

    let head = http.head(format!("{base}/")).send().await.map_err(err)?;
    expect(head.status() == 200, "HEAD / is 200")?;
    let models: Value = http.get(format!("{base}/v1/models")).send().await.map_err(err)?.json().await.map_err(err)?;
    expect(models["data"] == json!([]), "GET /v1/models lists nothing")?;
    let count: Value = http
        .post(format!("{base}/v1/messages/count_tokens"))
        .json(&json!({"messages": []}))
        .send()
        .await
        .map_err(err)?
        .json()
        .await
        .map_err(err)?;
    expect(count["input_tokens"] == 42, "count_tokens answers 42")?;

    let prompt = json!({"role": "user", "content": "RUN_CMD: touch x"});
    let message: Value = http
        .post(format!("{base}/v1/messages?beta=true"))
        .header("x-api-key", "dummy-secret-key-value")
        .json(&json!({"model": "m", "messages": [prompt], "tools": [{"name": "Bash"}]}))
        .send()
        .await
        .map_err(err)?
        .json()
        .await
        .map_err(err)?;
    expect(message["content"][0]["input"]["command"] == "touch x", "a Bash tool_use for RUN_CMD")?;
    expect(message["stop_reason"] == "tool_use", "stop_reason tool_use")?;

    let stream = http
        .post(format!("{base}/v1/messages"))
        .json(&json!({"stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .map_err(err)?;
    expect(stream.headers()["content-type"] == "text/event-stream", "messages stream as SSE")?;
    let body = stream.text().await.map_err(err)?;
    expect(body.starts_with("event: message_start\ndata: {"), "SSE starts with message_start")?;
    expect(
        body.contains("FAKE-REPLY: you said 'hi'")
            && body.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        "an echoed text reply",
    )?;

    let failed = http
        .post(format!("{base}/v1/messages"))
        .json(&json!({"messages": [{"role": "user", "content": "FAIL_HTTP"}]}))
        .send()
        .await
        .map_err(err)?;
    expect(failed.status() == 400, "FAIL_HTTP is a 400")?;

    let responses = http
        .post(format!("{base}/v1/responses"))
        .json(&json!({"stream": true, "tools": [{"type": "function", "name": "exec_command"}], "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "RUN_CMD: touch y"}]},
        ]}))
        .send()
        .await
        .map_err(err)?
        .text()
        .await
        .map_err(err)?;
    expect(responses.starts_with("event: response.created\n"), "responses SSE starts with response.created")?;
    expect(
        responses.contains(r#""name":"exec_command""#) && responses.contains(r#"{\"cmd\":\"touch y\"}"#),
        "an exec_command call",
    )?;
    expect(responses.contains("event: response.completed\n"), "responses SSE completes")?;

    let log = fake.requests();
    expect(log.len() == 7, "every request was recorded")?;
    expect(log[3].path == "/v1/messages?beta=true" && log[3].route() == "/v1/messages", "paths keep their query")?;
    expect(log[3].header("x-api-key") == Some("dummy-secret..."), "credentials are cut")?;
    expect(log.iter().all(|r| r.status != 0), "every reply was recorded")?;
    Ok(())
}

fn expect(ok: bool, what: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(format!("expected: {what}")) }
}
