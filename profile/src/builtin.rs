//! Profiles compiled in, each with the kernel versions it is known to fit,
//! so a kernel without a generated profile can still be traced when its
//! layout is one of these.

use std::collections::BTreeMap;
use std::fmt;

use kernel_headers::KernelVersion;

use crate::FORMAT_VERSION;

use crate::model::{
    DO_UNLINKAT, FILENAME_NAME, FILENAME_REFCNT, Field, Function, GENERATOR, KernelInfo,
    NameArgType, Profile, Provenance,
};

/// A builtin profile and the versions it fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// The architecture it is for (a `kernel_headers::pt_regs::ABIS` row).
    pub arch: &'static str,
    /// The first version it fits.
    pub since: KernelVersion,
    /// The last version it fits; `None`: every later one checked so far.
    pub until: Option<KernelVersion>,
    /// The profile's `[source] detail`.
    pub detail: &'static str,
    pub fields: &'static [BuiltinField],
    /// `do_unlinkat`'s path argument: its 1-based index and type.
    pub name_arg: u8,
    pub name_arg_type: NameArgType,
}

/// A field of a builtin profile: `Field` with a constant type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinField {
    pub key: &'static str,
    pub offset: u32,
    pub size: u32,
    pub c_type: &'static str,
}

/// `struct filename`'s two fields at these offsets and pointer size. The
/// count is `int` to 6.2 and an `atomic_t` (an int inside) later: `int`
/// reads both.
const fn filename_fields(name_size: u32, refcnt_offset: u32) -> [BuiltinField; 2] {
    [
        BuiltinField {
            key: FILENAME_NAME,
            offset: 0,
            size: name_size,
            c_type: "char *",
        },
        BuiltinField {
            key: FILENAME_REFCNT,
            offset: refcnt_offset,
            size: 4,
            c_type: "int",
        },
    ]
}

/// The layout of 4.19 to 6.x kernels (5.4 as in the reference: `name` at
/// +0, `refcnt` at +16, `do_unlinkat(int dfd, struct filename *name)`).
/// 4.14 has `refcnt` at +24 and passes a `const char __user *`.
pub const FILENAME: Builtin = Builtin {
    arch: "x86_64",
    since: KernelVersion::new(4, 19, 0),
    until: None,
    detail: "struct filename as on 4.19..6.x",
    fields: &filename_fields(8, 16),
    name_arg: 2,
    name_arg_type: NameArgType::Filename,
};

/// arm64: the same 64-bit layout and signature, checked against the BTF of
/// Debian 12's arm64 kernel (6.1).
pub const FILENAME_AARCH64: Builtin = Builtin {
    arch: "aarch64",
    ..FILENAME
};

/// 32-bit ARM: 4-byte pointers, so `name` at +0 (4 bytes), `uptr` at +4,
/// `refcnt` at +8; the signature is the same. Checked in a VM on Debian 12's
/// armmp kernel (6.1).
pub const FILENAME_ARM: Builtin = Builtin {
    arch: "arm",
    detail: "struct filename as on 4.19..6.x, 32-bit",
    fields: &filename_fields(4, 8),
    ..FILENAME
};

/// Every builtin, tried in order.
pub const ALL: &[Builtin] = &[FILENAME, FILENAME_AARCH64, FILENAME_ARM];

/// The builtin for `arch` known to fit a kernel of this version, if any.
pub fn for_version(arch: &str, version: KernelVersion) -> Option<&'static Builtin> {
    ALL.iter().find(|b| b.arch == arch && b.fits(version))
}

/// The builtin for `arch`, whatever the version: the programs it builds name
/// the helpers they call even where the profile would be refused.
pub fn for_arch(arch: &str) -> Option<&'static Builtin> {
    ALL.iter().find(|b| b.arch == arch)
}

/// The versions some builtin for `arch` fits, for an error message: "4.19
/// and later", or "none" for an architecture without one.
pub fn known_versions(arch: &str) -> String {
    let ranges: Vec<String> = ALL
        .iter()
        .filter(|b| b.arch == arch)
        .map(|b| b.versions().to_string())
        .collect();
    if ranges.is_empty() {
        return "none".into();
    }
    ranges.join(", ")
}

impl Builtin {
    pub fn fits(&self, version: KernelVersion) -> bool {
        version >= self.since && self.until.is_none_or(|until| version <= until)
    }

