//! The TOML file: reading (with the checks of `validate`) and writing.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::ProfileError;
use crate::model::{Field, Function, KernelInfo, Profile, Provenance, StructLayout};

/// The file as written: a profile plus `[pt_regs]`, which files written
/// before the register was derived carry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    format: u32,
    kernel: KernelInfo,
    source: Provenance,
    #[serde(default)]
    fields: BTreeMap<String, Field>,
    #[serde(default)]
    functions: BTreeMap<String, Function>,
    #[serde(default)]
    structs: BTreeMap<String, StructLayout>,
    #[serde(default)]
    enums: BTreeMap<String, i64>,
    /// `function.role` -> x86-64 `pt_regs` member, e.g. `"do_unlinkat.name" = "si"`.
    #[serde(default)]
    pt_regs: BTreeMap<String, String>,
}

impl Profile {
    /// Reads and validates a profile. A `[pt_regs]` table (older files) must
    /// agree with the calling convention: a file claiming another register
    /// is refused rather than read differently from what it says.
    pub fn from_toml_str(text: &str) -> Result<Profile, ProfileError> {
        let stored: Stored = toml::from_str(text)?;
        let profile = Profile {
            format: stored.format,
            kernel: stored.kernel,
            source: stored.source,
            fields: stored.fields,
            functions: stored.functions,
            structs: stored.structs,
            enums: stored.enums,
        };
        profile.validate()?;
        check_registers(&profile, &stored.pt_regs)?;
        Ok(profile)
    }

    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).expect("a Profile always serializes")
    }
}

fn check_registers(
    profile: &Profile,
    pt_regs: &BTreeMap<String, String>,
) -> Result<(), ProfileError> {
    for (key, reg) in pt_regs {
        let Some((function, role)) = key.split_once('.') else {
            return Err(ProfileError::Invalid(format!(
                "pt_regs key `{key}` is not `function.role`"
            )));
        };
        let Some(f) = profile.functions.get(function) else {
            return Err(ProfileError::Invalid(format!(
                "pt_regs key `{key}` names function `{function}`, which is not in [functions]"
            )));
        };
        let abi = profile.abi()?;
        let expected = match role {
            "name" => abi.arg(f.name_arg).map(|(name, _)| name),
            "ret" => Some(abi.ret.0),
            _ => {
                return Err(ProfileError::Invalid(format!(
                    "pt_regs key `{key}`: role `{role}` is not `name` or `ret`"
                )));
            }
        };
        if expected != Some(reg.as_str()) {
            return Err(ProfileError::Invalid(format!(
                "pt_regs `{key}` = `{reg}`, but on {} that value is in `{}`",
                abi.arch,
                expected.unwrap_or("?")
            )));
        }
    }
    Ok(())
}
