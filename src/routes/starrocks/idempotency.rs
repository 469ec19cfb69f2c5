//! `Idempotency-Key` as a wrapper around the create use case: [`once`] asks the store what to
//! do ([`NextAction`]), runs the use case only when the key is new, and saves the answer worth
//! replaying: an instance that exists, or may (pending). Every other failure had no effect
//! upstream, so the key is forgotten and a retry simply runs again.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;

use super::wire::CreatedInstanceResponse;
use crate::http::error::{ApiError, PROBLEM_JSON};
use crate::service::Gateway;
use crate::service::create::{CreateError, Created};
use crate::storage::idempotency::{KeyedRequest, NextAction, SavedResponse};
use crate::storage::ledger::ReservationState;

const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Runs `create` at most once per key and body; without a key, simply runs it.
pub async fn once(
    gateway: &Gateway,
    keyed: Option<KeyedRequest<'_>>,
    create: impl Future<Output = Result<Created, CreateError>>,
) -> Result<HttpResponse, ApiError> {
    let Some(keyed) = keyed else {
        return respond(create.await);
    };
    match gateway
        .store
        .try_processing(&keyed, gateway.idempotency_ttl_ms)
        .await?
    {
        NextAction::ReturnSaved(saved) => return Ok(replay(gateway, saved).await),
        NextAction::StartProcessing => {}
    }
    let result = create.await;
    save_response(gateway, &keyed, &result).await;
    respond(result)
}

fn respond(result: Result<Created, CreateError>) -> Result<HttpResponse, ApiError> {
    let created = CreatedInstanceResponse::from(result?);
    Ok(HttpResponse::Created().json(created))
}

/// Keeps what a retry should see, or forgets the key. A failure here is logged: the caller
/// still gets the answer, and at worst a retry runs again.
async fn save_response(
    gateway: &Gateway,
    keyed: &KeyedRequest<'_>,
    result: &Result<Created, CreateError>,
) {
    let saved = match result {
        // The generated password is shown once, never stored, so never replayed.
        Ok(created) => serde_json::to_string(&CreatedInstanceResponse {
            root_password: None,
            ..CreatedInstanceResponse::from(created.clone())
        })
        .ok()
        .map(|body| SavedResponse {
            status: 201,
            body,
            reservation_id: None,
        }),
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
    };
    let stored = match saved {
        Some(saved) => gateway.store.save_response(keyed, &saved).await,
        None => gateway.store.forget_key(keyed).await,
    };
    if let Err(error) = stored {
        tracing::error!(error = ?error, "storing the idempotency record failed");
    }
}

/// The first answer again. An ambiguous first answer is replaced by the instance when
/// reconciliation has found it since.
async fn replay(gateway: &Gateway, saved: SavedResponse) -> HttpResponse {
    if saved.status != 201
        && let Some(id) = saved.reservation_id.as_deref()
        && let Ok(Some(reservation)) = gateway.store.reservation(id).await
        && reservation.state == ReservationState::Committed
        && let Some(instance_id) = reservation.instance_id
    {
        return HttpResponse::Created()
            .insert_header((REPLAYED_HEADER, "true"))
            .json(CreatedInstanceResponse {
                id: instance_id,
                name: reservation.name,
                status: "creating".into(),
                job_id: reservation.job_id,
                team: reservation.team,
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
