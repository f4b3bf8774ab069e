//! A small W3C WebDriver client over reqwest, enough to drive headless Chromium through
//! `chromedriver`: open a page, find elements, type, click, run a script, take a screenshot.
//! chromedriver is started on a free port and killed with the value.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// W3C's key for element references in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Finds a program on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(program)).find(|p| p.is_file())
}

/// Chromium and chromedriver, when both are installed.
pub fn browser() -> Option<(PathBuf, PathBuf)> {
    Some((which("chromium").or_else(|| which("chromium-browser"))?, which("chromedriver")?))
}

/// The screen a session emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// A desktop window of this size (CSS pixels, the window including its frame).
    Desktop { width: u32, height: u32 },
    /// A phone: Chromium's mobile emulation with this viewport (CSS pixels), pixel ratio and
    /// touch, and a phone's user agent.
    Phone { width: u32, height: u32, scale: u32 },
}

/// A phone's user agent, so the page sees what a phone sends.
const PHONE_UA: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) \
Chrome/130.0.0.0 Mobile Safari/537.36";

pub struct Browser {
    http: reqwest::Client,
    base: String,
    _driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a fresh profile. The flags keep
    /// Chromium off the network except for the pages it is sent to.
    pub async fn start(chromium: &Path, chromedriver: &Path) -> anyhow::Result<Self> {
        Self::start_on(chromium, chromedriver, Screen::Desktop { width: 1280, height: 1400 }).await
    }

    /// [`Browser::start`] on a given screen.
    pub async fn start_on(chromium: &Path, chromedriver: &Path, screen: Screen) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", chromedriver.display()))?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        let root = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match http.get(format!("{root}/status")).send().await {
                Ok(r) => r.json::<Value>().await.ok().and_then(|v| v["value"]["ready"].as_bool()).unwrap_or(false),
                Err(_) => false,
            };
            if ready {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("chromedriver did not become ready on port {port}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir()?;
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .chain(match screen {
            Screen::Desktop { width, height } => Some(format!("--window-size={width},{height}")),
            Screen::Phone { .. } => None,
        })
        .collect::<Vec<_>>();
        let mut options = json!({"binary": chromium.to_string_lossy(), "args": args});
        if let Screen::Phone { width, height, scale } = screen {
            options["mobileEmulation"] = json!({
                "deviceMetrics": {"width": width, "height": height, "pixelRatio": scale, "touch": true, "mobile": true},
                "userAgent": PHONE_UA,
            });
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options,
        }}});
        let created: Value = http.post(format!("{root}/session")).json(&caps).send().await?.json().await?;
        let Some(session) = created["value"]["sessionId"].as_str() else {
            bail!("no WebDriver session: {created}");
        };
        Ok(Self { base: format!("{root}/session/{session}"), http, _driver: driver, _profile: profile })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request.send().await?.json().await?;
        if let Some(error) = response["value"]["error"].as_str() {
            bail!("webdriver {path}: {error}: {}", response["value"]["message"]);
        }
        Ok(response["value"].clone())
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await.map(|_| ())
    }

    /// The first element matching `css`, if any.
    pub async fn find(&self, css: &str) -> anyhow::Result<Option<String>> {
        let found =
            self.call(reqwest::Method::POST, "/elements", Some(json!({"using": "css selector", "value": css}))).await?;
        Ok(found.as_array().and_then(|a| a.first()).and_then(|e| e[ELEMENT].as_str()).map(str::to_owned))
    }

    /// Waits (bounded) for an element matching `css`.
    pub async fn wait(&self, css: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(el) = self.find(css).await? {
                return Ok(el);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("timed out waiting for `{css}`");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Finds and clicks the first element matching `css` (bounded wait).
    pub async fn click_css(&self, css: &str, timeout: Duration) -> anyhow::Result<()> {
        self.on_fresh(css, timeout, |element| async move { self.click(&element).await }).await
    }

    /// `act` on the first element matching `css` (bounded wait). The live page may re-render
    /// the element between finding and acting on it; a stale element is found again.
    async fn on_fresh<T, Fut>(&self, css: &str, timeout: Duration, act: impl Fn(String) -> Fut) -> anyhow::Result<T>
    where
        Fut: std::future::Future<Output = anyhow::Result<T>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let element = self.wait(css, timeout).await?;
            match act(element).await {
                Err(e) if e.to_string().contains("stale element") && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                result => return result,
            }
        }
    }

    pub async fn click(&self, element: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::POST, &format!("/element/{element}/click"), Some(json!({}))).await.map(|_| ())
    }

    pub async fn type_text(&self, element: &str, text: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::POST, &format!("/element/{element}/value"), Some(json!({"text": text})))
            .await
            .map(|_| ())
    }

    /// The text of the first element matching `css` (bounded wait), found again when stale.
    pub async fn text_css(&self, css: &str, timeout: Duration) -> anyhow::Result<String> {
        self.on_fresh(css, timeout, |element| async move { self.text(&element).await }).await
    }

    pub async fn text(&self, element: &str) -> anyhow::Result<String> {
        Ok(self
            .call(reqwest::Method::GET, &format!("/element/{element}/text"), None)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn script(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// Waits (bounded) until `script` returns something truthy; returns it.
    pub async fn wait_until(&self, what: &str, script: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let value = self.script(script, Vec::new()).await?;
            if !matches!(value, Value::Null | Value::Bool(false)) {
                return Ok(value);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs a Chrome DevTools Protocol command (chromedriver's `goog/cdp/execute`), e.g.
    /// `Emulation.setDeviceMetricsOverride` to try another screen size in the same session.
    pub async fn cdp(&self, cmd: &str, params: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, "/goog/cdp/execute", Some(json!({"cmd": cmd, "params": params}))).await
    }

    /// The page's cookies, `HttpOnly` ones included (WebDriver sees what scripts cannot).
    pub async fn cookies(&self) -> anyhow::Result<Vec<Value>> {
        Ok(self.call(reqwest::Method::GET, "/cookie", None).await?.as_array().cloned().unwrap_or_default())
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        let data = self.call(reqwest::Method::GET, "/screenshot", None).await?;
        Ok(base64::engine::general_purpose::STANDARD.decode(data.as_str().unwrap_or_default())?)
    }

    /// Ends the session (Chromium exits); chromedriver goes with the value.
    pub async fn quit(self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.http.delete(&self.base).send()).await;
    }
}
