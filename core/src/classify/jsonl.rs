//! JSON Lines in, JSON Lines out: the `taskgate classify` command's IO, kept free of any
//! runtime so the CLI only wires files to these functions.

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Classifier;
use super::context::Context;
use super::decision::Decision;
use super::eval::EvalReport;

/// An output line: the id, then the decision's fields (spelled out: `#[serde(flatten)]` would
/// go through a map and cost more than the classification).
#[derive(Serialize)]
struct Out<'a> {
    id: &'a Value,
    intent: super::decision::Intent,
    task: &'a Option<String>,
    agent: &'a Option<String>,
    role: &'a Option<super::decision::Role>,
    approval: &'a Option<String>,
    scope: &'a Option<super::decision::Scope>,
    confidence: f32,
    reason: &'a str,
}

impl<'a> Out<'a> {
    fn new(id: &'a Value, d: &'a Decision) -> Self {
        Self {
            id,
            intent: d.intent,
            task: &d.task,
            agent: &d.agent,
            role: &d.role,
            approval: &d.approval,
            scope: &d.scope,
            confidence: d.confidence,
            reason: &d.reason,
        }
    }
}

#[derive(Serialize)]
struct ErrOut<'a> {
    id: &'a Value,
    error: &'a str,
}

/// A parsed input line: its id as given, its text and context.
struct Line {
    id: Value,
    text: String,
    context: Context,
}

/// The fast path: a well-formed line deserialized straight into typed fields (no
/// intermediate `serde_json::Value` tree).
#[derive(Deserialize)]
struct Typed {
    id: Value,
    text: String,
    context: Context,
}

/// Parses one line; on failure returns the id (when one could be read) and why.
fn parse(line: &str) -> Result<Line, (Value, String)> {
    match serde_json::from_str::<Typed>(line) {
        Ok(t) if !t.id.is_null() => Ok(Line { id: t.id, text: t.text, context: t.context }),
        // The slow path only to say precisely what is wrong.
        _ => parse_slow(line),
    }
}

fn parse_slow(line: &str) -> Result<Line, (Value, String)> {
    let v: Value = serde_json::from_str(line).map_err(|e| (Value::Null, format!("invalid JSON: {e}")))?;
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    let Some(obj) = v.as_object() else {
        return Err((Value::Null, "not a JSON object".into()));
    };
    if id.is_null() {
        return Err((id, "missing id".into()));
    }
    let text = match obj.get("text") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err((id, "text is not a string".into())),
        None => return Err((id, "missing text".into())),
    };
    let context = match obj.get("context") {
        Some(c) => Context::deserialize(c).map_err(|e| (id.clone(), format!("invalid context: {e}")))?,
        None => return Err((id, "missing context".into())),
    };
    Ok(Line { id, text, context })
}

/// Classifies every line of `input`, writing one output line per input line, in order.
/// A malformed line yields `{"id": <id or null>, "error": "..."}` and the run goes on.
pub fn run(mut input: impl BufRead, mut output: impl Write, c: &Classifier) -> io::Result<()> {
    // One line buffer for the whole run.
    let mut buf = String::new();
    loop {
        buf.clear();
        if input.read_line(&mut buf)? == 0 {
            break;
        }
        let line = buf.strip_suffix('\n').unwrap_or(&buf);
        let line = line.strip_suffix('\r').unwrap_or(line);
        match parse(line) {
            Ok(l) => {
                let d = c.classify(&l.text, &l.context);
                serde_json::to_writer(&mut output, &Out::new(&l.id, &d))?;
            }
            Err((id, why)) => serde_json::to_writer(&mut output, &ErrOut { id: &id, error: &why })?,
        }
        output.write_all(b"\n")?;
    }
    output.flush()
}

/// The label of an `--eval` line (other fields are ignored).
#[derive(Deserialize)]
struct Labelled {
    expect: Option<Value>,
}

/// Scores the classifier on labelled lines (each with an `expect` object). Blank lines are
/// skipped; any other malformed line is an error naming its line number.
pub fn eval(input: impl BufRead, c: &Classifier) -> Result<EvalReport, String> {
    let mut report = EvalReport::default();
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let l = parse(&line).map_err(|(_, why)| format!("line {}: {why}", n + 1))?;
        let Labelled { expect } = serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", n + 1))?;
        let expect = expect.ok_or_else(|| format!("line {}: missing expect", n + 1))?;
        let d = c.classify(&l.text, &l.context);
        let id = l.id.as_str().map_or_else(|| l.id.to_string(), str::to_owned);
        report.add(&id, &l.text, &expect, d).map_err(|e| format!("line {}: {e}", n + 1))?;
    }
    if report.lines == 0 {
        return Err("no labelled lines".into());
    }
    Ok(report.finish())
}
