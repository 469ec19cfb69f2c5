//! What each domain error answers with: its code, the caller's message and details. The one
//! mapping of the core's errors; the HTTP edge only renders it.

use super::{Coded, Details, ErrorCode, FieldError};
use crate::cloud::CloudError;
use crate::domain::InvalidInput;
use crate::pipeline::authenticate::AuthError;
use crate::pipeline::authorize::{AdminRequired, TeamError};
use crate::pipeline::evaluate::Denial;
use crate::pipeline::reserve::QuotaExceeded;
use crate::policy::PolicyError;
use crate::service::admin::AdminError;
use crate::service::catalog::CatalogError;
use crate::service::create::{CreateError, UpstreamFailure};
use crate::service::instances::InstanceError;
use crate::service::leases::ExtendError;
use crate::service::requests::ExceptionError;
use crate::storage::StorageError;
use crate::storage::idempotency::IdempotencyError;

impl Coded for AuthError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::KeysUnavailable(_) | Self::IntrospectionUnavailable(_) => {
                ErrorCode::IdentityProviderUnavailable
            }
            _ => ErrorCode::Unauthenticated,
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::KeysUnavailable(_) => {
                "the identity provider's signing keys are unavailable; try again shortly".into()
            }
            Self::IntrospectionUnavailable(_) => {
                "the identity provider cannot check the token right now; try again shortly".into()
            }
            other => other.to_string(),
        }
    }

    fn details(&self) -> Details {
        Details {
            invalid_token: !matches!(
                self,
                Self::MissingToken | Self::KeysUnavailable(_) | Self::IntrospectionUnavailable(_)
            ),
            ..Details::default()
        }
    }
}

/// Errors answered with one code whatever their variant, and the details they carry.
macro_rules! coded_as {
    ($($type:ty => $code:ident $(, |$error:ident| $details:expr)?;)*) => {$(
        impl Coded for $type {
            fn code(&self) -> ErrorCode {
                ErrorCode::$code
            }
            $(
                fn details(&self) -> Details {
                    let $error = self;
                    $details
                }
            )?
        }
    )*};
}

coded_as! {
    InvalidInput => InvalidField, |error| Details {
        errors: error.errors.clone(),
        ..Details::default()
    };
    AdminRequired => AdminRequired;
    Denial => PolicyDenied, |error| Details {
        violations: error.violations.clone(),
        decision_id: Some(error.decision_id.clone()),
        ..Details::default()
    };
    QuotaExceeded => QuotaExceeded, |error| Details {
        quota: error.dimensions.clone(),
        ..Details::default()
    };
}

impl Coded for TeamError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::NotMember { .. } | Self::NoTeam => ErrorCode::NotTeamMember,
            Self::Ambiguous(_) => ErrorCode::TeamRequired,
            Self::Undeclared(_) => ErrorCode::PolicyDenied,
        }
    }

    fn details(&self) -> Details {
        let field = |message: String| Details {
            errors: vec![FieldError {
                field: "team".into(),
                message,
            }],
            ..Details::default()
        };
        match self {
            Self::Ambiguous(_) => field(self.to_string()),
            _ => Details::default(),
        }
    }
}

impl Coded for StorageError {
    fn code(&self) -> ErrorCode {
        ErrorCode::StorageUnavailable
    }

    fn detail(&self) -> String {
        "the gateway's database is unavailable; nothing was sent to the cloud, try again shortly"
            .into()
    }
}

/// What a throttled caller is told to wait when the cloud named no delay: APIG's limits are
/// counted per second or per minute, so a few seconds let the window move on.
const THROTTLED_RETRY_AFTER_SECS: u64 = 5;
/// The same for a busy or unreachable cloud.
const BUSY_RETRY_AFTER_SECS: u64 = 2;

