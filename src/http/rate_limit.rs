//! Per-employee rate limits at the edge, right after authentication: one for creates, one
//! for every other `/v1` request. Each is a generic cell-rate algorithm (`governor`): a burst,
//! then a steady rate. A refusal is `429 rate_limited` with `Retry-After`, decided before any
//! body is read and before anything is recorded; every answer under a limit carries
//! `RateLimit-Policy` and `RateLimit` (IETF httpapi draft 10). Counted per replica.

use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::error::ApiError;
use crate::config::LimitSettings;
use crate::error::{Details, ErrorCode};
use crate::metrics::METRICS;
use crate::pipeline::authenticate::Employee;

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// `burst` cells at once, then `rate` per `per`; `None` when `rate` is 0 (no limit).
pub fn quota(burst: u32, rate: u32, per: Duration) -> Option<Quota> {
    let rate = NonZeroU32::new(rate)?;
    let burst = NonZeroU32::new(burst.max(1))?;
    Quota::with_period(per / rate.get()).map(|quota| quota.allow_burst(burst))
}

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// One named limit, one bucket per employee.
struct Limit {
    name: &'static str,
    quota: Quota,
    buckets: Keyed,
}

impl Limit {
    fn new(name: &'static str, quota: Option<Quota>) -> Option<Self> {
        let quota = quota?;
        Some(Self {
            name,
            quota,
            buckets: RateLimiter::keyed(quota).with_middleware(),
        })
    }

    /// The limit as `RateLimit-Policy` states it: the burst, and the seconds in which a spent
    /// burst is whole again.
    fn policy(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.name,
            self.quota.burst_size(),
            secs_up(self.quota.burst_size_replenished_in())
        )
    }

    /// `RateLimit`: what is left now, and the seconds until the burst is whole again.
    fn state(&self, remaining: u32) -> String {
        let spent = self.quota.burst_size().get().saturating_sub(remaining);
        format!(
            "\"{}\";r={remaining};t={}",
            self.name,
            secs_up(self.quota.replenish_interval() * spent)
        )
    }

    fn describe(&self, headers: &mut HeaderMap, remaining: u32, wait: Option<Duration>) {
        let state = match wait {
            Some(wait) => format!("\"{}\";r=0;t={}", self.name, secs_up(wait)),
            None => self.state(remaining),
        };
        for (name, value) in [(RATELIMIT_POLICY, self.policy()), (RATELIMIT, state)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
}

impl std::fmt::Debug for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limit")
            .field("name", &self.name)
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

/// Whole seconds, rounded up: a client told `0` would retry at once.
fn secs_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// The limits every `/v1` request passes; shared by the workers.
#[derive(Debug)]
pub struct RateLimits {
    creates: Option<Limit>,
    requests: Option<Limit>,
    clock: DefaultClock,
}

impl RateLimits {
    /// The limits from settings, with a task that forgets idle employees' buckets.
    pub fn start(settings: &LimitSettings) -> Arc<Self> {
        let limits = Arc::new(Self {
            creates: Limit::new(
                "creates",
                quota(
                    settings.creates_burst,
                    settings.creates_per_minute,
                    Duration::from_secs(60),
                ),
            ),
            requests: Limit::new(
                "requests",
                quota(
                    settings.requests_burst,
                    settings.requests_per_second,
                    Duration::from_secs(1),
                ),
            ),
            clock: DefaultClock::default(),
        });
        let weak = Arc::downgrade(&limits);
        tokio::spawn(forget_idle(weak));
        limits
    }

    fn limit_for(&self, method: &Method, path: &str) -> Option<&Limit> {
        let creates = method == Method::POST && path.trim_end_matches('/') == "/v1/starrocks";
        if creates {
            self.creates.as_ref()
        } else {
            self.requests.as_ref()
        }
    }
}

/// Buckets that are full again hold nothing worth keeping; without this, every employee
/// ever seen would keep one.
async fn forget_idle(limits: Weak<RateLimits>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        let Some(limits) = limits.upgrade() else {
            return;
        };
        for limit in [&limits.creates, &limits.requests].into_iter().flatten() {
            limit.buckets.retain_recent();
            limit.buckets.shrink_to_fit();
        }
    }
}

