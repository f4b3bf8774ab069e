//! The console's login token: one random token per installation, stored only as its SHA-256,
//! accepted as a session cookie (set by `POST /api/login`) or as `Authorization: Bearer`.
//!
//! The cookie carries the token itself, so sessions need no server-side state and work the same
//! on every replica; rotating the token (`taskgate token --rotate`) logs every browser out.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use taskgate_core::store::{Store, StoreResult};

use super::{ApiError, Console};

/// Where the token's hash lives in the settings table.
pub const TOKEN_SETTING: &str = "web.token_sha256";
pub const COOKIE: &str = "taskgate_session";
/// Tokens start with this, so secret scanners and people can tell what they hold.
const PREFIX: &str = "tgw_";
/// A browser session lasts this long before logging in again.
const SESSION_SECS: u64 = 30 * 24 * 3600;

/// What `ensure_token` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenState {
    /// A new token; this is the only time it can be shown.
    Created(String),
    /// A token was set before; only its hash is known.
    Existing,
}

/// A fresh random token (256 bits).
pub fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for the login token: {e}"))?;
    Ok(format!("{PREFIX}{}", hex(&bytes)))
}

pub fn hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates the token when there is none (first start); never shows an existing one.
pub async fn ensure_token(store: &dyn Store) -> anyhow::Result<TokenState> {
    if store.setting(TOKEN_SETTING).await?.is_some() {
        return Ok(TokenState::Existing);
    }
    Ok(TokenState::Created(rotate_token(store).await?))
}

/// Replaces the token with a new one and returns it; the old one stops working at once.
pub async fn rotate_token(store: &dyn Store) -> anyhow::Result<String> {
    let token = new_token()?;
    store.put_setting(TOKEN_SETTING, &hash(&token)).await?;
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

/// The token a request presents: the bearer header first, else the session cookie.
fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(bearer) =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
}

/// Routes anyone may reach: the page itself (it shows the login form) and the login call.
fn is_public(method: &axum::http::Method, path: &str) -> bool {
    matches!(path, "/" | "/app.js" | "/style.css") || (method == axum::http::Method::POST && path == "/api/login")
}

/// Guards every console route: 404 when the console is off (no [`Console`] installed), 401
/// without a valid token. The token is never logged.
pub async fn require(req: Request, next: Next) -> Response {
    let Some(console) = req.extensions().get::<std::sync::Arc<Console>>().cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if is_public(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let Some(token) = presented(req.headers()) else {
        return ApiError::new(StatusCode::UNAUTHORIZED, "log in: no token presented").into_response();
    };
    match verify(console.store.as_ref(), token).await {
        Ok(true) => next.run(req).await,
        Ok(false) => ApiError::new(StatusCode::UNAUTHORIZED, "wrong token").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct Login {
    token: String,
}

/// `POST /api/login`: checks the token and sets the session cookie (HttpOnly, SameSite=Strict,
/// Secure when the console is served over https).
pub async fn login(
    axum::Extension(console): axum::Extension<std::sync::Arc<Console>>,
    Json(login): Json<Login>,
) -> Response {
    match verify(console.store.as_ref(), login.token.trim()).await {
        Ok(true) => {
            let secure = if console.secure_cookie { "; Secure" } else { "" };
            let cookie = format!(
                "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}{secure}",
                login.token.trim()
            );
            session_cookie(StatusCode::NO_CONTENT, &cookie)
        }
        Ok(false) => {
            tracing::info!("web console: a login with a wrong token was refused");
            ApiError::new(StatusCode::UNAUTHORIZED, "wrong token").into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `POST /api/logout`: clears the cookie.
pub async fn logout() -> Response {
    session_cookie(StatusCode::NO_CONTENT, &format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"))
}

fn session_cookie(status: StatusCode, cookie: &str) -> Response {
    let mut response = status.into_response();
    // A token is hex with a fixed prefix, so the header value is always valid; if it ever is
    // not, refusing beats a cookie that silently does not stick.
    match HeaderValue::from_str(cookie) {
        Ok(value) => {
            response.headers_mut().insert(header::SET_COOKIE, value);
            response
        }
        Err(_) => ApiError::new(StatusCode::BAD_REQUEST, "token has characters a cookie cannot hold").into_response(),
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
    }

    #[test]
    fn bearer_wins_over_cookie_and_cookies_are_parsed_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; taskgate_session=tok; b=2"));
        assert_eq!(presented(&headers), Some("tok"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer other"));
        assert_eq!(presented(&headers), Some("other"));
        assert_eq!(presented(&HeaderMap::new()), None);
    }

    #[test]
    fn constant_time_eq_needs_identical_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
