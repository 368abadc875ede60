//! The one error type of the generators and readers.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not an ELF file the reader understands: {0}")]
    Elf(String),
    #[error("DWARF: {0}")]
    Dwarf(String),
    #[error("BTF: {0}")]
    Btf(String),
    #[error("`{0}` is not `struct.member` (e.g. `filename.refcnt`, `task_struct.se.vruntime`)")]
    FieldSyntax(String),
    #[error("struct `{0}` is not defined in the input (no complete definition found)")]
    NoStruct(String),
    #[error("struct `{strukt}` has no member `{member}`")]
    NoMember { strukt: String, member: String },
    #[error("`{0}` is a bit-field; a profile holds byte offsets only")]
    BitField(String),
    #[error("cannot size `{0}` (an incomplete type or a flexible array)")]
    Unsized(String),
    #[error("symbol missing: `{name}` {why}")]
    SymbolMissing { name: String, why: String },
    #[error("`{name}` has a signature nobtf does not know: {signature}")]
    Signature { name: String, signature: String },
    #[error("unsupported arch `{0}`: use x86_64 (amd64), aarch64 (arm64) or arm (armhf)")]
    Arch(String),
    #[error(
        "{input} is a {found} kernel, but --arch says {asked}: drop --arch or give the matching kernel"
    )]
    ArchMismatch {
        input: String,
        found: &'static str,
        asked: &'static str,
    },
    #[error("no kernel config: {0}")]
    NoConfig(String),
    #[error("{0}")]
    NotATree(String),
    #[error("kernel build step `{step}` failed (exit {status}):\n{output}")]
    Build {
        step: String,
        status: String,
        output: String,
    },
    #[error("compiler failure in the generated offsets file:\n{0}")]
    Compile(String),
    #[error("the compiler output lacks marker `{0}`; is this a gcc-compatible compiler?")]
    Marker(String),
    #[error(transparent)]
    Profile(#[from] profile::ProfileError),
}

impl GenError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> GenError {
        GenError::Io {
            path: path.into(),
            source,
        }
    }
}
