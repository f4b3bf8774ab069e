//! `taskgate classify`: the classifier over JSON Lines, with the agent names from config as
//! extra aliases. Pure: no store, no network, no agent.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;
use taskgate_core::classify::{Classifier, jsonl};

use crate::config::Config;

pub fn classifier(config: &Config) -> Classifier {
    Classifier::new(config.agents.keys().map(|name| (name.clone(), name.clone())))
}

fn open(path: &Path) -> anyhow::Result<BufReader<File>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(BufReader::new(file))
}

pub fn run(config: &Config, input: Option<&Path>, eval: Option<&Path>) -> anyhow::Result<()> {
    let classifier = classifier(config);
    if let Some(path) = eval {
        let report = jsonl::eval(open(path)?, &classifier).map_err(anyhow::Error::msg)?;
        println!("{report}");
        return Ok(());
    }
    let input: Box<dyn BufRead> = match input {
        Some(path) => Box::new(open(path)?),
        None => Box::new(std::io::stdin().lock()),
    };
    let stdout = std::io::stdout().lock();
    jsonl::run(input, std::io::BufWriter::new(stdout), &classifier).context("writing output")
}
