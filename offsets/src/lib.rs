//! The generators of offsets profiles (the `profile` crate): they derive
//! the facts a probe needs about one kernel build (struct field offsets, a
//! function's signature) from a kernel source tree, vmlinux DWARF or BTF.
//!
//! Readers here are pure: bytes or paths in, typed data or a typed error out.
#![forbid(unsafe_code)]

pub mod btf;
pub mod cgen;
pub mod diff;
pub mod dwarf;
pub mod elf;
pub mod error;
pub mod generate;
pub mod identity;
pub mod kbuild;
pub mod model;
pub mod tree;

pub use error::GenError;
pub use profile::{Field, Function, NameArgType, Profile, ProfileError, UnlinkArg, UnlinkFacts};
