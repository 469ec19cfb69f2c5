//! The identity provider's keys: rotation, floods of unknown `kid`s, outages and garbage.

use std::time::Duration;

use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, Header};
use starrocks_gateway::demo::idp::{JwksMode, SigningKey};

use crate::helpers::{TestApp, employee, problem, small_instance};

#[tokio::test]
async fn a_rotated_key_is_accepted_after_one_refetch() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.create(&app.alice(), &small_instance()).await.status(),
        201
    );
    let fetches_before = app.stack.idp.jwks_fetches();

    app.stack.idp.rotate().expect("rotation");
    let response = app.create(&app.alice(), &small_instance()).await;

    assert_eq!(response.status(), 201);
    assert_eq!(app.stack.idp.jwks_fetches(), fetches_before + 1);
}

#[tokio::test]
async fn two_rotations_in_a_row_are_both_picked_up_at_once() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.create(&app.alice(), &small_instance()).await.status(),
        201
    );
    let fetches_before = app.stack.idp.jwks_fetches();

    app.stack.idp.rotate().expect("first rotation");
    let after_first = app
        .create(&app.token_for("alice2", "analytics"), &small_instance())
        .await;
    app.stack
        .idp
        .rotate()
        .expect("second rotation, seconds later");
    let after_second = app
        .create(&app.token_for("alice3", "analytics"), &small_instance())
        .await;

    assert_eq!(after_first.status(), 201);
    assert_eq!(
        after_second.status(),
        201,
        "the newest key is not refused for the minimum refetch interval"
    );
    assert_eq!(app.stack.idp.jwks_fetches(), fetches_before + 2);
}

#[tokio::test]
async fn the_jwks_max_age_brings_the_next_refresh_forward() {
    let app = TestApp::builder()
        .settings(|s| s.auth.jwks_refresh_secs = 300)
        .spawn()
        .await;
    app.stack.idp.set_jwks_max_age(Some(1));
    app.stack.idp.rotate().expect("rotation");
    // The new kid fetches the set, which now says `max-age=1`.
    assert_eq!(
        app.create(&app.token_for("alice2", "analytics"), &small_instance())
            .await
            .status(),
        201
    );
    let fetched_with_max_age = app.stack.idp.jwks_fetches();

    tokio::time::sleep(Duration::from_millis(2_600)).await;

    let background = app.stack.idp.jwks_fetches() - fetched_with_max_age;
    assert!(
        (1..=3).contains(&background),
        "{background} background refreshes in 2.6 s: max-age=1 honoured, at most one a second"
    );
}

#[tokio::test]
async fn a_thousand_unknown_kids_cost_at_most_the_refetch_burst() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.create(&app.alice(), &small_instance()).await.status(),
        201
    );
    let fetches_before = app.stack.idp.jwks_fetches();
    let attacker = SigningKey::generate().expect("key");
    let claims = app
        .stack
        .idp
        .standard_claims(&employee("alice", "analytics"));
    let tokens: Vec<String> = (0..1_000)
        .map(|i| {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some(format!("forged-{i}"));
            attacker.sign(&header, &claims).expect("signed")
        })
        .collect();

    let statuses: Vec<u16> = futures_util::stream::iter(tokens.iter())
        .map(|token| async { app.create(token, &small_instance()).await.status().as_u16() })
        .buffer_unordered(32)
        .collect()
        .await;

    assert!(statuses.iter().all(|s| *s == 401));
    let fetches = app.stack.idp.jwks_fetches() - fetches_before;
    assert!(
        (1..=3).contains(&fetches),
        "{fetches} fetches; the burst is 3 and the test takes less than a refill interval"
    );
    assert_eq!(app.sim_stats().await.creates_received, 1);
}

