//! The `taskgate` binary's library: config, wiring, the HTTP server, workers and the CLI.
//! Kept as a library so the tests crate can start the gateway in-process.

pub mod attachments;
pub mod channel;
pub mod classify;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod engine;
pub mod feishu;
pub mod http;
pub mod inbox;
pub mod metrics;
pub mod notes;
pub mod startup;
pub mod telegram;
pub mod telemetry;
pub mod web;
