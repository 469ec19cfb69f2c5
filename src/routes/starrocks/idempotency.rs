//! `Idempotency-Key` in the wire format: what a keyed create's answer is kept as
//! ([`saved_response`], handed to the use case, which stores it in the create's last
//! transaction), and how a kept answer is replayed ([`replay`]). Only answers worth replaying
//! are kept: an instance that exists, or may (pending). Every other failure had no effect
//! upstream, so the key is forgotten and a retry simply runs again.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;

use super::wire::CreatedInstanceResponse;
use crate::http::error::{ApiError, PROBLEM_JSON};
use crate::service::Gateway;
use crate::service::create::{CreateAnswer, CreateError, Created};
use crate::storage::idempotency::SavedResponse;
use crate::storage::ledger::ReservationState;

const REPLAYED_HEADER: &str = "idempotent-replayed";

/// What a retry with the key should see after `result`; `None` forgets the key.
pub fn saved_response(result: &Result<CreateAnswer, CreateError>) -> Option<SavedResponse> {
    match result {
        // The generated password is shown once, never stored, so never replayed.
        Ok(CreateAnswer::Created(created)) => serde_json::to_string(&CreatedInstanceResponse {
            root_password: None,
            ..CreatedInstanceResponse::from(Created::clone(created))
        })
        .ok()
        .map(|body| SavedResponse {
            status: 201,
            body,
            reservation_id: None,
        }),
        Ok(CreateAnswer::Replayed(_)) => None,
        Err(error) => error.pending_reservation().and_then(|reservation_id| {
            let problem = ApiError::from(error).problem().clone();
            serde_json::to_string(&problem)
                .ok()
                .map(|body| SavedResponse {
                    status: problem.status,
                    body,
                    reservation_id: Some(reservation_id.to_owned()),
                })
        }),
    }
}

/// The first answer again. An ambiguous first answer is replaced by the instance when
/// reconciliation has found it since.
pub async fn replay(gateway: &Gateway, saved: SavedResponse) -> HttpResponse {
    if saved.status != 201
        && let Some(id) = saved.reservation_id.as_deref()
        && let Ok(Some(reservation)) = gateway.store.reservation(id).await
        && reservation.state == ReservationState::Committed
        && let Some(instance_id) = reservation.instance_id.clone()
    {
        let reservation = gateway.located(reservation);
        return HttpResponse::Created()
            .insert_header((REPLAYED_HEADER, "true"))
            .json(CreatedInstanceResponse {
                id: instance_id,
                name: reservation.name,
                status: "creating".into(),
                job_id: reservation.job_id,
                team: reservation.team,
                region: reservation.region.unwrap_or_default(),
                target: reservation.target,
                size: reservation.size,
                labels: reservation.labels,
                decision_id: reservation.decision_id,
                request_id: String::new(),
                root_password: None,
            });
    }
    let content_type = if saved.status == 201 {
        "application/json"
    } else {
        PROBLEM_JSON
    };
    HttpResponse::build(StatusCode::from_u16(saved.status).unwrap_or(StatusCode::OK))
        .insert_header((REPLAYED_HEADER, "true"))
        .content_type(content_type)
        .body(saved.body)
}
