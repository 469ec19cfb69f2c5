//! `/v1/requests`: exception requests. A create policy denies only on rules the team marks
//! exceptable is asked for with a justification, and created when an approver approves it.
#![expect(
    unused_qualifications,
    reason = "utoipa's expansion of `params(RequestListQuery, …)` on a handler without a route macro"
)]

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::paging;
use super::starrocks::wire::CreateInstanceRequest;
use crate::domain::InvalidInput;
use crate::error::FieldError;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ActingTeam, JsonBody, OptionalJsonBody, QueryParams};
use crate::http::request_id::RequestId;
use crate::pipeline::authenticate::Employee;
use crate::policy::MAX_LEASE_DAYS;
use crate::service::Gateway;
use crate::service::requests::{
    ExceptionInput, ExceptionView, Justification, RequestedExtension, RequestedInstance,
    parse_comment,
};
use crate::storage::requests::RequestState;

/// A create that policy denied, asked for as an exception.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"instance": {"name": "load-test", "target": "analytics-prod", "size": "large"},
    "justification": "One week of load tests before the Q3 launch; deleted afterwards."}))]
pub struct ExceptionRequestBody {
    pub instance: RequestedInstance,
    /// Why the exception is needed, for the approver: 10 to 1,000 characters, not counting
    /// surrounding blanks (Unicode `White_Space`, spelled out in the pattern).
    #[schema(
        min_length = 10,
        max_length = 1000,
        pattern = r"^[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][\s\S]{8,}[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub justification: String,
}

/// A lease extension beyond the maximum, asked for as an exception.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"instance_id": "d081446e867b4edbac7815ab2649beacin17", "lease_days": 120,
    "justification": "Quarter-end reporting runs until the audit closes."}))]
pub struct ExtensionRequestBody {
    /// StarRocks instance id (`…in17`) of your team.
    #[schema(
        min_length = 1,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub instance_id: String,
    /// Days from the approval (fractions allowed), beyond the team's `max_lease_days`.
    #[schema(exclusive_minimum = 0, maximum = 3650)]
    pub lease_days: f64,
    /// Why the exception is needed, for the approver: 10 to 1,000 characters, not counting
    /// surrounding blanks (Unicode `White_Space`, spelled out in the pattern).
    #[schema(
        min_length = 10,
        max_length = 1000,
        pattern = r"^[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][\s\S]{8,}[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub justification: String,
}

/// An approver's note on a decision.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionNote {
    /// Up to 1,000 characters, kept with the request.
    #[schema(max_length = 1000)]
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RequestListQuery {
    /// Only requests in this state, e.g. `pending`.
    #[serde(default)]
    #[param(inline)]
    pub status: Option<RequestState>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default)]
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_page` of the previous answer.
    #[serde(default)]
    #[param(pattern = r"^[0-9]{1,18}\.[!-~]{1,255}$")]
    pub page: Option<String>,
}

/// A page of exception requests, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestList {
    pub requests: Vec<ExceptionView>,
    /// Pass as `page` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<String>,
}

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

/// Ask for an exception to a policy denial.
///
/// For a create that policy denies only on rules your team's policy marks `exceptable` (the
/// dry-run's `decision.exception` says which): it waits, `pending`, for someone who approves
/// for your team. An approval runs the create with those rules waived; every other rule and
/// the quota still apply.
#[utoipa::path(post, path = "/requests", tag = "exceptions",
    request_body = ExceptionRequestBody,
    params(("X-Team" = Option<String>, Header, description = "The team to act for, when you are in several")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Requested: pending until approved, rejected, withdrawn or expired", body = ExceptionView),
        (status = 400, description = "Malformed body, a bad field, or no team chosen (`malformed_body`, `invalid_field`, `team_required`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Denied on rules that are never waived, every one listed (`not_exceptable`), or not a member of the named team (`not_team_member`, `policy_denied` for a team the policy does not know)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Policy allows the create as it is: no exception is needed (`exception_not_needed`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from you (`rate_limited`); try again after `Retry-After` seconds", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "The gateway's database is unreachable (`storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn request_exception(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
    request_id: RequestId,
    team: ActingTeam,
    body: JsonBody<ExceptionRequestBody>,
) -> Result<HttpResponse, ApiError> {
    let ExceptionRequestBody {
        instance,
        justification,
    } = body.0;
    let (create, justification) = match (
        CreateInstanceRequest::from(instance).into_input(team.0.as_deref()),
        Justification::parse(&justification),
    ) {
        (Ok(create), Ok(justification)) => (create, justification),
        (create, justification) => {
            let mut errors: Vec<_> = create
                .err()
                .map(|invalid| invalid.errors)
                .unwrap_or_default()
                .into_iter()
                .map(|mut error| {
                    error.field = format!("instance.{}", error.field);
                    error
                })
                .collect();
            errors.extend(justification.err().into_iter().flat_map(|e| e.errors));
            return Err(InvalidInput::new(errors).into());
        }
    };
    let view = gateway
        .request_exception(
            &employee,
            ExceptionInput {
                create,
                justification,
            },
            request_id.as_str(),
        )
        .await?;
    Ok(HttpResponse::Accepted().json(view))
}

