//! The profile format (TOML). See docs/offsets.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Format version written into every profile; bumped on incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// The `generator` string of profiles this crate writes.
pub const GENERATOR: &str = concat!("offsets ", env!("CARGO_PKG_VERSION"));

/// Field keys the unlink probes read.
pub const FILENAME_NAME: &str = "filename.name";
pub const FILENAME_REFCNT: &str = "filename.refcnt";
/// The function the unlink probes attach to.
pub const DO_UNLINKAT: &str = "do_unlinkat";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub format: u32,
    pub kernel: KernelInfo,
    pub source: Provenance,
    /// `struct.member` -> where it is.
    #[serde(default)]
    pub fields: BTreeMap<String, Field>,
    /// function name -> what its signature is on this kernel.
    #[serde(default)]
    pub functions: BTreeMap<String, Function>,
    /// `function.role` -> the x86-64 `struct pt_regs` member (register name,
    /// e.g. "si") a probe reads it from. Names only: the byte offsets live in
    /// `kernel_headers::pt_regs`, looked up by the loader.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pt_regs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelInfo {
    /// `uname -r` style release, e.g. "5.10.0-32-amd64".
    pub release: String,
    pub arch: String,
}

/// How a profile was made, so a user can judge it and remake it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// Byte offset from the start of the struct.
    pub offset: u32,
    /// Size in bytes of the member.
    pub size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NameArgType {
    /// `struct filename *` (4.19 and later).
    #[serde(rename = "struct filename *")]
    Filename,
    /// `const char __user *pathname` (4.14 and earlier).
    #[serde(rename = "const char __user *")]
    UserPath,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnlinkFacts {
    /// 1-based argument index carrying the path (x86-64: 1 = di, 2 = si, ...).
    pub name_arg: u8,
    pub kind: UnlinkArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlinkArg {
    /// A `struct filename *`: the string pointer at `name`, the count at `refcnt`.
    Filename { name: Field, refcnt: Field },
    /// A user-space `const char *` path; there is no refcnt.
    UserPath,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("profile is not valid TOML for this format: {0}")]
    Parse(#[from] toml::de::Error),
    #[error(
        "profile format {found} is not supported (this nobtf reads format {FORMAT_VERSION}); regenerate it with `offsets gen`"
    )]
    Format { found: u32 },
    #[error("profile has no field `{0}`; regenerate it with `offsets gen`")]
    MissingField(String),
    #[error("profile has no function `{0}`; regenerate it with `offsets gen`")]
    MissingFunction(String),
    #[error("profile value is impossible: {0}")]
    Invalid(String),
}

/// Arguments a kprobe can read from registers (x86-64: di, si, dx, cx, r8, r9).
pub const MAX_REGISTER_ARGS: u8 = kernel_headers::pt_regs::ARGS.len() as u8;

/// The register holding a function's return value (x86-64: `pt_regs.ax`).
pub const X86_64_RETURN_REGISTER: &str = kernel_headers::pt_regs::RETURN.0;

/// `pt_regs` keys for `do_unlinkat`: the register carrying the path, and the
/// one carrying the return value (read by the kretprobe).
pub const DO_UNLINKAT_NAME_REG: &str = "do_unlinkat.name";
pub const DO_UNLINKAT_RET_REG: &str = "do_unlinkat.ret";

/// The `pt_regs` member carrying 1-based argument `n` on x86-64.
pub fn arg_register(n: u8) -> Option<&'static str> {
    kernel_headers::pt_regs::arg(n).map(|(name, _)| name)
}

