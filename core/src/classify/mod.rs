//! Classifier: what a chat message means (see shared/contracts/classify.md).
//!
//! A pure function of the message text, the conversation [`Context`] and configuration (agent
//! aliases). It is built from vocabulary classes ([`vocab`]), topic overlap between the message
//! and task titles ([`topic`]) and the contract's labelling rules in precedence order
//! ([`rules`]); nothing is compiled per call.

mod agents;
mod approval;
mod backref;
mod cancel;
mod command;
mod context;
mod decision;
pub mod eval;
pub mod jsonl;
mod message;
mod readings;
mod rules;
mod spawn;
mod status;
mod target;
mod text;
mod topic;
mod vocab;

pub use context::{ApprovalRef, Chat, Context, Input, TaskRef, TaskStatus};
pub use decision::{Decision, Intent, Role, Scope};
pub use eval::EvalReport;

use message::Msg;
use rules::Env;
use topic::Topic;
use vocab::Lexicon;

/// The message classifier. Cheap to share: build once, call [`Classifier::classify`] from
/// anywhere (`&self`, no interior state).
#[derive(Debug, Clone)]
pub struct Classifier {
    lex: Lexicon,
    bot: Option<String>,
}

impl Default for Classifier {
    /// The contract's built-in aliases only.
    fn default() -> Self {
        Self::new(std::iter::empty())
    }
}

impl Classifier {
    /// `aliases`: extra (alias → agent name) pairs from `[agents.*]` configuration, on top of
    /// the contract's built-ins (`cc`, `claude code`, `claude-code`, `claude` → claude;
    /// `cx`, `codex` → codex; `gemini` → gemini).
    pub fn new(aliases: impl IntoIterator<Item = (String, String)>) -> Self {
        Self { lex: Lexicon::new(aliases), bot: None }
    }

    /// The bot's own username: `/cmd@other_bot` is then addressed elsewhere and ignored.
    pub fn with_bot_username(mut self, name: impl Into<String>) -> Self {
        let name: String = name.into();
        self.bot = Some(name.trim_start_matches('@').to_lowercase());
        self
    }

    /// Classifies one message.
    pub fn classify(&self, text: &str, ctx: &Context) -> Decision {
        let msg = Msg::new(text, &self.lex);
        let titles: Vec<Topic> = ctx.tasks.iter().map(|t| Topic::of_text(&t.title)).collect();
        let scores = target::scores(&msg.topic, &titles);
        let env = Env { ctx, msg: &msg, lex: &self.lex, titles, scores, bot: self.bot.as_deref() };
        rules::decide(&env)
    }
}
