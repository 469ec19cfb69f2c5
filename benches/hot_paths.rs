//! Micro-benchmarks of the create path's CPU-bound steps: bearer JWT verification (RS256,
//! ES256, EdDSA, through the gateway's own `Authenticator` and a JWKS key file, as an IdP
//! publishes them), a verified-token cache hit, policy evaluation (which expands the request
//! into the upstream body), serializing that body as it goes upstream, and the per-employee
//! rate limit every `/v1` request passes (over 1,000 employees' buckets), and a create's two
//! ledger writes on SQLite (in memory, which isolates the hand-off to the writer and the SQL
//! from the disk, and in a file, with its two fsyncs).
//!
//! `cargo bench --bench hot_paths` measures; `cargo bench --bench hot_paths -- --test` runs
//! each benchmark once (the CI smoke run). The keys are generated at start with aws-lc-rs.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jsonwebtoken::jwk::{CommonParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use actix_web::http::Method;
use starrocks_gateway::config::StorageSettings;
use starrocks_gateway::config::{AuthSettings, LimitSettings};
use starrocks_gateway::domain::{InstanceName, RootPassword};
use starrocks_gateway::http::rate_limit::{Admission, RateLimits};
use starrocks_gateway::identity::KeyStore;
use starrocks_gateway::pipeline::authenticate::{Authenticator, Employee};
use starrocks_gateway::pipeline::evaluate::{CreateRequest, evaluate};
use starrocks_gateway::policy::Policy;
use starrocks_gateway::storage::Store;
use starrocks_gateway::storage::ledger::{Cost, NewReservation, Reserve, ReserveOutcome};

const ISSUER: &str = "https://idp.bench.example";
const AUDIENCE: &str = "starrocks-gateway";
const EXAMPLE_POLICY: &str = include_str!("../config/policy.example.toml");

/// A signing key and the public JWK the IdP would publish for it.
struct SigningKey {
    algorithm: Algorithm,
    kid: &'static str,
    encoding: EncodingKey,
    jwk: Value,
}

fn with_common(mut jwk: Jwk, algorithm: KeyAlgorithm, kid: &str) -> Value {
    jwk.common = CommonParameters {
        public_key_use: Some(PublicKeyUse::Signature),
        key_algorithm: Some(algorithm),
        key_id: Some(kid.to_owned()),
        ..CommonParameters::default()
    };
    serde_json::to_value(jwk).expect("a JWK serializes")
}

fn rsa_key() -> SigningKey {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .expect("generating an RSA key");
    let der = pair.as_der().expect("encoding the RSA key as PKCS#8");
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
    let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("loading the RSA key");
    let jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("the RSA JWK");
    SigningKey {
        algorithm: Algorithm::RS256,
        kid: "bench-rs256",
        jwk: with_common(jwk, KeyAlgorithm::RS256, "bench-rs256"),
        encoding,
    }
}

fn ec_key() -> SigningKey {
    let pair =
        EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("generating a P-256 key");
    let der = pair.to_pkcs8v1().expect("encoding the P-256 key as PKCS#8");
    let encoding = EncodingKey::from_ec_der(der.as_ref());
    let jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).expect("the P-256 JWK");
    SigningKey {
        algorithm: Algorithm::ES256,
        kid: "bench-es256",
        jwk: with_common(jwk, KeyAlgorithm::ES256, "bench-es256"),
        encoding,
    }
}

fn ed_key() -> SigningKey {
    let pair = Ed25519KeyPair::generate().expect("generating an Ed25519 key");
    let der = pair.to_pkcs8().expect("encoding the Ed25519 key as PKCS#8");
    let encoding = EncodingKey::from_ed_der(der.as_ref());
    // jsonwebtoken derives no JWK from an Ed25519 key: an OKP key is its raw public key.
    let jwk = json!({
        "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        "use": "sig", "alg": "EdDSA", "kid": "bench-eddsa",
    });
    SigningKey {
        algorithm: Algorithm::EdDSA,
        kid: "bench-eddsa",
        jwk,
        encoding,
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A token as the demo IdP mints them: one team, an hour to live.
fn token(key: &SigningKey) -> String {
    let now = now_secs();
    let claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "email": "alice@example.com",
        "team": "analytics", "roles": [], "iat": now, "nbf": now, "exp": now + 3_600,
    });
    let mut header = Header::new(key.algorithm);
    header.kid = Some(key.kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &key.encoding).expect("signing a token")
}

/// The gateway's authenticator over a JWKS file holding `keys`, with the gateway's default
/// settings otherwise. A cache size of 0 turns the verified-token cache off.
fn authenticator(jwks_file: &Path, cache_size: u64) -> Authenticator {
    let settings: AuthSettings = serde_json::from_value(json!({
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "keys_file": jwks_file,
        "algorithms": ["RS256", "ES256", "EdDSA"],
        "verified_token_cache_size": cache_size,
    }))
    .expect("valid auth settings");
    let keys = KeyStore::new(&settings, reqwest::Client::new()).expect("the JWKS file loads");
    Authenticator::new(settings, Arc::new(keys))
}

