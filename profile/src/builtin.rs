//! Profiles compiled in, each with the kernel versions it is known to fit,
//! so a kernel without a generated profile can still be traced when its
//! layout is one of these.

use std::collections::BTreeMap;
use std::fmt;

use kernel_headers::KernelVersion;

use crate::model::{
    DO_UNLINKAT, FILENAME_NAME, FILENAME_REFCNT, FORMAT_VERSION, Field, Function, GENERATOR,
    KernelInfo, NameArgType, Profile, Provenance,
};

/// A builtin profile and the versions it fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// The first version it fits.
    pub since: KernelVersion,
    /// The last version it fits; `None`: every later one checked so far.
    pub until: Option<KernelVersion>,
    /// The profile's `[source] detail`.
    pub detail: &'static str,
    pub fields: &'static [(&'static str, Field)],
    /// `do_unlinkat`'s path argument: its 1-based index and type.
    pub name_arg: u8,
    pub name_arg_type: NameArgType,
}

/// The layout of 4.19 to 6.x kernels (5.4 as in the reference: `name` at
/// +0, `refcnt` at +16, `do_unlinkat(int dfd, struct filename *name)`).
/// 4.14 has `refcnt` at +24 and passes a `const char __user *`.
pub const FILENAME: Builtin = Builtin {
    since: KernelVersion::new(4, 19, 0),
    until: None,
    detail: "struct filename as on 4.19..6.x",
    fields: &[
        (FILENAME_NAME, Field { offset: 0, size: 8 }),
        (
            FILENAME_REFCNT,
            Field {
                offset: 16,
                size: 4,
            },
        ),
    ],
    name_arg: 2,
    name_arg_type: NameArgType::Filename,
};

/// Every builtin, tried in order.
pub const ALL: &[Builtin] = &[FILENAME];

/// The builtin known to fit a kernel of this version, if any.
pub fn for_version(version: KernelVersion) -> Option<&'static Builtin> {
    ALL.iter().find(|b| b.fits(version))
}

/// The versions some builtin fits, for an error message: "4.19 and later".
pub fn known_versions() -> String {
    let ranges: Vec<String> = ALL.iter().map(|b| b.versions().to_string()).collect();
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
            .map(|&(key, field)| (key.to_string(), field))
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
            kernel: KernelInfo {
                release: release.into(),
                arch: "x86_64".into(),
            },
            source: Provenance {
                method: "builtin".into(),
                detail: self.detail.into(),
                generator: GENERATOR.into(),
            },
            fields,
            functions,
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
            assert_eq!(for_version(version(fits)), Some(&FILENAME), "{fits}");
        }
        for older in ["4.14.177", "4.18.20", "3.10.0"] {
            assert_eq!(for_version(version(older)), None, "{older}");
        }
        assert_eq!(known_versions(), "4.19 and later");
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
                name: Field { offset: 0, size: 8 },
                refcnt: Field {
                    offset: 16,
                    size: 4
                }
            }
        );
    }
}
