//! Fetching a message's file: `getFile` for its path, then the download from the same Bot API
//! base URL (`{api_url}/file/bot{token}/{path}`). A failed attempt is tried again a few times
//! before the error is reported; the token (part of every URL) never appears in an error.

use std::time::Duration;

use teloxide::net::Download;
use teloxide::prelude::*;
use teloxide::types::FileId;

use super::outbound;

/// Attempts at fetching one file before giving up.
const ATTEMPTS: u32 = 3;

/// The bytes of file `file_id`, at most `max_bytes` of them.
pub async fn download(bot: &Bot, file_id: &str, max_bytes: u64) -> Result<Vec<u8>, String> {
    let mut delay = Duration::from_millis(200);
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match fetch(bot, file_id, max_bytes).await {
            Ok(bytes) => return Ok(bytes),
            Err(Fatal(e)) => return Err(e),
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
    Err(last)
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
    let mut bytes: Vec<u8> = Vec::new();
    bot.download_file(&file.path, &mut bytes).await.map_err(|e| {
        let text = e.to_string().replace(bot.token(), "<token>");
        Retry(format!("download: {text}"))
    })?;
    if bytes.len() as u64 > max_bytes {
        return Err(Fatal(taskgate_core::attachment::too_big(max_bytes, bytes.len() as u64)));
    }
    Ok(bytes)
}
