//! The gateway against a real, certified OpenID Provider: `oidc-provider` from npm
//! (`tests/oidc-provider/provider.mjs`), found by OIDC discovery, with no `algorithms`
//! configured. Client-credentials access tokens in JWT format signed with RS256, PS256,
//! ES256, EdDSA and Ed25519 are accepted; after a key rotation the new key's tokens are, and
//! the rotated-out key's are not; opaque tokens are introspected (RFC 7662).
//!
//! Needs Node.js and npm; the provider's packages are installed (`npm ci`) on first use.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use secrecy::SecretString;
use serde_json::Value;
use starrocks_gateway::config::IntrospectionSettings;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{TestApp, problem};

const CLIENT_ID: &str = "gateway-tests";
const CLIENT_SECRET: &str = "a-test-only-client-secret-of-forty-characters";

fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc-provider")
}

/// Installs the provider's locked packages once.
async fn install() {
    let dir = provider_dir();
    if dir.join("node_modules/oidc-provider").is_dir() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .await
        .expect("npm runs (install Node.js and npm: scripts/test does, from Debian)");
    assert!(status.success(), "npm ci in {} failed", dir.display());
}

/// The running provider and its issuer URL; killed when dropped.
struct Provider {
    _process: Child,
    issuer: String,
    http: reqwest::Client,
}

impl Provider {
    async fn start() -> Self {
        install().await;
        let mut process = Command::new("node")
            .arg("provider.mjs")
            .current_dir(provider_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let stdout = process.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("the provider starts within 30 s")
            .expect("its output")
            .expect("a line");
        let port = line.strip_prefix("listening ").expect("`listening <port>`");
        // Keep reading, so the provider never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            _process: process,
            issuer: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        }
    }

    /// A client-credentials access token for the gateway: a JWT signed with `kind`, or an
    /// opaque one for `opaque`.
    async fn token(&self, kind: &str) -> String {
        let answer: Value = self
            .http
            .post(format!("{}/token", self.issuer))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "starrocks"),
                ("resource", &format!("urn:starrocks-gateway:{kind}")),
            ])
            .send()
            .await
            .expect("the token endpoint answers")
            .json()
            .await
            .expect("a token response");
        answer["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token for {kind}: {answer}"))
            .to_owned()
    }

    async fn rotate(&self) {
        let response = self
            .http
            .post(format!("{}/test/rotate", self.issuer))
            .send()
            .await
            .expect("rotation");
        assert_eq!(response.status(), 204);
    }
}

/// A gateway trusting the provider as a platform team would configure it: discovery, the
/// RFC 9068 `typ`, no algorithm list, introspection for opaque tokens.
async fn gateway(provider: &Provider) -> TestApp {
    TestApp::builder()
        .settings(|s| {
            s.auth.issuer = provider.issuer.clone();
            s.auth.jwks_url = None;
            s.auth.oidc_discovery = true;
            s.auth.algorithms = None;
            s.auth.expected_typ = Some("at+jwt".into());
            // Client-credentials tokens name their client; introspection answers carry no `sub`.
            s.auth.claims.subject = "client_id".into();
            s.auth.introspection = Some(IntrospectionSettings {
                endpoint: format!("{}/token/introspection", provider.issuer)
                    .parse()
                    .expect("URL"),
                client_id: CLIENT_ID.into(),
                client_secret: SecretString::from(CLIENT_SECRET),
                timeout_ms: 2_000,
            });
        })
        .spawn()
        .await
}

#[tokio::test]
async fn tokens_of_every_algorithm_family_from_a_real_provider_are_accepted() {
    let provider = Provider::start().await;
    let app = gateway(&provider).await;

    for kind in ["RS256", "PS256", "ES256", "EdDSA", "Ed25519", "opaque"] {
        let response = app.me(&provider.token(kind).await).await;
        let status = response.status();
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(status, 200, "{kind}: {body}");
        assert_eq!(body["subject"], CLIENT_ID, "{kind}");
        assert_eq!(
            body["teams"][0]["name"], "analytics",
            "{kind}: the custom claim"
        );
    }
}

#[tokio::test]
async fn after_a_rotation_the_new_key_is_accepted_and_the_rotated_out_one_is_not() {
    let provider = Provider::start().await;
    let app = gateway(&provider).await;
    let old = provider.token("ES256").await;
    assert_eq!(app.me(&old).await.status(), 200);

    provider.rotate().await;
    let new = provider.token("ES256").await;
    let with_the_new_key = app.me(&new).await;
    let with_the_old_key = app.me(&old).await;

    assert_eq!(with_the_new_key.status(), 200);
    assert_eq!(with_the_old_key.status(), 401);
    assert_eq!(problem(with_the_old_key).await["code"], "unauthenticated");
}
