//! nobtf's loader: feature detection, loading, attaching, reading events.
//! The `nobtf` binary (main.rs) is a thin front end over this library.

pub mod attrs;
pub mod sys;
