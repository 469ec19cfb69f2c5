//! starrocks-gateway: self-service StarRocks (HTAP) instances on Huawei Cloud TaurusDB.
//!
//! A request walks the phases in [`pipeline`], in the order the use cases in [`service`] run
//! them; [`http`] and [`routes`] are the HTTP edge, wired by [`startup::create_app`].
//!
//! The Huawei Cloud simulator (crate `huawei-sim`) and the toy identity provider (crate
//! `demo-idp`) are separate crates of the workspace, reached only through the `demo` feature
//! (on by default): `demo` runs gateway, simulator and identity provider together and
//! re-exports them as `demo::simulator` and `demo::idp`. A `--no-default-features` build has
//! neither in its dependency tree.

pub mod check;
pub mod cli;
pub mod cloud;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod domain;
pub mod error;
pub mod http;
pub mod identity;
pub mod lifecycle;
pub mod metrics;
pub mod openapi;
pub mod pipeline;
pub mod policy;
pub mod policy_cases;
pub mod routes;
pub mod service;
pub mod startup;
pub mod storage;
pub mod telemetry;
