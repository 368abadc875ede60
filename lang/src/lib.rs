//! `nobtf trace`: the bpftrace-compatible one-liner language. Pure code, no
//! syscalls.
#![forbid(unsafe_code)]

pub mod format;
