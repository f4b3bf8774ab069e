use std::process::ExitCode;

use clap::Parser;
use taskgate::cli::{Cli, Command};
use taskgate::config::Config;
use taskgate::doctor::{self, Verdict};
use taskgate::startup::{self, Application};
use taskgate::{classify, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A bad config is one clear line and a non-zero exit, before anything else starts.
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("taskgate: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::Classify { input, eval } = &cli.command {
        return report(classify::run(&config, input.as_deref(), eval.as_deref()));
    }
    telemetry::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return report(Err(e.into())),
    };
    runtime.block_on(async {
        match cli.command {
            Command::Serve => report(serve(&config).await),
            Command::Migrate => report(migrate(&config).await),
            Command::Doctor => {
                let source = cli.config.as_ref().map_or_else(
                    || "defaults and environment".to_owned(),
                    |p| p.display().to_string(),
                );
                let checks = doctor::run(&config, &source).await;
                for check in &checks {
                    println!("{check}");
                }
                if checks.iter().any(|c| c.verdict == Verdict::Fail) {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Command::Classify { .. } => unreachable!("handled above"),
        }
    })
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    tracing::info!("taskgate listening on http://{}", app.local_addr());
    app.run_until(startup::shutdown_signal()).await
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let store = startup::open_store(config).await?;
    let pending = store.pending_migrations().await?;
    store.migrate().await?;
    println!("applied {} migration(s)", pending.len());
    store.close().await?;
    Ok(())
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("taskgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
