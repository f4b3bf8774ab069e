//! One analysed message: normalized text, tokens, vocabulary hits and its topic.

use super::text::{Tok, TokKind, is_word_char, normalize, tokens};
use super::topic::Topic;
use super::vocab::{Class, Hit, Lexicon};

pub(crate) struct Msg {
    pub norm: String,
    /// Byte offset where the message proper starts (after @mentions and punctuation).
    pub lead: usize,
    pub toks: Vec<Tok>,
    pub hits: Vec<Hit>,
    pub topic: Topic,
    /// The message is phrased as a question.
    pub question: bool,
}

impl Msg {
    pub fn new(text: &str, lex: &Lexicon) -> Self {
        let mut norm = normalize(text);
        blank_mentions(&mut norm);
        let toks = tokens(&norm);
        let hits = lex.scan(&norm);
        // Bytes covered by a vocabulary hit are function, not topic.
        let mut covered = vec![false; norm.len()];
        for h in &hits {
            // An open-ended pattern (`review*`) covers the rest of its word.
            let mut end = h.end;
            while let Some(c) = norm[end..].chars().next().filter(|c| is_word_char(*c)) {
                end += c.len_utf8();
            }
            covered[h.start..end].iter_mut().for_each(|b| *b = true);
        }
        let topic = Topic::build(&norm, &toks, &covered);
        let lead = norm
            .char_indices()
            .find(|(_, c)| c.is_alphanumeric() || !c.is_ascii() && !is_punct(*c) || *c == '/')
            .map_or(norm.len(), |(i, _)| i);
        let question = is_question(&norm, &toks, &hits, lead);
        let mut msg = Self { norm, lead, toks, hits, topic, question };
        let negated: Vec<bool> = msg.hits.iter().map(|h| msg.governed_by_negation(h)).collect();
        for (h, n) in msg.hits.iter_mut().zip(negated) {
            h.negated = n;
        }
        msg
    }

    pub fn has(&self, c: Class) -> bool {
        self.hits.iter().any(|h| h.is(c))
    }

    /// Hits of a class that no negation word governs.
    pub fn live(&self, c: Class) -> impl Iterator<Item = &Hit> {
        self.hits.iter().filter(move |h| h.is(c) && !self.negated(h))
    }

    pub fn has_live(&self, c: Class) -> bool {
        self.live(c).next().is_some()
    }

    /// A negation word right before the hit ("don't stop", "不用审查", "not that"); computed
    /// once per message.
    pub fn negated(&self, h: &Hit) -> bool {
        h.negated
    }

    fn governed_by_negation(&self, h: &Hit) -> bool {
        self.hits.iter().any(|n| {
            n.is(Class::Negation)
                && n.end <= h.start
                && self.small_gap(n.end, h.start)
                // "never mind" is no negation: a longer phrase swallows the word.
                && !self.hits.iter().any(|o| {
                    !o.is(Class::Negation) && o.start <= n.start && o.end > n.end && o.end <= h.start
                })
        })
    }

    /// Only spaces, or one short word / two CJK characters, between two offsets.
    pub fn small_gap(&self, from: usize, to: usize) -> bool {
        let gap = self.norm[from..to].trim();
        if gap.is_empty() {
            return true;
        }
        // A clause break ends a negation's reach: "no, stop" is not "don't stop".
        if gap.chars().any(is_punct) {
            return false;
        }
        let cjk = gap.chars().filter(|c| super::text::is_cjk(*c)).count();
        let words = gap.split_whitespace().count();
        (cjk == 0 && words == 1 && gap.len() <= 6) || (cjk <= 2 && words <= 1 && cjk == gap.chars().count())
    }

    /// The first token starting at or after `pos`.
    pub fn tok_after(&self, pos: usize) -> Option<&Tok> {
        self.toks.iter().find(|t| t.start >= pos)
    }

    /// The last token ending at or before `pos`.
    pub fn tok_before(&self, pos: usize) -> Option<&Tok> {
        self.toks.iter().rev().find(|t| t.end <= pos)
    }

    pub fn word(&self, t: &Tok) -> &str {
        &self.norm[t.start..t.end]
    }

    /// Only spaces between two offsets.
    pub fn adjacent(&self, from: usize, to: usize) -> bool {
        from <= to && self.norm[from..to].trim().is_empty()
    }

    /// Punctuation (a clause break) right after `pos`, or the end of the text.
    pub fn clause_ends_at(&self, pos: usize) -> bool {
        let rest = self.norm[pos..].trim_start();
        rest.chars().next().is_none_or(|c| is_punct(c) && c != '/' && c != '@')
    }

    /// Every word and CJK character of the message is covered by hits of `classes`
    /// (an emoji-only message counts when one of its emoji is such a hit).
    pub fn only(&self, classes: &[Class]) -> bool {
        let mut cov = vec![false; self.norm.len()];
        let mut any = false;
        for h in self.hits.iter().filter(|h| classes.iter().any(|c| h.is(*c))) {
            cov[h.start..h.end].iter_mut().for_each(|b| *b = true);
            any = true;
        }
        any && self.toks.iter().all(|t| (t.start..t.end).all(|i| cov[i]))
    }

    /// Roughly how many words follow `pos` (a CJK character counts half).
    pub fn words_after(&self, pos: usize) -> f32 {
        self.toks
            .iter()
            .filter(|t| t.start >= pos)
            .map(|t| match t.kind {
                TokKind::Word => 1.0,
                TokKind::Cjk => self.norm[t.start..t.end].chars().count() as f32 / 2.0,
            })
            .sum()
    }

    /// The text has no words, no CJK and no emoji.
    pub fn is_blank(&self) -> bool {
        self.toks.is_empty() && self.hits.is_empty()
    }
}

pub(crate) fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            c,
            '，' | '。'
                | '！'
                | '？'
                | '：'
                | '；'
                | '、'
                | '…'
                | '—'
                | '～'
                | '·'
                | '「'
                | '」'
                | '（'
                | '）'
                | '【'
                | '】'
                | '《'
                | '》'
        )
}

/// `@taskgate` (not `a@b.c`) carries no meaning once `mentioned` says who is addressed.
fn blank_mentions(s: &mut String) {
    let bytes = s.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'@' && (i == 0 || !s[..i].chars().next_back().is_some_and(is_word_char)) {
            let mut j = i + 1;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            if j > i + 1 {
                spans.push((i, j));
            }
            i = j;
        } else {
            i += 1;
        }
    }
    for (a, b) in spans {
        s.replace_range(a..b, &" ".repeat(b - a));
    }
}

fn is_question(norm: &str, toks: &[Tok], hits: &[Hit], lead: usize) -> bool {
    if norm.contains('?') || norm.contains('？') {
        return true;
    }
    let tail = norm.trim_end_matches(|c: char| c.is_whitespace() || is_punct(c));
    if ["吗", "呢", "没", "没有", "么", "不", "如何", "怎样", "怎么样", "咋样", "多少", "几"]
        .iter()
        .any(|e| tail.ends_with(e))
    {
        return true;
    }
    let first = toks.iter().find(|t| t.start >= lead);
    first.is_some_and(|t| hits.iter().any(|h| h.start == t.start && (h.is(Class::QuestionLead) || h.is(Class::Why))))
}
