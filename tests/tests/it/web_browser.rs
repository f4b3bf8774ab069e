//! The web console in a real headless Chromium, driven through chromedriver (WebDriver)
//! against the real gateway with the fake agent:
//!
//! - on a desktop window: log in, start a task in web chat, follow its timeline live (no
//!   reloads), approve in the page, read the one-entry approval, stop a running turn, log out
//!   (and the old cookie is refused);
//! - on a phone (390×844, Chromium's mobile emulation): nothing is wider than the screen on the
//!   task list, a task, the approvals and the chat; the chat opens at the newest message; a
//!   file change's diff is shown before Approve.
//!
//! Both save screenshots of the four pages to `target/console-screenshots/` (the README's
//! pictures in `docs/screenshots/` are these). Without `chromium` and `chromedriver` the tests
//! are reported ignored; under `CI=true` their absence is a failure (`.ci/run` installs them).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::Value;
use taskgate_core::model::Task;
use taskgate_core::store::Store;
use taskgate_tests::app::{TestApp, spawn_console};
use taskgate_tests::harness::{self, Failed, Flavor, Trial, WAIT};
use taskgate_tests::webdriver::{self, Browser, Screen};

pub fn trials() -> Vec<Trial> {
    let found = || {
        webdriver::browser()
            .ok_or_else(|| "chromium or chromedriver is not installed: the browser test did not run".to_owned())
    };
    vec![
        harness::requires(
            harness::name(module_path!(), "console_in_chromium_runs_a_task_and_approves_it_live"),
            found(),
            |(chromium, chromedriver)| run(&chromium, &chromedriver, DESKTOP, desktop),
        ),
        harness::requires(
            harness::name(module_path!(), "console_on_a_phone_fits_the_screen_and_shows_diffs_before_approving"),
            found(),
            |(chromium, chromedriver)| run(&chromium, &chromedriver, PHONE, phone),
        ),
    ]
}

const DESKTOP: Screen = Screen::Desktop { width: 1280, height: 900 };
const PHONE: Screen = Screen::Phone { width: 390, height: 844, scale: 2 };

/// A scenario's steps, on the gateway and the browser it is given.
type Steps = for<'a> fn(&'a TestApp, &'a Browser) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>;

fn run(chromium: &Path, chromedriver: &Path, screen: Screen, steps: Steps) -> Result<(), Failed> {
    harness::block_on(Flavor::MultiThread(2), async {
        // Bounded as a whole: a hung browser fails the test instead of hanging CI.
        match tokio::time::timeout(Duration::from_secs(240), scenario(chromium, chromedriver, screen, steps)).await {
            Ok(result) => result.map_err(|e| Failed::from(format!("{e:#}"))),
            Err(_) => Err("the browser scenario took longer than 240 s".into()),
        }
    })
}

async fn scenario(chromium: &Path, chromedriver: &Path, screen: Screen, steps: Steps) -> anyhow::Result<()> {
    let gw = spawn_console().await?;
    let browser = Browser::start_on(chromium, chromedriver, screen).await?;
    let result = steps(&gw, &browser).await;
    if let Err(e) = &result {
        let page = browser.script("return document.body.innerText.slice(0, 3000)", Vec::new()).await;
        eprintln!("{e:#}\nthe page said: {}", page.map(|v| v.to_string()).unwrap_or_default());
        // Where the page stood when it failed.
        let _ = shot(
            &browser,
            &format!("failed-{}", if matches!(screen, Screen::Phone { .. }) { "phone" } else { "desktop" }),
        )
        .await;
    }
    browser.quit().await;
    let _ = gw.stop().await;
    result
}

fn desktop<'a>(gw: &'a TestApp, b: &'a Browser) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>> {
    Box::pin(desktop_steps(gw, b))
}

fn phone<'a>(gw: &'a TestApp, b: &'a Browser) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>> {
    Box::pin(phone_steps(gw, b))
}

fn shots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("console-screenshots")
}

/// Saves a screenshot of the viewport as `target/console-screenshots/<name>.png`.
async fn shot(browser: &Browser, name: &str) -> anyhow::Result<()> {
    let png = browser.screenshot().await?;
    let dir = shots_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png)?;
    eprintln!("screenshot: {}", path.display());
    Ok(())
}

