//! HTTP handlers, one module per resource. Each handler only translates HTTP to a use case in
//! [`crate::service`] and back; the routes themselves are declared in
//! [`crate::http::router`].

pub mod admin;
pub mod catalog;
pub mod health;
pub mod instances;
pub mod paging;
pub mod portal;
pub mod requests;
#[cfg(test)]
mod schema_text;
pub mod starrocks;
