//! `serve --check-config`: validates a configuration and the policy it names without serving,
//! and with `--probe` reaches what the gateway depends on (the identity provider's keys, the
//! database, IAM), so a deployment can be checked before it takes traffic.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use secrecy::ExposeSecret;

use crate::cloud::Clouds;
use crate::config::Settings;
use crate::identity::KeyStore;
use crate::policy::Policy;
use crate::storage::{Engine, Store};

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warning,
    Failed,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Finding {
    pub status: Status,
    pub subject: &'static str,
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Status::Ok => "ok  ",
            Status::Warning => "warn",
            Status::Failed => "FAIL",
        };
        write!(f, "{status}  {:<9} {}", self.subject, self.detail)
    }
}

fn finding(status: Status, subject: &'static str, detail: impl Into<String>) -> Finding {
    Finding {
        status,
        subject,
        detail: detail.into(),
    }
}

/// Everything found about the configuration at `path`; any [`Status::Failed`] means the
/// gateway would not start or not work. Never prints a secret.
pub async fn check(path: &Path, probe: bool) -> Vec<Finding> {
    let settings = match Settings::load(path) {
        Ok(settings) => settings,
        Err(error) => return vec![finding(Status::Failed, "config", error.to_string())],
    };
    let mut findings = vec![finding(Status::Ok, "config", describe(path, &settings))];
    findings.extend(check_policy(&settings));
    findings.push(storage_summary(&settings));
    if probe {
        findings.push(probe_identity(&settings).await);
        findings.push(probe_storage(&settings).await);
        findings.extend(probe_iam(&settings).await);
    }
    findings
}

fn describe(path: &Path, settings: &Settings) -> String {
    let keys = match (&settings.auth.jwks_url, &settings.auth.keys_file) {
        (Some(url), _) => format!("JWKS {url}"),
        (None, Some(file)) => format!("keys file {}", file.display()),
        (None, None) => format!("OIDC discovery at {}", settings.auth.issuer),
    };
    let ops = settings
        .server
        .ops_listen
        .map_or_else(String::new, |ops| format!(", probes and metrics on {ops}"));
    let regions = settings.cloud.topology().map_or_else(
        |error| error.to_string(),
        |topology| {
            topology
                .regions
                .values()
                .map(|region| {
                    let default = if region.name == topology.default_region {
                        ", default"
                    } else {
                        ""
                    };
                    format!(
                        "{} ({}, project {}, account {}{default})",
                        region.name, region.endpoint, region.project_id, region.account.name
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    format!(
        "{}: listening on {}{ops}; tokens from {} for audience `{}` ({keys}); cloud regions {regions}",
        path.display(),
        settings.server.listen,
        settings.auth.issuer,
        settings.auth.audience,
    )
}

/// The policy file, fitted to the configured regions as `serve` would fit it.
fn check_policy(settings: &Settings) -> Vec<Finding> {
    let path = &settings.policy.path;
    let fitted = Policy::load(path).and_then(|policy| match settings.cloud.topology() {
        Ok(topology) => {
            let configured: Vec<&str> = topology.regions.keys().map(String::as_str).collect();
            policy.resolve_regions(&topology.default_region, &configured)
        }
        // The cloud's own finding names what is wrong there.
        Err(_) => Ok(policy),
    });
    match fitted {
        Ok(policy) => {
            let mut findings = vec![finding(
                Status::Ok,
                "policy",
                format!(
                    "{}: revision {}, {} teams, {} sizes",
                    path.display(),
                    policy.revision,
                    policy.file.teams.len(),
                    policy.file.sizes.len()
                ),
            )];
            findings.extend(
                policy
                    .warnings()
                    .into_iter()
                    .map(|warning| finding(Status::Warning, "policy", warning)),
            );
            findings
        }
        Err(error) => vec![finding(
            Status::Failed,
            "policy",
            format!("{}: {error}", path.display()),
        )],
    }
}

/// The engine and where its data lives, without the URL's credentials.
fn storage_summary(settings: &Settings) -> Finding {
    let url = settings.storage.url.expose_secret();
    match Engine::of(url) {
        Some(Engine::Sqlite) => finding(
            Status::Ok,
            "storage",
            format!(
                "SQLite file {}",
                url.trim_start_matches("sqlite:").trim_start_matches("//")
            ),
        ),
        Some(Engine::Postgres) => {
            let place = url::Url::parse(url).map_or_else(
                |_| "an unparsable URL".to_owned(),
                |url| {
                    format!(
                        "{}:{}{}",
                        url.host_str().unwrap_or("?"),
                        url.port().unwrap_or(5432),
                        url.path()
                    )
                },
            );
            finding(Status::Ok, "storage", format!("PostgreSQL at {place}"))
        }
        None => finding(
            Status::Failed,
            "storage",
            "`storage.url` must start with sqlite: or postgres://",
        ),
    }
}

async fn probe_identity(settings: &Settings) -> Finding {
    let client = reqwest::Client::builder()
        .user_agent(concat!("starrocks-gateway/", env!("CARGO_PKG_VERSION")))
        .timeout(Duration::from_millis(settings.auth.jwks_timeout_ms))
        .build();
    let keys = match client {
        Ok(client) => KeyStore::new(&settings.auth, client).map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    let loaded = match keys {
        Ok(keys) => keys.keys().await.map_err(|e| e.to_string()),
        Err(error) => Err(error),
    };
    match loaded {
        Ok(snapshot) if snapshot.keys.is_empty() => finding(
            Status::Failed,
            "identity",
            "the key source holds no key the gateway can use",
        ),
        Ok(snapshot) => finding(
            Status::Ok,
            "identity",
            format!("{} signing key(s) loaded", snapshot.keys.len()),
        ),
        Err(error) => finding(Status::Failed, "identity", error),
    }
}

/// Opens the database as `serve` would (so, on SQLite, not while a gateway holds the file).
async fn probe_storage(settings: &Settings) -> Finding {
    let store = match Store::connect(&settings.storage).await {
        Ok(store) => store,
        Err(error) => return finding(Status::Failed, "database", error.to_string()),
    };
    let answer = store.ping().await;
    store.close().await;
    match answer {
        Ok(()) => finding(
            Status::Ok,
            "database",
            "reachable, ledger present and writable",
        ),
        Err(error) => finding(Status::Failed, "database", error.to_string()),
    }
}

/// Each region's credentials: an IAM token fetched for its (account, project), or an access
/// key, which has nothing to fetch.
async fn probe_iam(settings: &Settings) -> Vec<Finding> {
    let clouds = match Clouds::new(&settings.cloud, &settings.limits) {
        Ok(clouds) => clouds,
        Err(error) => return vec![finding(Status::Failed, "iam", error.to_string())],
    };
    let mut findings = Vec::new();
    for (name, cloud) in clouds.iter() {
        let detail = match cloud.credentials().await {
            Ok(Some(token)) => Ok(format!(
                "{name}: a token of account `{}` for project {}, valid until {}",
                cloud.account(),
                cloud.project_id(),
                token.expires_at
            )),
            Ok(None) => Ok(format!(
                "{name}: account `{}` signs its calls with an access key; nothing to fetch",
                cloud.account()
            )),
            Err(error) => Err(format!("{name}: account `{}`: {error}", cloud.account())),
        };
        findings.push(match detail {
            Ok(detail) => finding(Status::Ok, "iam", detail),
            Err(detail) => finding(Status::Failed, "iam", detail),
        });
    }
    findings
}
