//! Retrains the classifier's learned layer and writes `core/src/classify/weights.bin`.
//!
//!     cargo run -p taskgate-core --example train-classifier [-- FILE...]
//!
//! Default corpora: `core/tests/data/intents-dev.jsonl`, `intents-extra.jsonl` and the
//! `split: "train"` lines of `paraphrase-a.jsonl` … `paraphrase-d.jsonl` (test lines are never
//! read). Deterministic: the same corpora give the same file.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

use taskgate_core::classify::learn::{Example, TrainOptions, train};
use taskgate_core::classify::{Classifier, Context, EvalReport, Model};

#[derive(Deserialize)]
struct Line {
    id: Value,
    text: String,
    context: Context,
    expect: Value,
    #[serde(default)]
    family: Option<Value>,
    #[serde(default)]
    split: Option<String>,
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = dir.join("tests/data");
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // `--eval FILE...`: score the committed weights on the training lines of FILEs (misses listed).
    let eval_only = args.first().is_some_and(|a| a == "--eval");
    let rules_only = args.first().is_some_and(|a| a == "--rules");
    if eval_only || rules_only {
        args.remove(0);
    }
    let args: Vec<PathBuf> = args.into_iter().map(PathBuf::from).collect();
    let files = if args.is_empty() {
        [
            "intents-dev.jsonl",
            "intents-extra.jsonl",
            "paraphrase-a.jsonl",
            "paraphrase-b.jsonl",
            "paraphrase-c.jsonl",
            "paraphrase-d.jsonl",
        ]
        .iter()
        .map(|f| data.join(f))
        .filter(|p| p.exists())
        .collect()
    } else {
        args
    };
    let mut examples = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let name = f.file_stem().and_then(|s| s.to_str()).unwrap_or("corpus").to_owned();
        let mut n = 0;
        for (i, l) in text.lines().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            let line: Line = serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", f.display(), i + 1));
            if line.split.as_deref().is_some_and(|s| s != "train") {
                continue;
            }
            let id = line.id.as_str().map_or_else(|| line.id.to_string(), str::to_owned);
            let family = match &line.family {
                Some(Value::String(s)) => format!("{name}/{s}"),
                Some(v) => format!("{name}/{v}"),
                None => format!("{name}/{id}"),
            };
            examples.push(Example { id, family, text: line.text, context: line.context, expect: line.expect });
            n += 1;
        }
        eprintln!("{}: {n} training lines", f.display());
    }
    if eval_only || rules_only {
        let mut c = Classifier::default();
        if rules_only {
            c = c.with_model(Arc::new(Model::empty(16)));
        }
        let mut rep = EvalReport::default();
        for e in &examples {
            rep.add(&e.id, &e.text, &e.expect, c.classify(&e.text, &e.context)).expect("expect parses");
        }
        let rep = rep.finish();
        for m in &rep.misses {
            let g = &m.got;
            eprintln!(
                "MISS {} {:?}\n   expect {}\n   got    {} task={:?} agent={:?} role={:?} approval={:?} scope={:?} ({})",
                m.id, m.text, m.expect, g.intent, g.task, g.agent, g.role, g.approval, g.scope, g.reason
            );
        }
        eprintln!("{rep}");
        return;
    }
    let mut opts = TrainOptions::default();
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f32>().ok());
    if let Some(v) = var("TRAIN_BITS") {
        opts.bits = v as u32;
    }
    if let Some(v) = var("TRAIN_EPOCHS") {
        opts.epochs = v as usize;
    }
    if let Some(v) = var("TRAIN_RATE") {
        opts.rate = v;
    }
    if let Some(v) = var("TRAIN_L2") {
        opts.l2 = v;
    }
    if let Some(v) = var("TRAIN_DROPOUT") {
        opts.rule_dropout = v;
    }
    if let Some(v) = var("TRAIN_WRONG_COST") {
        opts.wrong_cost = f64::from(v);
    }
    if let Some(v) = var("TRAIN_MAX_CLARIFY") {
        opts.max_clarify = f64::from(v);
    }
    let t = train(&examples, &opts);
    if let Some(cv) = &t.cross_validated {
        eprintln!("cross-validated (by family):\n{cv}\n");
    }
    for (src, r) in &t.cross_validated_by_source {
        if std::env::var_os("TRAIN_MISSES").is_some() {
            for m in &r.misses {
                let g = &m.got;
                eprintln!(
                    "CV MISS {} {:?}\n   expect {}\n   got    {} task={:?} agent={:?} role={:?} approval={:?} scope={:?} ({})",
                    m.id, m.text, m.expect, g.intent, g.task, g.agent, g.role, g.approval, g.scope, g.reason
                );
            }
            eprintln!("{src}:\n{r}");
        }
        eprintln!(
            "cross-validated {src}: accuracy {:.3} wrong_action {:.3} clarify_rate {:.3} ({} lines)",
            r.accuracy, r.wrong_action, r.clarify_rate, r.lines
        );
    }
    eprintln!("fit on the training lines:\n{}\n", t.fit);
    eprintln!("thresholds: {:?}", t.model.thresholds);
    let out = dir.join("src/classify/weights.bin");
    let bytes = t.model.to_bytes();
    std::fs::write(&out, &bytes).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    eprintln!("wrote {} ({} bytes)", out.display(), bytes.len());
}