async fn login(gw: &TestApp, browser: &Browser) -> anyhow::Result<()> {
    browser.goto(&format!("{}/", gw.url)).await?;
    let token = browser.wait("#token", WAIT).await?;
    browser.type_text(&token, &gw.token).await?;
    browser.click_css("#login-form button", WAIT).await?;
    browser
        .wait_until("the live stream", "return document.getElementById('live').classList.contains('on')", WAIT)
        .await?;
    Ok(())
}

/// Goes to a page of the console (its hash) and waits for `ready` to appear.
async fn open(gw: &TestApp, browser: &Browser, hash: &str, ready: &str) -> anyhow::Result<()> {
    browser.goto(&format!("{}/{hash}", gw.url)).await?;
    browser.wait(ready, WAIT).await?;
    // Let late fetches (task detail, approvals) land before measuring.
    tokio::time::sleep(Duration::from_millis(400)).await;
    Ok(())
}

/// Types a message into the page's composer and sends it.
async fn say(browser: &Browser, text: &str) -> anyhow::Result<()> {
    let input = browser.wait("#composer-text", WAIT).await?;
    browser.type_text(&input, text).await?;
    browser.click_css("#composer-send", WAIT).await
}

/// The task that `goal` (the whole message) started, once it exists.
async fn task_for(gw: &TestApp, goal: &str) -> anyhow::Result<Task> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(t) = gw.store.tasks(100).await?.into_iter().find(|t| t.goal == goal) {
            return Ok(t);
        }
        ensure!(tokio::time::Instant::now() < deadline, "no task for {goal:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for a turn of `task` to have finished (its result on the timeline).
async fn finished(gw: &TestApp, task: i64) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let timeline = gw.store.timeline(task).await?;
        if timeline.iter().any(|e| e.body.to_json()["type"] == "turn_finished") {
            return Ok(());
        }
        ensure!(tokio::time::Instant::now() < deadline, "task {task} finished no turn");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks a control of the task page's toolbar. The page opens at its newest entry, so the
/// toolbar is scrolled away first; WebDriver would scroll it in at the bottom edge, under the
/// sticky message box.
async fn click_in_toolbar(browser: &Browser, css: &str) -> anyhow::Result<()> {
    browser.script("window.scrollTo(0, 0);", Vec::new()).await?;
    browser.click_css(css, WAIT).await
}

async fn count(browser: &Browser, css: &str) -> anyhow::Result<u64> {
    let n = browser.script("return document.querySelectorAll(arguments[0]).length;", vec![Value::from(css)]).await?;
    Ok(n.as_u64().unwrap_or(0))
}

/// Nothing on the page is wider than the screen: no horizontal scroll, and no button whose
/// label wraps or is cut. On failure, names the widest offenders.
async fn fits(browser: &Browser, page: &str, width: u64) -> anyhow::Result<()> {
    let report = browser
        .script(
            r#"
            const vw = window.innerWidth;
            const doc = document.documentElement.scrollWidth;
            const wide = [...document.querySelectorAll('body *')]
              .filter((el) => el.getClientRects().length && el.getBoundingClientRect().right > vw + 0.5)
              .filter((el) => !el.parentElement.closest('.diff-lines, pre, .table-wrap'))
              .slice(0, 5)
              .map((el) => `${el.tagName.toLowerCase()}.${el.className} right=${Math.round(el.getBoundingClientRect().right)}`);
            const buttons = [...document.querySelectorAll('button, .button')]
              .filter((b) => b.getClientRects().length)
              .filter((b) => getComputedStyle(b).whiteSpace !== 'nowrap' || b.scrollWidth > b.clientWidth + 1)
              .map((b) => b.textContent.trim());
            return { vw, doc, wide, buttons };
            "#,
            Vec::new(),
        )
        .await?;
    let vw = report["vw"].as_u64().unwrap_or(0);
    let doc = report["doc"].as_u64().unwrap_or(u64::MAX);
    ensure!(vw == width, "{page}: the viewport is {vw} px wide, not {width} (zoomed out to fit something?)");
    ensure!(doc <= vw, "{page}: {doc} px of content in a {vw} px screen; too wide: {}", report["wide"]);
    ensure!(
        report["buttons"].as_array().is_some_and(Vec::is_empty),
        "{page}: buttons that wrap or are cut: {}",
        report["buttons"]
    );
    Ok(())
}

async fn desktop_steps(gw: &TestApp, browser: &Browser) -> anyhow::Result<()> {
    // A wrong token is refused in words; the right one logs in.
    browser.goto(&format!("{}/", gw.url)).await?;
    let token = browser.wait("#token", WAIT).await?;
    browser.type_text(&token, "tgw_wrong").await?;
    browser.click_css("#login-form button", WAIT).await?;
    browser
        .wait_until(
            "the wrong-token message",
            "const e = document.getElementById('login-error'); return e && !e.hidden && e.textContent",
            WAIT,
        )
        .await?;
    login(gw, browser).await?;

    // Start a task in web chat; the approval request arrives live, with its buttons.
    open(gw, browser, "#/chat", "#composer-text").await?;
    // A marker that a reload would erase: everything below must arrive without one.
    browser.script("window.__noReload = true;", Vec::new()).await?;
    say(browser, "RUN_CMD: echo hi").await?;
    browser.wait(".bubble.you", WAIT).await?;
    browser.wait(".bubble.taskgate [data-approval] [data-action=approve]", WAIT).await?;

    // Its task page: the message, then the request, waiting for a decision at the bottom.
    browser.click_css(".bubble.taskgate .meta a", WAIT).await?;
    let message = browser.text_css("#timeline li.message", WAIT).await?;
    ensure!(message.contains("RUN_CMD: echo hi") && message.contains("web"), "message entry: {message}");
    let card = browser.text_css("#pending .approval-card", WAIT).await?;
    ensure!(card.contains("Codex asks to run") && card.contains("echo hi"), "pending approval: {card}");
    let status = browser.text_css("#task-status", WAIT).await?;
    ensure!(status.contains("needs approval"), "task status before approving: {status}");
    ensure!(count(browser, "#timeline li.internal").await? == 0, "internals are hidden without Details");
    let before = count(browser, "#timeline li").await?;

    // Approve in the page; the command runs and the result arrives live.
    browser.click_css("#pending [data-action=approve]", WAIT).await?;
    browser
        .wait_until(
            "the command's output on the timeline",
            "return [...document.querySelectorAll('#timeline li.command')].some(li => li.textContent.includes('exit 0') && li.querySelector('pre'))",
            WAIT,
        )
        .await?;
    browser.wait("#timeline li.result", WAIT).await?;
    // One entry for the approval, in words people use, with the command as code.
    let approval = browser
        .wait_until(
            "the approval as one entry",
            "const a = [...document.querySelectorAll('#timeline li.approval')]; return a.length === 1 && a[0].textContent.includes('Approved by Ada (web) from the web') && a[0].textContent",
            WAIT,
        )
        .await?;
    let code =
        browser.script("return document.querySelector('#timeline li.approval code').textContent", Vec::new()).await?;
    ensure!(code == "echo hi", "the action's backticks render as code: {approval} / {code}");
    browser
        .wait_until(
            "the task to leave waiting",
            "return !document.getElementById('task-status').textContent.includes('needs')",
            WAIT,
        )
        .await?;
    ensure!(count(browser, "#pending .approval-card").await? == 0, "no approval waits any more");
    let after = count(browser, "#timeline li").await?;
    ensure!(after > before, "the timeline grew live ({before} → {after})");
    let reloaded = browser.script("return window.__noReload !== true;", Vec::new()).await?;
    ensure!(reloaded == Value::Bool(false), "the page was reloaded; updates must arrive live");
    // Details shows the internals: the classifier's decision, the session, the turn start.
    click_in_toolbar(browser, "#show-details").await?;
    browser.wait("#timeline li.internal", WAIT).await?;
    let internals = browser.text_css("#timeline", WAIT).await?;
    ensure!(internals.contains("new_task (0.") && internals.contains("session"), "details: {internals}");
    click_in_toolbar(browser, "#show-details").await?;
    ensure!(count(browser, "#timeline li.internal").await? == 0, "details off again");
    let left = gw.store.pending_approvals(None).await?;
    ensure!(left.is_empty(), "approvals still pending: {left:?}");

    // Stop interrupts a running turn.
    open(gw, browser, "#/chat", "#composer-text").await?;
    say(browser, "/new SLOW_REPLY: think it over").await?;
    let slow = task_for(gw, "/new SLOW_REPLY: think it over").await?;
    open(gw, browser, &format!("#/tasks/{}", slow.id), "#timeline").await?;
    browser
        .wait_until("the Stop button", "const s = document.getElementById('task-stop'); return s && !s.hidden", WAIT)
        .await?;
    browser
        .wait_until(
            "the turn to be running",
            "return [...document.querySelectorAll('#timeline li')].length > 0 && document.getElementById('task-status').textContent.includes('running')",
            WAIT,
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    click_in_toolbar(browser, "#task-stop").await?;
    browser
        .wait_until(
            "the stopped turn",
            "return [...document.querySelectorAll('#timeline li.result')].some(li => li.textContent.includes('Stopped'))",
            WAIT,
        )
        .await?;
    browser.wait_until("Stop to go away", "return document.getElementById('task-stop').hidden", WAIT).await?;
    let outcome = gw
        .store
        .timeline(slow.id)
        .await?
        .iter()
        .find_map(|e| {
            let body = e.body.to_json();
            (body["type"] == "turn_finished").then(|| body["outcome"]["status"].clone())
        })
        .context("the stopped turn's result")?;
    ensure!(outcome == "interrupted", "the turn was interrupted, not {outcome}");

    // Rename it, and ask another agent to review it.
    click_in_toolbar(browser, "#task-rename").await?;
    let input = browser.wait("#rename-input", WAIT).await?;
    browser.script("document.getElementById('rename-input').value = '';", Vec::new()).await?;
    browser.type_text(&input, "Think the *slow* path over").await?;
    browser.click_css("#rename-form button[type=submit]", WAIT).await?;
    browser
        .wait_until(
            "the new title, Markdown rendered",
            "const t = document.getElementById('task-title'); return t.textContent.includes('Think the slow path over') && t.querySelector('em')",
            WAIT,
        )
        .await?;
    browser
        .wait_until(
            "the rename on the timeline",
            "return document.getElementById('timeline').textContent.includes('Renamed the task')",
            WAIT,
        )
        .await?;
    click_in_toolbar(browser, "#task-spawn").await?;
    browser.wait("#spawn-form:not([hidden])", WAIT).await?;
    browser.script("document.getElementById('spawn-agent').value = 'claude';", Vec::new()).await?;
    browser.click_css("#spawn-form button[type=submit]", WAIT).await?;
    browser
        .wait_until(
            "claude on the task",
            "return document.getElementById('control-status').textContent.includes('Claude joined as reviewer') || document.getElementById('control-status').textContent.includes('claude joined as reviewer')",
            WAIT,
        )
        .await?;
    let executions = gw.store.executions(slow.id).await?;
    ensure!(executions.iter().any(|e| e.agent == "claude" && e.role.to_string() == "reviewer"), "{executions:?}");

    // A file change waits for approval: the screenshots show it.
    open(gw, browser, "#/chat", "#composer-text").await?;
    say(browser, "/new WRITE_FILE: notes.txt").await?;
    let write = task_for(gw, "/new WRITE_FILE: notes.txt").await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    while gw.store.pending_approvals(Some(write.id)).await?.is_empty() {
        ensure!(tokio::time::Instant::now() < deadline, "the file change asked for no approval");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = task_for(gw, "RUN_CMD: echo hi").await?;
    screenshots(gw, browser, "desktop", first.id, "#timeline li.result").await?;

    // Log out: the session ends on the server, so its cookie, replayed, is refused.
    let cookies = browser.cookies().await?;
    let session = cookies.iter().find(|c| c["name"] == "taskgate_session").context("a session cookie")?;
    ensure!(session["httpOnly"] == true, "the session cookie is HttpOnly: {session}");
    let value = session["value"].as_str().unwrap_or_default().to_owned();
    ensure!(value.starts_with("tgs_") && value != gw.token, "the cookie is a session id, not the token");
    let http = reqwest::Client::new();
    let cookie = format!("taskgate_session={value}");
    let before = http.get(format!("{}/api/tasks", gw.url)).header("cookie", &cookie).send().await?.status();
    ensure!(before == reqwest::StatusCode::OK, "the cookie works while logged in: {before}");
    browser.click_css("#logout", WAIT).await?;
    browser.wait("#login-form", WAIT).await?;
    let replayed = http.get(format!("{}/api/tasks", gw.url)).header("cookie", &cookie).send().await?.status();
    ensure!(replayed == reqwest::StatusCode::UNAUTHORIZED, "the logged-out cookie gets 401, not {replayed}");
    Ok(())
}

async fn phone_steps(gw: &TestApp, browser: &Browser) -> anyhow::Result<()> {
    login(gw, browser).await?;
    fits(browser, "login", 390).await?;

    // A few tasks from the phone's chat: replies with Markdown, a command approved in its
    // chat bubble, then a file change left waiting.
    open(gw, browser, "#/chat", "#composer-text").await?;
    for text in ["write the release notes for `v2.3` **today**", "tidy up the flaky checkout test"] {
        say(browser, &format!("/new {text}")).await?;
        finished(gw, task_for(gw, &format!("/new {text}")).await?.id).await?;
    }
    say(browser, "/new RUN_CMD: ls").await?;
    let ls = task_for(gw, "/new RUN_CMD: ls").await?;
    browser.click_css(".bubble.taskgate [data-approval] [data-action=approve]", WAIT).await?;
    finished(gw, ls.id).await?;
    ensure!(gw.store.pending_approvals(None).await?.is_empty(), "approved from the chat bubble");
    say(browser, "/new WRITE_FILE: notes.txt").await?;
    let write = task_for(gw, "/new WRITE_FILE: notes.txt").await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    while gw.store.pending_approvals(Some(write.id)).await?.is_empty() {
        ensure!(tokio::time::Instant::now() < deadline, "the file change asked for no approval");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The chat, opened afresh, shows the newest message without scrolling.
    open(gw, browser, "#/tasks", "#task-list li").await?;
    open(gw, browser, "#/chat", ".bubble").await?;
    browser
        .wait_until(
            "the file change's buttons in the chat",
            "return [...document.querySelectorAll('.bubble')].some(b => b.textContent.includes('notes.txt') && b.querySelector('[data-action=approve]'))",
            WAIT,
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let newest = browser
        .script(
            r#"
            const last = [...document.querySelectorAll('.bubble')].pop().getBoundingClientRect();
            const bar = document.querySelector('.composer-bar').getBoundingClientRect();
            const top = document.querySelector('.top').getBoundingClientRect();
            return { visible: last.top >= top.bottom - 1 && last.bottom <= bar.top + 1, scrolled: window.scrollY,
                     tall: document.documentElement.scrollHeight > window.innerHeight, last: [last.top, last.bottom], bar: bar.top };
            "#,
            Vec::new(),
        )
        .await?;
    ensure!(newest["tall"] == true, "the chat is longer than the screen: {newest}");
    ensure!(
        newest["visible"] == true && newest["scrolled"].as_f64().unwrap_or(0.0) > 0.0,
        "the newest message is on screen: {newest}"
    );
    // Scrolled up, "jump to latest" brings the newest back.
    browser.script("window.scrollTo(0, 0);", Vec::new()).await?;
    browser
        .wait_until("the jump button", "const j = document.getElementById('jump'); return j && !j.hidden", WAIT)
        .await?;
    browser.click_css("#jump", WAIT).await?;
    browser
        .wait_until(
            "the newest message after jumping",
            "return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 2",
            WAIT,
        )
        .await?;
    let markdown = browser
        .script("return [...document.querySelectorAll('.bubble.taskgate code')].map(c => c.textContent)", Vec::new())
        .await?;
    ensure!(
        markdown.as_array().is_some_and(|codes| codes.iter().any(|c| c == "ls")),
        "backticks render as code in replies: {markdown}"
    );
    fits(browser, "chat", 390).await?;

    // The task list, and a search.
    open(gw, browser, "#/tasks", "#task-list li[data-task]").await?;
    fits(browser, "task list", 390).await?;
    let first = browser.text_css("#task-list li[data-task]", WAIT).await?;
    ensure!(
        first.contains("notes.txt") && first.contains("1 waiting"),
        "the most recently active task first, with its waiting count: {first}"
    );
    let search = browser.wait("#task-search", WAIT).await?;
    browser.type_text(&search, "release notes").await?;
    browser
        .wait_until(
            "one search result",
            "const rows = document.querySelectorAll('#task-list li[data-task]'); return rows.length === 1 && rows[0].textContent.includes('release notes')",
            WAIT,
        )
        .await?;

    // Approvals: the file change's diff is there before Approve.
    open(gw, browser, "#/approvals", "#approvals .approval-card").await?;
    fits(browser, "approvals", 390).await?;
    let diff = browser
        .wait_until(
            "the diff in the approval card",
            "const d = document.querySelector('#approvals .approval-card .diff[open] .diff-lines .add'); return d && d.textContent",
            WAIT,
        )
        .await?;
    ensure!(diff.to_string().contains("hello from fake model"), "the diff's added line: {diff}");
    browser.wait("#approvals .approval-card [data-action=approve]", WAIT).await?;
    ensure!(gw.store.pending_approvals(Some(write.id)).await?.len() == 1, "nothing was decided by showing it");

    // The task page opens at its newest entry: the pending change and its diff, above the
    // message box. Screenshots of the four pages, then approve from the phone.
    open(gw, browser, &format!("#/tasks/{}", write.id), "#pending .approval-card .diff").await?;
    fits(browser, "task", 390).await?;
    let at_end = browser
        .script(
            "const c = document.querySelector('#pending .approval-card [data-action=approve]').getBoundingClientRect(); \
             const bar = document.querySelector('.composer-bar').getBoundingClientRect(); \
             return c.bottom <= bar.top + 1 && c.top >= 0",
            Vec::new(),
        )
        .await?;
    ensure!(at_end == Value::Bool(true), "the task page opens at its newest entry (the pending approval's buttons)");
    let changed = browser.text_css("#changed-files", WAIT).await?;
    ensure!(changed.contains("notes.txt") && changed.contains("waiting"), "changed files: {changed}");
    screenshots(gw, browser, "phone", write.id, "#pending .approval-card .diff").await?;
    open(gw, browser, &format!("#/tasks/{}", write.id), "#pending .approval-card").await?;
    browser.click_css("#pending [data-action=approve]", WAIT).await?;
    browser
        .wait_until(
            "the applied change on the timeline",
            "return [...document.querySelectorAll('#timeline li.file_change')].some(li => li.querySelector('.diff') && li.textContent.includes('notes.txt'))",
            WAIT,
        )
        .await?;
    fits(browser, "task after approving", 390).await?;

    // A reply a platform refused for good: the task list says so, and the undelivered page
    // lists it with the reason.
    let refused = gw
        .store
        .outbox_enqueue(taskgate_core::model::NewOutbound {
            channel: taskgate_core::model::Channel::Telegram,
            chat_id: "111".into(),
            task_id: Some(write.id),
            approval_id: None,
            payload: taskgate_core::reply::Reply::text("Codex finished: notes.txt written"),
        })
        .await?;
    gw.store.outbox_dropped(refused.id, "Forbidden: bot was blocked by the user").await?;
    open(gw, browser, "#/tasks", "#undelivered-notice:not([hidden]) a").await?;
    browser.click_css("#undelivered-notice a", WAIT).await?;
    let listed = browser.text_css("#undelivered-messages li[data-undelivered]", WAIT).await?;
    ensure!(
        listed.contains("notes.txt written") && listed.contains("blocked by the user"),
        "the undelivered reply and why: {listed}"
    );
    fits(browser, "undelivered", 390).await?;

    // The narrowest and the widest phones of the range fit too.
    for width in [360u32, 430] {
        let metrics = serde_json::json!({"width": width, "height": 844, "deviceScaleFactor": 2, "mobile": true});
        browser.cdp("Emulation.setDeviceMetricsOverride", metrics).await?;
        for (page, hash, ready) in [
            ("task list", "#/tasks".to_owned(), "#task-list li[data-task]"),
            ("task", format!("#/tasks/{}", write.id), "#timeline li.file_change"),
            ("approvals", "#/approvals".to_owned(), "#approvals"),
            ("chat", "#/chat".to_owned(), ".bubble"),
        ] {
            open(gw, browser, &hash, ready).await?;
            fits(browser, &format!("{page} at {width} px"), u64::from(width)).await?;
        }
    }
    Ok(())
}

/// The four pages, each as it opens, saved as `<prefix>-<page>.png`. The task page is `task`,
/// shot once `ready` is on it.
async fn screenshots(gw: &TestApp, browser: &Browser, prefix: &str, task: i64, ready: &str) -> anyhow::Result<()> {
    open(gw, browser, "#/tasks", "#task-list li[data-task]").await?;
    shot(browser, &format!("{prefix}-tasks")).await?;
    open(gw, browser, &format!("#/tasks/{task}"), ready).await?;
    shot(browser, &format!("{prefix}-task")).await?;
    open(gw, browser, "#/approvals", "#approvals .approval-card").await?;
    shot(browser, &format!("{prefix}-approvals")).await?;
    open(gw, browser, "#/chat", ".bubble").await?;
    shot(browser, &format!("{prefix}-chat")).await?;
    Ok(())
}