/// Ask for an exception to extend a lease beyond the maximum.
///
/// For an instance of your team whose extension `POST /v1/starrocks/{id}/extend` refuses on
/// `lease.max`, when your team's policy marks that rule exceptable. An approval extends the
/// lease to `lease_days` from the approval.
#[utoipa::path(post, path = "/requests/extensions", tag = "exceptions",
    request_body = ExtensionRequestBody,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Requested: pending until approved, rejected, withdrawn or expired", body = ExceptionView),
        (status = 400, description = "Malformed body or a bad field (`malformed_body`, `invalid_field`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The team's policy never waives `lease.max` (`not_exceptable`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such instance in your teams (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The maximum allows it: extend it directly; or the instance is being deleted, or has no lease (`exception_not_needed`, `instance_deleting`, `no_lease`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway's database is unreachable (`storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn request_extension(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
    request_id: RequestId,
    body: JsonBody<ExtensionRequestBody>,
) -> Result<HttpResponse, ApiError> {
    let ExtensionRequestBody {
        instance_id,
        lease_days,
        justification,
    } = body.0;
    let days = (!(lease_days > 0.0 && lease_days <= MAX_LEASE_DAYS)).then(|| FieldError {
        field: "lease_days".into(),
        message: format!("must be more than 0 and at most {MAX_LEASE_DAYS} days"),
    });
    let justification = match (Justification::parse(&justification), days) {
        (Ok(justification), None) => justification,
        (justification, days) => {
            let mut errors = justification.err().map(|e| e.errors).unwrap_or_default();
            errors.extend(days);
            return Err(InvalidInput::new(errors).into());
        }
    };
    let view = gateway
        .request_extension(
            &employee,
            RequestedExtension {
                instance_id,
                lease_days,
            },
            justification,
            request_id.as_str(),
        )
        .await?;
    Ok(HttpResponse::Accepted().json(view))
}

