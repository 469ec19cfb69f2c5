//! The create pipeline, one module per phase, in the order a request walks them:
//! [`authenticate`] → [`authorize`] → [`evaluate`] → [`reserve`] → [`forward`] → [`settle`]
//! → [`record`]. [`reconcile`] settles, later, what [`settle`] could not.

pub mod authenticate;
pub mod authorize;
pub mod evaluate;
pub mod forward;
pub mod reconcile;
pub mod record;
pub mod reserve;
pub mod settle;
