//! Tokens an attacker might send. Every one must be refused with `401` and nothing may reach
//! the cloud.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use starrocks_gateway::demo::idp::SigningKey;

use crate::helpers::{TestApp, alice_claims, now, small_instance, with};

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().expect("object").remove(key);
    claims
}

fn signed(app: &TestApp, claims: &Value) -> String {
    app.stack.idp.sign(claims).expect("signed")
}

fn rs256_header(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    header
}

/// Every attack: (name, Authorization header value or none). `bait` is a URL of a listener
/// that counts connections: a header pointing there must never be followed.
fn attacks(app: &TestApp, bait: &str) -> Vec<(&'static str, Option<String>)> {
    let good = alice_claims(app);
    let kid = app.stack.idp.kid();
    let attacker = SigningKey::generate().expect("attacker key");
    let valid = signed(app, &good);
    let (valid_head, valid_rest) = valid.split_once('.').expect("three parts");
    let (valid_payload, valid_signature) = valid_rest.split_once('.').expect("three parts");
    let hmac_with_public_key = |alg: Algorithm| {
        let mut header = Header::new(alg);
        header.kid = Some(kid.clone());
        let key = EncodingKey::from_secret(app.stack.idp.public_key_pem().as_bytes());
        jsonwebtoken::encode(&header, &good, &key).expect("signed")
    };
    let bearer = |token: String| Some(format!("Bearer {token}"));
    let header_with = |edit: &dyn Fn(&mut Header)| {
        let mut header = rs256_header(&attacker.kid);
        edit(&mut header);
        attacker.sign(&header, &good).expect("signed")
    };
    vec![
        ("no Authorization header", None),
        ("empty bearer token", Some("Bearer ".into())),
        ("Basic instead of Bearer", Some(format!("Basic {valid}"))),
        ("garbage", bearer("not-a-jwt".into())),
        (
            "two segments only",
            bearer(format!("{valid_head}.{valid_payload}")),
        ),
        (
            "header is not base64",
            bearer(format!("@@@.{valid_payload}.{valid_signature}")),
        ),
        (
            "header is not JSON",
            bearer(format!(
                "{}.{valid_payload}.{valid_signature}",
                URL_SAFE_NO_PAD.encode("nope")
            )),
        ),
        (
            "alg none",
            bearer(format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&good)
            )),
        ),
        (
            "alg nOnE",
            bearer(format!(
                "{}.{}.",
                b64(&json!({"alg": "nOnE", "typ": "JWT"})),
                b64(&good)
            )),
        ),
        (
            "HS256 signed with the RSA public key",
            bearer(hmac_with_public_key(Algorithm::HS256)),
        ),
        (
            "HS512 signed with the RSA public key",
            bearer(hmac_with_public_key(Algorithm::HS512)),
        ),
        ("PS256 with the real key, which its JWK pins to RS256", {
            let mut header = Header::new(Algorithm::PS256);
            header.kid = Some(kid.clone());
            bearer(
                app.stack
                    .idp
                    .sign_with_header(&header, &good)
                    .expect("signed"),
            )
        }),
        (
            "forged signature under the real kid",
            bearer(attacker.sign(&rs256_header(&kid), &good).expect("signed")),
        ),
        (
            "unknown kid",
            bearer(
                attacker
                    .sign(&rs256_header(&attacker.kid), &good)
                    .expect("signed"),
            ),
        ),
        (
            "no kid, foreign key",
            bearer(
                attacker
                    .sign(&Header::new(Algorithm::RS256), &good)
                    .expect("signed"),
            ),
        ),
        (
            "embedded jwk with the attacker's key",
            bearer(header_with(&|h| h.jwk = Some(attacker.jwk.clone()))),
        ),
        (
            "jku pointing at the attacker's JWKS",
            bearer(header_with(&|h| {
                h.jku = Some(format!("{bait}/jwks.json"));
            })),
        ),
        (
            "x5u pointing at the attacker's certificate",
            bearer(header_with(&|h| {
                h.x5u = Some(format!("{bait}/cert.pem"));
            })),
        ),
        ("crit with a registered claim", {
            let mut header = rs256_header(&kid);
            header.crit = Some(vec!["exp".into()]);
            bearer(
                app.stack
                    .idp
                    .sign_with_header(&header, &good)
                    .expect("signed"),
            )
        }),
        ("crit with an unknown extension", {
            let mut header = rs256_header(&kid);
            header.crit = Some(vec!["https://evil.example.com/ext".into()]);
            bearer(
                app.stack
                    .idp
                    .sign_with_header(&header, &good)
                    .expect("signed"),
            )
        }),
        (
            "signature stripped",
            bearer(format!("{valid_head}.{valid_payload}.")),
        ),
        (
            "payload tampered after signing",
            bearer(format!(
                "{valid_head}.{}.{valid_signature}",
                b64(&with(good.clone(), "team", json!("payments")))
            )),
        ),
        (
            "expired",
            bearer(signed(app, &with(good.clone(), "exp", json!(now() - 120)))),
        ),
        (
            "not valid before the future",
            bearer(signed(app, &with(good.clone(), "nbf", json!(now() + 300)))),
        ),
        (
            "wrong issuer",
            bearer(signed(
                app,
                &with(good.clone(), "iss", json!("https://evil.example.com")),
            )),
        ),
        (
            "wrong audience",
            bearer(signed(
                app,
                &with(good.clone(), "aud", json!("another-service")),
            )),
        ),
        (
            "audience list without ours",
            bearer(signed(app, &with(good.clone(), "aud", json!(["a", "b"])))),
        ),
        (
            "missing exp",
            bearer(signed(app, &without(good.clone(), "exp"))),
        ),
        (
            "missing iss",
            bearer(signed(app, &without(good.clone(), "iss"))),
        ),
        (
            "missing aud",
            bearer(signed(app, &without(good.clone(), "aud"))),
        ),
        (
            "string exp",
            bearer(signed(
                app,
                &with(good.clone(), "exp", json!((now() + 600).to_string())),
            )),
        ),
        (
            "string nbf",
            bearer(signed(
                app,
                &with(good.clone(), "nbf", json!(now().to_string())),
            )),
        ),
        (
            "lifetime beyond the maximum",
            bearer(signed(
                app,
                &with(good.clone(), "exp", json!(now() + 3 * 86_400)),
            )),
        ),
        (
            "missing iat",
            bearer(signed(app, &without(good.clone(), "iat"))),
        ),
        (
            "iat in the future",
            bearer(signed(
                app,
                &with(good.clone(), "iat", json!(now() + 3_600)),
            )),
        ),
        (
            "empty subject",
            bearer(signed(app, &with(good.clone(), "sub", json!("")))),
        ),
        (
            "numeric subject",
            bearer(signed(app, &with(good.clone(), "sub", json!(42)))),
        ),
        (
            "oversized token",
            bearer(signed(
                app,
                &with(good.clone(), "padding", json!("x".repeat(9_000))),
            )),
        ),
    ]
}

