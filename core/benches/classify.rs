//! Classification throughput on the dev corpus replicated to 200,000 lines (target: ≥ 200,000
//! classifications/s on one core), both on parsed input and end to end through the JSON Lines
//! layer (parse into typed structs, classify, serialize), as `taskgate classify` runs.
//!
//!     cargo bench -p taskgate-core --bench classify
//!
//! Criterion prints `thrpt: [... Kelem/s ...]`: elements are classifications.

use std::hint::black_box;
use std::io::{self, Cursor};
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use taskgate_core::classify::{Classifier, Input, jsonl};

const LINES: usize = 200_000;

fn dev_lines() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/intents-dev.jsonl");
    std::fs::read_to_string(path)
        .expect("dev corpus")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn bench(c: &mut Criterion) {
    let dev = dev_lines();
    let inputs: Vec<Input> = dev.iter().map(|l| serde_json::from_str(l).expect("input line")).collect();
    let mut text = String::new();
    for i in 0..LINES {
        text.push_str(&dev[i % dev.len()]);
        text.push('\n');
    }
    let classifier = Classifier::default();
    let mut g = c.benchmark_group("classify");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(LINES as u64));
    g.bench_function("dev_x200k_parsed", |b| {
        b.iter(|| {
            for i in 0..LINES {
                let input = &inputs[i % inputs.len()];
                black_box(classifier.classify(black_box(&input.text), black_box(&input.context)));
            }
        })
    });
    g.bench_function("dev_x200k_jsonl", |b| {
        b.iter(|| jsonl::run(Cursor::new(text.as_bytes()), io::sink(), &classifier).expect("runs"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
