//! The Telegram channel on teloxide: updates in (polling or the gateway's own webhook route),
//! normalised and checked against the allow-lists; the outbox out, as HTML, with approval
//! buttons. The token is part of every request URL: request URLs are never logged.

pub mod callback;
pub mod files;
pub mod html;
pub mod inbound;
pub mod outbound;
pub mod polling;

/// The live-status rules, shared with the other channels.
pub use crate::live;

use teloxide::prelude::*;

pub use inbound::BotIdentity;
pub use teloxide::Bot;

/// A client for `token` against `api_url` (`https://api.telegram.org`, or a fake in tests).
pub fn bot(token: &str, api_url: &str) -> Result<Bot, String> {
    let url = api_url.parse().map_err(|e| format!("telegram api_url {api_url:?}: {e}"))?;
    Ok(Bot::new(token).set_api_url(url))
}

/// Who the bot is (`getMe`): mentions and replies are recognised against it.
pub async fn identity(bot: &Bot) -> Result<BotIdentity, String> {
    let me = bot.get_me().await.map_err(|e| format!("telegram getMe: {}", outbound::describe(&e, bot.token())))?;
    Ok(BotIdentity { id: me.user.id.0, username: me.user.username.clone().unwrap_or_default() })
}

/// Polling needs the webhook gone: while one is set, `getUpdates` answers 409.
pub async fn delete_webhook(bot: &Bot) -> Result<(), String> {
    bot.delete_webhook()
        .await
        .map(|_| ())
        .map_err(|e| format!("telegram deleteWebhook: {}", outbound::describe(&e, bot.token())))
}

/// Points Telegram at `url`, which must present `secret` in `X-Telegram-Bot-Api-Secret-Token`.
pub async fn set_webhook(bot: &Bot, url: &str, secret: &str) -> Result<(), String> {
    let url = url.parse().map_err(|e| format!("telegram webhook url {url:?}: {e}"))?;
    bot.set_webhook(url)
        .secret_token(secret.to_owned())
        .allowed_updates(polling::allowed_updates())
        .await
        .map(|_| ())
        .map_err(|e| format!("telegram setWebhook: {}", outbound::describe(&e, bot.token())))
}
