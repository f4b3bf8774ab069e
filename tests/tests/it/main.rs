//! taskgate's end-to-end and contract tests as one binary (one link of the whole stack instead
//! of one per file). Each module is a former test file and lists its trials; they are named
//! `module::test` and run on libtest-mimic in parallel threads of this one process, so no test
//! may change process-wide state (environment variables, the current directory, fixed ports).
//! The harness is `taskgate_tests::harness`.
//!
//! `cargo test -p taskgate-tests --test it -- engine::` runs one module; `--list` lists them.

mod attachments;
mod cli;
mod cluster;
mod compat_real_clis;
mod deploy;
mod docs;
mod engine;
mod feishu;
mod replicas;
mod restart_notes;
mod runtime_acp;
mod runtime_claude;
mod runtime_codex;
mod runtime_supervisor;
mod store_contract;
mod telegram;
mod web_api;
mod web_browser;
mod worktrees;

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    // Only an integration test can name its package's binaries; the shared world needs this one.
    taskgate_tests::world::set_fake_agent(env!("CARGO_BIN_EXE_fake-agent"));
    let mut trials = Vec::new();
    for module in [
        attachments::trials,
        cli::trials,
        cluster::trials,
        compat_real_clis::trials,
        deploy::trials,
        docs::trials,
        engine::trials,
        feishu::trials,
        replicas::trials,
        restart_notes::trials,
        runtime_acp::trials,
        runtime_claude::trials,
        runtime_codex::trials,
        runtime_supervisor::trials,
        store_contract::trials,
        telegram::trials,
        web_api::trials,
        web_browser::trials,
        worktrees::trials,
    ] {
        trials.extend(module());
    }
    trials.sort_by(|a, b| a.name().cmp(b.name()));
    libtest_mimic::run(&args, trials).exit();
}