impl Coded for CloudError {
    fn code(&self) -> ErrorCode {
        match self {
            // The cloud saying "another operation is in progress": the caller can retry
            // later, which a 502 would not tell them.
            Self::Rejected { status: 409, .. } => ErrorCode::UpstreamBusy,
            _ if self.is_throttled() => ErrorCode::UpstreamThrottled,
            Self::OverBudget => ErrorCode::UpstreamThrottled,
            Self::CircuitOpen { .. } => ErrorCode::UpstreamUnavailable,
            Self::Rejected { .. } | Self::Transport(_) | Self::InvalidResponse(_) => {
                ErrorCode::UpstreamError
            }
            Self::IamRejected { .. } | Self::Signing(_) => ErrorCode::UpstreamAuthFailed,
            Self::Timeout(_) => ErrorCode::UpstreamTimeout,
            Self::Unreachable(_) | Self::UnknownRegion(_) => ErrorCode::UpstreamUnavailable,
        }
    }

    fn detail(&self) -> String {
        match self {
            _ if self.is_throttled() => "Huawei Cloud is throttling the gateway's account; nothing was done, try again after the Retry-After delay".into(),
            Self::Rejected {
                status,
                code,
                message,
                ..
            } => format!(
                "Huawei Cloud refused the call ({status}{}): {}",
                code.as_deref()
                    .map(|c| format!(", {c}"))
                    .unwrap_or_default(),
                message.as_deref().unwrap_or("no message"),
            ),
            Self::IamRejected { .. } => "the gateway's own Huawei Cloud credentials were refused; the platform team has been alerted in the log".into(),
            Self::UnknownRegion(region) => format!("the instance is in region `{region}`, which this gateway is not configured for; nothing was sent (the platform team must add the region back to reach it)"),
            Self::Signing(_) => "the gateway could not sign its call with its Huawei Cloud access key; nothing was sent, and the platform team has been alerted in the log".into(),
            Self::Timeout(_) => "Huawei Cloud did not answer in time; the instance may still be created, check before retrying".into(),
            Self::Unreachable(_) => "Huawei Cloud could not be reached; nothing was sent, try again later".into(),
            Self::CircuitOpen { .. } => "Huawei Cloud failed repeatedly for this operation, so the gateway stops calling it for a short while; nothing was sent, try again after the Retry-After delay".into(),
            Self::OverBudget => "the gateway's budget of calls to Huawei Cloud is spent for the moment (it keeps the account below the cloud's rate limit); nothing was sent, try again after the Retry-After delay".into(),
            Self::Transport(_) | Self::InvalidResponse(_) => {
                "the call to Huawei Cloud failed without a usable answer".into()
            }
        }
    }

    fn details(&self) -> Details {
        match self {
            Self::Rejected {
                status,
                code,
                retry_after,
                ..
            } => Details {
                upstream_code: code.clone(),
                upstream_status: Some(*status),
                retry_after_secs: match *status {
                    429 => Some(retry_after.unwrap_or(THROTTLED_RETRY_AFTER_SECS)),
                    409 | 503 => Some(retry_after.unwrap_or(BUSY_RETRY_AFTER_SECS)),
                    _ => None,
                },
                ..Details::default()
            },
            Self::Unreachable(_) => Details {
                retry_after_secs: Some(BUSY_RETRY_AFTER_SECS),
                ..Details::default()
            },
            Self::OverBudget => Details {
                retry_after_secs: Some(1),
                ..Details::default()
            },
            Self::CircuitOpen { retry_after_secs } => Details {
                retry_after_secs: Some(*retry_after_secs),
                ..Details::default()
            },
            _ => Details::default(),
        }
    }
}

impl Coded for IdempotencyError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::InFlight => ErrorCode::IdempotencyKeyInFlight,
            Self::Reused => ErrorCode::IdempotencyKeyReused,
            Self::Storage(error) => error.code(),
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Storage(error) => error.detail(),
            other => other.to_string(),
        }
    }
}

impl Coded for PolicyError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::NotReloadable => ErrorCode::PolicyNotReloadable,
            _ => ErrorCode::PolicyInvalid,
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::NotReloadable => self.to_string(),
            other => format!("{other}; the previous policy stays in force"),
        }
    }
}

