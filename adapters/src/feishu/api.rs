//! The open platform's HTTP API, as far as the gateway uses it: the tenant token, sending,
//! replying to and updating messages, the bot's own identity, a user's name, a chat's mode
//! and the long connection's endpoint. Errors say what failed without the token or the app
//! secret (neither is ever part of a URL here, and reqwest's URL is dropped anyway).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::inbound::BotIdentity;
use super::token::{INVALID_TOKEN_CODES, Token};

/// Feishu's rate-limit code (with HTTP 429, or sometimes 400).
pub const RATE_LIMITED: i64 = 99_991_400;
/// The messaging API's own frequency limit (per chat, per message): waited out like the other.
pub const MESSAGE_RATE_LIMITED: i64 = 230_020;
/// Not Feishu's: a message's file was larger than allowed (its size in bytes is the `msg`).
pub const TOO_BIG: i64 = -2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Wait this long (`x-ogw-ratelimit-reset`) before the next call.
    #[error("rate limited: retry after {}s", after.as_secs())]
    RateLimited { after: Duration },
    #[error("feishu {what}: HTTP {status}, code {code}: {msg}")]
    Api { what: &'static str, status: u16, code: i64, msg: String },
    #[error("feishu {what}: {detail}")]
    Network { what: &'static str, detail: String },
}

impl ApiError {
    /// The message cannot be sent however often it is tried (no such chat, bot not in it,
    /// content refused): the outbox drops it instead of retrying.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ApiError::Api { status, code, .. }
            if *status == 400 && matches!(*code, 230001 | 230002 | 230006 | 230013 | 230017 | 230025 | 230027 | 230035))
    }
}

pub struct FeishuApi {
    http: reqwest::Client,
    base: String,
    app_id: String,
    app_secret: SecretString,
    token: Mutex<Option<Token>>,
    names: std::sync::Mutex<HashMap<String, String>>,
    chat_modes: std::sync::Mutex<HashMap<String, bool>>,
}

/// A message as sent: its id on the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub message_id: String,
}

/// Where the long connection goes, and its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub url: String,
    pub ping_interval: Option<Duration>,
    pub reconnect_interval: Option<Duration>,
    pub reconnect_nonce: Option<Duration>,
}

