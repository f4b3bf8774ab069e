//! Text normalization and tokenization shared by messages and task titles.
//!
//! English is split into words (keeping `.`/`_` inside identifiers and versions, so `2.3.0`,
//! `owner_id` and `checkout.spec.ts` stay whole); Chinese into runs of CJK characters, which the
//! topic scorer turns into bigrams because Chinese has no spaces to split words on.

/// Lower-cases and folds the typographic variants that chat clients produce (curly quotes,
/// full-width ASCII), so that word lists need one spelling only.
pub(crate) fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\u{2018}' | '\u{2019}' | '\u{02bc}' => out.push('\''),
            '\u{201c}' | '\u{201d}' => out.push('"'),
            // Full-width ASCII letters and digits (Ａ, ｂ, ３): fold to ASCII.
            '\u{ff10}'..='\u{ff19}' | '\u{ff21}'..='\u{ff3a}' | '\u{ff41}'..='\u{ff5a}' => {
                let ascii = char::from_u32(c as u32 - 0xfee0).unwrap_or(c);
                out.push(ascii.to_ascii_lowercase());
            }
            '\u{3000}' => out.push(' '),
            c if c.is_ascii() => out.push(c.to_ascii_lowercase()),
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

pub(crate) fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xf900..=0xfaff | 0x20000..=0x2fa1f)
}

/// A character that belongs to an English-like word.
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || (!c.is_ascii() && c.is_alphabetic() && !is_cjk(c))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokKind {
    Word,
    Cjk,
}

/// A byte span of the normalized text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tok {
    pub start: usize,
    pub end: usize,
    pub kind: TokKind,
}

/// Splits normalized text into words and CJK runs; punctuation, spaces and emoji separate them.
pub(crate) fn tokens(s: &str) -> Vec<Tok> {
    let mut out = Vec::with_capacity(s.len() / 4 + 1);
    let b = s.as_bytes();
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if is_word_char(c) {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = it.peek() {
                if is_word_char(d) {
                    end = j + d.len_utf8();
                    it.next();
                } else if d == '.' || d == '\'' {
                    // Keep `2.3.0`, `spec.ts`, `don't` whole; a trailing dot ends the word.
                    let next = b.get(j + 1).copied().map(char::from);
                    if next.is_some_and(|n| n.is_ascii_alphanumeric()) {
                        end = j + 1;
                        it.next();
                    } else {
                        break;
                    }
                } else {
                    break;
                }
            }
            out.push(Tok { start: i, end, kind: TokKind::Word });
        } else if is_cjk(c) {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = it.peek() {
                if !is_cjk(d) {
                    break;
                }
                end = j + d.len_utf8();
                it.next();
            }
            out.push(Tok { start: i, end, kind: TokKind::Cjk });
        }
    }
    out
}

/// A crude suffix stemmer: enough to make `routes`/`routing`/`router` and
/// `migrate`/`migration`/`migrations` meet, never shortening a stem below four bytes.
pub(crate) fn stem(w: &str) -> &str {
    // Identifiers, versions and numbers are compared whole.
    if w.bytes().any(|b| b.is_ascii_digit() || b == b'_' || b == b'.') || !w.is_ascii() {
        return w;
    }
    let mut w = w;
    for suf in ["ies", "es", "s"] {
        if let Some(s) = w.strip_suffix(suf)
            && s.len() >= 4
            && !w.ends_with("ss")
        {
            w = s;
            break;
        }
    }
    for suf in ["ation", "ate", "ing", "ion", "er", "ed", "ly", "e"] {
        // "tune"/"tuning" and "code"/"coding" meet on three letters; other endings need four.
        let min = if matches!(suf, "ing" | "e") { 3 } else { 4 };
        if let Some(s) = w.strip_suffix(suf)
            && s.len() >= min
        {
            return s;
        }
    }
    w
}

/// `v2.3` and `2.3` name the same release; a bare `v2` (an API version) stays as it is.
pub(crate) fn canon_word(w: &str) -> &str {
    if let Some(rest) = w.strip_prefix('v')
        && rest.contains('.')
        && rest.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        return rest;
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<&str> {
        tokens(s).iter().map(|t| &s[t.start..t.end]).collect()
    }

    #[test]
    fn splits_words_versions_and_cjk_runs() {
        let s = normalize("Fix /api/v2 for v2.3.0: checkout.spec.ts, 修复 CI 构建。");
        assert_eq!(words(&s), ["fix", "api", "v2", "for", "v2.3.0", "checkout.spec.ts", "修复", "ci", "构建"]);
    }

    #[test]
    fn folds_curly_quotes_and_full_width() {
        assert_eq!(normalize("Don\u{2019}t ＡＢ１"), "don't ab1");
    }

    #[test]
    fn stems_meet() {
        assert_eq!(stem("routes"), stem("routing"));
        assert_eq!(stem("router"), stem("route"));
        assert_eq!(stem("migration"), stem("migrations"));
        assert_eq!(stem("tuning"), stem("tune"));
        assert_eq!(stem("owner_id"), "owner_id");
    }

    #[test]
    fn versions_lose_their_v() {
        assert_eq!(canon_word("v2.3"), "2.3");
        assert_eq!(canon_word("v2"), "v2");
    }
}
