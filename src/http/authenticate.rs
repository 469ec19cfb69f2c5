//! Phase 1, **authenticate**, at the edge: every `/v1` request's bearer token is verified by
//! [`Authenticator`] before its body is read, and the [`Employee`] stored in the request for
//! the handlers (`web::ReqData<Employee>`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};

use super::error::ApiError;
use crate::pipeline::authenticate::{AuthError, Authenticator, Employee};

/// Middleware on `/v1`: verifies the bearer token and stores the [`Employee`] in the request.
pub async fn require_employee(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let outcome = match request.app_data::<web::Data<Authenticator>>() {
        Some(authenticator) => match bearer_token(&request) {
            Some(token) => authenticator.verify(token).await,
            None => Err(AuthError::MissingToken),
        },
        None => {
            return Err(actix_web::error::ErrorInternalServerError(
                "authenticator missing",
            ));
        }
    };
    match outcome {
        Ok(employee) => {
            tracing::Span::current().record("employee.subject", employee.subject.as_str());
            request.extensions_mut().insert(Employee::clone(&employee));
            next.call(request)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(error) => {
            tracing::info!(error = %error, "request refused by authentication");
            Ok(request
                .error_response(ApiError::from(error))
                .map_into_right_body())
        }
    }
}

fn bearer_token(request: &ServiceRequest) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
