//! The Huawei Cloud client: IAM tokens and the TaurusDB StarRocks calls the gateway makes.

pub mod iam;
pub mod model;

use std::sync::Arc;

use reqwest::StatusCode;
use secrecy::ExposeSecret;

use crate::config::CloudSettings;
use crate::error::{ErrorCode, Problem};
use iam::{IamToken, IamTokenCache};
use model::{CreateStarRocksBody, CreateStarRocksResponse};

/// Why a cloud call failed, classified by what the caller can conclude from it.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The cloud answered with an error status.
    #[error("the cloud answered {status} {code:?}: {message:?}")]
    Rejected {
        status: u16,
        code: Option<String>,
        message: Option<String>,
    },
    /// IAM refused the gateway's own credentials.
    #[error("IAM refused the gateway's credentials ({status} {code:?})")]
    IamRejected { status: u16, code: Option<String> },
    /// Sent, but no answer in time: the call may or may not have taken effect.
    #[error("the cloud did not answer in time")]
    Timeout(#[source] reqwest::Error),
    /// Nothing was sent: the connection could not be made.
    #[error("the cloud could not be reached")]
    Unreachable(#[source] reqwest::Error),
    #[error("the call to the cloud failed")]
    Transport(#[source] reqwest::Error),
    #[error("the cloud's answer could not be understood: {0}")]
    InvalidResponse(String),
}

impl CloudError {
    fn from_transport(error: reqwest::Error) -> Self {
        // A connect timeout is both; nothing was sent then, so "unreachable" is the truth.
        if error.is_connect() {
            Self::Unreachable(error)
        } else if error.is_timeout() {
            Self::Timeout(error)
        } else {
            Self::Transport(error)
        }
    }

    /// An API-gateway `0301`: the token was refused before the service ran, so a retry with a
    /// fresh token cannot duplicate anything.
    pub fn is_token_rejection(&self) -> bool {
        matches!(
            self,
            Self::Rejected { status: 401, code: Some(code), .. }
                if code == "APIGW.0301" || code == "APIG.0301"
        )
    }
}

impl From<&CloudError> for Problem {
    fn from(error: &CloudError) -> Self {
        match error {
            CloudError::Rejected {
                status,
                code,
                message,
            } => {
                let mut problem = Problem::new(
                    ErrorCode::UpstreamError,
                    format!(
                        "Huawei Cloud refused the call ({status}{}): {}",
                        code.as_deref()
                            .map(|c| format!(", {c}"))
                            .unwrap_or_default(),
                        message.as_deref().unwrap_or("no message"),
                    ),
                );
                problem.upstream_code = code.clone();
                problem.upstream_status = Some(*status);
                problem
            }
            CloudError::IamRejected { .. } => Problem::new(
                ErrorCode::UpstreamAuthFailed,
                "the gateway's own Huawei Cloud credentials were refused; the platform team has been alerted in the log",
            ),
            CloudError::Timeout(_) => Problem::new(
                ErrorCode::UpstreamTimeout,
                "Huawei Cloud did not answer in time; the instance may still be created, check before retrying",
            ),
            CloudError::Unreachable(_) => Problem::new(
                ErrorCode::UpstreamUnavailable,
                "Huawei Cloud could not be reached; nothing was sent, try again later",
            ),
            CloudError::Transport(_) | CloudError::InvalidResponse(_) => Problem::new(
                ErrorCode::UpstreamError,
                "the call to Huawei Cloud failed without a usable answer",
            ),
        }
    }
}

/// One shared HTTP client toward the cloud: explicit timeouts, no redirects, pooled.
pub fn http_client(settings: &CloudSettings) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("starrocks-gateway/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(settings.connect_timeout())
        .timeout(settings.request_timeout())
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// TaurusDB calls, authenticated with the gateway's cached IAM token.
#[derive(Debug)]
pub struct CloudClient {
    http: reqwest::Client,
    settings: CloudSettings,
    tokens: IamTokenCache,
}

impl CloudClient {
    pub fn new(settings: CloudSettings) -> reqwest::Result<Self> {
        let http = http_client(&settings)?;
        let tokens = IamTokenCache::new(http.clone(), settings.clone());
        Ok(Self {
            http,
            settings,
            tokens,
        })
    }

    pub fn project_id(&self) -> &str {
        &self.settings.project_id
    }

    pub async fn token(&self) -> Result<Arc<IamToken>, Arc<CloudError>> {
        self.tokens.token(&self.settings.project_id).await
    }

    pub async fn evict_token(&self, rejected: &IamToken) {
        self.tokens.evict(&self.settings.project_id, rejected).await;
    }

    /// `POST /v3/{project_id}/instances/{instance_id}/starrocks`, once.
    pub async fn create_starrocks(
        &self,
        token: &IamToken,
        target_instance_id: &str,
        body: &CreateStarRocksBody,
        request_id: &str,
    ) -> Result<CreateStarRocksResponse, CloudError> {
        let path = format!(
            "v3/{}/instances/{}/starrocks",
            self.settings.project_id, target_instance_id
        );
        let url = self.settings.endpoint.join(&path).map_err(|e| {
            CloudError::InvalidResponse(format!("cannot build the create URL: {e}"))
        })?;
        let response = self
            .http
            .post(url)
            .header("X-Auth-Token", token.value.expose_secret())
            .header("X-Language", "en-us")
            .header("X-Request-Id", request_id)
            .json(body)
            .send()
            .await
            .map_err(CloudError::from_transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(CloudError::from_transport)?;
        if status != StatusCode::CREATED && status != StatusCode::OK {
            let (code, message) = model::parse_error(&bytes).unzip();
            return Err(CloudError::Rejected {
                status: status.as_u16(),
                code,
                message: message.flatten(),
            });
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| CloudError::InvalidResponse(format!("create answer: {e}")))
    }
}
