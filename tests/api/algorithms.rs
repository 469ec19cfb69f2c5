//! Signing algorithms: with no `algorithms` configured, every asymmetric family is accepted,
//! each key pinned to its JWK's `alg` or its key type; RFC 9864's `Ed25519` name verifies
//! as EdDSA; an allow-list refuses the rest, naming them.

use std::path::PathBuf;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::helpers::{TestApp, employee, problem};

/// A private key, the public JWK published for it (under `kid`) and the JWS name it signs
/// with by default.
struct Key {
    kid: &'static str,
    encoding: EncodingKey,
    verifier: Algorithm,
    jwk: Value,
}

fn published(jwk: Jwk, kid: &str, alg: Option<&str>) -> Value {
    let mut value = serde_json::to_value(jwk).expect("a JWK serializes");
    let object = value.as_object_mut().expect("an object");
    object.retain(|name, _| !matches!(name.as_str(), "alg" | "use" | "kid" | "key_ops"));
    object.insert("kid".into(), kid.into());
    object.insert("use".into(), "sig".into());
    if let Some(alg) = alg {
        object.insert("alg".into(), alg.into());
    }
    value
}

/// An RSA key whose JWK names no `alg`, as Azure AD publishes them: RS* and PS* both verify.
fn rsa(kid: &'static str) -> Key {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("an RSA key");
    let der = pair.as_der().expect("PKCS#8");
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
    let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("the RSA key");
    let jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("the JWK");
    Key {
        kid,
        jwk: published(jwk, kid, None),
        encoding,
        verifier: Algorithm::RS256,
    }
}

fn ec(kid: &'static str, p384: bool, alg: Option<&str>) -> Key {
    let (signing, verifier) = if p384 {
        (&ECDSA_P384_SHA384_FIXED_SIGNING, Algorithm::ES384)
    } else {
        (&ECDSA_P256_SHA256_FIXED_SIGNING, Algorithm::ES256)
    };
    let pair = EcdsaKeyPair::generate(signing).expect("an EC key");
    let encoding = EncodingKey::from_ec_der(pair.to_pkcs8v1().expect("PKCS#8").as_ref());
    let jwk = Jwk::from_encoding_key(&encoding, verifier).expect("the JWK");
    Key {
        kid,
        jwk: published(jwk, kid, alg),
        encoding,
        verifier,
    }
}

/// An Ed25519 key published with the fully specified `alg` of RFC 9864.
fn ed25519(kid: &'static str) -> Key {
    let pair = Ed25519KeyPair::generate().expect("an Ed25519 key");
    let encoding = EncodingKey::from_ed_der(pair.to_pkcs8().expect("PKCS#8").as_ref());
    let jwk = json!({
        "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        "use": "sig", "alg": "Ed25519", "kid": kid,
    });
    Key {
        kid,
        encoding,
        verifier: Algorithm::EdDSA,
        jwk,
    }
}

/// A compact JWS with `alg` exactly as given, signed by `key` (jsonwebtoken cannot put
/// `Ed25519` in a header).
fn sign(key: &Key, alg: &str, verifier: Algorithm, claims: &Value) -> String {
    let header = json!({"alg": alg, "kid": key.kid, "typ": "JWT"});
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key.encoding, verifier).expect("signed");
    format!("{message}.{signature}")
}

fn key_file(keys: &[&Key]) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "srgw-algorithms-{}-{}.json",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let document = json!({"keys": keys.iter().map(|key| key.jwk.clone()).collect::<Vec<_>>()});
    std::fs::write(&path, document.to_string()).expect("the key file");
    path
}

/// A gateway trusting only `keys`, from a JWKS file, with `algorithms` as given.
async fn gateway(keys: &[&Key], algorithms: Option<&[&str]>) -> TestApp {
    let path = key_file(keys);
    let algorithms = algorithms.map(|names| {
        names
            .iter()
            .map(|name| name.parse().expect("a supported name"))
            .collect()
    });
    let app = TestApp::builder()
        .settings(|s| {
            s.auth.jwks_url = None;
            s.auth.keys_file = Some(path.clone());
            s.auth.algorithms = algorithms;
        })
        .spawn()
        .await;
    drop(std::fs::remove_file(&path));
    app
}

#[tokio::test]
async fn every_family_is_accepted_by_default_including_the_ed25519_name() {
    let (rsa, p256, p384, ed) = (
        rsa("rsa"),
        ec("p256", false, Some("ES256")),
        ec("p384", true, None),
        ed25519("ed"),
    );
    let app = gateway(&[&rsa, &p256, &p384, &ed], None).await;
    let claims = app
        .stack
        .idp
        .standard_claims(&employee("alice", "analytics"));

    for (key, alg, verifier) in [
        (&rsa, "RS256", Algorithm::RS256),
        (&rsa, "RS512", Algorithm::RS512),
        (&rsa, "PS256", Algorithm::PS256),
        (&rsa, "PS384", Algorithm::PS384),
        (&p256, "ES256", p256.verifier),
        (&p384, "ES384", p384.verifier),
        (&ed, "EdDSA", ed.verifier),
        (&ed, "Ed25519", ed.verifier),
    ] {
        let response = app.me(&sign(key, alg, verifier, &claims)).await;
        assert_eq!(response.status(), 200, "{alg} with key {}", key.kid);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["subject"], "alice", "{alg}");
    }
}

#[tokio::test]
async fn each_key_verifies_only_its_own_algorithm() {
    let (p256, p384) = (ec("p256", false, Some("ES256")), ec("p384", true, None));
    let app = gateway(&[&p256, &p384], None).await;
    let claims = app
        .stack
        .idp
        .standard_claims(&employee("alice", "analytics"));

    // The P-384 key's JWK names no alg: its curve pins it to ES384. (A header may claim any
    // algorithm; the signature is the key's own.)
    let p384_as_es256 = app.me(&sign(&p384, "ES256", p384.verifier, &claims)).await;
    assert_eq!(p384_as_es256.status(), 401);
    assert!(
        problem(p384_as_es256).await["detail"]
            .as_str()
            .is_some_and(|d| d.contains("signed with ES256, but its key verifies ES384 only")),
    );
    let p256_as_es384 = app.me(&sign(&p256, "ES384", p256.verifier, &claims)).await;
    assert_eq!(p256_as_es384.status(), 401);
}

#[tokio::test]
async fn an_allow_list_refuses_other_algorithms_and_names_them() {
    let (rsa, ed) = (rsa("rsa"), ed25519("ed"));
    let app = gateway(&[&rsa, &ed], Some(&["RS256", "PS256"])).await;
    let claims = app
        .stack
        .idp
        .standard_claims(&employee("alice", "analytics"));

    assert_eq!(
        app.me(&sign(&rsa, "PS256", Algorithm::PS256, &claims))
            .await
            .status(),
        200
    );
    let refused = app
        .me(&sign(&ed, "Ed25519", Algorithm::EdDSA, &claims))
        .await;
    assert_eq!(refused.status(), 401);
    let challenge = refused
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_default();
    assert_eq!(
        problem(refused).await["detail"],
        "the token's signing algorithm is not accepted: it is `Ed25519`; accepted: RS256, PS256"
    );
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}