/// The verdict on one request.
#[derive(Debug)]
pub enum Admission {
    /// No limit applies.
    Unlimited,
    /// Counted; the `RateLimit` headers its answer carries.
    Admitted(HeaderMap),
    /// Over the limit: the `429` and its headers.
    Refused(ApiError, HeaderMap),
}

impl RateLimits {
    /// Counts a request of `subject` against the limit its method and path fall under.
    pub fn admit(&self, method: &Method, path: &str, subject: &str) -> Admission {
        let Some(limit) = self.limit_for(method, path) else {
            return Admission::Unlimited;
        };
        let mut headers = HeaderMap::new();
        match limit.buckets.check_key(&subject.to_owned()) {
            Ok(state) => {
                limit.describe(&mut headers, state.remaining_burst_capacity(), None);
                Admission::Admitted(headers)
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                METRICS.rate_limited.with_label_values(&[limit.name]).inc();
                limit.describe(&mut headers, 0, Some(wait));
                let error = ApiError::with_details(
                    ErrorCode::RateLimited,
                    format!(
                        "too many {} from you: the limit is {} at once, then one every {}; try again in {} s",
                        limit.name,
                        limit.quota.burst_size(),
                        humane(limit.quota.replenish_interval()),
                        secs_up(wait)
                    ),
                    Details {
                        retry_after_secs: Some(secs_up(wait)),
                        ..Details::default()
                    },
                );
                Admission::Refused(error, headers)
            }
        }
    }
}

/// Middleware inside `/v1`'s authentication: counts the request against its employee's
/// limit, and refuses it with `429` when the limit is spent.
pub async fn limit_rate(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let admission = {
        let limits = request.app_data::<web::Data<RateLimits>>();
        let extensions = request.extensions();
        match (limits, extensions.get::<Employee>()) {
            (Some(limits), Some(employee)) => {
                limits.admit(request.method(), request.path(), &employee.subject)
            }
            _ => Admission::Unlimited,
        }
    };
    match admission {
        Admission::Unlimited => next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body),
        Admission::Admitted(headers) => {
            let mut response = next.call(request).await?;
            add(response.headers_mut(), headers);
            Ok(response.map_into_left_body())
        }
        Admission::Refused(error, headers) => {
            let mut response = request.error_response(error);
            add(response.headers_mut(), headers);
            Ok(response.map_into_right_body())
        }
    }
}

fn add(answer: &mut HeaderMap, headers: HeaderMap) {
    for (name, value) in headers {
        answer.insert(name, value);
    }
}

/// `6 s`, `250 ms`: the replenish interval for a person.
fn humane(interval: Duration) -> String {
    if interval.subsec_millis() == 0 && interval.as_secs() > 0 {
        format!("{} s", interval.as_secs())
    } else {
        format!("{} ms", interval.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_of_zero_is_no_limit_and_a_burst_is_at_least_one() {
        assert!(quota(10, 0, Duration::from_secs(60)).is_none());
        let one = quota(0, 10, Duration::from_secs(60)).expect("a limit");
        assert_eq!(one.burst_size().get(), 1);
        assert_eq!(one.replenish_interval(), Duration::from_secs(6));
    }

    #[test]
    fn the_headers_state_the_burst_its_refill_time_and_what_is_left() {
        let limit = Limit::new("creates", quota(5, 10, Duration::from_secs(60))).expect("limit");
        let mut headers = HeaderMap::new();
        limit.describe(&mut headers, 3, None);
        assert_eq!(
            headers.get(RATELIMIT_POLICY).expect("policy"),
            "\"creates\";q=5;w=30"
        );
        assert_eq!(
            headers.get(RATELIMIT).expect("state"),
            "\"creates\";r=3;t=12"
        );
        limit.describe(&mut headers, 0, Some(Duration::from_millis(5_500)));
        assert_eq!(
            headers.get(RATELIMIT).expect("state"),
            "\"creates\";r=0;t=6"
        );
    }
}
