//! Every machine code of the public API, declared once with its HTTP status, and what each
//! domain error answers with.
//!
//! The core never builds an HTTP answer: its errors implement [`Coded`] (all in [`mapping`],
//! one place), and [`crate::http::error`] turns any [`Coded`] error into problem+json.

use serde::Serialize;
use utoipa::ToSchema;

mod mapping;

/// Declares [`ErrorCode`]: each code once, with its HTTP status and its wire name.
macro_rules! make_error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $status:literal, $name:literal;)*) => {
        // The wire name is the variant's in snake case; a test holds it equal to `$name`.
        /// Stable machine codes. Clients match on these, so a code is never renamed or reused.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &[Self] = &[$(Self::$variant),*];

            /// The HTTP status answered with this code.
            pub fn status(self) -> u16 {
                match self {
                    $(Self::$variant => $status,)*
                }
            }

            /// What the code means, from its documentation (empty when it has none).
            pub fn meaning(self) -> &'static str {
                match self {
                    $(Self::$variant => concat!($($doc, " "),*).trim_ascii(),)*
                }
            }

            /// The wire name, e.g. `policy_denied`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

make_error_codes! {
    /// The body is not valid JSON or does not have the expected shape.
    MalformedBody = 400, "malformed_body";
    /// One or more fields were refused; `errors` names each.
    InvalidField = 400, "invalid_field";
    /// The request body must be `application/json`.
    UnsupportedMediaType = 415, "unsupported_media_type";
    /// The request body is larger than the configured limit.
    PayloadTooLarge = 413, "payload_too_large";
    /// The request body did not arrive whole in time (`server.body_timeout_ms`).
    RequestTimeout = 408, "request_timeout";
    /// A path or query parameter could not be parsed.
    InvalidParameter = 400, "invalid_parameter";
    /// No bearer token, or one that failed verification.
    Unauthenticated = 401, "unauthenticated";
    /// The employee is in several teams and must name one (`X-Team`).
    TeamRequired = 400, "team_required";
    /// The named team is not one of the employee's teams.
    NotTeamMember = 403, "not_team_member";
    /// The operation is reserved to platform admins.
    AdminRequired = 403, "admin_required";
    /// A new policy file was refused; the previous policy stays in force.
    PolicyInvalid = 422, "policy_invalid";
    /// The policy did not come from a file, so it cannot be reloaded.
    PolicyNotReloadable = 409, "policy_not_reloadable";
    /// The identity provider's signing keys could not be fetched.
    IdentityProviderUnavailable = 503, "identity_provider_unavailable";
    /// Org policy refuses the request; `violations` lists every failed rule.
    PolicyDenied = 403, "policy_denied";
    NotFound = 404, "not_found";
    MethodNotAllowed = 405, "method_not_allowed";
    /// The cloud refused or failed the call; `upstream_code` carries its error code.
    UpstreamError = 502, "upstream_error";
    /// The cloud reports another operation in progress on the instance; try again later.
    UpstreamBusy = 409, "upstream_busy";
    /// The cloud's API gateway throttled the account (`APIGW.0308`); nothing was done. Try
    /// again after `Retry-After`.
    UpstreamThrottled = 429, "upstream_throttled";
    /// The instance is already being deleted.
    InstanceDeleting = 409, "instance_deleting";
    /// The gateway's own cloud credentials were refused by IAM.
    UpstreamAuthFailed = 502, "upstream_auth_failed";
    /// The cloud did not answer in time; the outcome of the call is unknown.
    UpstreamTimeout = 504, "upstream_timeout";
    /// The cloud could not be reached at all.
    UpstreamUnavailable = 503, "upstream_unavailable";
    /// The gateway's database is unreachable; nothing was sent to the cloud.
    StorageUnavailable = 503, "storage_unavailable";
    /// The team's quota cannot admit the request; each dimension says requested, used, allowed.
    QuotaExceeded = 403, "quota_exceeded";
    /// The employee sent more requests than their rate limit allows; try again after
    /// `Retry-After` seconds. `RateLimit-Policy` and `RateLimit` describe the limit.
    RateLimited = 429, "rate_limited";
    /// The `Idempotency-Key` header is empty or longer than 255 characters.
    InvalidIdempotencyKey = 400, "invalid_idempotency_key";
    /// A request with the same `Idempotency-Key` is still being processed.
    IdempotencyKeyInFlight = 409, "idempotency_key_in_flight";
    /// The `Idempotency-Key` was already used with a different body.
    IdempotencyKeyReused = 422, "idempotency_key_reused";
    /// Policy already allows the create; an exception request is not needed.
    ExceptionNotNeeded = 409, "exception_not_needed";
    /// The create is denied on rules the team's policy never waives; `violations` lists them.
    NotExceptable = 403, "not_exceptable";
    /// The caller does not approve exception requests of the request's team.
    NotAnApprover = 403, "not_an_approver";
    /// Nobody approves or rejects their own exception request.
    OwnRequest = 403, "own_request";
    /// Only the requester may withdraw an exception request.
    NotRequester = 403, "not_requester";
    /// The exception request was already decided, withdrawn or expired.
    RequestNotPending = 409, "request_not_pending";
    /// The instance has no lease to extend.
    NoLease = 409, "no_lease";
    /// A fault of the gateway itself; details are in its log under the request id.
    Internal = 500, "internal";
}

/// A field the caller must fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's name in the request body, e.g. `name` or `root_password`.
    pub field: String,
    pub message: String,
}

/// One policy rule that refused the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Violation {
    /// Stable rule id, e.g. `size.allowed`.
    pub rule: String,
    pub message: String,
}

/// One quota dimension of a `quota_exceeded` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct QuotaDimension {
    /// `instances`, `nodes` or `storage_gb`.
    pub dimension: String,
    pub requested: i64,
    pub used: i64,
    pub allowed: i64,
    /// Whether this dimension is the one (or one of those) over the limit.
    pub exceeded: bool,
}

/// What an error tells the caller beyond its code and message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    pub errors: Vec<FieldError>,
    pub violations: Vec<Violation>,
    pub decision_id: Option<String>,
    pub quota: Vec<QuotaDimension>,
    pub upstream_code: Option<String>,
    pub upstream_status: Option<u16>,
    /// Seconds the caller should wait before trying again: the `Retry-After` header.
    pub retry_after_secs: Option<u64>,
    /// A bearer token was sent and refused: the `WWW-Authenticate` challenge says
    /// `error="invalid_token"` (RFC 6750 §3.1); without a token it names no error.
    pub invalid_token: bool,
}

/// An error the API answers with: its code, a message for the caller, and details.
///
/// `detail` is what the caller reads; it may differ from `Display`, which is for the log and
/// may name causes the caller has no use for.
pub trait Coded: std::fmt::Display {
    fn code(&self) -> ErrorCode;
    fn detail(&self) -> String {
        self.to_string()
    }
    fn details(&self) -> Details {
        Details::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageError;

    #[test]
    fn every_code_serializes_as_its_declared_name() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(serde_json::Value::from(code.as_str()))
            );
        }
    }

    #[test]
    fn every_code_has_an_error_status() {
        assert!(
            ErrorCode::ALL
                .iter()
                .all(|code| (400..600).contains(&code.status()))
        );
    }

    #[test]
    fn a_storage_failure_tells_the_caller_nothing_was_sent() {
        let error = StorageError::Corrupt("status: out of range".into());
        assert_eq!(error.code(), ErrorCode::StorageUnavailable);
        assert!(error.detail().contains("nothing was sent"));
        assert!(!error.detail().contains("out of range"));
    }
}
