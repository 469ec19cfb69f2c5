//! The HTTP edge: everything that knows actix-web. Handlers live in [`crate::routes`] and
//! only translate between HTTP and the use cases in [`crate::service`]; this module holds
//! what they share: the error envelope, the extractors, the middleware and the router.

pub mod authenticate;
pub mod error;
pub mod extract;
pub mod fallback;
pub mod rate_limit;
pub mod request_id;
pub mod router;
