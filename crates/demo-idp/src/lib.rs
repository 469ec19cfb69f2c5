//! A toy identity provider for the demo and the tests: RSA keys made at start, its JWKS and
//! OIDC discovery document served, tokens minted for any employee on request, and browser
//! sign-in by the authorization-code flow with PKCE ([`authorize`]), choosing one of the
//! offered employees. Keys can be rotated and the JWKS endpoint switched to fail or serve
//! garbage, to exercise the gateway's key handling. It signs whatever it is asked to; never
//! trust it in production.

mod authorize;

use std::net::TcpListener;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
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

pub use authorize::LoginChoice;

/// The claims an employee token carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmployeeClaims {
    pub sub: String,
    pub email: String,
    pub team: String,
}

/// What the JWKS endpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum JwksMode {
    Normal = 0,
    /// Answers `503`, as an IdP during an outage.
    Down = 1,
    /// Answers `200` with a body that is not a JWKS.
    Garbage = 2,
}

/// One RSA signing key with its id and public forms.
#[derive(Debug)]
pub struct SigningKey {
    pub kid: String,
    pub encoding_key: EncodingKey,
    pub public_key_pem: String,
    pub jwk: Jwk,
}

impl SigningKey {
    /// A fresh RSA-2048 key.
    pub fn generate() -> anyhow::Result<Self> {
        let key_pair = KeyPair::generate(KeySize::Rsa2048).context("generating an RSA key")?;
        let private_der = key_pair.as_der().context("encoding the private key")?;
        let private_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", private_der.as_ref().to_vec()));
        let encoding_key =
            EncodingKey::from_rsa_pem(private_pem.as_bytes()).context("loading the signing key")?;
        let public_der = key_pair
            .public_key()
            .as_der()
            .context("encoding the public key")?;
        let public_key_pem =
            pem::encode(&pem::Pem::new("PUBLIC KEY", public_der.as_ref().to_vec()));
        let kid = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let mut jwk =
            Jwk::from_encoding_key(&encoding_key, Algorithm::RS256).context("deriving the JWK")?;
        jwk.common = CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::RS256),
            key_id: Some(kid.clone()),
            ..CommonParameters::default()
        };
        Ok(Self {
            kid,
            encoding_key,
            public_key_pem,
            jwk,
        })
    }

    /// Signs `claims` with this key, under `header` (its `kid` is set when absent).
    pub fn sign(&self, header: &Header, claims: &serde_json::Value) -> anyhow::Result<String> {
        jsonwebtoken::encode(header, claims, &self.encoding_key).context("signing a token")
    }
}

