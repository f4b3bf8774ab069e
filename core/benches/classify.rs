//! Classification throughput over the dev corpus (target: ≥ 200,000 classifications/s on
//! one core).

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use taskgate_core::classify::{Classifier, Input};

fn corpus() -> Vec<Input> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/intents-dev.jsonl");
    std::fs::read_to_string(path)
        .expect("dev corpus")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("input line"))
        .collect()
}

fn bench(c: &mut Criterion) {
    let inputs = corpus();
    let classifier = Classifier::default();
    let mut g = c.benchmark_group("classify");
    g.throughput(Throughput::Elements(inputs.len() as u64));
    g.bench_function("dev_corpus", |b| {
        b.iter(|| {
            for i in &inputs {
                black_box(classifier.classify(black_box(&i.text), black_box(&i.context)));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
