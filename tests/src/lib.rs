//! Test support for taskgate's end-to-end and contract tests: fresh databases, and the fakes
//! that stand in for the outside world (network edge only).

pub mod console;
pub mod db;
pub mod fake_feishu;
pub mod fake_model;
pub mod fake_telegram;
pub mod harness;
pub mod real_cli;
pub mod webdriver;
pub mod world;