    /// The range it fits, as `4.19 and later` or `4.19 to 5.4`.
    pub fn versions(&self) -> impl fmt::Display + '_ {
        Versions(self)
    }

    /// The profile, labelled with the running kernel's release.
    pub fn profile(&self, release: &str) -> Profile {
        let fields: BTreeMap<String, Field> = self
            .fields
            .iter()
            .map(|f| (f.key.to_string(), Field::typed(f.offset, f.size, f.c_type)))
            .collect();
        let mut functions = BTreeMap::new();
        functions.insert(
            DO_UNLINKAT.into(),
            Function {
                symbol: true,
                name_arg: self.name_arg,
                name_arg_type: self.name_arg_type,
                decided_by: "builtin".into(),
            },
        );
        Profile {
            format: FORMAT_VERSION,
            kernel: KernelInfo::new(release, self.arch),
            source: Provenance {
                method: "builtin".into(),
                detail: self.detail.into(),
                generator: GENERATOR.into(),
            },
            fields,
            functions,
            structs: Default::default(),
            enums: Default::default(),
        }
    }
}

struct Versions<'a>(&'a Builtin);

impl fmt::Display for Versions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since = self.0.since;
        write!(f, "{}.{}", since.major, since.minor)?;
        match self.0.until {
            None => write!(f, " and later"),
            Some(until) => write!(f, " to {}.{}", until.major, until.minor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UnlinkArg;

    fn version(text: &str) -> KernelVersion {
        KernelVersion::parse(text).unwrap()
    }

    #[test]
    fn filename_fits_4_19_and_later() {
        for fits in ["4.19.0", "4.19.260", "5.4.0", "6.12.1"] {
            assert_eq!(
                for_version("x86_64", version(fits)),
                Some(&FILENAME),
                "{fits}"
            );
        }
        for older in ["4.14.177", "4.18.20", "3.10.0"] {
            assert_eq!(for_version("x86_64", version(older)), None, "{older}");
        }
        assert_eq!(known_versions("x86_64"), "4.19 and later");
        assert_eq!(known_versions("sparc"), "none");
    }

    #[test]
    fn each_architecture_has_its_own_layout() {
        let v = version("6.1.0");
        assert_eq!(for_version("aarch64", v), Some(&FILENAME_AARCH64));
        let arm = for_version("arm", v).unwrap();
        let profile = arm.profile("6.1.0-50-armmp");
        assert_eq!(profile.kernel.arch, "arm");
        let text = profile.to_toml_string();
        assert_eq!(Profile::from_toml_str(&text).unwrap(), profile);
        assert_eq!(
            profile.unlink().unwrap().kind,
            UnlinkArg::Filename {
                name: Field::typed(0, 4, "char *"),
                refcnt: Field::typed(8, 4, "int"),
            }
        );
        // A 64-bit pointer size on a 32-bit architecture is refused.
        let mut wrong = profile.clone();
        wrong
            .fields
            .insert(FILENAME_NAME.into(), Field::typed(0, 8, "char *"));
        let err = wrong.unlink().unwrap_err().to_string();
        assert!(err.contains("a pointer is 4 bytes on arm"), "{err}");
        // arm passes four arguments in registers; a fifth is refused.
        let mut fifth = profile;
        fifth.functions.get_mut(DO_UNLINKAT).unwrap().name_arg = 5;
        assert!(fifth.validate().unwrap_err().to_string().contains("1..=4"));
    }

    #[test]
    fn a_closed_range_ends() {
        let closed = Builtin {
            until: Some(KernelVersion::new(5, 4, 0)),
            ..FILENAME
        };
        assert!(closed.fits(version("5.4.0")));
        assert!(!closed.fits(version("5.4.1")));
        assert_eq!(closed.versions().to_string(), "4.19 to 5.4");
    }

    #[test]
    fn filename_round_trips_and_answers_the_probes() {
        let profile = FILENAME.profile("5.4.0");
        profile.validate().unwrap();
        let text = profile.to_toml_string();
        assert_eq!(Profile::from_toml_str(&text).unwrap(), profile);
        let facts = profile.unlink().unwrap();
        assert_eq!(facts.name_arg, 2);
        assert_eq!(
            facts.kind,
            UnlinkArg::Filename {
                name: Field::typed(0, 8, "char *"),
                refcnt: Field::typed(16, 4, "int"),
            }
        );
    }
}
