//! Phase 5, **forward**: send the create call with the gateway's IAM token. When the cloud's
//! API gateway refuses the token (`APIGW.0301`), the token is evicted, refetched and the call
//! retried exactly once; that refusal happens before the service runs, so the retry is safe.

use std::sync::Arc;

use super::evaluate::Plan;
use crate::cloud::model::CreateStarRocksResponse;
use crate::cloud::{CloudClient, CloudError};

pub async fn create(
    cloud: &CloudClient,
    plan: &Plan,
    request_id: &str,
) -> Result<CreateStarRocksResponse, Arc<CloudError>> {
    let token = cloud.token().await?;
    match cloud
        .create_starrocks(&token, &plan.target_instance_id, &plan.body, request_id)
        .await
    {
        Err(error) if error.is_token_rejection() => {
            tracing::warn!(
                "the cloud refused the cached IAM token; refetching it and retrying once"
            );
            cloud.evict_token(&token).await;
            let token = cloud.token().await?;
            cloud
                .create_starrocks(&token, &plan.target_instance_id, &plan.body, request_id)
                .await
                .map_err(Arc::new)
        }
        other => other.map_err(Arc::new),
    }
}
