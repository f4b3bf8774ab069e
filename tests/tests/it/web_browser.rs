//! The console in a real browser: headless Chromium driven through chromedriver (WebDriver)
//! against the real gateway with the fake agent. Logs in, starts a task in web chat, follows
//! its timeline live (no reloads), approves in the page, sees the result, and saves a
//! screenshot to `target/web-console.png`.
//!
//! Without `chromium` and `chromedriver` the test is reported ignored; under `CI=true` their
//! absence is a failure (`.ci/run` installs them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use taskgate_tests::app::{TestApp, spawn_console};
use taskgate_tests::harness::{self, Failed, Flavor, Trial, WAIT};
use taskgate_tests::webdriver::{self, Browser};

pub fn trials() -> Vec<Trial> {
    let name = harness::name(module_path!(), "console_in_chromium_runs_a_task_and_approves_it_live");
    let found = webdriver::browser()
        .ok_or_else(|| "chromium or chromedriver is not installed: the browser test did not run".to_owned());
    vec![harness::requires(name, found, |(chromium, chromedriver)| run(&chromium, &chromedriver))]
}

fn run(chromium: &Path, chromedriver: &Path) -> Result<(), Failed> {
    harness::block_on(Flavor::MultiThread(2), async {
        // Bounded as a whole: a hung browser fails the test instead of hanging CI.
        match tokio::time::timeout(Duration::from_secs(180), scenario(chromium, chromedriver)).await {
            Ok(result) => result.map_err(|e| Failed::from(format!("{e:#}"))),
            Err(_) => Err("the browser scenario took longer than 180 s".into()),
        }
    })
}

async fn scenario(chromium: &Path, chromedriver: &Path) -> anyhow::Result<()> {
    let gw = spawn_console().await?;
    let browser = Browser::start(chromium, chromedriver).await?;
    let result = steps(&gw, &browser).await;
    // The screenshot is taken whatever happened: on failure it shows where the page stood.
    if let Ok(png) = browser.screenshot().await {
        let path = screenshot_path();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, png)?;
        eprintln!("screenshot: {}", path.display());
    }
    browser.quit().await;
    let _ = gw.stop().await;
    result
}

fn screenshot_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("web-console.png")
}

async fn steps(gw: &TestApp, browser: &Browser) -> anyhow::Result<()> {
    // Log in with the token.
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
    let token = browser.wait("#token", WAIT).await?;
    browser.script("document.getElementById('token').value = '';", Vec::new()).await?;
    browser.type_text(&token, &gw.token).await?;
    browser.click_css("#login-form button", WAIT).await?;
    browser
        .wait_until("the live stream", "return document.getElementById('live').classList.contains('on')", WAIT)
        .await?;

    // Start a task in web chat; the approval request arrives live.
    browser.goto(&format!("{}/#/chat", gw.url)).await?;
    let text = browser.wait("#composer-text", WAIT).await?;
    // A marker that a reload would erase: everything below must arrive without one.
    browser.script("window.__noReload = true;", Vec::new()).await?;
    browser.type_text(&text, "RUN_CMD: echo hi").await?;
    browser.click_css("#composer-send", WAIT).await?;
    browser.wait(".bubble.you", WAIT).await?;
    let link = ".bubble.taskgate [data-approval] ~ .meta a, .bubble.taskgate .meta a";
    browser.wait(link, WAIT).await?;
    browser.wait(".bubble.taskgate [data-approval] [data-action=approve]", WAIT).await?;

    // Its task page: the timeline so far (the web message, the decision, the request).
    browser.click_css(link, WAIT).await?;
    browser.wait("#timeline li.message", WAIT).await?;
    let message = browser.text(&browser.wait("#timeline li.message", WAIT).await?).await?;
    anyhow::ensure!(message.contains("RUN_CMD: echo hi") && message.contains("web"), "message entry: {message}");
    browser.wait("#timeline li.decision", WAIT).await?;
    browser.wait("#timeline li.approval", WAIT).await?;
    let status = browser.text(&browser.wait("#task-status", WAIT).await?).await?;
    anyhow::ensure!(status.contains("waiting approval"), "task status before approving: {status}");
    let before = count(browser, "#timeline li").await?;

    // Approve in the page; the command runs and the result arrives live.
    browser.click_css(".approval-row [data-action=approve]", WAIT).await?;
    browser
        .wait_until(
            "the command's output on the timeline",
            "return [...document.querySelectorAll('#timeline li.command')].some(li => li.textContent.includes('hi') && li.querySelector('pre'))",
            WAIT,
        )
        .await?;
    browser.wait("#timeline li.result", WAIT).await?;
    browser
        .wait_until(
            "the approval recorded with who and where",
            "return [...document.querySelectorAll('#timeline li.approval')].some(li => li.textContent.includes('approved') && li.textContent.includes('via web'))",
            WAIT,
        )
        .await?;
    browser
        .wait_until(
            "the task to leave waiting",
            "return !document.getElementById('task-status').textContent.includes('waiting')",
            WAIT,
        )
        .await?;
    let after = count(browser, "#timeline li").await?;
    anyhow::ensure!(after > before, "the timeline grew live ({before} → {after})");
    let reloaded = browser.script("return window.__noReload !== true;", Vec::new()).await?;
    anyhow::ensure!(reloaded == Value::Bool(false), "the page was reloaded; updates must arrive live");

    // The approvals inbox is empty again, and the store agrees.
    let pending = gw.store.as_ref();
    let left = taskgate_core::store::Store::pending_approvals(pending, None).await?;
    anyhow::ensure!(left.is_empty(), "approvals still pending: {left:?}");
    // The task page stays on screen, from its top, for the screenshot.
    browser.script("window.scrollTo(0, 0);", Vec::new()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}

async fn count(browser: &Browser, css: &str) -> anyhow::Result<u64> {
    let n = browser.script("return document.querySelectorAll(arguments[0]).length;", vec![Value::from(css)]).await?;
    Ok(n.as_u64().unwrap_or(0))
}
