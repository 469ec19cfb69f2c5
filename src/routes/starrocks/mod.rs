//! `POST /v1/starrocks` and `POST /v1/starrocks/dry-run`: create a StarRocks instance for the
//! caller's team, or see exactly what a create would do.

pub mod create;
pub mod dry_run;
mod idempotency;
pub mod wire;
