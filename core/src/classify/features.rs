//! Features of one message for the learned layer ([`super::model`]): the rule engine's own
//! reading and the facts it looked at (vocabulary classes, topic overlap, the context), plus
//! hashed text n-grams (Latin word unigrams and bigrams; CJK character 1–3-grams, because
//! Chinese has no spaces to split words on; emoji).
//!
//! Every feature is a 32-bit FNV-1a hash of a namespace and a string; the model folds it into
//! its bucket count. Extraction writes into a caller's buffer (no allocation once warm).

use super::agents;
use super::backref::{Back, back_reference};
use super::context::{Chat, TaskStatus};
use super::decision::Decision;
use super::message::is_punct;
use super::rules::Env;
use super::target::{self, Resolved};
use super::text::{TokKind, is_cjk};

/// FNV-1a, 32 bits, over a namespace byte and parts.
#[derive(Clone, Copy)]
pub(crate) struct H(u32);

impl H {
    pub fn new(ns: u8) -> Self {
        Self(0x811c_9dc5).byte(ns).byte(0xff)
    }
    #[inline]
    pub fn byte(self, b: u8) -> Self {
        Self((self.0 ^ u32::from(b)).wrapping_mul(0x0100_0193))
    }
    #[inline]
    pub fn bytes(self, s: &[u8]) -> Self {
        s.iter().fold(self, |h, b| h.byte(*b))
    }
    pub fn num(self, n: u32) -> Self {
        self.bytes(&n.to_le_bytes())
    }
    pub fn get(self) -> u32 {
        // A final avalanche so that buckets taken modulo a power of two stay spread.
        let mut x = self.0;
        x ^= x >> 16;
        x = x.wrapping_mul(0x7feb_352d);
        x ^= x >> 15;
        x = x.wrapping_mul(0x846c_a68b);
        x ^ (x >> 16)
    }
}

fn bucket(v: f32, edges: &[f32]) -> u32 {
    edges.iter().take_while(|e| v >= **e).count() as u32
}

fn status_code(s: TaskStatus) -> u32 {
    match s {
        TaskStatus::Running => 1,
        TaskStatus::WaitingApproval => 2,
        TaskStatus::WaitingInput => 3,
        TaskStatus::Idle => 4,
        TaskStatus::Completed => 5,
        TaskStatus::Failed => 6,
        TaskStatus::Cancelled => 7,
    }
}

/// How many features right after the bias carry the rules' own reading (training may leave
/// them out).
pub(crate) const RULE_FEATURES: usize = 4;

