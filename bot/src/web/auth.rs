//! Who may use the console. Two credentials:
//!
//! - The **login token**: one random token per installation, stored only as its SHA-256, shown
//!   once (first start, or `taskgate token --rotate`). It is typed into the login form, or sent
//!   as `Authorization: Bearer` by scripts. It is never put in a cookie.
//! - A **session**: `POST /api/login` with the token creates one: a random secret in an
//!   `HttpOnly; SameSite=Strict` cookie (`Secure` behind https), stored as its SHA-256 with an
//!   expiry. `POST /api/logout` deletes it, so the cookie is dead at once on every replica;
//!   `taskgate sessions` lists and revokes them, and rotating the token ends them all.

use std::sync::Arc;

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use taskgate_adapters::store::{SeaStore, WebSession};
use taskgate_core::store::{Store, StoreResult};

use super::{ApiError, Console};

/// Where the token's hash lives in the settings table.
pub const TOKEN_SETTING: &str = "web.token_sha256";
pub const COOKIE: &str = "taskgate_session";
/// Tokens start with this, so secret scanners and people can tell what they hold.
const PREFIX: &str = "tgw_";
/// Session secrets (the cookie's value) start with this.
const SESSION_PREFIX: &str = "tgs_";
/// A browser session lasts this long before logging in again.
pub const SESSION_SECS: i64 = 30 * 24 * 3600;
/// A session's `last_seen_at` is written at most this often.
const TOUCH_SECS: i64 = 300;

/// What `ensure_token` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenState {
    /// A new token; this is the only time it can be shown.
    Created(String),
    /// A token was set before; only its hash is known.
    Existing,
}

/// A fresh random login token (256 bits).
pub fn new_token() -> anyhow::Result<String> {
    random(PREFIX)
}

fn random(prefix: &str) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a console secret: {e}"))?;
    Ok(format!("{prefix}{}", hex(&bytes)))
}

pub fn hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates the token when there is none (first start); never shows an existing one. One
/// atomic insert: of several replicas starting on a fresh database exactly one creates (and
/// prints) it; the others find it existing.
pub async fn ensure_token(store: &SeaStore) -> anyhow::Result<TokenState> {
    if store.setting(TOKEN_SETTING).await?.is_some() {
        return Ok(TokenState::Existing);
    }
    let token = new_token()?;
    if store.insert_setting(TOKEN_SETTING, &hash(&token)).await? {
        Ok(TokenState::Created(token))
    } else {
        Ok(TokenState::Existing)
    }
}

/// Replaces the token with a new one and returns it; the old one stops working at once, and
/// every browser session ends (they were opened with the old one).
pub async fn rotate_token(store: &SeaStore) -> anyhow::Result<String> {
    let token = new_token()?;
    store.put_setting(TOKEN_SETTING, &hash(&token)).await?;
    let ended = store.revoke_web_sessions().await?;
    tracing::info!(sessions = ended, "console login token rotated; its sessions ended");
    Ok(token)
}

