//! The create body and answer on the wire, and how the body becomes a [`CreateInput`].

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{InstanceName, InvalidInput, InvalidValue, RootPassword, TimeZone};
use crate::error::FieldError;
use crate::pipeline::evaluate::CreateRequest;
use crate::policy::MAX_LEASE_DAYS;
use crate::service::create::{CreateInput, Created};
use crate::service::requests::RequestedInstance;

/// What an employee asks for; everything else comes from policy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "sales-cube", "target": "analytics-prod", "size": "small",
    "labels": {"owner": "alice", "env": "dev"}}))]
pub struct CreateInstanceRequest {
    /// 4–64 characters, starting with a letter; letters, digits, `-` and `_`.
    #[schema(
        min_length = 4,
        max_length = 64,
        pattern = "^[A-Za-z][A-Za-z0-9_-]{3,63}$"
    )]
    pub name: String,
    /// Alias of the TaurusDB instance to attach to, as listed in your catalog.
    #[schema(
        min_length = 1,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub target: String,
    /// A size profile your team may use, e.g. `small`.
    #[schema(
        min_length = 1,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub size: String,
    /// Engine major version; the policy default when absent.
    #[schema(
        min_length = 1,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub version: Option<String>,
    /// Availability zone; the policy default when absent.
    #[schema(
        min_length = 1,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub az: Option<String>,
    /// Time zone like `UTC+08:00`; the policy default when absent.
    #[schema(pattern = "^UTC[+-](0[0-9]|1[0-4]):[0-5][0-9]$")]
    pub time_zone: Option<String>,
    /// Labels kept by the gateway (owner, app, ...), as your team's policy allows. They are
    /// never sent to the cloud and can never set a system tag.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Days the instance should live before it is deleted (fractions allowed), up to your
    /// team's `max_lease_days`; the policy's default when absent. `extend` moves the end.
    #[schema(exclusive_minimum = 0, maximum = 3650)]
    pub lease_days: Option<f64>,
    /// 8–32 characters with at least three of upper, lower, digit and `~!@#$%^*-_=+?,()&|.`,
    /// and not a common password. When absent a strong one is generated and returned once.
    #[schema(
        value_type = Option<String>,
        format = Password,
        min_length = 8,
        max_length = 32,
        pattern = r"^(?:(?=.*[A-Z])(?=.*[a-z])(?=.*[0-9])|(?=.*[A-Z])(?=.*[a-z])(?=.*[~!@#$%^*\-_=+?,()&|.])|(?=.*[A-Z])(?=.*[0-9])(?=.*[~!@#$%^*\-_=+?,()&|.])|(?=.*[a-z])(?=.*[0-9])(?=.*[~!@#$%^*\-_=+?,()&|.]))[A-Za-z0-9~!@#$%^*\-_=+?,()&|.]{8,32}$"
    )]
    pub root_password: Option<SecretString>,
}

/// The created instance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedInstanceResponse {
    /// StarRocks instance id (`…in17`).
    pub id: String,
    pub name: String,
    /// Upstream status, `creating` at first.
    pub status: String,
    /// Id of the cloud workflow building the instance (absent when replayed after
    /// reconciliation found the instance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    pub team: String,
    /// The region the instance is ordered in (its target's).
    pub region: String,
    pub target: String,
    pub size: String,
    pub labels: BTreeMap<String, String>,
    pub decision_id: String,
    pub request_id: String,
    /// The generated root password, present only when none was given. Shown once: it is
    /// not stored anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_password: Option<String>,
}

fn field_error(field: &str) -> impl Fn(InvalidValue) -> FieldError + '_ {
    move |error| FieldError {
        field: field.to_owned(),
        message: error.0,
    }
}

fn required(field: &str, value: Option<&str>) -> Option<FieldError> {
    value.filter(|v| v.trim().is_empty()).map(|_| FieldError {
        field: field.into(),
        message: "must not be empty or blank".into(),
    })
}

impl CreateInstanceRequest {
    /// The domain input, for the team named by the `X-Team` header.
    pub fn into_input(self, header_team: Option<&str>) -> Result<CreateInput, InvalidInput> {
        let (request, password) = parse(self)?;
        Ok(CreateInput {
            request,
            password,
            team: header_team.map(str::to_owned),
            waiver: None,
        })
    }