#[derive(Debug)]
pub struct DemoIdp {
    issuer: String,
    audience: String,
    /// Published keys, the signing key first.
    keys: RwLock<Vec<Arc<SigningKey>>>,
    mode: AtomicU8,
    jwks_fetches: AtomicU64,
    /// `Cache-Control: max-age` on the JWKS, in seconds; `u64::MAX` sends none.
    jwks_max_age: AtomicU64,
    /// Browser sign-in: offered employees, public clients, pending codes.
    flows: Mutex<authorize::Flows>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl DemoIdp {
    /// An IdP with one fresh key; `issuer` is the URL it will be reachable at.
    pub fn generate(issuer: &str, audience: &str) -> anyhow::Result<Self> {
        Ok(Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            audience: audience.to_owned(),
            keys: RwLock::new(vec![Arc::new(SigningKey::generate()?)]),
            mode: AtomicU8::new(JwksMode::Normal as u8),
            jwks_fetches: AtomicU64::new(0),
            jwks_max_age: AtomicU64::new(u64::MAX),
            flows: Mutex::new(authorize::Flows::default()),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    fn flows(&self) -> MutexGuard<'_, authorize::Flows> {
        self.flows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The employees the sign-in page offers.
    pub fn offer_logins(&self, logins: Vec<LoginChoice>) {
        self.flows().offer(logins);
    }

    /// Registers a public client (no secret; PKCE) and the exact URIs it may be sent back to.
    pub fn register_public_client(&self, client_id: &str, redirect_uris: Vec<String>) {
        self.flows().register(client_id, redirect_uris);
    }

    /// An OIDC ID token for a public client.
    fn id_token(
        &self,
        sub: &str,
        email: &str,
        client_id: &str,
        nonce: Option<&str>,
    ) -> anyhow::Result<String> {
        let now = now_secs();
        let mut claims = json!({
            "iss": self.issuer, "aud": client_id, "sub": sub, "email": email,
            "iat": now, "exp": now + 3_600,
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        self.sign(&claims)
    }

    /// The key tokens are signed with now.
    pub fn current_key(&self) -> Arc<SigningKey> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner)[0].clone()
    }

    pub fn kid(&self) -> String {
        self.current_key().kid.clone()
    }

    /// The public key as PEM; the tests use it to forge an HS256 token with it as the secret.
    pub fn public_key_pem(&self) -> String {
        self.current_key().public_key_pem.clone()
    }

    pub fn jwks(&self) -> JwkSet {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        JwkSet {
            keys: keys.iter().map(|k| k.jwk.clone()).collect(),
        }
    }

    /// Starts signing with a new key; the old one stays published, as during a real rotation.
    pub fn rotate(&self) -> anyhow::Result<()> {
        let key = Arc::new(SigningKey::generate()?);
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(0, key);
        Ok(())
    }

    /// Ends a rotation: only the key tokens are signed with now stays published.
    pub fn retire_old_keys(&self) {
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .truncate(1);
    }

    pub fn set_jwks_mode(&self, mode: JwksMode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Serves the JWKS with `Cache-Control: max-age` (`None`: no such header).
    pub fn set_jwks_max_age(&self, secs: Option<u64>) {
        self.jwks_max_age
            .store(secs.unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// How many times the JWKS was requested.
    pub fn jwks_fetches(&self) -> u64 {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// A valid token for `employee`, living `ttl_secs`.
    pub fn mint(&self, employee: &EmployeeClaims, ttl_secs: u64) -> anyhow::Result<String> {
        let mut claims = self.standard_claims(employee);
        claims["exp"] = json!(now_secs() + ttl_secs);
        self.sign(&claims)
    }

    /// Signs arbitrary claims with the current key and its `kid`.
    pub fn sign(&self, claims: &serde_json::Value) -> anyhow::Result<String> {
        let key = self.current_key();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        key.sign(&header, claims)
    }

    /// Signs with the current key under a header of the caller's choosing.
    pub fn sign_with_header(
        &self,
        header: &Header,
        claims: &serde_json::Value,
    ) -> anyhow::Result<String> {
        self.current_key().sign(header, claims)
    }

    /// A token for `sub` in `teams` (a string claim for one team, an array for several) with
    /// `roles`, living `ttl_secs`.
    pub fn mint_for(
        &self,
        sub: &str,
        email: &str,
        teams: &[&str],
        roles: &[&str],
        ttl_secs: u64,
    ) -> anyhow::Result<String> {
        let now = now_secs();
        let team = if let [one] = teams {
            json!(one)
        } else {
            json!(teams)
        };
        self.sign(&json!({
            "iss": self.issuer, "aud": self.audience, "sub": sub, "email": email,
            "team": team, "roles": roles,
            "iat": now, "nbf": now, "exp": now + ttl_secs,
        }))
    }

    /// Standard claims of a valid ten-minute token, for tests to alter one at a time.
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
    /// One team, or several separated by commas.
    team: String,
    email: Option<String>,
    /// Comma-separated roles; `platform-admin` makes the employee an admin in the demo.
    roles: Option<String>,
    ttl_secs: Option<u64>,
}

async fn jwks(idp: web::Data<DemoIdp>) -> HttpResponse {
    idp.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    match idp.mode.load(Ordering::SeqCst) {
        m if m == JwksMode::Down as u8 => {
            HttpResponse::ServiceUnavailable().body("identity provider down")
        }
        m if m == JwksMode::Garbage as u8 => HttpResponse::Ok()
            .content_type("application/json")
            .body("{\"keys\": [{\"kty\": 42"),
        _ => {
            let mut response = HttpResponse::Ok();
            match idp.jwks_max_age.load(Ordering::SeqCst) {
                u64::MAX => {}
                secs => {
                    response.insert_header(("Cache-Control", format!("public, max-age={secs}")));
                }
            }
            response.json(idp.jwks())
        }
    }
}

async fn discovery(idp: web::Data<DemoIdp>) -> HttpResponse {
    let issuer = idp.issuer();
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["openid", "profile", "email"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn token(idp: web::Data<DemoIdp>, query: web::Query<TokenQuery>) -> HttpResponse {
    let query = query.into_inner();
    let teams: Vec<&str> = query
        .team
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let roles: Vec<&str> = query
        .roles
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .filter(|r| !r.is_empty())
        .collect();
    let ttl_secs = query.ttl_secs.unwrap_or(3_600).min(86_400);
    let email = query
        .email
        .unwrap_or_else(|| format!("{}@example.com", query.sub));
    match idp.mint_for(&query.sub, &email, &teams, &roles, ttl_secs) {
        Ok(token) => HttpResponse::Ok().json(json!({
            "access_token": token, "token_type": "Bearer", "expires_in": ttl_secs,
        })),
        Err(error) => HttpResponse::InternalServerError().body(error.to_string()),
    }
}

/// Serves `/.well-known/jwks.json`, `/.well-known/openid-configuration`, browser sign-in
/// (`GET`/`POST /authorize`, `POST /token`) and, for scripts,
/// `GET /token?sub=…&team=…[,…][&roles=…][&email=…][&ttl_secs=…]`, to any origin (CORS).
pub fn start(idp: Arc<DemoIdp>, listener: TcpListener) -> std::io::Result<Server> {
    let idp = web::Data::from(idp);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(idp.clone())
            // Browsers call discovery and the token endpoint from the gateway's pages, and
            // Swagger UI's token request is preflighted.
            .wrap(
                actix_cors::Cors::default()
                    .allow_any_origin()
                    .allowed_methods(["GET", "POST"])
                    .allow_any_header()
                    .max_age(3_600),
            )
            .route("/.well-known/jwks.json", web::get().to(jwks))
            .route(
                "/.well-known/openid-configuration",
                web::get().to(discovery),
            )
            .route("/authorize", web::get().to(authorize::authorize))
            .route("/authorize", web::post().to(authorize::choose))
            .route("/token", web::get().to(token))
            .route("/token", web::post().to(authorize::exchange))
    })
    .workers(1)
    .listen(listener)?
    .run())
}
