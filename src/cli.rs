//! The command line: `demo`, `serve`, `simulator`, `openapi`, `policy`. `demo` and `simulator`
//! exist only with the `demo` feature (on by default).

#[cfg(feature = "demo")]
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "starrocks-gateway",
    version,
    about = "Self-service StarRocks on Huawei Cloud TaurusDB"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Gateway + Huawei Cloud simulator + demo identity provider on localhost, ready to try.
    #[cfg(feature = "demo")]
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// A policy file instead of the embedded example; the simulated cloud gets its targets.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// A database instead of a fresh SQLite file, e.g. `postgres://…` (created if empty).
        #[arg(long, env = "SRGW_DEMO_STORAGE_URL")]
        storage_url: Option<String>,
    },
    /// Run the gateway against a real identity provider and Huawei Cloud.
    Serve {
        /// TOML configuration; `SRGW_*` environment variables override its keys.
        #[arg(long, env = "SRGW_CONFIG")]
        config: PathBuf,
        /// Create the quota ledger when the database has none. Needed once, on the first
        /// start; without it a missing or empty database is refused, so a lost ledger never
        /// comes back empty.
        #[arg(long, conflicts_with = "check_config")]
        init_storage: bool,
        /// Validate the configuration and its policy file, print what was found, and exit
        /// (non-zero on any problem) instead of serving.
        #[arg(long)]
        check_config: bool,
        /// With `--check-config`: also reach the identity provider, the database and IAM.
        #[arg(long, requires = "check_config")]
        probe: bool,
    },
    /// Run the Huawei Cloud simulator alone (IAM + TaurusDB StarRocks create).
    #[cfg(feature = "demo")]
    Simulator {
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: SocketAddr,
        /// Lifetime of issued IAM tokens (Huawei Cloud's is 24 h).
        #[arg(long, default_value_t = 86_400)]
        token_lifetime_secs: u64,
        /// How long a new instance stays `creating`.
        #[arg(long, default_value_t = 10)]
        create_secs: u64,
        /// How long a deleted instance stays `deleting` before it is gone.
        #[arg(long, default_value_t = 5)]
        delete_secs: u64,
    },
    /// Ask a running gateway whether it is alive (`GET /healthz`); exits non-zero when it
    /// does not answer `200` in time. For container health checks, where there is no curl.
    Healthcheck {
        #[arg(
            long,
            env = "SRGW_HEALTHCHECK_URL",
            default_value = "http://127.0.0.1:8080/healthz"
        )]
        url: url::Url,
        #[arg(long, default_value_t = 2_000)]
        timeout_ms: u64,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Check and test policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file; errors name the table, key and line.
    Check {
        file: PathBuf,
        /// Also check the sizes' flavors, modes, zones, storage types and volumes against
        /// what the cloud sells (the HTAP flavors and storage-type APIs), with the
        /// credentials of this gateway config.
        #[arg(long, value_name = "CONFIG")]
        against_cloud: Option<PathBuf>,
    },
    /// Run table-driven cases against a policy file; exits non-zero when any case fails.
    Test {
        file: PathBuf,
        cases: PathBuf,
        /// A gateway config whose `[auth.claims]` maps the cases' claims (default mapping otherwise).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}
