//! The Huawei Cloud clients, one per configured region: IAM tokens (or AK/SK signatures) and
//! the TaurusDB StarRocks calls the gateway makes.

pub mod breaker;
pub mod iam;
pub mod model;
pub mod signing;

use std::collections::BTreeMap;
use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::config::{CloudSettings, ConfigError, Credentials, LimitSettings, ReadyWhen, Region};
use crate::metrics::METRICS;
use iam::{IamToken, IamTokenCache};
use model::{
    CreateStarRocksBody, CreateStarRocksResponse, DeleteAnswer, Flavor, FlavorList, HtapList, Job,
    JobAnswer, StarRocksDetail, StarRocksDetails, StorageType, StorageTypeList,
};

/// Reads and deletes: at most this many attempts while the cloud is busy.
const RETRY_ATTEMPTS: u32 = 5;
const RETRY_BASE: std::time::Duration = std::time::Duration::from_millis(200);
const RETRY_CAP: std::time::Duration = std::time::Duration::from_secs(2);

/// The metric label of a call: what it does, not which instance it touches.
fn operation_of(method: &reqwest::Method, url: &url::Url) -> &'static str {
    match *method {
        reqwest::Method::POST => "create",
        reqwest::Method::DELETE => "delete",
        _ if url.path().ends_with("/htap") => "list",
        _ if url.path().ends_with("/jobs") => "job",
        _ => "get",
    }
}

/// Why a cloud call failed, classified by what the caller can conclude from it.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The cloud answered with an error status.
    #[error("the cloud answered {status} {code:?}: {message:?}")]
    Rejected {
        status: u16,
        code: Option<String>,
        message: Option<String>,
        /// The answer's `Retry-After`, in seconds, when it gave one.
        retry_after: Option<u64>,
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
    /// Not sent: the gateway's own budget of calls to the cloud was spent.
    #[error("the gateway's cloud call budget is spent")]
    OverBudget,
    /// Not sent: this operation failed repeatedly, and its circuit breaker is open.
    #[error("the circuit breaker for this cloud operation is open")]
    CircuitOpen { retry_after_secs: u64 },
    /// Not sent: the region is not (or no longer) configured.
    #[error("the region `{0}` is not configured")]
    UnknownRegion(String),
    /// Not sent: the call could not be signed with the account's access key.
    #[error("the call could not be signed")]
    Signing(#[source] signing::SigningError),
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

    /// Whether the call certainly had no effect: refused by the cloud (a `4xx`), never sent,
    /// or refused before the service ran. Timeouts, `5xx` and unreadable answers may hide a
    /// call that took effect.
    pub fn is_definite(&self) -> bool {
        match self {
            Self::Rejected { status, .. } => *status < 500,
            Self::IamRejected { .. }
            | Self::Unreachable(_)
            | Self::OverBudget
            | Self::CircuitOpen { .. }
            | Self::UnknownRegion(_)
            | Self::Signing(_) => true,
            Self::Timeout(_) | Self::Transport(_) | Self::InvalidResponse(_) => false,
        }
    }

    /// A sign the cloud is failing, not answering: what opens a circuit breaker.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Rejected { status, .. } => *status >= 500,
            Self::Timeout(_)
            | Self::Unreachable(_)
            | Self::Transport(_)
            | Self::InvalidResponse(_) => true,
            Self::IamRejected { .. }
            | Self::OverBudget
            | Self::CircuitOpen { .. }
            | Self::UnknownRegion(_)
            | Self::Signing(_) => false,
        }
    }

    /// `409` (another operation in progress) or `429` (throttled): worth retrying later.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            Self::Rejected {
                status: 409 | 429,
                ..
            }
        )
    }

    /// The API gateway's rate limit (`429`, `APIGW.0308`): nothing was done, and the account
    /// needs a pause.
    pub fn is_throttled(&self) -> bool {
        matches!(self, Self::Rejected { status: 429, .. })
            || matches!(self, Self::Rejected { code: Some(code), .. } if code == "APIGW.0308")
    }

    /// Why a create that certainly had no effect failed, for its reservation's record.
    pub fn release_reason(&self) -> String {
        match self {
            Self::Rejected { status, code, .. } if self.is_throttled() => format!(
                "the cloud throttled the create ({status} {})",
                code.as_deref().unwrap_or("no code")
            ),
            Self::Rejected { status, code, .. } => format!(
                "the cloud refused the create ({status} {})",
                code.as_deref().unwrap_or("no code")
            ),
            Self::IamRejected { .. } => {
                "IAM refused the gateway's credentials; nothing was sent".into()
            }
            Self::Signing(_) => "the call could not be signed; nothing was sent".into(),
            Self::UnknownRegion(region) => {
                format!("the region `{region}` is not configured; nothing was sent")
            }
            Self::Unreachable(_) => "the cloud could not be reached; nothing was sent".into(),
            Self::OverBudget => {
                "the gateway's budget of cloud calls was spent; nothing was sent".into()
            }
            Self::CircuitOpen { .. } => {
                "the cloud kept failing and its circuit breaker was open; nothing was sent".into()
            }
            Self::Timeout(_) | Self::Transport(_) | Self::InvalidResponse(_) => {
                "the create failed without a usable answer".into()
            }
        }
    }

    /// The cloud does not know the StarRocks instance (`DBS.05000044`, or a `404`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Rejected { status: 404, .. })
            || matches!(self, Self::Rejected { code: Some(code), .. } if code == "DBS.05000044")
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

