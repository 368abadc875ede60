//! What `nobtf trace` prints, in bpftrace's formats, as pure functions:
//! users' scripts parse bpftrace's output, so the bytes must match.
//!
//! The formats are bpftrace 0.17's (Debian 12 ships 0.17.0, the peer of the
//! conformance test), read from its `src/output.cpp`, `src/format_string.cpp`,
//! `src/printf*.h`, `src/bpftrace.cpp` (sorting) and
//! `src/ast/passes/codegen_llvm.cpp` (bucket functions), and checked
//! against its runtime tests' expected outputs.
//!
//! - [`printf`]: format-string checking (bpftrace's error words) and
//!   rendering with C `printf` semantics;
//! - [`hist`]: `hist()`/`lhist()` bucket index functions the code generator
//!   must compute, their labels and `lhist()` argument checks;
//! - [`map`]: the map contents the printers take;
//! - [`text`] and [`json`]: the two output formats.

pub mod hist;
pub mod json;
pub mod map;
pub mod printf;
pub mod text;

pub use hist::{LhistError, LhistParams, hist_bucket};
pub use map::{AvgState, Key, KeyPart, MIN_BIAS, Map, MapValues, Scalar, decode_min};
pub use printf::{Arg, ArgType, FormatError, FormatString};

#[cfg(test)]
mod tests;
