//! The kernel ABI nobtf relies on, written once by hand with no dependency.
//!
//! Every kernel fact (a register offset, an opcode, a helper id, a uapi
//! constant or layout) lives here exactly once and is named; the other crates
//! refer to these names instead of repeating numbers.
#![no_std]
#![forbid(unsafe_code)]

pub mod bpf;
pub mod bpf_attr;
pub mod btf;
pub mod kprobe;
pub mod perf;
pub mod pt_regs;
pub mod sched;
pub mod signal;
pub mod syscalls;
pub mod uapi;
pub mod version;

pub use version::KernelVersion;