/// A `Retry-After` in delta-seconds (what API gateways send), capped at a minute so a wild
/// value cannot park callers; HTTP dates are ignored.
fn retry_after_secs(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|secs| secs.min(60))
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

/// Why the cloud clients could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CloudSetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("building the cloud HTTP client")]
    Http(#[from] reqwest::Error),
}

/// Every configured region's client, by name: one HTTP connection pool, one IAM token cache
/// per account (a token per project in it), and per region its own breakers, call budget and
/// read caches, so one region's failure never blocks another's calls.
#[derive(Debug)]
pub struct Clouds {
    default_region: String,
    regions: BTreeMap<String, Arc<CloudClient>>,
    pub ready_when: ReadyWhen,
}

impl Clouds {
    pub fn new(settings: &CloudSettings, limits: &LimitSettings) -> Result<Self, CloudSetupError> {
        let topology = settings.topology()?;
        let http = http_client(settings)?;
        let margin = std::time::Duration::from_secs(settings.token_refresh_margin_secs);
        let mut token_caches: BTreeMap<String, Arc<IamTokenCache>> = BTreeMap::new();
        let mut regions = BTreeMap::new();
        for (name, region) in topology.regions {
            let auth = match &region.account.credentials {
                Credentials::Password(login) => Auth::Token(Arc::clone(
                    token_caches
                        .entry(region.account.name.clone())
                        .or_insert_with(|| {
                            Arc::new(IamTokenCache::new(
                                http.clone(),
                                &region.account.name,
                                login.clone(),
                                margin,
                            ))
                        }),
                )),
                Credentials::AccessKey(key) => Auth::AccessKey(key.clone()),
            };
            let client = CloudClient::new(region, auth, http.clone(), settings, limits);
            regions.insert(name, Arc::new(client));
        }
        Ok(Self {
            default_region: topology.default_region,
            regions,
            ready_when: settings.ready_when,
        })
    }

    /// The region of targets that name none.
    pub fn default_region(&self) -> &str {
        &self.default_region
    }

    /// The client of `region`, or of the default region when `None`. An instance ordered in
    /// a region the configuration no longer has cannot be reached: nothing is sent.
    pub fn get(&self, region: Option<&str>) -> Result<&Arc<CloudClient>, Arc<CloudError>> {
        let name = region.unwrap_or(&self.default_region);
        self.regions
            .get(name)
            .ok_or_else(|| Arc::new(CloudError::UnknownRegion(name.to_owned())))
    }

