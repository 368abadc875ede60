//! `nobtf trace`: a subset of bpftrace's language, with bpftrace's meaning,
//! compiled to BPF through `probes`' builder. Pure: no syscalls.
//!
//! Phases, each its own module: [`lexer`] -> [`parser`] ([`ast`], spans on
//! every node) -> [`check`] against struct [`fields`], [`tracepoint`]
//! formats and the [`providers`] table, into the [`typed`] program ->
//! [`codegen`] for the [`kernel`]'s capabilities. [`compile`] runs them all
//! and returns what the loader runs; [`output`] describes and decodes what
//! the programs write.
#![forbid(unsafe_code)]

pub mod ast;
pub mod check;
pub mod codegen;
mod compile;
pub mod diag;
pub mod fields;
pub mod kernel;
pub mod lexer;
pub mod output;
pub mod parser;
pub mod providers;
pub mod tracepoint;
pub mod typed;

pub use compile::{Compiled, CompiledProbe, Target, Timer, compile, fields_used};
pub use diag::{Error, Span};
pub use parser::parse;
