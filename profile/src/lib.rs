//! The offsets profile: the facts a probe needs about one kernel build
//! (struct field offsets, a function's signature), its TOML file format, and
//! the builtin profiles with the kernel versions each is known to fit.
//! Pure: text in, a checked [`Profile`] or one [`ProfileError`] out.
//! See docs/offsets.md.
#![forbid(unsafe_code)]

pub mod builtin;
mod error;
mod file;
mod identity;
mod model;
mod source;
mod validate;

pub use error::ProfileError;
pub use identity::{Identity, IdentityError, Running, arch_of_machine};
pub use model::{
    DO_UNLINKAT, FILENAME_NAME, FILENAME_REFCNT, FORMAT_UNTYPED, FORMAT_VERSION, Field, Function,
    GENERATOR, KernelInfo, MAX_REGISTER_ARGS, NameArgType, Profile, Provenance, UnlinkArg,
    UnlinkFacts, arg_register, known_arches,
};
pub use source::{FieldPath, FieldSource, Lookup};
