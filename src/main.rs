use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use starrocks_gateway::cli::{Cli, Command, PolicyCommand};
use starrocks_gateway::cloud::Clouds;
use starrocks_gateway::config::{ClaimSettings, Settings};
use starrocks_gateway::policy::{Policy, cloud_check};
use starrocks_gateway::startup::Application;
use starrocks_gateway::telemetry::LogFormat;
use starrocks_gateway::{check, openapi, policy_cases, telemetry};

/// mimalloc: the request path allocates many small, short-lived values across worker
/// threads, where glibc's allocator spends a sixth of the CPU and keeps freed memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` feeds a log shipper; the other commands talk to a person.
    let default_format = match cli.command {
        Command::Serve {
            check_config: false,
            ..
        } => LogFormat::Json,
        _ => LogFormat::Text,
    };
    match LogFormat::from_env_or(default_format) {
        Ok(format) => telemetry::init("info", format),
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    }
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
            check_config: true,
            probe,
            ..
        } => {
            let findings = check::check(&config, probe).await;
            let mut stdout = std::io::stdout().lock();
            for found in &findings {
                writeln!(stdout, "{found}")?;
            }
            let failed = findings
                .iter()
                .filter(|found| found.status == check::Status::Failed)
                .count();
            anyhow::ensure!(
                failed == 0,
                "{failed} problem(s) found in {}",
                config.display()
            );
            writeln!(stdout, "{}: no problems found", config.display())?;
            Ok(())
        }
        Command::Serve {
            config,
            init_storage,
            ..
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
        Command::Policy { command } => policy(command).await,
        Command::Healthcheck { url, timeout_ms } => {
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_millis(timeout_ms))
                .build()
                .context("building the HTTP client")?;
            let answer = client
                .get(url.clone())
                .send()
                .await
                .with_context(|| format!("{url} did not answer"))?;
            anyhow::ensure!(
                answer.status().is_success(),
                "{url} answered {}",
                answer.status()
            );
            Ok(())
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

/// `policy check` and `policy test`: results on stdout, errors on stderr, non-zero on failure.
async fn policy(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Check {
            file,
            against_cloud,
        } => {
            let policy = Policy::load(&file)?;
            for warning in policy.warnings() {
                eprintln!("warning: {warning}");
            }
            writeln!(
                std::io::stdout(),
                "{}: valid, revision {}, {} teams, {} sizes",
                file.display(),
                policy.revision,
                policy.file.teams.len(),
                policy.file.sizes.len()
            )?;
            match against_cloud {
                Some(config) => check_against_cloud(&policy, &config).await,
                None => Ok(()),
            }
        }
        PolicyCommand::Test {
            file,
            cases,
            config,
        } => {
            let mut stdout = std::io::stdout().lock();
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

/// The policy's sizes and zones against the flavors and storage types each configured
/// region sells.
async fn check_against_cloud(policy: &Policy, config: &std::path::Path) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let clouds =
        Clouds::new(&settings.cloud, &settings.limits).context("building the cloud clients")?;
    let request_id = "policy-check";
    let mut stdout = std::io::stdout().lock();
    let mut found = 0;
    for (region, cloud) in clouds.iter() {
        let (flavors, storage) =
            tokio::try_join!(cloud.flavors(request_id), cloud.storage_types(request_id))
                .with_context(|| {
                    format!("reading the catalog of {region} at {}", cloud.endpoint())
                })?;
        let is_default = region == clouds.default_region();
        let problems = cloud_check::problems(&policy.file, region, is_default, &flavors, &storage);
        for problem in &problems {
            writeln!(stdout, "cloud: {problem}")?;
        }
        if problems.is_empty() {
            writeln!(
                stdout,
                "fits {region}: {} flavors and {} storage types of {} checked",
                flavors.len(),
                storage.len(),
                cloud.endpoint()
            )?;
        }
        found += problems.len();
    }
    anyhow::ensure!(
        found == 0,
        "{found} problem(s) against the regions' flavors and storage types"
    );
    Ok(())
}
