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

/// Format version written into every profile; bumped on incompatible change.
/// Format 2 gives every field its C type; format 1 files (no types) still read.
pub const FORMAT_VERSION: u32 = 2;

/// The format before fields carried types: read, never written.
pub const FORMAT_UNTYPED: u32 = 1;

pub use error::ProfileError;
pub use identity::{Identity, IdentityError, Running, arch_of_machine};
pub use model::{
    DO_UNLINKAT, FILENAME_NAME, FILENAME_REFCNT, Field, Function, GENERATOR, KernelInfo,
    MAX_REGISTER_ARGS, NameArgType, Profile, Provenance, StructLayout, UnlinkArg, UnlinkFacts,
    arg_register, known_arches,
};
pub use source::{FieldPath, FieldSource, Lookup};