/// Delegates to the phase error inside.
macro_rules! coded_by_variant {
    ($type:ty { $($variant:ident),* }) => {
        impl Coded for $type {
            fn code(&self) -> ErrorCode {
                match self { $(Self::$variant(error) => error.code(),)* }
            }
            fn detail(&self) -> String {
                match self { $(Self::$variant(error) => error.detail(),)* }
            }
            fn details(&self) -> Details {
                match self { $(Self::$variant(error) => error.details(),)* }
            }
        }
    };
}

coded_by_variant!(CreateError {
    Team,
    Denied,
    Quota,
    Idempotency,
    Storage,
    Upstream,
    Region
});
coded_by_variant!(CatalogError { Team, Storage });
coded_by_variant!(AdminError {
    Forbidden,
    Policy,
    Storage
});

impl Coded for InstanceError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Deleting(_) => ErrorCode::InstanceDeleting,
            Self::Team(error) => error.code(),
            Self::Storage(error) => error.code(),
            Self::Cloud(error) => error.code(),
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Team(error) => error.detail(),
            Self::Storage(error) => error.detail(),
            Self::Cloud(error) => error.detail(),
            other => other.to_string(),
        }
    }

    fn details(&self) -> Details {
        match self {
            Self::Team(error) => error.details(),
            Self::Cloud(error) => error.details(),
            _ => Details::default(),
        }
    }
}

impl Coded for ExceptionError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Team(error) => error.code(),
            Self::NotNeeded(_) => ErrorCode::ExceptionNotNeeded,
            Self::Extend(error) => error.code(),
            Self::NotExceptable(_) => ErrorCode::NotExceptable,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::NotApprover(_) => ErrorCode::NotAnApprover,
            Self::OwnRequest => ErrorCode::OwnRequest,
            Self::NotRequester => ErrorCode::NotRequester,
            Self::NotPending { .. } => ErrorCode::RequestNotPending,
            Self::Storage(error) => error.code(),
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Team(error) => error.detail(),
            Self::Storage(error) => error.detail(),
            Self::Extend(error) => error.detail(),
            Self::NotExceptable(denial) => format!(
                "denied on rules your team's policy never waives, so no exception can be asked for: {denial}"
            ),
            other => other.to_string(),
        }
    }

    fn details(&self) -> Details {
        match self {
            Self::Team(error) => error.details(),
            Self::Extend(error) => error.details(),
            Self::NotExceptable(denial) => Details {
                violations: denial.violations.clone(),
                decision_id: Some(denial.decision_id.clone()),
                ..Details::default()
            },
            _ => Details::default(),
        }
    }
}

impl Coded for ExtendError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Instance(error) => error.code(),
            Self::NoLease(_) => ErrorCode::NoLease,
            Self::Denied(denial) => denial.code(),
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Instance(error) => error.detail(),
            Self::NoLease(_) => self.to_string(),
            Self::Denied(denial) => denial.detail(),
        }
    }

    fn details(&self) -> Details {
        match self {
            Self::Instance(error) => error.details(),
            Self::NoLease(_) => Details::default(),
            Self::Denied(denial) => denial.details(),
        }
    }
}

/// Answers like the error it wraps (`@T`: for any wrapped `T: Coded`).
macro_rules! coded_through {
    ($($(@$generic:ident)? $type:ty => |$this:ident| $inner:expr;)*) => {$(
        impl$(<$generic: Coded + ?Sized>)? Coded for $type {
            fn code(&self) -> ErrorCode {
                let $this = self;
                $inner.code()
            }

            fn detail(&self) -> String {
                let $this = self;
                $inner.detail()
            }

            fn details(&self) -> Details {
                let $this = self;
                $inner.details()
            }
        }
    )*};
}

coded_through! {
    UpstreamFailure => |failure| failure.error;
    @T &T => |error| **error;
    @T std::sync::Arc<T> => |error| **error;
}
