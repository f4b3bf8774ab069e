//! Test support for taskgate's end-to-end and contract tests (the one test binary is
//! `tests/it`): its harness, the shared world and gateways, fresh databases, and the fakes that
//! stand in for the outside world (network edge only).

pub mod app;
pub mod cluster;
pub mod db;
pub mod fake_feishu;
pub mod fake_model;
pub mod fake_telegram;
pub mod harness;
pub mod reads;
pub mod real_cli;
pub mod sessions;
pub mod webdriver;
pub mod world;
