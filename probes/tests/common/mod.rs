//! Profiles and variants shared by the integration tests.
#![allow(dead_code)]

use probes::unlink::{Choices, CommRead, Output, Readers};
use profile::{Field, NameArgType, Profile};

/// 4.19..6.x (and the reference's 5.4): `name` at +0, `refcnt` at +16.
pub fn profile_5_4() -> Profile {
    profile::builtin::FILENAME.profile("5.4.0")
}

/// A 4.x layout with `aname` before `refcnt`: `refcnt` at +24.
pub fn profile_4_x() -> Profile {
    let mut profile = profile::builtin::FILENAME.profile("4.x");
    profile
        .fields
        .insert(profile::FILENAME_REFCNT.into(), Field::typed(24, 4, "int"));
    profile
}

/// 4.14 and earlier: `do_unlinkat(int dfd, const char __user *pathname)`.
pub fn profile_user_path() -> Profile {
    let mut profile = profile::builtin::FILENAME.profile("4.14.0");
    if let Some(f) = profile.functions.get_mut(profile::DO_UNLINKAT) {
        f.name_arg_type = NameArgType::UserPath;
    }
    profile
}

pub const OUTPUTS: [Output; 2] = [Output::PerfEvents, Output::TracePrintk];
pub const READS: [Readers; 3] = [Readers::ProbeReadStr, Readers::Split, Readers::ProbeRead];

pub fn choices(output: Output, read: Readers) -> Choices {
    Choices {
        read,
        output,
        comm: CommRead::Helper,
    }
}