/// Exception requests you may see.
///
/// Your own, and those of the teams you approve for (every team for platform admins), newest
/// first. Approvers find their queue with `?status=pending`.
#[utoipa::path(get, path = "/requests", tag = "exceptions",
    params(RequestListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of requests", body = RequestList),
        (status = 400, description = "A bad parameter (`invalid_parameter`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway's database is unreachable (`storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_requests(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
    query: QueryParams<RequestListQuery>,
) -> Result<web::Json<RequestList>, ApiError> {
    let query = query.0;
    let limit = paging::limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let before = query.page.as_deref().map(paging::decode).transpose()?;
    let (requests, next) = gateway
        .exception_requests(&employee, query.status, limit, before)
        .await?;
    Ok(web::Json(RequestList {
        requests,
        next_page: next.map(|(at, id)| paging::encode(at, &id)),
    }))
}

/// One exception request.
///
/// Once an approval created the instance, its requester reads the generated root password
/// here, in `root_password`, on the first read only.
#[utoipa::path(get, path = "/requests/{id}", tag = "exceptions",
    params(("id" = String, Path, description = "The request's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The request", body = ExceptionView),
        (status = 404, description = "No such request visible to you (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway's database is unreachable (`storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_request(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
    id: web::Path<String>,
) -> Result<web::Json<ExceptionView>, ApiError> {
    Ok(web::Json(gateway.exception_request(&employee, &id).await?))
}

/// Approve an exception request, and create its instance.
///
/// For approvers of the request's team (and platform admins), never its requester. The
/// create runs at once, as the requester's team, with the approved rules waived and every
/// other rule and the quota enforced at the policy in force now. The answer is `created`
/// with `instance_id`, or `failed` with the reason (an approval over quota fails cleanly and
/// holds nothing). When the cloud's answer was lost (a timeout), it stays `approved` until
/// reconciliation finds out whether the instance exists, and then moves to `created` (the
/// password still shown once) or `failed`.
#[utoipa::path(post, path = "/requests/{id}/approve", tag = "exceptions",
    params(("id" = String, Path, description = "The request's id")),
    request_body(content = Option<DecisionNote>, description = "An optional comment"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Approved: `created` with the instance, `failed` with why, or `approved` while the cloud's answer is unknown", body = ExceptionView),
        (status = 400, description = "Malformed body or a bad comment (`malformed_body`, `invalid_field`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "You do not approve for its team, or it is your own (`not_an_approver`, `own_request`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such request visible to you (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already decided, withdrawn or expired (`request_not_pending`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway's database is unreachable (`storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn approve_request(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
    request_id: RequestId,
    id: web::Path<String>,
    note: OptionalJsonBody<DecisionNote>,
) -> Result<web::Json<ExceptionView>, ApiError> {
    let comment = parse_comment(note.0.comment)?;
    let view = Box::pin(gateway.approve(&employee, &id, comment, request_id.as_str())).await?;
    Ok(web::Json(view))
}

/// Reject an exception request.
///
/// For approvers of the request's team (and platform admins), never its requester. Nothing
/// is created.
#[utoipa::path(post, path = "/requests/{id}/reject", tag = "exceptions",
    params(("id" = String, Path, description = "The request's id")),
    request_body(content = Option<DecisionNote>, description = "An optional comment"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Rejected", body = ExceptionView),
        (status = 400, description = "Malformed body or a bad comment (`malformed_body`, `invalid_field`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "You do not approve for its team, or it is your own (`not_an_approver`, `own_request`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such request visible to you (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already decided, withdrawn or expired (`request_not_pending`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway's database is unreachable (`storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reject_request(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
    request_id: RequestId,
    id: web::Path<String>,
    note: OptionalJsonBody<DecisionNote>,
) -> Result<web::Json<ExceptionView>, ApiError> {
    let comment = parse_comment(note.0.comment)?;
    let view = gateway
        .reject(&employee, &id, comment, request_id.as_str())
        .await?;
    Ok(web::Json(view))
}

/// Withdraw your exception request.
///
/// Only its requester, and only while it is pending.
#[utoipa::path(post, path = "/requests/{id}/withdraw", tag = "exceptions",
    params(("id" = String, Path, description = "The request's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Withdrawn", body = ExceptionView),
        (status = 403, description = "Not your request (`not_requester`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such request visible to you (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already decided, withdrawn or expired (`request_not_pending`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway's database is unreachable (`storage_unavailable`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn withdraw_request(
    employee: web::ReqData<Employee>,
    gateway: web::Data<Gateway>,
    request_id: RequestId,
    id: web::Path<String>,
) -> Result<web::Json<ExceptionView>, ApiError> {
    let view = gateway
        .withdraw(&employee, &id, request_id.as_str())
        .await?;
    Ok(web::Json(view))
}

#[cfg(test)]
mod schema_agrees {
    use proptest::prelude::*;

    use super::*;
    use crate::routes::schema_text::{allows, blanks_and_text, schema_of};

    #[test]
    fn both_request_bodies_document_the_same_justification() {
        let exception = schema_of::<ExceptionRequestBody>();
        let extension = schema_of::<ExtensionRequestBody>();
        assert_eq!(
            exception["properties"]["justification"],
            extension["properties"]["justification"]
        );
    }

    proptest! {
        #[test]
        fn a_justification_is_accepted_exactly_when_the_schema_allows_it(text in blanks_and_text()) {
            let allowed = allows(&schema_of::<ExceptionRequestBody>(), "justification", &text);
            prop_assert_eq!(Justification::parse(&text).is_ok(), allowed, "{:?}", text);
        }

        #[test]
        fn a_comment_is_accepted_exactly_when_the_schema_allows_it(text in blanks_and_text()) {
            let allowed = allows(&schema_of::<DecisionNote>(), "comment", &text);
            prop_assert_eq!(parse_comment(Some(text.clone())).is_ok(), allowed, "{:?}", text);
        }
    }
}