impl FeishuApi {
    /// A client for `app_id` against `base` (`https://open.feishu.cn`, `https://open.larksuite.com`,
    /// or a fake in tests).
    pub fn new(base: &str, app_id: &str, app_secret: SecretString) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| format!("feishu http client: {e}"))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            app_id: app_id.to_owned(),
            app_secret,
            token: Mutex::new(None),
            names: Default::default(),
            chat_modes: Default::default(),
        })
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// A valid tenant token: the cached one while fresh, else a new one.
    async fn tenant_token(&self) -> Result<String, ApiError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| t.fresh(Instant::now())) {
            return Ok(t.value().to_owned());
        }
        let what = "tenant_access_token";
        let body = json!({"app_id": self.app_id, "app_secret": self.app_secret.expose_secret()});
        let request =
            self.http.post(format!("{}/open-apis/auth/v3/tenant_access_token/internal", self.base)).json(&body);
        let value = self.exchange(what, request).await?;
        let token = value.get("tenant_access_token").and_then(Value::as_str).unwrap_or_default();
        if token.is_empty() {
            return Err(ApiError::Api {
                what,
                status: 200,
                code: -1,
                msg: "no tenant_access_token in the answer".into(),
            });
        }
        let expire = Duration::from_secs(value.get("expire").and_then(Value::as_u64).unwrap_or(7200));
        let token = Token::new(token.to_owned(), expire, Instant::now());
        *cached = Some(token.clone());
        Ok(token.value().to_owned())
    }

    /// Forgets the cached token (the platform said it is invalid).
    async fn drop_token(&self) {
        *self.token.lock().await = None;
    }

    /// An authorised call; a token the platform calls invalid is refreshed and the call made
    /// once more.
    pub(super) async fn call(
        &self,
        what: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let mut refreshed = false;
        loop {
            let token = self.tenant_token().await?;
            let mut request = self.http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(&token);
            if let Some(body) = body {
                request = request.json(body);
            }
            match self.exchange(what, request).await {
                Err(ApiError::Api { code, .. }) if INVALID_TOKEN_CODES.contains(&code) && !refreshed => {
                    tracing::info!(what, code, "feishu: the tenant token was refused; refreshing it");
                    self.drop_token().await;
                    refreshed = true;
                }
                other => return other,
            }
        }
    }

    /// Sends `request`, reads Feishu's `{code, msg, …}` answer.
    async fn exchange(&self, what: &'static str, request: reqwest::RequestBuilder) -> Result<Value, ApiError> {
        let response = request.send().await.map_err(|e| ApiError::Network { what, detail: network(&e) })?;
        let status = response.status();
        let reset = response
            .headers()
            .get("x-ogw-ratelimit-reset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text = response.text().await.map_err(|e| ApiError::Network { what, detail: network(&e) })?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = value.get("code").and_then(Value::as_i64).unwrap_or(if status.is_success() { 0 } else { -1 });
        if status == StatusCode::TOO_MANY_REQUESTS || code == RATE_LIMITED || code == MESSAGE_RATE_LIMITED {
            return Err(ApiError::RateLimited { after: Duration::from_secs(reset.unwrap_or(1).max(1)) });
        }
        if !status.is_success() || code != 0 {
            let msg = value.get("msg").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| {
                let mut t = text.chars().take(200).collect::<String>();
                if t.is_empty() {
                    t = status.to_string();
                }
                t
            });
            return Err(ApiError::Api { what, status: status.as_u16(), code, msg });
        }
        Ok(value)
    }

    /// A file of a message (`GET /open-apis/im/v1/messages/{message_id}/resources/{key}?type=
    /// image|file`; audio is a `file`): its bytes and the `Content-Type` the platform gave, at
    /// most `max_bytes` (larger → [`ApiError::Api`] with code `-2` and the size as `msg`).
    /// A failed attempt is tried again twice.
    pub async fn message_resource(
        &self,
        message_id: &str,
        key: &str,
        kind: &str,
        max_bytes: u64,
    ) -> Result<(Vec<u8>, Option<String>), ApiError> {
        let what = "message resource";
        let path = format!(
            "{}/open-apis/im/v1/messages/{}/resources/{}?type={kind}",
            self.base,
            path_segment(message_id),
            path_segment(key)
        );
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.fetch_resource(what, &path, max_bytes).await {
                Err(e @ ApiError::Api { code: TOO_BIG, .. }) => return Err(e),
                Err(e) if attempt < 3 => {
                    tracing::warn!(attempt, error = %e, "feishu: downloading a message's file failed");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
    }

    async fn fetch_resource(
        &self,
        what: &'static str,
        url: &str,
        max_bytes: u64,
    ) -> Result<(Vec<u8>, Option<String>), ApiError> {
        let token = self.tenant_token().await?;
        let response = self
            .http
            .get(url)
            .bearer_auth(&token)
            .send()
            .await
            .map_err(|e| ApiError::Network { what, detail: network(&e) })?;
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        if !status.is_success() || content_type.as_deref() == Some("application/json") {
            let text = response.text().await.unwrap_or_default();
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let code = value.get("code").and_then(Value::as_i64).unwrap_or(-1);
            if INVALID_TOKEN_CODES.contains(&code) {
                self.drop_token().await;
            }
            let msg = value.get("msg").and_then(Value::as_str).unwrap_or(status.as_str()).to_owned();
            return Err(ApiError::Api { what, status: status.as_u16(), code, msg });
        }
        if let Some(n) = response.content_length().filter(|n| *n > max_bytes) {
            return Err(ApiError::Api { what, status: 200, code: TOO_BIG, msg: n.to_string() });
        }
        let bytes = response.bytes().await.map_err(|e| ApiError::Network { what, detail: network(&e) })?;
        if bytes.len() as u64 > max_bytes {
            return Err(ApiError::Api { what, status: 200, code: TOO_BIG, msg: bytes.len().to_string() });
        }
        Ok((bytes.to_vec(), content_type))
    }

    /// Who the bot is: its open_id recognises mentions.
    pub async fn bot_info(&self) -> Result<BotIdentity, ApiError> {
        let value = self.call("bot info", Method::GET, "/open-apis/bot/v3/info", None).await?;
        let bot = value.get("bot").cloned().unwrap_or_default();
        let open_id = bot.get("open_id").and_then(Value::as_str).unwrap_or_default().to_owned();
        if open_id.is_empty() {
            return Err(ApiError::Api { what: "bot info", status: 200, code: -1, msg: "no open_id".into() });
        }
        Ok(BotIdentity { open_id, name: bot.get("app_name").and_then(Value::as_str).unwrap_or_default().to_owned() })
    }

    /// Sends a message to a chat. `uuid` makes the send idempotent: Feishu sends one message
    /// per uuid within an hour, so a retried row does not post twice.
    pub async fn send(&self, chat_id: &str, msg_type: &str, content: &Value, uuid: &str) -> Result<Sent, ApiError> {
        let body = json!({"receive_id": chat_id, "msg_type": msg_type, "content": content.to_string(), "uuid": uuid});
        let value = self
            .call("send message", Method::POST, "/open-apis/im/v1/messages?receive_id_type=chat_id", Some(&body))
            .await?;
        sent(value, "send message")
    }

    /// Replies to message `to` (it shows quoted above the answer).
    pub async fn reply(&self, to: &str, msg_type: &str, content: &Value, uuid: &str) -> Result<Sent, ApiError> {
        let body = json!({"msg_type": msg_type, "content": content.to_string(), "uuid": uuid});
        let path = format!("/open-apis/im/v1/messages/{}/reply", path_segment(to));
        let value = self.call("reply", Method::POST, &path, Some(&body)).await?;
        sent(value, "reply")
    }

    /// Replaces a card (sent with `update_multi`) for everyone.
    pub async fn update_card(&self, message_id: &str, card: &Value) -> Result<(), ApiError> {
        let body = json!({"content": card.to_string()});
        let path = format!("/open-apis/im/v1/messages/{}", path_segment(message_id));
        self.call("update card", Method::PATCH, &path, Some(&body)).await.map(|_| ())
    }

    /// A user's display name, cached; `None` when the app may not read contacts.
    pub async fn user_name(&self, open_id: &str) -> Option<String> {
        if let Some(name) = self.names.lock().ok()?.get(open_id) {
            return Some(name.clone());
        }
        let path = format!("/open-apis/contact/v3/users/{}?user_id_type=open_id", path_segment(open_id));
        let name = match self.call("user", Method::GET, &path, None).await {
            Ok(v) => v.pointer("/data/user/name").and_then(Value::as_str).filter(|n| !n.is_empty()).map(str::to_owned),
            Err(e) => {
                tracing::debug!(error = %e, "feishu: a user's name is not readable (contact permission?)");
                None
            }
        }?;
        if let Ok(mut names) = self.names.lock() {
            if names.len() > 10_000 {
                names.clear();
            }
            names.insert(open_id.to_owned(), name.clone());
        }
        Some(name)
    }

    /// Whether a chat is a group (cached). A chat that cannot be read counts as a group: the
    /// stricter of the two admission rules.
    pub async fn is_group(&self, chat_id: &str) -> bool {
        if let Some(group) = self.chat_modes.lock().ok().and_then(|m| m.get(chat_id).copied()) {
            return group;
        }
        let path = format!("/open-apis/im/v1/chats/{}", path_segment(chat_id));
        match self.call("chat", Method::GET, &path, None).await {
            Ok(v) => {
                let group = v.pointer("/data/chat_mode").and_then(Value::as_str) != Some("p2p");
                self.remember_chat(chat_id, group);
                group
            }
            Err(e) => {
                tracing::info!(error = %e, "feishu: a chat's mode is not readable; treated as a group");
                true
            }
        }
    }

    /// Records a chat's mode seen in a message event, so a later card press needs no lookup.
    pub fn remember_chat(&self, chat_id: &str, group: bool) {
        if let Ok(mut modes) = self.chat_modes.lock() {
            if modes.len() > 10_000 {
                modes.clear();
            }
            modes.insert(chat_id.to_owned(), group);
        }
    }

    /// The long connection's WebSocket URL (it carries a short-lived ticket) and settings.
    pub async fn ws_endpoint(&self) -> Result<Endpoint, ApiError> {
        let what = "long-connection endpoint";
        let body = json!({"AppID": self.app_id, "AppSecret": self.app_secret.expose_secret()});
        let request = self.http.post(format!("{}/callback/ws/endpoint", self.base)).header("locale", "zh").json(&body);
        let value = self.exchange(what, request).await?;
        let data = value.get("data").cloned().unwrap_or_default();
        let url = data.get("URL").and_then(Value::as_str).unwrap_or_default().to_owned();
        if url.is_empty() {
            return Err(ApiError::Api { what, status: 200, code: -1, msg: "no URL in the answer".into() });
        }
        let secs =
            |key: &str| data.pointer(&format!("/ClientConfig/{key}")).and_then(Value::as_u64).map(Duration::from_secs);
        Ok(Endpoint {
            url,
            ping_interval: secs("PingInterval"),
            reconnect_interval: secs("ReconnectInterval"),
            reconnect_nonce: secs("ReconnectNonce"),
        })
    }
}

fn sent(value: Value, what: &'static str) -> Result<Sent, ApiError> {
    match value.pointer("/data/message_id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => Ok(Sent { message_id: id.to_owned() }),
        _ => Err(ApiError::Api { what, status: 200, code: -1, msg: "no message_id in the answer".into() }),
    }
}

/// Platform ids are `[A-Za-z0-9_-]`; anything else is dropped so an id cannot change the path.
fn path_segment(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect()
}

/// A network error without its URL.
fn network(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else if e.is_decode() || e.is_body() {
        "reading the answer failed".into()
    } else {
        "request failed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        assert_eq!(path_segment("om_abc-1"), "om_abc-1");
        assert_eq!(path_segment("../../x?y=1"), "xy1");
    }

    #[test]
    fn permanent_errors_are_few() {
        let api = |status, code| ApiError::Api { what: "x", status, code, msg: String::new() };
        assert!(api(400, 230002).is_permanent());
        assert!(!api(500, 230002).is_permanent());
        assert!(!api(400, 1).is_permanent());
        assert!(!ApiError::RateLimited { after: Duration::from_secs(1) }.is_permanent());
    }
}
