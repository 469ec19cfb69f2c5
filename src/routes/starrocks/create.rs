//! `POST /v1/starrocks`.

use actix_web::{HttpResponse, web};

use super::idempotency;
use super::wire::{CreateInstanceRequest, CreatedInstanceResponse};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ActingTeam, IdempotencyKeyHeader, JsonBody};
use crate::http::request_id::RequestId;
use crate::pipeline::authenticate::Employee;
use crate::service::Gateway;
use crate::service::create::{CreateAnswer, Idempotent};
use crate::storage::idempotency::KeyedRequest;

/// Create a StarRocks instance.
///
/// Authenticates the caller, checks the request against the team's policy, reserves the cost
/// in the team's quota, expands the size profile into the full Huawei Cloud body (injecting
/// the team's system tags) and forwards it with the gateway's own IAM token. With an
/// `Idempotency-Key`, a retry of the same request replays the first answer instead of
/// creating again (a generated root password is not replayed: it is never stored).
#[utoipa::path(
    post,
    path = "/starrocks",
    tag = "instances",
    request_body = CreateInstanceRequest,
    params(
        ("X-Team" = Option<String>, Header, description = "The team to act for, when you are in several"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters; a retry with the same key and body replays the first answer for 24 h", min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Instance accepted by the cloud and being created", body = CreatedInstanceResponse),
        (status = 400, description = "Malformed body, a field breaking the upstream's rules, no team chosen, or a bad Idempotency-Key (`malformed_body`, `invalid_field`, `team_required`, `invalid_idempotency_key`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Refused by org policy, every failed rule listed (`policy_denied`), over quota (`quota_exceeded`), or not a member of the named team (`not_team_member`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with this Idempotency-Key is still in flight (`idempotency_key_in_flight`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "This Idempotency-Key was used with a different body (`idempotency_key_reused`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Throttled, nothing was done: too many requests from you (`rate_limited`, with `RateLimit-Policy` and `RateLimit`), or the cloud limits the gateway's account (`upstream_throttled`). Try again after `Retry-After` seconds", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 502, description = "The cloud refused or failed the call; `upstream_code` carries its code (`upstream_error`, `upstream_auth_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cloud, the identity provider or the gateway's database is unreachable (`upstream_unavailable`, `identity_provider_unavailable`, `storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The cloud did not answer in time; the instance may still appear (`upstream_timeout`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_instance(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
    request_id: RequestId,
    team: ActingTeam,
    body: JsonBody<CreateInstanceRequest>,
    key: IdempotencyKeyHeader,
) -> Result<HttpResponse, ApiError> {
    let key = key.0.map(|key| Idempotent {
        request: KeyedRequest {
            subject: employee.subject.clone(),
            key: key.as_ref().to_owned(),
            fingerprint: body.0.fingerprint(team.0.as_deref()),
        },
        replay: idempotency::saved_response,
    });
    let input = body.0.into_input(team.0.as_deref())?;
    let answer = Box::pin(gateway.create(&employee, input, request_id.as_str(), key)).await?;
    Ok(match answer {
        CreateAnswer::Created(created) => {
            HttpResponse::Created().json(CreatedInstanceResponse::from(*created))
        }
        CreateAnswer::Replayed(saved) => idempotency::replay(&gateway, saved).await,
    })
}
