use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use starrocks_gateway::cli::{Cli, Command, PolicyCommand};
use starrocks_gateway::config::{ClaimSettings, Settings};
use starrocks_gateway::policy::Policy;
use starrocks_gateway::startup::Application;
use starrocks_gateway::{openapi, policy_cases, telemetry};

/// mimalloc: the request path allocates many small, short-lived values across worker
/// threads, where glibc's allocator spends a sixth of the CPU and keeps freed memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        #[cfg(feature = "demo")]
        Command::Demo {
            listen,
            policy,
            storage_url,
        } => starrocks_gateway::demo::run(listen, policy.as_deref(), storage_url).await,
        Command::Serve {
            config,
            init_storage,
        } => {
            let mut settings = Settings::load(&config)?;
            settings.storage.create_if_missing |= init_storage;
            let application = Application::build(&settings).await?;
            tracing::info!(port = application.port(), "starrocks-gateway listening");
            application.run_until_stopped().await.context("serving")
        }
        #[cfg(feature = "demo")]
        Command::Simulator {
            listen,
            token_lifetime_secs,
            create_secs,
            delete_secs,
        } => {
            use starrocks_gateway::demo::simulator;
            let config = simulator::SimulatorConfig {
                token_lifetime: std::time::Duration::from_secs(token_lifetime_secs),
                create_duration: std::time::Duration::from_secs(create_secs),
                delete_duration: std::time::Duration::from_secs(delete_secs),
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
        Command::Policy { command } => policy(command),
        Command::Openapi => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(openapi::pretty_json().as_bytes())
                .context("writing the spec")?;
            stdout.flush().context("writing the spec")
        }
    }
}

/// `policy check` and `policy test`: results on stdout, errors on stderr, non-zero on failure.
fn policy(command: PolicyCommand) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match command {
        PolicyCommand::Check { file } => {
            let policy = Policy::load(&file)?;
            for warning in policy.warnings() {
                eprintln!("warning: {warning}");
            }
            writeln!(
                stdout,
                "{}: valid, revision {}, {} teams, {} sizes",
                file.display(),
                policy.revision,
                policy.file.teams.len(),
                policy.file.sizes.len()
            )?;
            Ok(())
        }
        PolicyCommand::Test {
            file,
            cases,
            config,
        } => {
            let policy = Policy::load(&file)?;
            let mapping = match config {
                Some(config) => Settings::load(&config)?.auth.claims,
                None => ClaimSettings::default(),
            };
            let text = std::fs::read_to_string(&cases)
                .with_context(|| format!("reading {}", cases.display()))?;
            let results = policy_cases::run(&policy, &text, &mapping)?;
            let failed = results.iter().filter(|r| r.failure.is_some()).count();
            for result in &results {
                match &result.failure {
                    None => writeln!(stdout, "PASS  {}", result.name)?,
                    Some(why) => writeln!(stdout, "FAIL  {}: {why}", result.name)?,
                }
            }
            writeln!(
                stdout,
                "policy cases: {} passed, {failed} failed",
                results.len() - failed
            )?;
            anyhow::ensure!(failed == 0, "{failed} policy case(s) failed");
            Ok(())
        }
    }
}