impl Profile {
    pub fn from_toml_str(text: &str) -> Result<Profile, ProfileError> {
        let profile: Profile = toml::from_str(text)?;
        profile.validate()?;
        Ok(profile)
    }

    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).expect("a Profile always serializes")
    }

    /// Reject values no kernel can have, so a corrupt profile fails here and
    /// not as garbage in the events.
    pub fn validate(&self) -> Result<(), ProfileError> {
        if self.format != FORMAT_VERSION {
            return Err(ProfileError::Format { found: self.format });
        }
        if self.kernel.arch != "x86_64" {
            return Err(ProfileError::Invalid(format!(
                "arch `{}`: only x86_64 is supported",
                self.kernel.arch
            )));
        }
        for (key, field) in &self.fields {
            let Some((strukt, member)) = key.split_once('.') else {
                return Err(ProfileError::Invalid(format!(
                    "field key `{key}` is not `struct.member`"
                )));
            };
            if strukt.is_empty() || member.is_empty() {
                return Err(ProfileError::Invalid(format!(
                    "field key `{key}` is not `struct.member`"
                )));
            }
            if field.size == 0 {
                return Err(ProfileError::Invalid(format!("field `{key}` has size 0")));
            }
            // No kernel struct nobtf reads is anywhere near this large.
            if field.offset > 1 << 16 {
                return Err(ProfileError::Invalid(format!(
                    "field `{key}` offset {} is beyond any struct",
                    field.offset
                )));
            }
        }
        for (name, function) in &self.functions {
            if function.name_arg == 0 || function.name_arg > MAX_REGISTER_ARGS {
                return Err(ProfileError::Invalid(format!(
                    "function `{name}` name_arg {} is not 1..={MAX_REGISTER_ARGS}",
                    function.name_arg
                )));
            }
        }
        for (key, reg) in &self.pt_regs {
            let Some((function, role)) = key.split_once('.') else {
                return Err(ProfileError::Invalid(format!(
                    "pt_regs key `{key}` is not `function.role`"
                )));
            };
            let Some(f) = self.functions.get(function) else {
                return Err(ProfileError::Invalid(format!(
                    "pt_regs key `{key}` names function `{function}`, which is not in [functions]"
                )));
            };
            let expected = match role {
                "name" => arg_register(f.name_arg),
                "ret" => Some(X86_64_RETURN_REGISTER),
                _ => {
                    return Err(ProfileError::Invalid(format!(
                        "pt_regs key `{key}`: role `{role}` is not `name` or `ret`"
                    )));
                }
            };
            if expected != Some(reg.as_str()) {
                return Err(ProfileError::Invalid(format!(
                    "pt_regs `{key}` = `{reg}`, but on x86_64 that value is in `{}`",
                    expected.unwrap_or("?")
                )));
            }
        }
        Ok(())
    }

    /// The `pt_regs` member name recorded for `key` (e.g. `do_unlinkat.name`).
    pub fn register(&self, key: &str) -> Option<&str> {
        self.pt_regs.get(key).map(String::as_str)
    }

    /// Fill `pt_regs` from the functions, as every generator does.
    pub fn record_registers(&mut self) {
        if let Some(f) = self.functions.get(DO_UNLINKAT)
            && let Some(reg) = arg_register(f.name_arg)
        {
            self.pt_regs
                .insert(DO_UNLINKAT_NAME_REG.into(), reg.to_string());
            self.pt_regs
                .insert(DO_UNLINKAT_RET_REG.into(), X86_64_RETURN_REGISTER.into());
        }
    }

    pub fn field(&self, key: &str) -> Result<Field, ProfileError> {
        self.fields
            .get(key)
            .copied()
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
                if name.size != 8 {
                    return Err(ProfileError::Invalid(format!(
                        "{FILENAME_NAME} has size {}, a pointer is 8 bytes",
                        name.size
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

    /// The layout of 4.19 to 6.x kernels (5.4 as in the reference: `name` at
    /// +0, `refcnt` at +16, `do_unlinkat(int dfd, struct filename *name)`).
    /// Used only where the loader has checked that it fits.
    pub fn builtin(release: &str) -> Profile {
        let mut fields = BTreeMap::new();
        fields.insert(FILENAME_NAME.into(), Field { offset: 0, size: 8 });
        fields.insert(
            FILENAME_REFCNT.into(),
            Field {
                offset: 16,
                size: 4,
            },
        );
        let mut functions = BTreeMap::new();
        functions.insert(
            DO_UNLINKAT.into(),
            Function {
                symbol: true,
                name_arg: 2,
                name_arg_type: NameArgType::Filename,
                decided_by: "builtin".into(),
            },
        );
        let mut profile = Profile {
            format: FORMAT_VERSION,
            kernel: KernelInfo {
                release: release.into(),
                arch: "x86_64".into(),
            },
            source: Provenance {
                method: "builtin".into(),
                detail: "struct filename as on 4.19..6.x".into(),
                generator: GENERATOR.into(),
            },
            fields,
            functions,
            pt_regs: BTreeMap::new(),
        };
        profile.record_registers();
        profile
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_round_trips_through_toml() {
        let profile = Profile::builtin("5.4.0");
        let text = profile.to_toml_string();
        assert_eq!(Profile::from_toml_str(&text).unwrap(), profile);
        let facts = profile.unlink().unwrap();
        assert_eq!(facts.name_arg, 2);
        assert_eq!(
            facts.kind,
            UnlinkArg::Filename {
                name: Field { offset: 0, size: 8 },
                refcnt: Field {
                    offset: 16,
                    size: 4
                }
            }
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let mut text = Profile::builtin("5.4.0").to_toml_string();
        text.push_str("\nsurprise = 1\n");
        assert!(Profile::from_toml_str(&text).is_err());
    }
}
