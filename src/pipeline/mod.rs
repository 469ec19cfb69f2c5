//! The create pipeline, one module per phase, in the order a request walks them:
//! [`authenticate`] → [`authorize`] → [`evaluate`] → [`forward`].
//! Quota reservation, settlement and the decision log join between them as they land.

pub mod authenticate;
pub mod authorize;
pub mod evaluate;
pub mod forward;
