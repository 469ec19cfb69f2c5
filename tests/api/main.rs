//! Black-box tests: the gateway on port 0, with the Huawei Cloud simulator and the demo
//! identity provider on port 0 beside it, driven over HTTP only.

#[macro_use]
mod engines;

mod algorithms;
mod audit;
mod auth;
mod cloud;
mod create;
mod edge;
mod helpers;
mod introspection;
mod jwks;
mod jwt_attacks;
mod leases;
mod lifecycle;
mod limits;
mod policy;
mod real_provider;
mod regions;
mod requests;
mod sign_in;
mod simulator;
mod storage;
mod surface;
