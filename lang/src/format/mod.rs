//! What `nobtf trace` prints, in bpftrace's formats, as pure functions:
//! users' scripts parse bpftrace's output, so the bytes must match.
//!
//! The formats are bpftrace 0.23's (Debian 13 ships 0.23.2, the peer of
//! the conformance test in the VM userland), read from its
//! `src/output.cpp`, `src/format_string.cpp`, `src/printf*.cpp`,
//! `src/bpftrace.cpp` (sorting), `src/utils.h` (per-CPU combining) and
//! `src/ast/passes/codegen_llvm.cpp` (bucket functions, min/max/avg
//! storage), and checked against the outputs of Debian 13's bpftrace
//! 0.23.2 binary, run on BEGIN probes (the golden tests).
//!
//! - [`printf`]: format-string checking (bpftrace's error words) and
//!   rendering with C `printf` semantics;
//! - [`hist`]: `hist()`/`lhist()` bucket index functions the code generator
//!   must compute, their labels and argument checks;
//! - [`map`]: the map contents the printers take, and how per-CPU `min()`
//!   and `max()` copies combine;
//! - [`text`] and [`json`]: the two output formats;
//! - [`time`]: `time()` and `strftime()`, C `strftime` of the local time.
//!
//! What the BPF side must store for these printers to agree with bpftrace
//! 0.23 (its `codegen_llvm.cpp`):
//! - aggregations live in per-CPU hash maps (a `count()` without keys in a
//!   per-CPU array); every argument is first sign- or zero-extended to 64
//!   bits as its type says;
//! - `count()`, `sum()`: a u64 per CPU, added to; `sum()` is signed when
//!   its argument is. A `count()` map without keys is an array, so it
//!   always has its entry and prints `@c: 0` at exit even when nothing
//!   counted; other maps nothing wrote to are empty (an empty line);
//! - `min()`/`max()`: per CPU `{ value: u64, is_set: u64 }`; a new key is
//!   created as `{ x, 1 }`; an existing one takes `x` when `is_set != 1`
//!   or `x` is at most (`min`) / at least (`max`) the stored value, signed
//!   or unsigned as the argument's type; [`combine_min_max`] reads them;
//! - `avg()`: per CPU `{ total: u64, count: u64 }`, new key `{ x, 1 }`,
//!   then `total += x, count += 1`; printed as signed `total / count`
//!   whatever the argument's sign ([`AvgState`]);
//! - `hist(x[, bits])`, `lhist(x, min, max, step)`: the map key is the
//!   user's key followed by a u64 bucket index, the value a u64 count per
//!   CPU; the index is [`HistParams::bucket`] / [`LhistParams::bucket`];
//! - integer map keys are 64 bits, sign- or zero-extended as the
//!   expression's type says, and printed as signed 64-bit values whatever
//!   that type (`@[(uint64)-1]` prints `@[-1]`, `@[(uint32)-1]`
//!   `@[4294967295]`; checked against 0.23.2): `crate::report` hands them
//!   over as [`KeyPart::Int`];
//! - `str()` reads up to [`printf::MAX_STRLEN`] (1024) bytes by default.
//!
//! Where nobtf knowingly differs from bpftrace 0.23:
//! - equal values in a sorted map (counts, sums, min/max, averages) are
//!   ordered by key; bpftrace leaves them in its map's hash order;
//! - `min()`/`max()` maps are sorted by the combined value as unsigned;
//!   bpftrace combines the per-CPU copies as unsigned for sorting only,
//!   which can differ when CPUs saw values of both signs;
//! - an empty `avg()` entry (after `zero()`) prints 0 where bpftrace dies
//!   dividing by zero.

pub mod hist;
pub mod json;
pub mod map;
pub mod printf;
pub mod text;
pub mod time;

pub use hist::{HistError, HistParams, LhistError, LhistParams, hist_bucket};
pub use map::{AvgState, Key, KeyPart, Map, MapValues, Printed, combine_min_max};
pub use printf::{Arg, ArgType, FormatError, FormatString};

#[cfg(test)]
mod tests;
