//! Where struct members come from on this machine, for `nobtf trace` and
//! `nobtf load` alike: `--offsets FILE` (the user said so), else the
//! kernel's BTF, else the builtin profile known to fit this kernel.

use std::fs;
use std::io;
use std::path::PathBuf;

use btf::Btf;
use kernel_headers::pt_regs::NATIVE;
use profile::{FieldSource, Lookup, Profile};

use crate::detect::Report;
use crate::plan::{self, PlanError};

/// Where the kernel's BTF is, when it was built with it (5.4+ with
/// CONFIG_DEBUG_INFO_BTF).
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum FieldsError {
    #[error(
        "reading the kernel's BTF {KERNEL_BTF}: {err}; pass an offsets profile with --offsets FILE"
    )]
    KernelBtf { err: String },
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// Where struct members come from.
pub enum Fields {
    Profile {
        profile: Box<Profile>,
        shown: String,
    },
    Btf(Box<Btf>),
    /// No profile, no BTF, and no builtin profile fits: what reads no
    /// struct still runs; what does is refused, naming the field.
    Nothing,
}

impl Fields {
    pub fn choose(offsets: Option<&PathBuf>, report: &Report) -> Result<Fields, FieldsError> {
        if let Some(path) = offsets {
            return Ok(Fields::Profile {
                profile: Box::new(plan::choose_profile(Some(path), report)?),
                shown: path.display().to_string(),
            });
        }
        match fs::read(KERNEL_BTF) {
            Ok(bytes) => {
                let btf = Btf::parse(&bytes)
                    .map_err(|e| FieldsError::KernelBtf { err: e.to_string() })?;
                // BTF does not record the pointer size (4 bytes on 32-bit ARM).
                let btf = btf.with_pointer_size(u32::from(NATIVE.pointer_bytes));
                return Ok(Fields::Btf(Box::new(btf)));
            }
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(FieldsError::KernelBtf { err: e.to_string() });
            }
            Err(_) => {}
        }
        Ok(match plan::choose_profile(None, report) {
            Ok(profile) => Fields::Profile {
                profile: Box::new(profile),
                shown: "builtin".into(),
            },
            Err(_) => Fields::Nothing,
        })
    }

    /// For `-v`: where fields come from.
    pub fn describe(&self) -> String {
        match self {
            Fields::Profile { shown, .. } => format!("offsets profile {shown}"),
            Fields::Btf(_) => format!("the kernel's BTF ({KERNEL_BTF})"),
            Fields::Nothing => "nowhere (no profile, no BTF, no builtin profile fits)".into(),
        }
    }
}

impl FieldSource for Fields {
    fn lookup(&self, strukt: &str, member: &str) -> Lookup {
        match self {
            Fields::Profile { profile, .. } => profile.lookup(strukt, member),
            Fields::Btf(btf) => btf.lookup(strukt, member),
            Fields::Nothing => Lookup::Unknown,
        }
    }

    fn is_signed(&self, strukt: &str, member: &str) -> Option<bool> {
        match self {
            Fields::Btf(btf) => FieldSource::is_signed(btf.as_ref(), strukt, member),
            _ => None,
        }
    }

    fn struct_layout(&self, strukt: &str) -> Option<(u32, u32)> {
        match self {
            Fields::Profile { profile, .. } => profile.struct_layout(strukt),
            Fields::Btf(btf) => btf.struct_layout(strukt),
            Fields::Nothing => None,
        }
    }

    fn enum_value(&self, name: &str) -> Option<i64> {
        match self {
            Fields::Profile { profile, .. } => profile.enum_value(name),
            Fields::Btf(btf) => FieldSource::enum_value(btf.as_ref(), name),
            Fields::Nothing => None,
        }
    }

    fn has_kernel_btf(&self) -> bool {
        matches!(self, Fields::Btf(_))
    }
}

/// The byte offset of `member` directly in struct `strukt`, from the
/// kernel's BTF read a piece at a time (`btf::partial`): the unlink probes
/// ask for `task_struct.comm` at every start, and the whole BTF is
/// megabytes. `None` without BTF, or when the struct or member is not
/// there.
pub fn kernel_member_offset(strukt: &str, member: &str) -> Option<u32> {
    use btf::partial::{self, Prefix, Scan};
    use std::os::unix::fs::FileExt;

    let file = fs::File::open(KERNEL_BTF).ok()?;
    let read = |range: &std::ops::Range<usize>, len: usize| -> Option<(Vec<u8>, bool)> {
        let len = len.min(range.len());
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match file.read_at(&mut buf[got..], (range.start + got) as u64) {
                Ok(0) => return None,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        Some((buf, len == range.len()))
    };
    let mut header = [0u8; btf::HEADER_LEN];
    file.read_exact_at(&mut header, 0).ok()?;
    let sections = btf::Sections::of(&header).ok()?;
    // Doubled until found: 16 KiB of each holds task_struct on the kernels
    // seen (debian-6.12 needs under 4 KiB of each).
    let (mut types_len, mut strings_len) = (16 << 10, 16 << 10);
    let (mut types, mut strings) = (
        read(&sections.types, types_len)?,
        read(&sections.strings, strings_len)?,
    );
    loop {
        let scan = partial::member_offset(
            Prefix {
                bytes: &types.0,
                whole: types.1,
            },
            Prefix {
                bytes: &strings.0,
                whole: strings.1,
            },
            strukt,
            member,
        )
        .ok()?;
        match scan {
            Scan::Found { bit_offset } => {
                return (bit_offset % 8 == 0).then_some(bit_offset / 8);
            }
            Scan::Absent => return None,
            Scan::MoreTypes => {
                types_len *= 4;
                types = read(&sections.types, types_len)?;
            }
            Scan::MoreStrings => {
                strings_len *= 4;
                strings = read(&sections.strings, strings_len)?;
            }
        }
    }
}
