//! Classifier: what a chat message means (see docs/classify.md).
//!
//! A pure function of the message text, the conversation [`Context`] and configuration (agent
//! aliases). The contract's hard rules first ([`rules::hard`]); then the rules' reading, built
//! from vocabulary classes ([`vocab`]), topic overlap between the message and task titles
//! ([`topic`]) and the labelling rules in precedence order ([`rules`]); then a learned linear
//! model over those facts and the message's n-grams ([`features`], [`model`], [`learned`]) that
//! keeps, overrides or questions that reading. Nothing is compiled per call; the weights are
//! built in (`weights.bin`, retrained by `cargo run -p taskgate-core --example train-classifier`).

mod agents;
mod approval;
mod backref;
mod cancel;
mod command;
mod context;
mod decision;
pub mod eval;
mod features;
pub mod jsonl;
pub mod learn;
mod learned;
mod message;
mod model;
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
pub use model::{Model, Thresholds};

use std::cell::RefCell;
use std::sync::Arc;

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
    model: Arc<Model>,
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
        let aliases: Vec<(String, String)> = aliases.into_iter().collect();
        // The built-in vocabulary compiles once per process (its automata are shared).
        let lex = if aliases.is_empty() { BUILTIN_LEXICON.clone() } else { Lexicon::new(aliases) };
        Self { lex, bot: None, model: Arc::clone(&model::BUILTIN) }
    }

    /// The bot's own username: `/cmd@other_bot` is then addressed elsewhere and ignored.
    pub fn with_bot_username(mut self, name: impl Into<String>) -> Self {
        let name: String = name.into();
        self.bot = Some(name.trim_start_matches('@').to_lowercase());
        self
    }

    /// Replaces the learned weights (the committed ones by default); an empty [`Model`]
    /// leaves the rules alone.
    pub fn with_model(mut self, model: Arc<Model>) -> Self {
        self.model = model;
        self
    }

    /// Classifies one message: the contract's hard rules (group chatter, commands) first;
    /// else the rules' reading, weighed by the learned model over the rules' features and the
    /// message's n-grams ([`learned`]).
    pub fn classify(&self, text: &str, ctx: &Context) -> Decision {
        self.with_env(text, ctx, |env| {
            if let Some(d) = rules::hard(env) {
                return d;
            }
            // "npm one ok but not the docker push": two answers, one output cannot carry both.
            if learned::mixed_answers(env) {
                return Decision::clarify("a yes and a no for different approvals");
            }
            let rule = rules::soft(env);
            if self.model.is_empty() {
                return rule;
            }
            FEATURES.with_borrow_mut(|feats| {
                feats.clear();
                features::extract(env, &rule, feats);
                let mut p = [0.0; model::K];
                self.model.probs(feats, &mut p);
                learned::combine(env, rule, &p, &self.model)
            })
        })
    }

    /// The learned layer's features of a message, `None` when a hard rule decides it.
    pub(crate) fn features(&self, text: &str, ctx: &Context) -> Option<Vec<u32>> {
        self.with_env(text, ctx, |env| {
            if rules::hard(env).is_some() {
                return None;
            }
            let rule = rules::soft(env);
            let mut feats = Vec::new();
            features::extract(env, &rule, &mut feats);
            Some(feats)
        })
    }

    fn with_env<T>(&self, text: &str, ctx: &Context, f: impl FnOnce(&Env) -> T) -> T {
        let msg = Msg::new(text, &self.lex);
        let titles: Vec<Topic> = ctx.tasks.iter().map(|t| Topic::cached(&t.title)).collect();
        let scores = target::scores(&msg.topic, &titles);
        let env = Env { ctx, msg: &msg, lex: &self.lex, titles, scores, bot: self.bot.as_deref() };
        f(&env)
    }
}

static BUILTIN_LEXICON: std::sync::LazyLock<Lexicon> = std::sync::LazyLock::new(|| Lexicon::new(std::iter::empty()));

thread_local! {
    /// The feature buffer, reused across calls on one thread.
    static FEATURES: RefCell<Vec<u32>> = RefCell::new(Vec::with_capacity(512));
}
