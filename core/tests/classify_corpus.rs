//! The labelled corpora run through the classifier, with the thresholds as assertions.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use taskgate_core::classify::{Classifier, EvalReport, jsonl};

fn eval(name: &str) -> EvalReport {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    let file = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let report = jsonl::eval(BufReader::new(file), &Classifier::default()).expect("corpus parses");
    show(name, report, true)
}

/// The lines of one split (`"split": "train"` or `"test"`) of a paraphrase corpus.
fn eval_split(name: &str, split: &str) -> EvalReport {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lines: String = text
        .lines()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("corpus line is JSON");
            v.get("split").and_then(serde_json::Value::as_str) == Some(split)
        })
        .flat_map(|l| [l, "\n"])
        .collect();
    let report = jsonl::eval(lines.as_bytes(), &Classifier::default()).expect("corpus parses");
    // Test-split misses are not listed: nobody tunes on them.
    show(&format!("{name} ({split} split)"), report, split != "test")
}

fn show(name: &str, report: EvalReport, misses: bool) -> EvalReport {
    for m in report.misses.iter().filter(|_| misses) {
        eprintln!(
            "MISS {} {:?}\n   expect {}\n   got    {} task={:?} agent={:?} role={:?} approval={:?} scope={:?} ({})",
            m.id,
            m.text,
            m.expect,
            m.got.intent,
            m.got.task,
            m.got.agent,
            m.got.role,
            m.got.approval,
            m.got.scope,
            m.got.reason
        );
    }
    eprintln!("{name}:\n{report}");
    println!(
        "{name}: accuracy {:.3}, wrong_action {:.3}, clarify_rate {:.3} ({} lines)",
        report.accuracy, report.wrong_action, report.clarify_rate, report.lines
    );
    report
}

#[test]
fn dev_corpus_meets_the_targets() {
    let r = eval("intents-dev.jsonl");
    assert_eq!(r.lines, 200);
    assert!(r.accuracy >= 0.97, "accuracy {:.3} < 0.97", r.accuracy);
    assert!(r.wrong_action <= 0.01, "wrong_action {:.3} > 0.01", r.wrong_action);
}

/// Lines written apart from the dev corpus, in other topics and phrasings (and harder cases),
/// labelled by the contract's rules rather than by the classifier's output. A few are left
/// wrong on purpose: they need world knowledge ("recovery codes" belong to 2FA).
#[test]
fn extra_corpus_generalizes() {
    let r = eval("intents-extra.jsonl");
    assert!(r.lines >= 300);
    assert!(r.accuracy >= 0.95, "accuracy {:.3} < 0.95", r.accuracy);
    assert!(r.wrong_action <= 0.02, "wrong_action {:.3} > 0.02", r.wrong_action);
}

/// Floors for a corpus split: the targets where they are met, else the figures reached
/// when the weights were last trained (so that a regression fails; see docs/classify.md).
struct Floor {
    accuracy: f64,
    wrong_action: f64,
    clarify_rate: f64,
}

fn assert_floor(r: &EvalReport, f: &Floor) {
    assert!(r.accuracy >= f.accuracy, "accuracy {:.3} < {:.3}", r.accuracy, f.accuracy);
    assert!(r.wrong_action <= f.wrong_action, "wrong_action {:.3} > {:.3}", r.wrong_action, f.wrong_action);
    assert!(r.clarify_rate <= f.clarify_rate, "clarify_rate {:.3} > {:.3}", r.clarify_rate, f.clarify_rate);
}

/// Corpora written independently of the classifier, from the contract alone, as paraphrase
/// families; a third of the families (`split: test`) was never used while developing or
/// training. Train figures are printed too.
#[test]
fn paraphrase_corpus_a() {
    let train = eval_split("paraphrase-a.jsonl", "train");
    let test = eval_split("paraphrase-a.jsonl", "test");
    assert!(train.lines >= 400 && test.lines >= 200, "corpus a: {} train, {} test lines", train.lines, test.lines);
    assert_floor(&test, &FLOOR_A);
}

#[test]
fn paraphrase_corpus_b() {
    let train = eval_split("paraphrase-b.jsonl", "train");
    let test = eval_split("paraphrase-b.jsonl", "test");
    assert!(train.lines >= 400 && test.lines >= 200, "corpus b: {} train, {} test lines", train.lines, test.lines);
    assert_floor(&test, &FLOOR_B);
}

#[test]
fn paraphrase_corpus_c() {
    let train = eval_split("paraphrase-c.jsonl", "train");
    let test = eval_split("paraphrase-c.jsonl", "test");
    assert!(train.lines >= 400 && test.lines >= 200, "corpus c: {} train, {} test lines", train.lines, test.lines);
    assert_floor(&test, &FLOOR_C);
}

#[test]
fn paraphrase_corpus_d() {
    let train = eval_split("paraphrase-d.jsonl", "train");
    let test = eval_split("paraphrase-d.jsonl", "test");
    assert!(train.lines >= 400 && test.lines >= 200, "corpus d: {} train, {} test lines", train.lines, test.lines);
    assert_floor(&test, &FLOOR_D);
}

// The targets are accuracy ≥ 0.95, wrong_action ≤ 0.02, clarify_rate ≤ 0.10 on each
// test split. The clarify target is met on all four test splits, so it is the floor; accuracy
// and wrong_action are not reached yet (see docs/classify.md, "Scores"): their floors are the
// figures reached by the committed weights, so that any regression fails. Raise them as they
// improve.
const FLOOR_A: Floor = Floor { accuracy: 0.926, wrong_action: 0.038, clarify_rate: 0.10 };
const FLOOR_B: Floor = Floor { accuracy: 0.847, wrong_action: 0.129, clarify_rate: 0.10 };
const FLOOR_C: Floor = Floor { accuracy: 0.912, wrong_action: 0.072, clarify_rate: 0.10 };
const FLOOR_D: Floor = Floor { accuracy: 0.877, wrong_action: 0.098, clarify_rate: 0.10 };