#[tokio::test]
async fn the_last_good_keys_keep_serving_while_the_idp_is_down() {
    let app = TestApp::builder()
        .settings(|s| s.auth.jwks_refresh_secs = 1)
        .spawn()
        .await;
    assert_eq!(
        app.create(&app.alice(), &small_instance()).await.status(),
        201
    );
    let fetches_before = app.stack.idp.jwks_fetches();

    app.stack.idp.set_jwks_mode(JwksMode::Down);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let fresh_token = app.token_for("alice2", "analytics");
    let response = app.create(&fresh_token, &small_instance()).await;

    assert!(
        app.stack.idp.jwks_fetches() > fetches_before,
        "background refreshes were attempted"
    );
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn keys_older_than_the_stale_allowance_are_not_trusted() {
    let app = TestApp::builder()
        .settings(|s| {
            s.auth.jwks_refresh_secs = 1;
            s.auth.jwks_max_stale_secs = 1;
            s.auth.jwks_min_refetch_interval_secs = 0;
        })
        .spawn()
        .await;
    assert_eq!(
        app.create(&app.alice(), &small_instance()).await.status(),
        201
    );

    app.stack.idp.set_jwks_mode(JwksMode::Down);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let response = app
        .create(&app.token_for("alice2", "analytics"), &small_instance())
        .await;

    assert_eq!(response.status(), 503);
    assert_eq!(
        problem(response).await["code"],
        "identity_provider_unavailable"
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
}

#[tokio::test]
async fn a_jwks_serving_garbage_never_panics_and_recovers() {
    let app = TestApp::spawn().await;
    app.stack.idp.set_jwks_mode(JwksMode::Garbage);

    let during = app.create(&app.alice(), &small_instance()).await;
    let health = app.get("/healthz").await;
    app.stack.idp.set_jwks_mode(JwksMode::Normal);
    let after = app.create(&app.alice(), &small_instance()).await;

    assert_eq!(during.status(), 503);
    assert_eq!(
        problem(during).await["code"],
        "identity_provider_unavailable"
    );
    assert_eq!(health.status(), 200);
    assert_eq!(after.status(), 201);
}

#[tokio::test]
async fn keys_are_found_through_oidc_discovery() {
    let app = TestApp::builder()
        .settings(|s| {
            s.auth.jwks_url = None;
            s.auth.oidc_discovery = true;
        })
        .spawn()
        .await;

    assert_eq!(
        app.create(&app.alice(), &small_instance()).await.status(),
        201
    );
}

#[tokio::test]
async fn keys_can_come_from_a_pem_file() {
    let app = TestApp::spawn().await;
    let pem_path = std::env::temp_dir().join(format!("srgw-test-keys-{}.pem", std::process::id()));
    std::fs::write(&pem_path, app.stack.idp.public_key_pem()).expect("write");
    let offline = TestApp::builder()
        .settings(|s| {
            s.auth.jwks_url = None;
            s.auth.keys_file = Some(pem_path.clone());
            s.auth.issuer = app.stack.idp.issuer().to_owned();
        })
        .spawn()
        .await;
    // The second stack's IdP has its own key; sign with the first stack's key, whose public
    // half is the only key the second gateway knows.
    let mut claims = offline
        .stack
        .idp
        .standard_claims(&employee("alice", "analytics"));
    claims["iss"] = app.stack.idp.issuer().into();

    let response = offline
        .create(
            &app.stack.idp.sign(&claims).expect("signed"),
            &small_instance(),
        )
        .await;
    drop(std::fs::remove_file(&pem_path));

    assert_eq!(response.status(), 201);
    assert_eq!(
        offline.stack.idp.jwks_fetches(),
        0,
        "no JWKS is fetched with a key file"
    );
}

#[tokio::test]
async fn a_remembered_token_is_trusted_only_while_its_keys_are() {
    let app = TestApp::builder()
        .settings(|s| {
            s.auth.jwks_refresh_secs = 1;
            s.auth.jwks_max_stale_secs = 1;
        })
        .spawn()
        .await;
    let token = app.alice();
    assert_eq!(app.create(&token, &small_instance()).await.status(), 201);

    app.stack.idp.set_jwks_mode(JwksMode::Down);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let remembered = app.create(&token, &small_instance()).await;
    let unseen = app
        .create(&app.token_for("bob", "payments"), &small_instance())
        .await;

    assert_eq!(
        remembered.status(),
        503,
        "a token verified earlier is no better than a new one once the keys are too old"
    );
    assert_eq!(
        problem(remembered).await["code"],
        "identity_provider_unavailable"
    );
    assert_eq!(unseen.status(), 503);
    assert_eq!(app.sim_stats().await.creates_received, 1);
}

#[tokio::test]
async fn a_remembered_token_is_refused_once_its_key_leaves_the_jwks() {
    let app = TestApp::spawn().await;
    let old = app.alice();
    assert_eq!(app.create(&old, &small_instance()).await.status(), 201);

    app.stack.idp.rotate().expect("rotation");
    app.stack.idp.retire_old_keys();
    let signed_with_the_new_key = app.token_for("alice2", "analytics");
    let fetches_before = app.stack.idp.jwks_fetches();
    let new = app
        .create(&signed_with_the_new_key, &small_instance())
        .await;
    let fetches_for_the_new_kid = app.stack.idp.jwks_fetches() - fetches_before;
    let remembered = app.create(&old, &small_instance()).await;

    assert_eq!(new.status(), 201);
    assert_eq!(
        fetches_for_the_new_kid, 1,
        "the new kid made the gateway fetch the set without the old key"
    );
    assert_eq!(remembered.status(), 401);
    assert_eq!(problem(remembered).await["code"], "unauthenticated");
    assert_eq!(app.sim_stats().await.creates_received, 2);
}
