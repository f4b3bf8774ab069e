//! The learned layer's weights: a multinomial logistic regression over hashed features
//! ([`super::features`]), one weight per (feature bucket, intent), plus the thresholds that
//! turn its probabilities into acting or asking ([`Thresholds`]).
//!
//! Stored as a small binary file (`weights.bin`, compiled in with `include_bytes!`): only the
//! buckets that training touched, weights quantized to 16 bits. Loading is deterministic and
//! needs no IO; retrain with `cargo run -p taskgate-core --example train-classifier`.

use std::fmt;
use std::sync::{Arc, LazyLock};

use super::decision::Intent;

/// The intents the model chooses among (`ignore` is a hard rule, never learned).
pub(crate) const CLASSES: [Intent; 9] = [
    Intent::Continue,
    Intent::Spawn,
    Intent::NewTask,
    Intent::NewSession,
    Intent::Approve,
    Intent::Deny,
    Intent::Status,
    Intent::Cancel,
    Intent::Clarify,
];
pub(crate) const K: usize = CLASSES.len();

pub(crate) fn class_of(i: Intent) -> Option<usize> {
    CLASSES.iter().position(|c| *c == i)
}

const MAGIC: &[u8; 4] = b"TGCW";
const VERSION: u32 = 1;

/// How probabilities become decisions (see `learned::combine`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// The model overrides the rules' reading when its pick is this much likelier.
    pub margin: f32,
    /// Two acting readings closer than this (in probability) → `clarify` (rule 10).
    pub ask: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { margin: 0.2, ask: 0.1 }
    }
}

/// Weights of the linear model.
#[derive(Clone)]
pub struct Model {
    bits: u32,
    /// `(bucket << K-major)`: `w[bucket * K + class]`.
    w: Vec<f32>,
    pub thresholds: Thresholds,
    rows: usize,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model").field("bits", &self.bits).field("rows", &self.rows).finish()
    }
}

/// The committed weights.
pub(crate) static BUILTIN: LazyLock<Arc<Model>> =
    LazyLock::new(|| Arc::new(Model::from_bytes(include_bytes!("weights.bin")).unwrap_or_else(|_| Model::empty(16))));

impl Model {
    /// A model with no weights: the classifier then answers with its rules alone.
    pub fn empty(bits: u32) -> Self {
        Self { bits, w: Vec::new(), thresholds: Thresholds::default(), rows: 0 }
    }

    pub(crate) fn zeros(bits: u32) -> Self {
        Self { bits, w: vec![0.0; (1usize << bits) * K], thresholds: Thresholds::default(), rows: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.w.is_empty()
    }

    #[inline]
    pub(crate) fn row(&self, feature: u32) -> usize {
        (feature & ((1u32 << self.bits) - 1)) as usize * K
    }

    pub(crate) fn weights_mut(&mut self) -> &mut [f32] {
        &mut self.w
    }

    /// Raw scores of each class.
    pub(crate) fn scores(&self, feats: &[u32], out: &mut [f32; K]) {
        *out = [0.0; K];
        for f in feats {
            let r = self.row(*f);
            let row = &self.w[r..r + K];
            for k in 0..K {
                out[k] += row[k];
            }
        }
    }

    /// Class probabilities (softmax of the scores).
    pub(crate) fn probs(&self, feats: &[u32], out: &mut [f32; K]) {
        self.scores(feats, out);
        softmax(out);
    }

    /// The binary form committed as `weights.bin`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let max = self.w.iter().fold(0.0f32, |m, w| m.max(w.abs()));
        let scale = if max > 0.0 { max / 32767.0 } else { 1.0 };
        let q = |w: f32| (w / scale).round() as i16;
        let rows: Vec<usize> =
            (0..self.w.len() / K).filter(|r| self.w[r * K..r * K + K].iter().any(|w| q(*w) != 0)).collect();
        let mut out = Vec::with_capacity(32 + rows.len() * (4 + 2 * K));
        out.extend_from_slice(MAGIC);
        for v in [VERSION, self.bits, K as u32, rows.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [scale, self.thresholds.margin, self.thresholds.ask] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for r in rows {
            out.extend_from_slice(&(r as u32).to_le_bytes());
            for k in 0..K {
                out.extend_from_slice(&q(self.w[r * K + k]).to_le_bytes());
            }
        }
        out
    }

    /// Reads the form written by [`Model::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Self, String> {
        let mut at = 0;
        let mut take = |n: usize| -> Result<&[u8], String> {
            let s = b.get(at..at + n).ok_or("weights file is truncated")?;
            at += n;
            Ok(s)
        };
        if take(4)? != MAGIC {
            return Err("not a classifier weights file".into());
        }
        let mut u32s = [0u32; 4];
        for v in &mut u32s {
            *v = u32::from_le_bytes(take(4)?.try_into().map_err(|_| "bad header")?);
        }
        let [version, bits, k, rows] = u32s;
        if version != VERSION || k as usize != K || !(8..=24).contains(&bits) {
            return Err(format!("unsupported weights (version {version}, {k} classes, {bits} bits)"));
        }
        let mut f32s = [0f32; 3];
        for v in &mut f32s {
            *v = f32::from_le_bytes(take(4)?.try_into().map_err(|_| "bad header")?);
        }
        let [scale, margin, ask] = f32s;
        let mut m = Self::zeros(bits);
        m.thresholds = Thresholds { margin, ask };
        m.rows = rows as usize;
        for _ in 0..rows {
            let r = u32::from_le_bytes(take(4)?.try_into().map_err(|_| "bad row")?) as usize;
            if r >= 1 << bits {
                return Err("row out of range".into());
            }
            for k in 0..K {
                let q = i16::from_le_bytes(take(2)?.try_into().map_err(|_| "bad row")?);
                m.w[r * K + k] = f32::from(q) * scale;
            }
        }
        Ok(m)
    }
}

pub(crate) fn softmax(x: &mut [f32; K]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_round_trip() {
        let mut m = Model::zeros(10);
        m.w[5 * K + 2] = 1.5;
        m.w[900 * K + 8] = -0.25;
        m.thresholds = Thresholds { margin: 0.3, ask: 0.05 };
        let back = Model::from_bytes(&m.to_bytes()).expect("reads back");
        assert_eq!(back.rows, 2);
        assert_eq!(back.thresholds, m.thresholds);
        assert!((back.w[5 * K + 2] - 1.5).abs() < 1e-3);
        assert!((back.w[900 * K + 8] + 0.25).abs() < 1e-3);
        assert!(Model::from_bytes(b"nope").is_err());
    }

    #[test]
    fn the_builtin_weights_load() {
        assert!(!BUILTIN.is_empty(), "core/src/classify/weights.bin is missing or unreadable");
    }
}
