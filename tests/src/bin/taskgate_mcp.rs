//! `taskgate mcp` for the tests: the same stdio bridge (`taskgate::notes::bridge`) as its own
//! binary. Cargo gives integration tests the paths of their own package's binaries
//! (`CARGO_BIN_EXE_<name>`) but never of a dependency's, so the tests cannot reach the real
//! `taskgate` binary reliably; this one is built with them and runs the same code. Arguments
//! are ignored (agents are handed `<this> mcp`).

fn main() -> std::process::ExitCode {
    taskgate::notes::bridge::main(taskgate::notes::mcp::TOKEN_ENV)
}
