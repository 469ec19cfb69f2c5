//! HTTP handlers. Each one reads as the pipeline it drives; the phases live in `pipeline`.

pub mod admin;
pub mod catalog;
pub mod fallback;
pub mod health;
pub mod instances;
pub mod paging;
pub mod starrocks;