    /// Every region's client, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<CloudClient>)> {
        self.regions
            .iter()
            .map(|(name, client)| (name.as_str(), client))
    }

    /// What a policy's targets may name.
    pub fn policy_regions(&self) -> crate::policy::Regions {
        crate::policy::Regions {
            default: self.default_region.clone(),
            configured: self.regions.keys().cloned().collect(),
        }
    }
}

/// How one region's calls prove who the gateway is.
#[derive(Debug)]
enum Auth {
    /// A project-scoped IAM token from the account's cache, in `X-Auth-Token`.
    Token(Arc<IamTokenCache>),
    /// Each call signed with the account's access key (`SDK-HMAC-SHA256`).
    AccessKey(signing::AccessKey),
}

/// What one call is sent with.
enum CallAuth<'a> {
    Token(&'a IamToken),
    Signed(&'a signing::AccessKey),
}

/// Reads of one kind in flight, or answered within `read_cache_ms`: one call serves every
/// caller asking for the same key. Failures are never kept. Off when the setting is `0`.
struct ReadCache<K, V>(Option<moka::future::Cache<K, V>>);

impl<K, V> std::fmt::Debug for ReadCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("enabled", &self.0.is_some())
            .finish_non_exhaustive()
    }
}

impl<K, V> ReadCache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(name: &str, ttl_ms: u64) -> Self {
        Self((ttl_ms > 0).then(|| {
            moka::future::Cache::builder()
                .name(name)
                .max_capacity(10_000)
                .time_to_live(std::time::Duration::from_millis(ttl_ms))
                .build()
        }))
    }

    async fn get_or_read(
        &self,
        key: K,
        read: impl Future<Output = Result<V, Arc<CloudError>>>,
    ) -> Result<V, Arc<CloudError>> {
        match &self.0 {
            Some(cache) => cache
                .try_get_with(key, read)
                .await
                .map_err(|error| Arc::clone(&*error)),
            None => read.await,
        }
    }

    /// Forgets what the gateway just changed, so its own next read sees the change.
    async fn forget(&self, key: &K) {
        if let Some(cache) = &self.0 {
            cache.invalidate(key).await;
        }
    }
}

/// One region's TaurusDB calls, authenticated with its account's cached IAM token or signed
/// with its access key.
#[derive(Debug)]
pub struct CloudClient {
    http: reqwest::Client,
    region: String,
    account: String,
    endpoint: url::Url,
    project_id: String,
    auth: Auth,
    /// HTAP lists by target instance.
    lists: ReadCache<String, HtapList>,
    /// StarRocks instances by (target, id); `None` when the cloud does not know it.
    details: ReadCache<(String, String), Option<StarRocksDetail>>,
    /// Jobs by id.
    jobs: ReadCache<String, Job>,
    /// The gateway's calls per second to this region's TaurusDB API; `None`: unlimited.
    budget: Option<governor::DefaultDirectRateLimiter>,
    budget_wait: std::time::Duration,
    pub breakers: breaker::Breakers,
}

