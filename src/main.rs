use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use starrocks_gateway::cli::{Cli, Command};
use starrocks_gateway::config::Settings;
use starrocks_gateway::startup::Application;
use starrocks_gateway::{demo, openapi, simulator, telemetry};

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init("info");
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo { listen } => demo::run(listen).await,
        Command::Serve { config } => {
            let settings = Settings::load(&config)?;
            let application = Application::build(&settings)?;
            tracing::info!(port = application.port(), "starrocks-gateway listening");
            application.run_until_stopped().await.context("serving")
        }
        Command::Simulator {
            listen,
            token_lifetime_secs,
        } => {
            let config = simulator::SimulatorConfig {
                token_lifetime: std::time::Duration::from_secs(token_lifetime_secs),
                ..simulator::SimulatorConfig::default()
            };
            let listener =
                std::net::TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
            tracing::info!(
                %listen,
                iam.domain = %config.domain,
                iam.user = %config.user,
                project_id = %config.project_id,
                token_lifetime_secs,
                "Huawei Cloud simulator listening (IAM password: see `SimulatorConfig::default`)"
            );
            simulator::start(config, listener)?.await.context("serving")
        }
        Command::Openapi => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(openapi::pretty_json().as_bytes())
                .context("writing the spec")?;
            stdout.flush().context("writing the spec")
        }
    }
}
