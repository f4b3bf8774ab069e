use tracing_subscriber::EnvFilter;

/// Logs go to stderr, filtered by `TASKGATE_LOG` (e.g. `debug`, `taskgate=trace`), default info.
pub fn init() {
    let filter = EnvFilter::try_from_env("TASKGATE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm_migration=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
