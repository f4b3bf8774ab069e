//! Training the learned layer: pure functions over labelled examples, driven by
//! `cargo run -p taskgate-core --example train-classifier` (which does the file IO).
//!
//! Multinomial logistic regression trained by plain SGD with a fixed seed (deterministic: the
//! same corpora give the same bytes), then the acting/asking thresholds are chosen on
//! out-of-fold predictions, folds drawn by paraphrase family so that the thresholds are tuned
//! on meanings the fold's model never saw.

use std::sync::Arc;

use serde_json::Value;

use super::Classifier;
use super::context::Context;
use super::decision::Intent;
use super::eval::EvalReport;
use super::features::RULE_FEATURES;
use super::model::{K, Model, Thresholds, class_of};

/// One labelled message.
#[derive(Debug, Clone)]
pub struct Example {
    pub id: String,
    /// Paraphrase family (examples of one family share a fold); the id when unknown.
    pub family: String,
    pub text: String,
    pub context: Context,
    /// The contract's `expect` object.
    pub expect: Value,
}

#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// log2 of the number of feature buckets.
    pub bits: u32,
    pub epochs: usize,
    pub rate: f32,
    pub l2: f32,
    /// Folds for choosing thresholds (0: keep the defaults).
    pub folds: usize,
    /// Share of updates that leave out the rules' own reading (its intent and reason), so
    /// that the text and context features learn to stand on their own.
    pub rule_dropout: f32,
    /// When choosing thresholds: how many correct answers one wrong action costs…
    pub wrong_cost: f64,
    /// …and the clarify rate not to exceed.
    pub max_clarify: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            bits: 16,
            epochs: 30,
            rate: 0.05,
            l2: 1e-4,
            folds: 5,
            rule_dropout: 0.3,
            wrong_cost: 3.0,
            max_clarify: 0.08,
        }
    }
}

/// What training found.
#[derive(Debug)]
pub struct Trained {
    pub model: Model,
    /// Out-of-fold scores at the chosen thresholds (an estimate on unseen families).
    pub cross_validated: Option<EvalReport>,
    /// The same, per source (the part of `family` before its first `/`).
    pub cross_validated_by_source: Vec<(String, EvalReport)>,
    /// Scores of the final model on its own training lines.
    pub fit: EvalReport,
}

