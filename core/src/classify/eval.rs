//! Scores of a classifier against labelled lines (the contract's `--eval`).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::decision::{Decision, Intent};

/// Target fields compared when `expect` gives them.
const FIELDS: [&str; 5] = ["task", "agent", "role", "approval", "scope"];

/// One line the classifier got wrong.
#[derive(Debug, Clone)]
pub struct Miss {
    pub id: String,
    pub text: String,
    pub expect: Value,
    pub got: Decision,
}

/// The scores printed by `taskgate classify --eval`.
#[derive(Debug, Clone, Default)]
pub struct EvalReport {
    pub lines: usize,
    /// Share of lines matching `expect` on the intent and every target field it gives.
    pub accuracy: f64,
    /// Share of lines where the output acts (anything but `clarify`) and does not match.
    pub wrong_action: f64,
    /// Share of lines answered `clarify`.
    pub clarify_rate: f64,
    /// Share of lines matching on the intent alone.
    pub intent_accuracy: f64,
    /// (expected, output) → count.
    pub confusion: BTreeMap<(Intent, Intent), usize>,
    /// The lines that did not match, in input order.
    pub misses: Vec<Miss>,
}

/// Does `got` match `expect` (`{"intent": ..., "task": ...}`)? Returns (full match, intent match).
pub fn matches(expect: &Value, got: &Decision) -> Result<(bool, bool), String> {
    let want = expect.get("intent").and_then(Value::as_str).ok_or("expect has no intent")?;
    let want = Intent::parse(want).ok_or_else(|| format!("unknown intent {want:?}"))?;
    let intent_ok = want == got.intent;
    let out = serde_json::to_value(got).map_err(|e| e.to_string())?;
    let fields_ok = FIELDS.iter().all(|f| match expect.get(*f) {
        None => true,
        Some(v) => out.get(*f).unwrap_or(&Value::Null) == v,
    });
    Ok((intent_ok && fields_ok, intent_ok))
}

impl EvalReport {
    /// Adds one scored line.
    pub fn add(&mut self, id: &str, text: &str, expect: &Value, got: Decision) -> Result<(), String> {
        let (ok, intent_ok) = matches(expect, &got)?;
        let want = expect.get("intent").and_then(Value::as_str).and_then(Intent::parse);
        self.lines += 1;
        if ok {
            self.accuracy += 1.0;
        } else if got.intent != Intent::Clarify {
            self.wrong_action += 1.0;
        }
        if got.intent == Intent::Clarify {
            self.clarify_rate += 1.0;
        }
        if intent_ok {
            self.intent_accuracy += 1.0;
        }
        if let Some(w) = want {
            *self.confusion.entry((w, got.intent)).or_default() += 1;
        }
        if !ok {
            self.misses.push(Miss { id: id.to_owned(), text: text.to_owned(), expect: expect.clone(), got });
        }
        Ok(())
    }

    /// Turns the counts into shares once every line is in.
    pub fn finish(mut self) -> Self {
        let n = self.lines.max(1) as f64;
        self.accuracy /= n;
        self.wrong_action /= n;
        self.clarify_rate /= n;
        self.intent_accuracy /= n;
        self
    }
}

impl fmt::Display for EvalReport {
    /// One score per line, the confusion table, and `accuracy: 0.xxx` last (per the contract).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "lines: {}", self.lines)?;
        writeln!(f, "intent_accuracy: {:.3}", self.intent_accuracy)?;
        writeln!(f, "wrong_action: {:.3}", self.wrong_action)?;
        writeln!(f, "clarify_rate: {:.3}", self.clarify_rate)?;
        writeln!(f, "confusion (rows: expected, columns: output):")?;
        let used: Vec<Intent> =
            Intent::ALL.into_iter().filter(|i| self.confusion.keys().any(|(a, b)| a == i || b == i)).collect();
        write!(f, "  {:<12}", "")?;
        for c in &used {
            write!(f, "{:>12}", c.as_str())?;
        }
        writeln!(f)?;
        for r in &used {
            write!(f, "  {:<12}", r.as_str())?;
            for c in &used {
                let n = self.confusion.get(&(*r, *c)).copied().unwrap_or(0);
                write!(f, "{:>12}", n)?;
            }
            writeln!(f)?;
        }
        write!(f, "accuracy: {:.3}", self.accuracy)
    }
}
