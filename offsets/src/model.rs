//! What every generator agrees on: which facts a profile holds, how a
//! function signature becomes a `Function`, and how the profile is assembled.

use kernel_headers::pt_regs::{self, Abi};
use std::collections::BTreeMap;

use crate::error::GenError;
use profile::{
    DO_UNLINKAT, FILENAME_NAME, FILENAME_REFCNT, FORMAT_VERSION, Field, Function, GENERATOR,
    KernelInfo, NameArgType, Profile, Provenance,
};

pub use profile::FieldPath;

/// A `--field` argument, `struct.member[.member...]`.
pub fn parse_field(text: &str) -> Result<FieldPath, GenError> {
    FieldPath::parse(text).ok_or_else(|| GenError::FieldSyntax(text.to_string()))
}

/// The fields every profile carries, then the requested ones, each after
/// the members it passes through (`file.f_path` before
/// `file.f_path.dentry`: a program writes `$f->f_path.dentry` and follows
/// `f_path` by its type), deduplicated.
pub fn wanted_fields(extra: &[String]) -> Result<Vec<FieldPath>, GenError> {
    let mut out: Vec<FieldPath> = Vec::new();
    for text in [FILENAME_NAME, FILENAME_REFCNT]
        .into_iter()
        .chain(extra.iter().map(String::as_str))
    {
        let path = parse_field(text)?;
        for depth in 1..=path.members.len() {
            let step = FieldPath {
                strukt: path.strukt.clone(),
                members: path.members[..depth].to_vec(),
            };
            if !out.contains(&step) {
                out.push(step);
            }
        }
    }
    Ok(out)
}

/// A parameter type, reduced to what decides the unlink probe's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamType {
    /// `struct NAME *` (qualifiers dropped).
    StructPtr(String),
    /// `char *` or `const char *` (`__user` is invisible to the compiler).
    CharPtr,
    Other(String),
}

/// A function's signature as a reader found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FnSig {
    pub params: Vec<(String, ParamType)>,
    /// Whether the function exists as a symbol a kprobe can attach to.
    pub symbol: bool,
}

/// Decide the unlink facts from `do_unlinkat`'s parameters: the first
/// `struct filename *` carries the name (4.19+), else the first `char *`
/// (4.14 and older).
pub fn unlink_function(sig: &FnSig, decided_by: &str) -> Result<Function, GenError> {
    let index = |want: &dyn Fn(&ParamType) -> bool| {
        sig.params.iter().position(|(_, t)| want(t)).map(|i| i + 1)
    };
    let (pos, ty) =
        if let Some(i) = index(&|t| matches!(t, ParamType::StructPtr(s) if s == "filename")) {
            (i, NameArgType::Filename)
        } else if let Some(i) = index(&|t| matches!(t, ParamType::CharPtr)) {
            (i, NameArgType::UserPath)
        } else {
            return Err(GenError::Signature {
                name: DO_UNLINKAT.into(),
                signature: describe(sig),
            });
        };
    let name_arg = u8::try_from(pos)
        .ok()
        .filter(|&n| n <= profile::MAX_REGISTER_ARGS)
        .ok_or_else(|| GenError::Signature {
            name: DO_UNLINKAT.into(),
            signature: format!("{} (the name is not in a register argument)", describe(sig)),
        })?;
    Ok(Function {
        symbol: sig.symbol,
        name_arg,
        name_arg_type: ty,
        decided_by: decided_by.into(),
    })
}

fn describe(sig: &FnSig) -> String {
    let params: Vec<String> = sig
        .params
        .iter()
        .map(|(n, t)| {
            let t = match t {
                ParamType::StructPtr(s) => format!("struct {s} *"),
                ParamType::CharPtr => "char *".into(),
                ParamType::Other(o) => o.clone(),
            };
            format!("{t} {n}").trim().to_string()
        })
        .collect();
    format!("({})", params.join(", "))
}

/// Assemble and validate a profile from the generator's findings.
pub fn assemble(
    abi: &Abi,
    release: String,
    source: Provenance,
    fields: BTreeMap<String, Field>,
    unlink: Function,
) -> Result<Profile, GenError> {
    let mut functions = BTreeMap::new();
    functions.insert(DO_UNLINKAT.to_string(), unlink);
    let profile = Profile {
        format: FORMAT_VERSION,
        kernel: KernelInfo::new(release, abi.arch),
        source: Provenance {
            generator: GENERATOR.into(),
            ..source
        },
        fields,
        functions,
        structs: Default::default(),
        enums: Default::default(),
    };
    profile.validate()?;
    Ok(profile)
}

/// The architecture `--arch` names, in the spellings of Rust, Debian and
/// the kernel (`arm64`, `armhf`, ...).
pub fn check_arch(arch: &str) -> Result<&'static Abi, GenError> {
    let name = match arch {
        "x86_64" | "x86-64" | "amd64" | "x86" => "x86_64",
        "aarch64" | "arm64" => "aarch64",
        "arm" | "armhf" | "armv7" | "armel" => "arm",
        other => other,
    };
    pt_regs::abi(name).ok_or_else(|| GenError::Arch(arch.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths() {
        let p = parse_field("task_struct.se.vruntime").unwrap();
        assert_eq!(p.strukt, "task_struct");
        assert_eq!(p.member_path(), "se.vruntime");
        assert_eq!(p.key(), "task_struct.se.vruntime");
        for bad in ["", "filename", ".x", "a.", "a..b", "a.b c", "1a.b", "a.b;"] {
            assert!(parse_field(bad).is_err(), "{bad}");
        }
        let w = wanted_fields(&[
            "filename.refcnt".into(),
            "inode.i_ino".into(),
            "file.f_path.dentry".into(),
            "file.f_path.mnt".into(),
        ])
        .unwrap();
        let keys: Vec<_> = w.iter().map(FieldPath::key).collect();
        assert_eq!(
            keys,
            [
                "filename.name",
                "filename.refcnt",
                "inode.i_ino",
                "file.f_path",
                "file.f_path.dentry",
                "file.f_path.mnt"
            ]
        );
    }

    #[test]
    fn unlink_shapes() {
        let new = FnSig {
            params: vec![
                ("dfd".into(), ParamType::Other("int".into())),
                ("name".into(), ParamType::StructPtr("filename".into())),
            ],
            symbol: true,
        };
        let f = unlink_function(&new, "dwarf").unwrap();
        assert_eq!((f.name_arg, f.name_arg_type), (2, NameArgType::Filename));
        let old = FnSig {
            params: vec![
                ("dfd".into(), ParamType::Other("int".into())),
                ("pathname".into(), ParamType::CharPtr),
            ],
            symbol: false,
        };
        let f = unlink_function(&old, "source").unwrap();
        assert_eq!((f.name_arg, f.name_arg_type), (2, NameArgType::UserPath));
        assert!(!f.symbol);
        let odd = FnSig {
            params: vec![("x".into(), ParamType::Other("int".into()))],
            symbol: true,
        };
        let e = unlink_function(&odd, "btf").unwrap_err().to_string();
        assert!(e.contains("(int x)"), "{e}");
    }
}
