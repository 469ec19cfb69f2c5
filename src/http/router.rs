//! Every route, declared once: each operation's path and method come from its handler's
//! `#[utoipa::path]`, and the same list builds the router and the OpenAPI document (the
//! Rust registry's `routes!()` idea, on utoipa's actix integration).
//!
//! Operations sharing a path form one [`ApiResource`], which answers any other method with
//! `405` and the `Allow` header built from the same declarations.

use actix_web::dev::{AppService, HttpServiceFactory, ServiceFactory, ServiceRequest};
use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Responder, Route, web};
use utoipa::openapi::path::{HttpMethod, Paths};
use utoipa::openapi::{RefOr, schema::Schema};
use utoipa_actix_web::{OpenApiFactory, UtoipaApp, scope};

use super::authenticate::require_employee;
use super::error::ApiError;
use super::rate_limit::limit_rate;
use crate::routes::starrocks::{create, dry_run};
use crate::routes::{admin, catalog, health, instances, portal, requests};

/// One path of the API and the operations it answers.
#[derive(Default)]
pub struct ApiResource {
    path: Option<String>,
    methods: Vec<Method>,
    routes: Vec<Route>,
    paths: Paths,
    schemas: Vec<(String, RefOr<Schema>)>,
}

impl std::fmt::Debug for ApiResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiResource")
            .field("path", &self.path)
            .field("methods", &self.methods)
            .finish_non_exhaustive()
    }
}

fn actix_method(method: &HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

impl ApiResource {
    /// Adds the operation `spec` documents, served by `handler`.
    ///
    /// # Panics
    /// When `spec` names another path than the operations already added: a mistake in the
    /// route list, caught by every test that builds the app.
    #[expect(
        clippy::panic,
        reason = "a route list mixing paths is a programming error, found at start-up"
    )]
    pub fn operation<P, F, Args>(mut self, spec: P, handler: F) -> Self
    where
        P: OpenApiFactory + utoipa::Path,
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let path = P::path();
        if self.path.as_ref().is_some_and(|own| *own != path) {
            panic!("operations of one resource must share a path: {path}");
        }
        for method in P::methods() {
            let method = actix_method(&method);
            // RFC 9110: a resource that answers GET answers HEAD the same, without the body.
            let methods = if method == Method::GET {
                vec![Method::GET, Method::HEAD]
            } else {
                vec![method]
            };
            for method in methods {
                self.routes
                    .push(web::method(method.clone()).to(handler.clone()));
                self.methods.push(method);
            }
        }
        self.paths.merge(spec.paths());
        spec.schemas(&mut self.schemas);
        self.path = Some(path);
        self
    }
}

/// The `Allow` value: reads before writes, whatever order the operations were declared in.
fn allow(methods: &[Method]) -> String {
    const ORDER: [Method; 6] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    let rank = |m: &Method| ORDER.iter().position(|o| o == m).unwrap_or(ORDER.len());
    let mut methods = methods.to_vec();
    methods.sort_by_key(rank);
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl HttpServiceFactory for ApiResource {
    fn register(self, config: &mut AppService) {
        let allowed = allow(&self.methods);
        let mut resource = web::resource(self.path.unwrap_or_default()).default_service(web::to(
            move |request: HttpRequest| {
                let allowed = allowed.clone();
                async move {
                    Err::<HttpResponse, _>(ApiError::method_not_allowed(
                        request.method().as_str(),
                        request.path(),
                        allowed,
                    ))
                }
            },
        ));
        for route in self.routes {
            resource = resource.route(route);
        }
        resource.register(config);
    }
}

impl OpenApiFactory for ApiResource {
    fn paths(&self) -> Paths {
        self.paths.clone()
    }

    fn schemas(&self, schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.extend(self.schemas.iter().cloned());
    }
}

/// One [`ApiResource`] from handlers `module::function` annotated with `#[utoipa::path]`.
macro_rules! resource {
    ($($module:ident :: $handler:ident),+ $(,)?) => {
        pastey::paste! {
            ApiResource::default()
                $(.operation($module::[<__path_ $handler>], $module::$handler))+
        }
    };
}

/// The API's routes, on `app`. `/v1` requires an authenticated employee.
pub fn routes<T>(app: UtoipaApp<T>) -> UtoipaApp<T>
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    // Public, so registered before the `/v1` scope, which requires an employee.
    let app = app
        .service(resource![portal::portal_config])
        .service(resource![portal::openid_configuration]);
    let app = app.service(
        scope("/v1")
            .wrap(from_fn(limit_rate))
            .wrap(from_fn(require_employee))
            .service(resource![
                create::create_instance,
                instances::list_instances
            ])
            // Before `/starrocks/{id}`, which would otherwise take `dry-run` for an id.
            .service(resource![dry_run::dry_run])
            .service(resource![
                instances::get_instance,
                instances::delete_instance
            ])
            .service(resource![instances::extend_lease])
            .service(resource![
                requests::request_exception,
                requests::list_requests
            ])
            // Before `/requests/{id}`, which would otherwise take `extensions` for an id.
            .service(resource![requests::request_extension])
            .service(resource![requests::get_request])
            .service(resource![requests::approve_request])
            .service(resource![requests::reject_request])
            .service(resource![requests::withdraw_request])
            .service(resource![catalog::catalog])
            .service(resource![catalog::me])
            .service(resource![admin::reload_policy])
            .service(resource![admin::reconcile_now])
            .service(resource![admin::decisions])
            .service(resource![admin::export_decisions]),
    );
    operations().into_iter().fold(app, UtoipaApp::service)
}

/// The probes and the metrics: on the main listener, and alone on `server.ops_listen`.
pub fn operations() -> [ApiResource; 3] {
    [
        resource![health::healthz],
        resource![health::readyz],
        resource![health::metrics],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allow_header_lists_reads_before_writes() {
        assert_eq!(allow(&[Method::DELETE, Method::GET]), "GET, DELETE");
        assert_eq!(allow(&[Method::POST, Method::GET]), "GET, POST");
    }
}