/// Appends the features of the message in `env`, given the rules' decision, to `out`.
pub(crate) fn extract(env: &Env, rule: &Decision, out: &mut Vec<u32>) {
    let (ctx, m) = (env.ctx, env.msg);
    let pending = ctx.pending_approvals.len().min(2) as u32;
    let f = |out: &mut Vec<u32>, h: H| out.push(h.get());
    f(out, H::new(b'B'));
    // The rules' reading and why.
    let ri = rule.intent as u32;
    f(out, H::new(b'I').num(ri));
    f(out, H::new(b'R').bytes(rule.reason.as_bytes()));
    f(out, H::new(b'J').num(ri).num(pending));
    f(out, H::new(b'T').num(u32::from(rule.task.is_some())).num(ri));
    // Context.
    f(out, H::new(b'p').num(pending));
    f(out, H::new(b'g').num(u32::from(ctx.chat == Chat::Group)));
    f(out, H::new(b'r').num(u32::from(ctx.reply_to.is_some())));
    f(out, H::new(b'a').num(u32::from(ctx.active_task.is_some())));
    f(out, H::new(b'n').num(ctx.tasks.len().min(4) as u32));
    let resolved = target::resolve(ctx, &env.scores);
    let (via, tstatus) = match resolved {
        Resolved::Found(t) => (t.via as u32 + 1, t.task.map_or(0, |t| status_code(t.status))),
        Resolved::Ambiguous => (10, 0),
        Resolved::None => (11, 0),
    };
    f(out, H::new(b'v').num(via));
    f(out, H::new(b's').num(tstatus));
    f(out, H::new(b'S').num(tstatus).num(pending));
    let running = ctx.tasks.iter().filter(|t| t.status.is_active()).count().min(2) as u32;
    f(out, H::new(b'u').num(running));
    let best = env.best_score();
    let novel = env.novel(usize::MAX);
    f(out, H::new(b'o').num(bucket(best, &[0.3, 0.8, 1.5, 2.5])));
    f(out, H::new(b'N').num(bucket(novel, &[0.5, 1.5, 2.5, 4.0, 6.0])));
    f(out, H::new(b'q').num(u32::from(m.question)));
    let back = match back_reference(env) {
        Back::Strong => 1,
        Back::Pronoun(_) => 2,
        Back::None => 0,
    };
    f(out, H::new(b'k').num(back));
    if let Some(a) = agents::actor(m) {
        let name = env.lex.agents[a.agent as usize].as_str();
        let in_task = match resolved {
            Resolved::Found(t) => t.task.is_some_and(|t| t.agents.iter().any(|x| x == name)),
            _ => false,
        };
        f(out, H::new(b'A').num(1 + u32::from(in_task)).num(u32::from(ctx.has_agent(name))));
    }
    if agents::nouns(m).next().is_some() {
        f(out, H::new(b'A').num(9));
    }
    // A few conjunctions a linear model cannot form by itself.
    let nb = bucket(novel, &[0.5, 1.5, 2.5, 4.0, 6.0]);
    let ob = bucket(best, &[0.3, 0.8, 1.5, 2.5]);
    f(out, H::new(b'X').num(nb).num(ob).num(back));
    f(out, H::new(b'Y').num(ri).num(nb));
    f(out, H::new(b'Z').num(tstatus).num(u32::from(m.question)).num(back));
    let words = m.words_after(m.lead);
    f(out, H::new(b'l').num(bucket(words, &[1.5, 3.0, 5.0, 8.0, 13.0, 20.0])));
    // Vocabulary classes, live or negated, and the one opening the message.
    let first = m.tok_after(m.lead).map_or(usize::MAX, |t| t.start);
    for h in &m.hits {
        let neg = u32::from(h.negated);
        let mut bits = h.classes.bits();
        while bits != 0 {
            let c = bits.trailing_zeros();
            bits &= bits - 1;
            f(out, H::new(b'c').num(c).num(neg));
            if h.start == first {
                f(out, H::new(b'C').num(c));
            }
            if pending > 0 {
                f(out, H::new(b'P').num(c).num(neg));
            }
        }
    }
    text_features(&m.norm, &m.toks, pending > 0, out);
}

/// Hashed n-grams of normalized text: Latin words and word bigrams, character trigrams inside
/// words, CJK character 1–3-grams and emoji. `pending` adds word features crossed with "an
/// approval waits" (an "ok" means something else then).
fn text_features(norm: &str, toks: &[super::text::Tok], pending: bool, out: &mut Vec<u32>) {
    let mut prev: Option<&str> = None;
    let mut prev_end = 0;
    for t in toks {
        let s = &norm[t.start..t.end];
        match t.kind {
            TokKind::Word => {
                out.push(H::new(b'w').bytes(s.as_bytes()).get());
                if pending {
                    out.push(H::new(b'x').bytes(s.as_bytes()).get());
                }
                let gap_clean = !norm[prev_end..t.start].chars().any(|c| is_punct(c) && c != '\'');
                let p = if gap_clean { prev.unwrap_or("^") } else { "|" };
                out.push(H::new(b'W').bytes(p.as_bytes()).byte(b' ').bytes(s.as_bytes()).get());
                prev = Some(s);
            }
            TokKind::Cjk => {
                for (i, _) in s.char_indices() {
                    // Ends of the 1-, 2- and 3-character grams starting at `i`.
                    let rest = &s[i..];
                    let mut ends = rest.char_indices().skip(1).map(|(j, _)| j).chain(std::iter::once(rest.len()));
                    for n in 1..=3 {
                        let Some(end) = ends.next() else { break };
                        let g = &rest[..end];
                        out.push(H::new(b'z').bytes(g.as_bytes()).get());
                        if pending && n <= 2 {
                            out.push(H::new(b'y').bytes(g.as_bytes()).get());
                        }
                    }
                }
                // The run's last character: "吗", "没" at the end ask a question.
                if let Some(c) = s.chars().next_back() {
                    out.push(H::new(b'E').bytes(c.encode_utf8(&mut [0; 4]).as_bytes()).get());
                }
                prev = None;
            }
        }
        prev_end = t.end;
    }
    // Emoji and other symbols outside words.
    for c in norm.chars() {
        if !c.is_ascii() && !c.is_alphanumeric() && !is_cjk(c) && !c.is_whitespace() && !is_punct(c) {
            out.push(H::new(b'e').bytes(c.encode_utf8(&mut [0; 4]).as_bytes()).get());
        }
    }
    if norm.trim_end().ends_with(['?', '？']) {
        out.push(H::new(b'?').get());
    }
}
