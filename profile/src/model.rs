//! What a profile holds, and the questions the probes ask of it.

use std::collections::BTreeMap;

use serde::Serialize;

use kernel_headers::pt_regs::{self, Abi};

use crate::error::ProfileError;

/// The architectures a profile may name, for messages: "x86_64, aarch64, arm".
pub fn known_arches() -> String {
    let names: Vec<&str> = pt_regs::ABIS.iter().map(|a| a.arch).collect();
    names.join(", ")
}

/// The `generator` string of profiles made by this build.
pub const GENERATOR: &str = concat!("offsets ", env!("CARGO_PKG_VERSION"));

/// Field keys the unlink probes read.
pub const FILENAME_NAME: &str = "filename.name";
pub const FILENAME_REFCNT: &str = "filename.refcnt";
/// The function the unlink probes attach to.
pub const DO_UNLINKAT: &str = "do_unlinkat";

/// Arguments a kprobe can read from registers on the architecture nobtf is
/// built for (x86-64: di, si, dx, cx, r8, r9); a profile's own architecture
/// decides for the profile ([`Profile::abi`]).
pub const MAX_REGISTER_ARGS: u8 = kernel_headers::pt_regs::ARGS.len() as u8;

/// The native `pt_regs` member carrying 1-based argument `n`.
pub fn arg_register(n: u8) -> Option<&'static str> {
    kernel_headers::pt_regs::arg(n).map(|(name, _)| name)
}

/// One kernel build's facts. Which register carries an argument is not
/// stored: it follows from `name_arg` and the calling convention
/// (`kernel_headers::pt_regs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub format: u32,
    pub kernel: KernelInfo,
    pub source: Provenance,
    /// `struct.member` -> where it is.
    pub fields: BTreeMap<String, Field>,
    /// function name -> what its signature is on this kernel.
    pub functions: BTreeMap<String, Function>,
    /// struct name -> its size and alignment: what a script's own struct
    /// needs to place the members after one it embeds (`struct path` in
    /// dcsnoop's `nameidata`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub structs: BTreeMap<String, StructLayout>,
    /// enumerator name -> value (`TCP_ESTABLISHED = 1`), for a program
    /// naming one where there is no BTF.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub enums: BTreeMap<String, i64>,
}

/// A struct's size and alignment in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StructLayout {
    pub size: u32,
    pub align: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelInfo {
    /// `uname -r` style release, e.g. "5.10.0-32-amd64".
    pub release: String,
    /// "x86_64", "aarch64" or "arm": a row of `kernel_headers::pt_regs::ABIS`.
    pub arch: String,
    /// The build's `uname -v` (`#1 SMP Debian 5.10.223-1 (2024-08-10)`),
    /// where the source knew it: two builds of one release differ here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// A digest of the `.config` options that change struct layouts
    /// (`offsets gen --kernel-src` only), to tell two configs apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout_config: Option<String>,
}

impl KernelInfo {
    /// A kernel known by its release and architecture only.
    pub fn new(release: impl Into<String>, arch: impl Into<String>) -> KernelInfo {
        KernelInfo {
            release: release.into(),
            arch: arch.into(),
            version: None,
            layout_config: None,
        }
    }
}

/// How a profile was made, so a user can judge it and remake it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// "kernel-src", "vmlinux", "btf" or "builtin".
    pub method: String,
    /// Method-specific identity: config hash and tree, build-id, BTF hash.
    #[serde(default)]
    pub detail: String,
    /// e.g. "offsets 0.1.0".
    pub generator: String,
}

/// One struct member: where it is and, from format 2 on, what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// Byte offset from the start of the struct.
    pub offset: u32,
    /// Size in bytes of the member.
    pub size: u32,
    /// The member's C type as `btf::Btf::type_text` writes it (`struct
    /// dentry *`, `unsigned char *`, `struct path`, `char[16]`, `atomic_t`:
    /// qualifiers dropped, typedef names kept), so a trace program can
    /// follow it without a cast. None in format-1 profiles.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub c_type: Option<String>,
}

impl Field {
    /// A member whose type is not known (format 1, tests).
    pub fn untyped(offset: u32, size: u32) -> Field {
        Field {
            offset,
            size,
            c_type: None,
        }
    }

    pub fn typed(offset: u32, size: u32, c_type: &str) -> Field {
        Field {
            offset,
            size,
            c_type: Some(c_type.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum NameArgType {
    /// `struct filename *` (4.19 and later).
    #[serde(rename = "struct filename *")]
    Filename,
    /// `const char __user *pathname` (4.14 and earlier).
    #[serde(rename = "const char __user *")]
    UserPath,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Function {
    /// Whether the function is a symbol a kprobe can attach to (not inlined away).
    pub symbol: bool,
    /// 1-based index of the argument that carries the path.
    pub name_arg: u8,
    pub name_arg_type: NameArgType,
    /// How the signature was decided: "type-check", "source", "dwarf", "btf", "builtin".
    pub decided_by: String,
}

/// What the unlink probes need, checked for consistency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlinkFacts {
    /// 1-based argument index carrying the path (x86-64: 1 = di, 2 = si, ...).
    pub name_arg: u8,
    pub kind: UnlinkArg,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnlinkArg {
    /// A `struct filename *`: the string pointer at `name`, the count at `refcnt`.
    Filename { name: Field, refcnt: Field },
    /// A user-space `const char *` path; there is no refcnt.
    UserPath,
}

impl Profile {
    /// The calling convention and pointer width of the profile's architecture.
    pub fn abi(&self) -> Result<&'static Abi, ProfileError> {
        pt_regs::abi(&self.kernel.arch).ok_or_else(|| {
            ProfileError::Invalid(format!(
                "arch `{}` is not one nobtf knows ({})",
                self.kernel.arch,
                known_arches()
            ))
        })
    }

    pub fn field(&self, key: &str) -> Result<Field, ProfileError> {
        self.fields
            .get(key)
            .cloned()
            .ok_or_else(|| ProfileError::MissingField(key.to_string()))
    }

    pub fn function(&self, name: &str) -> Result<&Function, ProfileError> {
        self.functions
            .get(name)
            .ok_or_else(|| ProfileError::MissingFunction(name.to_string()))
    }

    /// The facts the unlink probes need, checked against each other.
    pub fn unlink(&self) -> Result<UnlinkFacts, ProfileError> {
        let function = self.function(DO_UNLINKAT)?;
        let kind = match function.name_arg_type {
            NameArgType::UserPath => UnlinkArg::UserPath,
            NameArgType::Filename => {
                let name = self.field(FILENAME_NAME)?;
                let refcnt = self.field(FILENAME_REFCNT)?;
                let pointer = self.abi()?.pointer_bytes;
                if name.size != u32::from(pointer) {
                    return Err(ProfileError::Invalid(format!(
                        "{FILENAME_NAME} has size {}, a pointer is {pointer} bytes on {}",
                        name.size, self.kernel.arch
                    )));
                }
                if refcnt.size != 4 {
                    return Err(ProfileError::Invalid(format!(
                        "{FILENAME_REFCNT} has size {}, an int is 4 bytes",
                        refcnt.size
                    )));
                }
                UnlinkArg::Filename { name, refcnt }
            }
        };
        Ok(UnlinkFacts {
            name_arg: function.name_arg,
            kind,
        })
    }
}
