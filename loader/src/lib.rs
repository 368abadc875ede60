//! nobtf's loader: feature detection, loading, attaching, reading events.
//! The `nobtf` binary (main.rs) is a thin front end over this library.
//! `unsafe` is allowed in `sys` alone, each block with its SAFETY line.
#![deny(unsafe_code)]

pub mod attach;
pub mod attrs;
pub mod canary;
pub mod check;
pub mod cli;
pub mod features;
pub mod legacy;
pub mod load;
pub mod output;
pub mod ring;
pub mod run;
pub mod session;
#[allow(unsafe_code)]
pub mod sys;