/// Whether `given` is the current token. Both sides are hashed first and the hashes compared
/// in constant time, so neither the token's length nor its prefix leaks through timing.
pub async fn verify(store: &dyn Store, given: &str) -> StoreResult<bool> {
    let Some(stored) = store.setting(TOKEN_SETTING).await? else { return Ok(false) };
    Ok(constant_time_eq(hash(given).as_bytes(), stored.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The session cookie of a request, if it has one.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// Whether the browser reached us over https: directly, or through a proxy that says so.
fn over_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https")));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split([';', ',']).any(|p| p.trim().eq_ignore_ascii_case("proto=https")));
    forwarded_proto || forwarded
}

/// Routes anyone may reach: the page and its assets (it shows the login form), the web app
/// manifest and icons (browsers fetch them without cookies), the API description, and
/// logging in and out.
fn is_public(method: &axum::http::Method, path: &str) -> bool {
    super::PUBLIC_ASSETS.contains(&path)
        || path == "/api/openapi.json"
        || (method == axum::http::Method::POST && matches!(path, "/api/login" | "/api/logout"))
}

/// How a request was let in.
#[derive(Debug, Clone)]
pub enum Authenticated {
    /// `Authorization: Bearer <login token>` (scripts).
    Token,
    /// A browser session.
    Session(WebSession),
}

/// Guards every console route: 404 when the console is off (no [`Console`] installed), 401
/// without a valid token or session. Secrets are never logged.
pub async fn require(mut req: Request, next: Next) -> Response {
    let Some(console) = req.extensions().get::<Arc<Console>>().cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if is_public(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let store = console.store.as_ref();
    let who = if let Some(token) = bearer(req.headers()) {
        match verify(store, token).await {
            Ok(true) => Authenticated::Token,
            Ok(false) => return ApiError::new(StatusCode::UNAUTHORIZED, "wrong token").into_response(),
            Err(e) => return ApiError::from(e).into_response(),
        }
    } else if let Some(secret) = cookie(req.headers()) {
        let now = Utc::now();
        match store.web_session(&hash(secret), now).await {
            Ok(Some(session)) => {
                if (now - session.last_seen_at).num_seconds() >= TOUCH_SECS
                    && let Err(e) = store.touch_web_session(session.id, now).await
                {
                    tracing::debug!(error = %e, "web console: recording a session's use failed");
                }
                Authenticated::Session(session)
            }
            Ok(None) => {
                return ApiError::new(StatusCode::UNAUTHORIZED, "session ended or expired: log in again")
                    .into_response();
            }
            Err(e) => return ApiError::from(e).into_response(),
        }
    } else {
        return ApiError::new(StatusCode::UNAUTHORIZED, "log in: no token presented").into_response();
    };
    req.extensions_mut().insert(who);
    next.run(req).await
}

#[derive(Deserialize)]
pub struct Login {
    token: String,
}

/// `POST /api/login`: checks the token and opens a session: a new random secret in the
/// cookie (HttpOnly, SameSite=Strict, Secure over https), its hash and expiry in the database.
pub async fn login(
    axum::Extension(console): axum::Extension<Arc<Console>>,
    headers: HeaderMap,
    Json(login): Json<Login>,
) -> Response {
    let store = console.store.as_ref();
    match verify(store, login.token.trim()).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!("web console: a login with a wrong token was refused");
            return ApiError::new(StatusCode::UNAUTHORIZED, "wrong token").into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    }
    let secret = match random(SESSION_PREFIX) {
        Ok(s) => s,
        Err(e) => return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let now = Utc::now();
    if let Err(e) = store.purge_web_sessions(now).await {
        tracing::debug!(error = %e, "web console: forgetting expired sessions failed");
    }
    let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let expires = now + chrono::Duration::seconds(SESSION_SECS);
    let session = match store.create_web_session(&hash(&secret), agent, expires).await {
        Ok(session) => session,
        Err(e) => return ApiError::from(e).into_response(),
    };
    tracing::info!(session = session.id, "web console: logged in");
    let secure = if console.secure_cookie || over_https(&headers) { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}{secure}");
    session_cookie(StatusCode::NO_CONTENT, &cookie)
}

/// `POST /api/logout`: deletes the session the cookie names (that cookie is refused from now
/// on, wherever it is replayed) and clears the cookie.
pub async fn logout(axum::Extension(console): axum::Extension<Arc<Console>>, headers: HeaderMap) -> Response {
    if let Some(secret) = cookie(&headers) {
        match console.store.delete_web_session(&hash(secret)).await {
            Ok(true) => tracing::info!("web console: logged out"),
            Ok(false) => {}
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    let secure = if console.secure_cookie || over_https(&headers) { "; Secure" } else { "" };
    session_cookie(StatusCode::NO_CONTENT, &format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"))
}

fn session_cookie(status: StatusCode, cookie: &str) -> Response {
    let mut response = status.into_response();
    // A secret is hex with a fixed prefix, so the header value is always valid.
    match HeaderValue::from_str(cookie) {
        Ok(value) => {
            response.headers_mut().insert(header::SET_COOKIE, value);
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "a cookie could not be written").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_hex() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 64);
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
        let s = random(SESSION_PREFIX).unwrap();
        assert!(s.starts_with(SESSION_PREFIX) && s.len() == SESSION_PREFIX.len() + 64);
    }

    #[test]
    fn bearer_and_cookie_are_read_apart_and_cookies_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; taskgate_session=tok; b=2"));
        assert_eq!(cookie(&headers), Some("tok"));
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer other"));
        assert_eq!(bearer(&headers), Some("other"));
        assert_eq!(cookie(&HeaderMap::new()), None);
        let mut empty = HeaderMap::new();
        empty.insert(header::COOKIE, HeaderValue::from_static("taskgate_session="));
        assert_eq!(cookie(&empty), None);
    }

    #[test]
    fn https_is_seen_through_proxies() {
        let mut headers = HeaderMap::new();
        assert!(!over_https(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(over_https(&headers));
        let mut forwarded = HeaderMap::new();
        forwarded.insert(header::FORWARDED, HeaderValue::from_static("for=1.2.3.4;proto=https;by=x"));
        assert!(over_https(&forwarded));
        forwarded.insert(header::FORWARDED, HeaderValue::from_static("for=1.2.3.4;proto=http"));
        assert!(!over_https(&forwarded));
    }

    #[test]
    fn constant_time_eq_needs_identical_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
