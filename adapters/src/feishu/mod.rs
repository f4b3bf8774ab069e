//! The Feishu/Lark channel: callbacks in (the gateway's webhook route, or the long
//! connection), opened and checked (crypto, signature, token), normalised against the
//! allow-lists; the outbox out, as text and interactive cards, through the open platform's
//! API with a cached tenant token. Secrets (app secret, encrypt key, tokens) are never logged.

pub mod api;
pub mod card;
pub mod cardkit;
pub mod crypto;
pub mod event;
pub mod frame;
pub mod inbound;
pub mod outbound;
pub mod token;
pub mod ws;

pub use api::FeishuApi;
pub use inbound::{AccessPolicy, BotIdentity};
