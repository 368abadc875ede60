//! Legacy BPF C objects: loading and attaching them. Reading the object is
//! the pure `bpf_object` crate's job; its types are re-exported here.

pub mod load;
mod records;

pub use bpf_object::{MapDef, MapReloc, ObjError, ObjProgram, Object, ProbeKind, RelocCause};
