//! starrocks-gateway: self-service StarRocks (HTAP) instances on Huawei Cloud TaurusDB.
//!
//! A request walks the phases in [`pipeline`], in the order the use cases in [`service`] run
//! them; [`http`] and [`routes`] are the HTTP edge, wired by [`startup::create_app`].
//! [`simulator`] is a stand-in for Huawei Cloud and is never used by the gateway's own code;
//! [`demo`] runs gateway, simulator and a toy identity provider together.

pub mod cli;
pub mod cloud;
pub mod config;
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
pub mod simulator;
pub mod startup;
pub mod storage;
pub mod telemetry;
