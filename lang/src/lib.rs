//! `nobtf trace`: a subset of bpftrace's language, with bpftrace's meaning,
//! compiled to BPF through `probes`' builder. Pure: no syscalls.
//!
//! Phases, each its own module: [`lexer`] -> [`parser`] ([`ast`], spans on
//! every node) -> type check against struct fields and tracepoint formats ->
//! code generation.
#![forbid(unsafe_code)]

pub mod ast;
pub mod diag;
pub mod lexer;
pub mod parser;

pub use diag::{Error, Span};
pub use parser::parse;