impl CloudClient {
    fn new(
        region: Region,
        auth: Auth,
        http: reqwest::Client,
        settings: &CloudSettings,
        limits: &LimitSettings,
    ) -> Self {
        let ttl_ms = settings.read_cache_ms;
        let budget = crate::http::rate_limit::quota(
            limits.cloud_calls_burst,
            limits.cloud_calls_per_second,
            std::time::Duration::from_secs(1),
        )
        .map(governor::RateLimiter::direct);
        let breakers = breaker::Breakers::new(
            &region.name,
            settings.breaker_failures,
            std::time::Duration::from_secs(settings.breaker_open_secs),
        );
        Self {
            budget,
            breakers,
            budget_wait: std::time::Duration::from_millis(limits.cloud_budget_wait_ms),
            http,
            account: region.account.name,
            region: region.name,
            endpoint: region.endpoint,
            project_id: region.project_id,
            auth,
            lists: ReadCache::new("cloud_lists", ttl_ms),
            details: ReadCache::new("cloud_details", ttl_ms),
            jobs: ReadCache::new("cloud_jobs", ttl_ms),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn endpoint(&self) -> &url::Url {
        &self.endpoint
    }

    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// Whether this region's calls can be authenticated: its IAM token is cached or could be
    /// fetched (an access key needs nothing fetched).
    pub async fn credentials(&self) -> Result<Option<Arc<IamToken>>, Arc<CloudError>> {
        match &self.auth {
            Auth::Token(tokens) => tokens.token(&self.project_id).await.map(Some),
            Auth::AccessKey(_) => Ok(None),
        }
    }

    /// The cached IAM token, if any, without fetching one; `None` with an access key too.
    pub async fn cached_token(&self) -> Option<Arc<IamToken>> {
        match &self.auth {
            Auth::Token(tokens) => tokens.cached(&self.project_id).await,
            Auth::AccessKey(_) => None,
        }
    }

    /// Whether the account signs its calls with an access key instead of IAM tokens.
    pub fn signs_with_access_key(&self) -> bool {
        matches!(self.auth, Auth::AccessKey(_))
    }

    /// One call. With IAM tokens, when the cloud's API gateway refuses the token
    /// (`APIGW.0301`), it is evicted, refetched and the call sent once more: the refusal
    /// happens before the service runs, so the retry cannot duplicate anything.
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&CreateStarRocksBody>,
        request_id: &str,
    ) -> Result<T, Arc<CloudError>> {
        let url = self.endpoint.join(path).map_err(|e| {
            Arc::new(CloudError::InvalidResponse(format!(
                "cannot build {path}: {e}"
            )))
        })?;
        let tokens = match &self.auth {
            Auth::AccessKey(key) => {
                return match self
                    .send_once(method, url, body, CallAuth::Signed(key), request_id)
                    .await
                {
                    Err(CloudError::Rejected { status, code, .. })
                        if status == 401
                            && code.as_deref().is_some_and(|c| c.ends_with(".0301")) =>
                    {
                        tracing::error!(region = %self.region, account = %self.account, cloud.code = ?code, "the cloud refused the gateway's access key signature");
                        Err(Arc::new(CloudError::IamRejected { status, code }))
                    }
                    other => other.map_err(Arc::new),
                };
            }
            Auth::Token(tokens) => tokens,
        };
        let token = tokens.token(&self.project_id).await?;
        match self
            .send_once(
                method.clone(),
                url.clone(),
                body,
                CallAuth::Token(&token),
                request_id,
            )
            .await
        {
            Err(error) if error.is_token_rejection() => {
                tracing::warn!(
                    region = %self.region,
                    "the cloud refused the cached IAM token; refetching it and retrying once"
                );
                tokens.evict(&self.project_id, &token).await;
                let token = tokens.token(&self.project_id).await?;
                self.send_once(method, url, body, CallAuth::Token(&token), request_id)
                    .await
                    .map_err(Arc::new)
            }
            other => other.map_err(Arc::new),
        }
    }

    /// Takes one call from the gateway's budget, waiting up to `cloud_budget_wait_ms` for it.
    async fn spend_budget(&self, operation: &'static str) -> Result<(), CloudError> {
        let Some(budget) = &self.budget else {
            return Ok(());
        };
        if budget.check().is_ok()
            || tokio::time::timeout(self.budget_wait, budget.until_ready())
                .await
                .is_ok()
        {
            return Ok(());
        }
        METRICS
            .cloud_budget_exhausted
            .with_label_values(&[&self.region, operation])
            .inc();
        Err(CloudError::OverBudget)
    }

    async fn send_once<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        url: url::Url,
        body: Option<&CreateStarRocksBody>,
        auth: CallAuth<'_>,
        request_id: &str,
    ) -> Result<T, CloudError> {
        let operation = operation_of(&method, &url);
        self.breakers.admit(operation)?;
        self.spend_budget(operation).await?;
        let outcome = self
            .call(operation, method, url, body, auth, request_id)
            .await;
        self.breakers.record(operation, &outcome);
        outcome
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        method: reqwest::Method,
        url: url::Url,
        body: Option<&CreateStarRocksBody>,
        auth: CallAuth<'_>,
        request_id: &str,
    ) -> Result<T, CloudError> {
        let started = std::time::Instant::now();
        let mut request = self
            .http
            .request(method, url)
            .header("X-Language", "en-us")
            .header("X-Request-Id", request_id);
        if let Some(body) = body {
            request = request.json(body);
        }
        request = match auth {
            CallAuth::Token(token) => request.header("X-Auth-Token", token.value.expose_secret()),
            CallAuth::Signed(_) => request.header("X-Project-Id", &self.project_id),
        };
        let mut request = request.build().map_err(CloudError::from_transport)?;
        if let CallAuth::Signed(key) = auth {
            key.sign(&mut request, chrono::Utc::now())
                .map_err(CloudError::Signing)?;
        }
        let sent = async {
            let response = self.http.execute(request).await?;
            let status = response.status();
            let retry_after = retry_after_secs(response.headers());
            Ok::<_, reqwest::Error>((status, retry_after, response.bytes().await?))
        }
        .await;
        let result = match &sent {
            Ok((status, _, _)) => status.as_str().to_owned(),
            Err(_) => "transport".to_owned(),
        };
        METRICS
            .cloud_calls
            .with_label_values(&[&self.region, operation, &result])
            .inc();
        METRICS
            .cloud_duration
            .with_label_values(&[&self.region, operation])
            .observe(started.elapsed().as_secs_f64());
        let (status, retry_after, bytes) = sent.map_err(CloudError::from_transport)?;
        if !status.is_success() {
            let (code, message) = model::parse_error(&bytes).unzip();
            return Err(CloudError::Rejected {
                status: status.as_u16(),
                code,
                message: message.flatten(),
                retry_after,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| CloudError::InvalidResponse(format!("{e}")))
    }

    /// `POST /v3/{project_id}/instances/{instance_id}/starrocks`.
    pub async fn create_starrocks(
        &self,
        target_instance_id: &str,
        body: &CreateStarRocksBody,
        request_id: &str,
    ) -> Result<CreateStarRocksResponse, Arc<CloudError>> {
        let path = format!(
            "v3/{}/instances/{target_instance_id}/starrocks",
            self.project_id
        );
        let answer = self
            .send(reqwest::Method::POST, &path, Some(body), request_id)
            .await;
        self.lists.forget(&target_instance_id.to_owned()).await;
        answer
    }

    /// A read or delete, retried on `409` (another operation in progress) and `429`
    /// (throttled) with capped, jittered exponential backoff. Never used for creates: a blind
    /// retry of a create could order a second instance.
    async fn send_retrying<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        request_id: &str,
    ) -> Result<T, Arc<CloudError>> {
        let mut attempt = 0;
        loop {
            match self.send(method.clone(), path, None, request_id).await {
                Err(error) if error.is_busy() && attempt + 1 < RETRY_ATTEMPTS => {
                    let ceiling = RETRY_BASE.saturating_mul(1 << attempt).min(RETRY_CAP);
                    let delay = ceiling.mul_f64(rand::random_range(0.5..=1.0));
                    tracing::info!(attempt, delay_ms = delay.as_millis(), error = %error, "the cloud is busy; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// `GET /v3/{project_id}/instances/{instance_id}/htap`: the HTAP instances of a TaurusDB.
    pub async fn list_htap(
        &self,
        target_instance_id: &str,
        request_id: &str,
    ) -> Result<HtapList, Arc<CloudError>> {
        let path = format!("v3/{}/instances/{target_instance_id}/htap", self.project_id);
        // Boxed: the retrying read is a large future, and it waits inside the cache's.
        let read = Box::pin(self.send_retrying(reqwest::Method::GET, &path, request_id));
        self.lists
            .get_or_read(target_instance_id.to_owned(), read)
            .await
    }

    /// `GET …/starrocks/{id}`; `None` when the cloud does not know the instance.
    pub async fn get_starrocks(
        &self,
        target_instance_id: &str,
        starrocks_id: &str,
        request_id: &str,
    ) -> Result<Option<StarRocksDetail>, Arc<CloudError>> {
        let path = format!(
            "v3/{}/instances/{target_instance_id}/starrocks/{starrocks_id}",
            self.project_id
        );
        // Boxed: the retrying read is a large future, and it waits inside the cache's.
        let read = Box::pin(async {
            match self
                .send_retrying::<StarRocksDetails>(reqwest::Method::GET, &path, request_id)
                .await
            {
                Ok(details) => Ok(details.instances.into_iter().find(|i| i.id == starrocks_id)),
                Err(error) if error.is_not_found() => Ok(None),
                Err(error) => Err(error),
            }
        });
        let key = (target_instance_id.to_owned(), starrocks_id.to_owned());
        self.details.get_or_read(key, read).await
    }

    /// `DELETE …/starrocks/{id}` (pay-per-use); the workflow id of the deletion.
    pub async fn delete_starrocks(
        &self,
        target_instance_id: &str,
        starrocks_id: &str,
        request_id: &str,
    ) -> Result<Option<String>, Arc<CloudError>> {
        let path = format!(
            "v3/{}/instances/{target_instance_id}/starrocks/{starrocks_id}",
            self.project_id
        );
        let answer = self
            .send_retrying::<DeleteAnswer>(reqwest::Method::DELETE, &path, request_id)
            .await;
        self.lists.forget(&target_instance_id.to_owned()).await;
        self.details
            .forget(&(target_instance_id.to_owned(), starrocks_id.to_owned()))
            .await;
        Ok(answer?.workflow_id)
    }

    /// `GET /v3/{project_id}/htap/flavors/star-rocks`: every flavor the region sells.
    pub async fn flavors(&self, request_id: &str) -> Result<Vec<Flavor>, Arc<CloudError>> {
        let path = format!(
            "v3/{}/htap/flavors/star-rocks?availability_zone_mode=single",
            self.project_id
        );
        self.send_retrying::<FlavorList>(reqwest::Method::GET, &path, request_id)
            .await
            .map(|list| list.flavors)
    }

    /// `GET /v3/{project_id}/htap/storage-type/star-rocks`: the storage types.
    pub async fn storage_types(
        &self,
        request_id: &str,
    ) -> Result<Vec<StorageType>, Arc<CloudError>> {
        let path = format!("v3/{}/htap/storage-type/star-rocks", self.project_id);
        self.send_retrying::<StorageTypeList>(reqwest::Method::GET, &path, request_id)
            .await
            .map(|list| list.storage_type)
    }

    /// `GET /v3/{project_id}/jobs?id=`.
    pub async fn job(&self, job_id: &str, request_id: &str) -> Result<Job, Arc<CloudError>> {
        let path = format!("v3/{}/jobs?id={job_id}", self.project_id);
        // Boxed: the retrying read is a large future, and it waits inside the cache's.
        let read = Box::pin(async {
            self.send_retrying::<JobAnswer>(reqwest::Method::GET, &path, request_id)
                .await
                .map(|answer| answer.job)
        });
        self.jobs.get_or_read(job_id.to_owned(), read).await
    }
}
