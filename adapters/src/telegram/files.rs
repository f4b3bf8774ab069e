//! Fetching a message's file: `getFile` for its path, then the download from the same Bot API
//! base URL (`{api_url}/file/bot{token}/{path}`). A failed attempt is tried again a few times
//! before the error is reported; the token (part of every URL) never appears in an error.

use std::time::Duration;

use teloxide::prelude::*;
use teloxide::types::FileId;

use super::outbound;

/// Attempts at fetching one file before giving up.
const ATTEMPTS: u32 = 3;

/// Why a file was not fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadError {
    /// Larger than allowed: the line for the person ("files up to 20 MB; this one is 48 MB").
    TooBig(String),
    /// Every attempt failed; the last error (without the token).
    Failed(String),
}

/// The bytes of file `file_id`, at most `max_bytes` of them.
pub async fn download(bot: &Bot, file_id: &str, max_bytes: u64) -> Result<Vec<u8>, DownloadError> {
    let mut delay = Duration::from_millis(200);
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match fetch(bot, file_id, max_bytes).await {
            Ok(bytes) => return Ok(bytes),
            Err(Fatal(e)) => return Err(DownloadError::TooBig(e)),
            Err(Retry(e)) => {
                tracing::warn!(attempt, error = %e, "telegram: downloading a file failed");
                last = e;
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    Err(DownloadError::Failed(last))
}

enum Failure {
    Retry(String),
    Fatal(String),
}
use Failure::{Fatal, Retry};

async fn fetch(bot: &Bot, file_id: &str, max_bytes: u64) -> Result<Vec<u8>, Failure> {
    let file = bot
        .get_file(FileId(file_id.to_owned()))
        .await
        .map_err(|e| Retry(format!("getFile: {}", outbound::describe(&e, bot.token()))))?;
    if u64::from(file.meta.size) > max_bytes {
        return Err(Fatal(taskgate_core::attachment::too_big(max_bytes, u64::from(file.meta.size))));
    }
    // Built by hand: teloxide's own download escapes the `/` inside `file_path`
    // (`photos/file_1.jpg`).
    let url = format!("{}/file/bot{}/{}", bot.api_url().as_str().trim_end_matches('/'), bot.token(), file.path);
    let hide = |e: reqwest::Error| e.without_url().to_string();
    let response = bot.client().get(&url).send().await.map_err(|e| Retry(format!("download: {}", hide(e))))?;
    let status = response.status();
    if !status.is_success() {
        return Err(Retry(format!("download: HTTP {status}")));
    }
    if response.content_length().is_some_and(|n| n > max_bytes) {
        return Err(Fatal(taskgate_core::attachment::too_big(max_bytes, response.content_length().unwrap_or(0))));
    }
    let bytes = response.bytes().await.map_err(|e| Retry(format!("download: {}", hide(e))))?.to_vec();
    if bytes.len() as u64 > max_bytes {
        return Err(Fatal(taskgate_core::attachment::too_big(max_bytes, bytes.len() as u64)));
    }
    Ok(bytes)
}