fn jwt(c: &mut Criterion) {
    let keys = [rsa_key(), ec_key(), ed_key()];
    let dir = std::env::temp_dir().join(format!("hot-paths-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating the key directory");
    let jwks_file = dir.join("jwks.json");
    let jwks = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
    std::fs::write(&jwks_file, jwks.to_string()).expect("writing the JWKS file");
    let uncached = authenticator(&jwks_file, 0);
    let cached = authenticator(&jwks_file, 10_000);
    std::fs::remove_dir_all(&dir).expect("removing the key directory");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let mut group = c.benchmark_group("jwt_verify");
    for key in &keys {
        let token = token(key);
        runtime
            .block_on(uncached.verify(&token))
            .expect("the benchmark token verifies");
        group.bench_function(format!("{:?}", key.algorithm), |b| {
            b.to_async(&runtime)
                .iter(|| async { uncached.verify(black_box(&token)).await });
        });
    }
    group.finish();

    let token = token(&keys[0]);
    runtime
        .block_on(cached.verify(&token))
        .expect("the benchmark token verifies");
    c.bench_function("jwt_verify/cache_hit", |b| {
        b.to_async(&runtime)
            .iter(|| async { cached.verify(black_box(&token)).await });
    });
}

fn policy(c: &mut Criterion) {
    let policy = Policy::parse(EXAMPLE_POLICY).expect("the example policy");
    let employee = Employee {
        subject: "alice".into(),
        email: Some("alice@example.com".into()),
        teams: vec!["analytics".into()],
        admin: false,
        groups: Vec::new(),
    };
    let request = CreateRequest {
        name: InstanceName::parse("sales-cube").expect("a valid name"),
        target: "analytics-prod".into(),
        size: "small".into(),
        version: None,
        az: None,
        time_zone: None,
        labels: BTreeMap::from([
            ("owner".to_owned(), "alice".to_owned()),
            ("env".to_owned(), "prod".to_owned()),
        ]),
        lease_days: None,
    };
    let password = RootPassword::parse("Bench-Passw0rd!9").expect("a valid password");
    let decision_id = "0b7c1e4e-8f0a-4c3e-9d51-3f0e2b6a7c18".to_owned();

    c.bench_function("policy_evaluate", |b| {
        b.iter_batched(
            || (password.clone(), decision_id.clone()),
            |(password, decision_id)| {
                evaluate(
                    black_box(&employee),
                    "analytics",
                    black_box(&request),
                    password,
                    &policy,
                    decision_id,
                )
            },
            BatchSize::SmallInput,
        );
    });

    let plan = evaluate(
        &employee,
        "analytics",
        &request,
        password,
        &policy,
        decision_id,
    )
    .plan
    .expect("the example request is allowed");
    // What `reqwest`'s `.json(body)` does with the plan's body on the way upstream.
    c.bench_function("upstream_body_serialize", |b| {
        b.iter(|| serde_json::to_vec(black_box(&plan.body)).expect("the body serializes"));
    });
}

fn rate_limit(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // `RateLimits::start` spawns the task that forgets idle buckets.
    let _entered = runtime.enter();
    let limits = RateLimits::start(&LimitSettings {
        requests_per_second: 1_000_000,
        requests_burst: 1_000_000,
        ..LimitSettings::default()
    });
    let subjects: Vec<String> = (0..1_000).map(|i| format!("employee-{i}")).collect();
    for subject in &subjects {
        let admission = limits.admit(&Method::GET, "/v1/starrocks", subject);
        assert!(
            matches!(admission, Admission::Admitted(_)),
            "admitted under the limit"
        );
    }
    let mut turn = subjects.iter().cycle();
    c.bench_function("rate_limit_admit", |b| {
        b.iter(|| {
            let subject = turn.next().expect("an endless cycle");
            limits.admit(&Method::GET, black_box("/v1/starrocks"), black_box(subject))
        });
    });
}

/// A create's storage: the reservation, then its commit, each through the group writer. Each
/// for a team of its own: a team's usage is summed from its rows, and a real team holds a
/// few instances, not the thousands one team would pile up here.
async fn reserve_and_commit(store: &Store) {
    static TEAMS: AtomicU64 = AtomicU64::new(0);
    let team = format!("team-{}", TEAMS.fetch_add(1, Ordering::Relaxed));
    let id = uuid::Uuid::now_v7().to_string();
    let new = NewReservation {
        id: id.clone(),
        team,
        subject: "alice".into(),
        cost: Cost {
            instances: 1,
            nodes: 4,
            storage_gb: 400,
        },
        region: "cn-north-4".into(),
        project_id: "23a50154cf494ec9ad6883979a12db0a".into(),
        target: "analytics-dev".into(),
        target_instance_id: "0a1b2c3d4e5f4a5b8c9d0e1f2a3b4c5din07".into(),
        name: "bench".into(),
        size: "small".into(),
        labels: BTreeMap::new(),
        lease_ms: None,
        decision_id: id.clone(),
        request_id: id.clone(),
        exception_id: None,
    };
    let reserved = store
        .reserve(Reserve {
            new,
            limit: None,
            region_limit: None,
            key: None,
        })
        .await
        .expect("reserved");
    assert!(matches!(reserved, ReserveOutcome::Reserved { .. }));
    let committed = store
        .commit(&id, &format!("{id}in17"), None, "created")
        .await
        .expect("committed");
    assert!(committed);
}

fn ledger(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let file = std::env::temp_dir().join(format!("hot-paths-{}.db", uuid::Uuid::new_v4()));
    let mut group = c.benchmark_group("ledger_reserve_and_commit");
    for (name, url) in [
        ("sqlite_in_memory", "sqlite::memory:".to_owned()),
        ("sqlite_file", format!("sqlite://{}", file.display())),
    ] {
        let settings = StorageSettings {
            url: url.into(),
            create_if_missing: true,
            ..StorageSettings::default()
        };
        let store = runtime
            .block_on(Store::connect(&settings))
            .expect("the store opens");
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| reserve_and_commit(&store));
        });
        runtime.block_on(store.close());
    }
    group.finish();
    for suffix in ["", "-wal", "-shm"] {
        drop(std::fs::remove_file(format!("{}{suffix}", file.display())));
    }
}

criterion_group!(benches, jwt, policy, rate_limit, ledger);
criterion_main!(benches);