/// Why each attack is refused: a fragment of the `401`'s detail.
fn reason_of(attack: &str) -> &'static str {
    match attack {
        "no Authorization header" | "empty bearer token" | "Basic instead of Bearer" => {
            "missing bearer token"
        }
        "garbage" | "two segments only" | "header is not base64" | "header is not JSON" => {
            "malformed"
        }
        "alg none" => "algorithm is not accepted: it is `none`; accepted: RS256, RS384",
        "alg nOnE" => "algorithm is not accepted: it is `nOnE`; accepted: RS256, RS384",
        "HS256 signed with the RSA public key" => {
            "algorithm is not accepted: it is `HS256`; accepted: RS256, RS384"
        }
        "HS512 signed with the RSA public key" => {
            "algorithm is not accepted: it is `HS512`; accepted: RS256, RS384"
        }
        "PS256 with the real key, which its JWK pins to RS256" => {
            "signed with PS256, but its key verifies RS256 only"
        }
        "unknown kid"
        | "embedded jwk with the attacker's key"
        | "jku pointing at the attacker's JWKS"
        | "x5u pointing at the attacker's certificate" => "unknown key",
        "forged signature under the real kid"
        | "payload tampered after signing"
        | "signature stripped"
        | "no kid, foreign key" => "signature is invalid",
        "crit with a registered claim" | "crit with an unknown extension" => "critical header",
        "expired" => "expired",
        "not valid before the future" | "iat in the future" => "not valid yet",
        "wrong issuer" => "unexpected issuer",
        "wrong audience" | "audience list without ours" => "audience",
        "missing exp" | "string exp" => "claim `exp`",
        "missing iss" => "claim `iss`",
        "missing aud" => "claim `aud`",
        "missing iat" => "claim `iat`",
        "string nbf" => "claim `nbf` has the wrong type",
        "numeric subject" => "claim `sub` has the wrong type",
        "lifetime beyond the maximum" => "lives longer",
        "oversized token" => "larger than the accepted size",
        "empty subject" => "claim `sub`",
        _ => "",
    }
}

#[tokio::test]
async fn every_attack_token_is_401_for_its_own_reason_and_nothing_reaches_the_cloud() {
    let app = TestApp::spawn().await;
    let bait = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bait listener");
    let bait_url = format!("http://{}", bait.local_addr().expect("address"));
    let contacted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&contacted);
    let listening = tokio::spawn(async move {
        while bait.accept().await.is_ok() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });

    let mut wrong_reasons = Vec::new();
    for (name, authorization) in attacks(&app, &bait_url) {
        let mut request = app
            .client
            .post(format!("{}/v1/starrocks", app.stack.gateway_url))
            .json(&small_instance());
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let response = request.send().await.expect("answer");

        assert_eq!(response.status(), 401, "{name}");
        assert!(
            response.headers().contains_key("www-authenticate"),
            "{name}"
        );
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["code"], "unauthenticated", "{name}");
        let reason = reason_of(name);
        if reason.is_empty() || !body["detail"].as_str().is_some_and(|d| d.contains(reason)) {
            wrong_reasons.push(format!(
                "{name}: expected `{reason}`, got {}",
                body["detail"]
            ));
        }
    }
    assert!(wrong_reasons.is_empty(), "{wrong_reasons:#?}");
    listening.abort();
    assert_eq!(
        contacted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a jku or x5u header was followed"
    );
    assert_eq!(app.sim_stats().await.creates_received, 0);
}

#[tokio::test]
async fn a_token_of_an_unexpected_type_is_401_when_a_type_is_required() {
    let app = TestApp::builder()
        .settings(|s| s.auth.expected_typ = Some("at+jwt".into()))
        .spawn()
        .await;
    let good = alice_claims(&app);
    let mut typed = rs256_header(&app.stack.idp.kid());
    typed.typ = Some("at+jwt".into());

    let plain = app.create(&signed(&app, &good), &small_instance()).await;
    let access_token = app
        .create(
            &app.stack
                .idp
                .sign_with_header(&typed, &good)
                .expect("signed"),
            &small_instance(),
        )
        .await;

    assert_eq!(plain.status(), 401);
    assert_eq!(access_token.status(), 201);
}