struct Row {
    feats: Vec<u32>,
    label: usize,
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Trains on `examples` and chooses thresholds by cross-validation.
pub fn train(examples: &[Example], opts: &TrainOptions) -> Trained {
    let rules = Classifier::default().with_model(Arc::new(Model::empty(opts.bits)));
    let rows: Vec<Option<Row>> = examples
        .iter()
        .map(|e| {
            let intent = e.expect.get("intent").and_then(Value::as_str).and_then(Intent::parse)?;
            let label = class_of(intent)?;
            let feats = rules.features(&e.text, &e.context)?;
            Some(Row { feats, label })
        })
        .collect();
    let mut thresholds = Thresholds::default();
    let mut cross_validated = None;
    let mut by_source = Vec::new();
    if opts.folds >= 2 {
        let fold_of: Vec<usize> = examples.iter().map(|e| (fnv(&e.family) % opts.folds as u64) as usize).collect();
        let models: Vec<Model> = (0..opts.folds)
            .map(|f| fit(rows.iter().zip(&fold_of).filter(|(_, g)| **g != f).filter_map(|(r, _)| r.as_ref()), opts))
            .collect();
        let mut best: Option<(f64, Thresholds, EvalReport)> = None;
        for margin in [0.0f32, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] {
            for ask in [0.0f32, 0.05, 0.1, 0.15, 0.2, 0.3] {
                let th = Thresholds { margin, ask };
                let cs: Vec<Classifier> = models
                    .iter()
                    .map(|m| {
                        let mut m = m.clone();
                        m.thresholds = th;
                        Classifier::default().with_model(Arc::new(m))
                    })
                    .collect();
                let mut rep = EvalReport::default();
                for (e, f) in examples.iter().zip(&fold_of) {
                    let d = cs[*f].classify(&e.text, &e.context);
                    let _ = rep.add(&e.id, &e.text, &e.expect, d);
                }
                let rep = rep.finish();
                // Wrong actions cost more than questions (rule 10); clarify stays rare.
                let mut score = rep.accuracy - opts.wrong_cost * rep.wrong_action;
                if rep.clarify_rate > opts.max_clarify {
                    score -= 10.0 * (rep.clarify_rate - opts.max_clarify);
                }
                if best.as_ref().is_none_or(|b| score > b.0 + 1e-9) {
                    best = Some((score, th, rep));
                }
            }
        }
        if let Some((_, th, rep)) = best {
            thresholds = th;
            cross_validated = Some(rep);
            let cs: Vec<Classifier> = models
                .iter()
                .map(|m| {
                    let mut m = m.clone();
                    m.thresholds = th;
                    Classifier::default().with_model(Arc::new(m))
                })
                .collect();
            let mut by: std::collections::BTreeMap<String, EvalReport> = Default::default();
            for (e, f) in examples.iter().zip(&fold_of) {
                let src = e.family.split('/').next().unwrap_or("").to_owned();
                let d = cs[*f].classify(&e.text, &e.context);
                let _ = by.entry(src).or_default().add(&e.id, &e.text, &e.expect, d);
            }
            by_source = by.into_iter().map(|(k, r)| (k, r.finish())).collect();
        }
    }
    let mut model = fit(rows.iter().flatten(), opts);
    model.thresholds = thresholds;
    let c = Classifier::default().with_model(Arc::new(model.clone()));
    let mut fit_rep = EvalReport::default();
    for e in examples {
        let d = c.classify(&e.text, &e.context);
        let _ = fit_rep.add(&e.id, &e.text, &e.expect, d);
    }
    Trained { model, cross_validated, cross_validated_by_source: by_source, fit: fit_rep.finish() }
}

/// Plain SGD on the softmax loss, examples in a seeded shuffled order each epoch.
fn fit<'a>(rows: impl Iterator<Item = &'a Row>, opts: &TrainOptions) -> Model {
    let rows: Vec<&Row> = rows.collect();
    let mut m = Model::zeros(opts.bits);
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut p = [0f32; K];
    let mut buf = Vec::new();
    let mut avg: Vec<f32> = Vec::new();
    let mut averaged = 0u32;
    for epoch in 0..opts.epochs {
        for i in (1..order.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        if epoch >= opts.epochs / 2 {
            // Averaged weights over the second half of training (steadier than the last).
            if avg.is_empty() {
                avg = vec![0.0; m.weights_mut().len()];
            }
            for (a, w) in avg.iter_mut().zip(m.weights_mut().iter()) {
                *a += *w;
            }
            averaged += 1;
        }
        let lr = opts.rate / (1.0 + 0.05 * epoch as f32);
        for &i in &order {
            let r = rows[i];
            let drop = (next() % 1000) as f32 / 1000.0 < opts.rule_dropout;
            let feats: &[u32] = if drop {
                buf.clear();
                buf.push(r.feats[0]);
                buf.extend_from_slice(&r.feats[RULE_FEATURES + 1..]);
                &buf
            } else {
                &r.feats
            };
            m.probs(feats, &mut p);
            p[r.label] -= 1.0;
            for f in feats {
                let at = m.row(*f);
                let w = &mut m.weights_mut()[at..at + K];
                for k in 0..K {
                    w[k] -= lr * (p[k] + opts.l2 * w[k]);
                }
            }
        }
    }
    if averaged > 0 {
        for (w, a) in m.weights_mut().iter_mut().zip(&avg) {
            *w = *a / averaged as f32;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(id: &str, text: &str, intent: &str) -> Example {
        let context: Context = serde_json::from_str(
            r#"{"chat":"direct","active_task":"t1","tasks":[{"id":"t1","title":"fix routing for /api/v2","status":"running","agents":["codex"]}],"agents":["codex","claude"]}"#,
        )
        .unwrap();
        let expect = serde_json::json!({ "intent": intent });
        Example { id: id.into(), family: id.into(), text: text.into(), context, expect }
    }

    #[test]
    fn training_is_deterministic_and_learns_its_lines() {
        let examples = vec![
            example("1", "how far along is it", "status"),
            example("2", "also handle the trailing slash", "continue"),
            example("3", "stop", "cancel"),
            example("4", "write a haiku generator for the blog", "new_task"),
        ];
        let opts = TrainOptions { bits: 12, epochs: 10, folds: 0, ..TrainOptions::default() };
        let a = train(&examples, &opts);
        let b = train(&examples, &opts);
        assert_eq!(a.model.to_bytes(), b.model.to_bytes());
        assert!(a.fit.intent_accuracy >= 0.75, "{}", a.fit);
        assert!(a.cross_validated.is_none());
    }
}
