//! A toy identity provider for the demo and the tests: one RSA key made at start, its JWKS
//! and OIDC discovery document served, and tokens minted for any employee on request.
//! It signs whatever it is asked to; never point a production gateway at it.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use jsonwebtoken::jwk::{CommonParameters, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The claims an employee token carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmployeeClaims {
    pub sub: String,
    pub email: String,
    pub team: String,
}

#[derive(Debug)]
pub struct DemoIdp {
    issuer: String,
    audience: String,
    kid: String,
    signing_key: EncodingKey,
    public_key_pem: String,
    jwks: JwkSet,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl DemoIdp {
    /// Makes a fresh RSA-2048 key; `issuer` is the URL this IdP will be reachable at.
    pub fn generate(issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let key_pair =
            KeyPair::generate(KeySize::Rsa2048).context("generating the demo RSA key")?;
        let private_der = key_pair.as_der().context("encoding the demo private key")?;
        let private_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", private_der.as_ref().to_vec()));
        let signing_key = EncodingKey::from_rsa_pem(private_pem.as_bytes())
            .context("loading the demo signing key")?;
        let public_der = key_pair
            .public_key()
            .as_der()
            .context("encoding the demo public key")?;
        let public_key_pem =
            pem::encode(&pem::Pem::new("PUBLIC KEY", public_der.as_ref().to_vec()));

        let kid = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let mut jwk = Jwk::from_encoding_key(&signing_key, Algorithm::RS256)
            .context("deriving the demo JWK")?;
        jwk.common = CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::RS256),
            key_id: Some(kid.clone()),
            ..CommonParameters::default()
        };
        Ok(Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            audience: audience.to_owned(),
            kid,
            signing_key,
            public_key_pem,
            jwks: JwkSet { keys: vec![jwk] },
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// The public key as PEM; the tests use it to forge an HS256 token with it as the secret.
    pub fn public_key_pem(&self) -> &str {
        &self.public_key_pem
    }

    /// A valid token for `employee`, living `ttl_secs`.
    pub fn mint(&self, employee: &EmployeeClaims, ttl_secs: u64) -> anyhow::Result<String> {
        let now = now_secs();
        let claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": employee.sub,
            "email": employee.email,
            "team": employee.team,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_secs,
        });
        self.sign(&claims)
    }

    /// Signs arbitrary claims with this IdP's key and `kid`.
    pub fn sign(&self, claims: &serde_json::Value) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        self.sign_with_header(&header, claims)
    }

    pub fn sign_with_header(
        &self,
        header: &Header,
        claims: &serde_json::Value,
    ) -> anyhow::Result<String> {
        jsonwebtoken::encode(header, claims, &self.signing_key).context("signing a demo token")
    }

    /// Standard claims of a valid token, for tests to alter one at a time.
    pub fn standard_claims(&self, employee: &EmployeeClaims) -> serde_json::Value {
        let now = now_secs();
        json!({
            "iss": self.issuer, "aud": self.audience, "sub": employee.sub,
            "email": employee.email, "team": employee.team,
            "iat": now, "nbf": now, "exp": now + 600,
        })
    }
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    sub: String,
    team: String,
    email: Option<String>,
    ttl_secs: Option<u64>,
}

/// Serves `/.well-known/jwks.json`, `/.well-known/openid-configuration` and
/// `GET /token?sub=…&team=…[&email=…][&ttl_secs=…]`.
pub fn start(idp: Arc<DemoIdp>, listener: TcpListener) -> std::io::Result<Server> {
    let idp = web::Data::from(idp);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(idp.clone())
            .route(
                "/.well-known/jwks.json",
                web::get().to(|idp: web::Data<DemoIdp>| async move {
                    HttpResponse::Ok().json(idp.jwks())
                }),
            )
            .route(
                "/.well-known/openid-configuration",
                web::get().to(|idp: web::Data<DemoIdp>| async move {
                    HttpResponse::Ok().json(json!({
                        "issuer": idp.issuer(),
                        "jwks_uri": format!("{}/.well-known/jwks.json", idp.issuer()),
                        "id_token_signing_alg_values_supported": ["RS256"],
                    }))
                }),
            )
            .route(
                "/token",
                web::get().to(
                    |idp: web::Data<DemoIdp>, query: web::Query<TokenQuery>| async move {
                        let query = query.into_inner();
                        let employee = EmployeeClaims {
                            email: query
                                .email
                                .unwrap_or_else(|| format!("{}@example.com", query.sub)),
                            sub: query.sub,
                            team: query.team,
                        };
                        let ttl_secs = query.ttl_secs.unwrap_or(3_600).min(86_400);
                        match idp.mint(&employee, ttl_secs) {
                        Ok(token) => HttpResponse::Ok().json(json!({
                            "access_token": token, "token_type": "Bearer", "expires_in": ttl_secs,
                        })),
                        Err(error) => HttpResponse::InternalServerError().body(error.to_string()),
                    }
                    },
                ),
            )
    })
    .workers(1)
    .listen(listener)?
    .run())
}
