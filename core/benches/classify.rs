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
    per_cpu_second(&classifier, &inputs);
    jsonl_per_cpu_second(&classifier, &text);
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

/// Nanoseconds this thread has spent on a CPU (Linux), so that the figure holds on a busy
/// machine where wall-clock throughput understates what one core does.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}

/// One pass of 200,000 classifications, timed by wall clock and by the thread's CPU time.
fn per_cpu_second(classifier: &Classifier, inputs: &[Input]) {
    for input in inputs {
        black_box(classifier.classify(&input.text, &input.context));
    }
    let (wall, cpu) = (std::time::Instant::now(), thread_cpu_ns());
    for i in 0..LINES {
        let input = &inputs[i % inputs.len()];
        black_box(classifier.classify(black_box(&input.text), black_box(&input.context)));
    }
    let wall = wall.elapsed().as_secs_f64();
    println!("classify: {LINES} classifications in {wall:.3} s wall = {:.0}/s", LINES as f64 / wall);
    if let (Some(a), Some(b)) = (cpu, thread_cpu_ns()) {
        let cpu = (b - a) as f64 / 1e9;
        println!("classify: {cpu:.3} s on CPU = {:.0} classifications per CPU-second (one core)", LINES as f64 / cpu);
    }
}

/// The same, end to end through the JSON Lines layer.
fn jsonl_per_cpu_second(classifier: &Classifier, text: &str) {
    let (wall, cpu) = (std::time::Instant::now(), thread_cpu_ns());
    jsonl::run(Cursor::new(text.as_bytes()), io::sink(), classifier).expect("runs");
    let wall = wall.elapsed().as_secs_f64();
    println!("jsonl: {LINES} lines in {wall:.3} s wall = {:.0}/s", LINES as f64 / wall);
    if let (Some(a), Some(b)) = (cpu, thread_cpu_ns()) {
        let cpu = (b - a) as f64 / 1e9;
        println!("jsonl: {cpu:.3} s on CPU = {:.0} lines per CPU-second (one core)", LINES as f64 / cpu);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