    /// Identifies "the same request" for an idempotency key: the body and the team header.
    /// The root password is left out, so no digest of it is ever stored.
    pub fn fingerprint(&self, header_team: Option<&str>) -> String {
        let canonical = serde_json::json!({
            "name": self.name, "target": self.target, "size": self.size, "version": self.version,
            "az": self.az, "time_zone": self.time_zone, "labels": self.labels,
            "lease_days": self.lease_days,
            "password_given": self.root_password.is_some(),
            "x_team": header_team,
        });
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.to_string().as_bytes());
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl From<RequestedInstance> for CreateInstanceRequest {
    fn from(instance: RequestedInstance) -> Self {
        Self {
            name: instance.name,
            target: instance.target,
            size: instance.size,
            version: instance.version,
            az: instance.az,
            time_zone: instance.time_zone,
            labels: instance.labels,
            lease_days: instance.lease_days,
            root_password: None,
        }
    }
}

impl From<Created> for CreatedInstanceResponse {
    fn from(created: Created) -> Self {
        Self {
            id: created.id,
            name: created.name,
            status: created.status,
            job_id: created.job_id,
            team: created.team,
            region: created.region,
            target: created.target,
            size: created.size,
            labels: created.labels,
            decision_id: created.decision_id,
            request_id: created.request_id,
            root_password: created.generated_password.map(|p| p.expose().to_owned()),
        }
    }
}

/// Parses the wire body into domain values, reporting every bad field at once.
pub(crate) fn parse(
    body: CreateInstanceRequest,
) -> Result<(CreateRequest, Option<RootPassword>), InvalidInput> {
    let name = InstanceName::parse(&body.name).map_err(field_error("name"));
    let password = body
        .root_password
        .as_ref()
        .map(|p| RootPassword::parse(p.expose_secret()))
        .transpose()
        .map_err(field_error("root_password"));
    let time_zone = body
        .time_zone
        .as_deref()
        .map(TimeZone::parse)
        .transpose()
        .map_err(field_error("time_zone"));
    let mut errors: Vec<FieldError> = [
        required("target", Some(&body.target)),
        required("size", Some(&body.size)),
        required("version", body.version.as_deref()),
        required("az", body.az.as_deref()),
        body.lease_days
            .filter(|days| !(*days > 0.0 && *days <= MAX_LEASE_DAYS))
            .map(|_| FieldError {
                field: "lease_days".into(),
                message: format!("must be more than 0 and at most {MAX_LEASE_DAYS} days"),
            }),
    ]
    .into_iter()
    .flatten()
    .collect();
    let (name, password, time_zone) = match (name, password, time_zone) {
        (Ok(name), Ok(password), Ok(time_zone)) if errors.is_empty() => (name, password, time_zone),
        (name, password, time_zone) => {
            errors.extend(
                [name.err(), password.err(), time_zone.err()]
                    .into_iter()
                    .flatten(),
            );
            return Err(InvalidInput::new(errors));
        }
    };
    let request = CreateRequest {
        name,
        target: body.target,
        size: body.size,
        version: body.version,
        az: body.az,
        time_zone,
        labels: body.labels,
        lease_days: body.lease_days,
    };
    Ok((request, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> CreateInstanceRequest {
        serde_json::from_value(json).expect("well-formed body")
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let problem = parse(body(serde_json::json!({
            "name": "1bad", "target": "", "size": "small", "root_password": "weak"
        })))
        .expect_err("three fields are bad");
        let fields: Vec<_> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["name", "root_password", "target"]);
    }

    #[test]
    fn a_rejected_password_is_never_echoed() {
        let problem = parse(body(serde_json::json!({
            "name": "good-name", "target": "t", "size": "small", "root_password": "onlylowercase"
        })))
        .expect_err("weak password");
        assert!(!problem.to_string().contains("onlylowercase"));
        assert!(!format!("{problem:?}").contains("onlylowercase"));
    }
}

#[cfg(test)]
mod properties {
    //! Any body, valid JSON or not, is parsed into a request or refused with named fields;
    //! never a panic.

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_bytes_are_refused_or_parsed_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(body) = serde_json::from_slice::<CreateInstanceRequest>(&bytes) {
                drop(parse(body));
            }
        }

        #[test]
        fn any_field_values_are_refused_with_their_names_or_parsed(
            name in "\\PC{0,80}",
            target in "\\PC{0,40}",
            size in "\\PC{0,20}",
            version in proptest::option::of("\\PC{0,10}"),
            time_zone in proptest::option::of("\\PC{0,12}"),
            root_password in proptest::option::of("\\PC{0,40}"),
        ) {
            let body = serde_json::json!({
                "name": name, "target": target, "size": size, "version": version,
                "time_zone": time_zone, "root_password": root_password,
            });
            let body: CreateInstanceRequest = serde_json::from_value(body).expect("the shape is right");
            if let Err(invalid) = parse(body) {
                prop_assert!(!invalid.errors.is_empty());
                prop_assert!(invalid.errors.iter().all(|e| !e.field.is_empty() && !e.message.is_empty()));
            }
        }
    }
}

#[cfg(test)]
mod schema_agrees {
    use proptest::prelude::*;

    use super::*;
    use crate::routes::schema_text::{allows, blanks_and_text, schema_of};
    use crate::service::requests::RequestedInstance;

    const REQUIRED_TEXT: [&str; 4] = ["target", "size", "version", "az"];

    #[test]
    fn a_create_and_an_exception_request_document_their_fields_alike() {
        let create = schema_of::<CreateInstanceRequest>();
        let requested = schema_of::<RequestedInstance>();
        for field in REQUIRED_TEXT {
            assert_eq!(
                create["properties"][field]["pattern"], requested["properties"][field]["pattern"],
                "{field}"
            );
        }
    }

    proptest! {
        #[test]
        fn a_text_is_refused_as_blank_exactly_when_the_schema_forbids_it(text in blanks_and_text()) {
            let schema = schema_of::<CreateInstanceRequest>();
            for field in REQUIRED_TEXT {
                prop_assert_eq!(
                    required(field, Some(&text)).is_none(),
                    allows(&schema, field, &text),
                    "{}: {:?}", field, text
                );
            }
        }
    }
}
