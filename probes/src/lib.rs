//! nobtf's kprobe programs, written in Rust as typed BPF instructions and
//! bound to a kernel's offsets profile when they are built (at load time).
//!
//! - [`asm`]: instructions as values, labels, encoder, decoder, disassembler;
//! - [`check`]: the static check run on the encoded bytes before any load;
//! - [`event`]: the record the probes emit and the loader parses;
//! - [`unlink`]: the `do_unlinkat` entry and exit probes;
//! - [`ringbuf`]: how records reach the reader (perf rings or the ring buffer);
//! - [`interp`]: a userspace interpreter to run the programs in tests;
//! - [`golden`]: disassembly tests' comparison with golden files.
//!
//! Nothing here makes a syscall or uses `unsafe`.
#![forbid(unsafe_code)]

pub mod asm;
pub mod check;
pub mod event;
pub mod golden;
pub mod interp;
mod program;
pub mod ringbuf;
pub mod strings;
pub mod unlink;

pub use kernel_headers::kprobe::ProbeKind;
pub use program::{BuildError, EVENTS_MAP, MapSpec, MaxEntries, Program};
