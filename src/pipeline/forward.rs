//! Phase 5, **forward**: send the create call to the target's region, with that region's
//! IAM token or access-key signature (the token caches and the evict-and-retry-once on
//! `APIGW.0301` live in [`crate::cloud`]).

use std::sync::Arc;

use super::evaluate::Plan;
use crate::cloud::model::CreateStarRocksResponse;
use crate::cloud::{CloudClient, CloudError};

pub async fn create(
    cloud: &CloudClient,
    plan: &Plan,
    request_id: &str,
) -> Result<CreateStarRocksResponse, Arc<CloudError>> {
    cloud
        .create_starrocks(&plan.target_instance_id, &plan.body, request_id)
        .await
}
