//! `offsets gen --vmlinux` and `--btf`: profiles from DWARF or BTF bytes.

use kernel_headers::pt_regs::{self, Abi};
use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::btf::Btf;
use crate::elf::Elf;
use crate::error::GenError;
use crate::model::{self, FieldPath};
use profile::{DO_UNLINKAT, Field, Profile, Provenance, StructLayout};

/// What the caller asks for beyond the built-in facts.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Extra `struct.member` fields (`--field`).
    pub fields: Vec<String>,
    /// Structs whose size and alignment to record (`[structs]`): those a
    /// `--fields-from` program's own types embed.
    pub structs: Vec<String>,
    /// Enumerators whose values to record (`[enums]`): those a
    /// `--fields-from` program names.
    pub enums: Vec<String>,
    /// The kernel release, when the input does not carry it (raw BTF).
    pub release: Option<String>,
    /// The build's `uname -v`, when the input does not carry it (the
    /// running kernel's raw BTF).
    pub version: Option<String>,
    /// The kernel's architecture (`--arch`): checked against an ELF input,
    /// assumed for raw BTF. None: the ELF's, else this machine's.
    pub arch: Option<&'static Abi>,
}

impl Request {
    /// The architecture of an input: the ELF's own, which `--arch` must
    /// agree with; for raw BTF, `--arch` or this machine's.
    fn abi(&self, elf: Option<&Elf>, label: &str) -> Result<&'static Abi, GenError> {
        match (elf.map(Elf::abi), self.arch) {
            (Some(found), Some(asked)) if found != asked => Err(GenError::ArchMismatch {
                input: label.into(),
                found: found.arch,
                asked: asked.arch,
            }),
            (Some(found), _) => Ok(found),
            (None, asked) => Ok(asked.unwrap_or(pt_regs::NATIVE)),
        }
    }
}

/// A generated profile, plus warnings worth showing the user.
#[derive(Debug)]
pub struct Generated {
    pub profile: Profile,
    pub warnings: Vec<String>,
}

pub fn short_hash(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn release_or(req: &Request, found: Option<String>) -> String {
    req.release
        .clone()
        .or(found)
        .unwrap_or_else(|| "unknown".into())
}

/// From a vmlinux (or a `.ko`) with DWARF.
pub fn from_vmlinux(data: &[u8], label: &str, req: &Request) -> Result<Generated, GenError> {
    let elf = Elf::parse(data)?;
    let abi = req.abi(Some(&elf), label)?;
    let paths = model::wanted_fields(&req.fields)?;
    let wanted = crate::dwarf::Wanted {
        structs: &req.structs,
        enums: &req.enums,
    };
    let found = crate::dwarf::scan_elf(&elf, &paths, DO_UNLINKAT, wanted)?;
    let mut fields = BTreeMap::new();
    for path in &paths {
        match found.fields.get(path) {
            Some(Ok(f)) => {
                fields.insert(path.key(), f.clone());
            }
            Some(Err(e)) => return Err(GenError::Dwarf(e.clone())),
            None => return Err(GenError::NoStruct(path.strukt.clone())),
        }
    }
    let mut warnings = Vec::new();
    let sig = match found.function {
        Some(mut sig) => {
            if let Some(sym) = elf.has_function(DO_UNLINKAT) {
                sig.symbol = sym;
            }
            sig
        }
        None => {
            return Err(GenError::SymbolMissing {
                name: DO_UNLINKAT.into(),
                why: if elf.is_relocatable() {
                    "is not described in this module's DWARF; use the kernel's vmlinux".into()
                } else {
                    "has no DW_TAG_subprogram in this file's DWARF".into()
                },
            });
        }
    };
    if !sig.symbol {
        warnings.push(format!(
            "{DO_UNLINKAT} has no function symbol in {label}: a kprobe cannot attach to it"
        ));
    }
    let unlink = model::unlink_function(&sig, "dwarf")?;
    let detail = match elf.build_id() {
        Some(id) => format!("{label} build-id {id}"),
        None => format!("{label} sha256 {}", short_hash(data)),
    };
    let mut profile = model::assemble(
        abi,
        release_or(req, elf.release()),
        Provenance {
            method: "vmlinux".into(),
            detail,
            generator: String::new(),
        },
        fields,
        unlink,
    )?;
    profile.kernel.version = elf.build_version();
    let named = Named {
        structs: found.structs,
        enums: found.enums,
    };
    record_named(&mut profile, req, named, &mut warnings)?;
    Ok(Generated { profile, warnings })
}

/// From raw BTF, or an ELF (vmlinux) carrying a `.BTF` section.
pub fn from_btf(data: &[u8], label: &str, req: &Request) -> Result<Generated, GenError> {
    let (btf_bytes, release, abi, version) = if data.starts_with(b"\x7fELF") {
        let elf = Elf::parse(data)?;
        let abi = req.abi(Some(&elf), label)?;
        let section = elf.section(".BTF")?.ok_or_else(|| {
            GenError::Btf(format!(
                "{label} has no .BTF section (a kernel without CONFIG_DEBUG_INFO_BTF); use --vmlinux or --kernel-src"
            ))
        })?;
        (
            section.into_owned(),
            elf.release(),
            abi,
            elf.build_version(),
        )
    } else {
        (data.to_vec(), None, req.abi(None, label)?, None)
    };
    // BTF gives pointers no size: it is the architecture's.
    let btf = Btf::parse(&btf_bytes)?.with_pointer_size(u32::from(abi.pointer_bytes));
    let paths = model::wanted_fields(&req.fields)?;
    let fields = paths
        .iter()
        .map(|p| Ok((p.key(), btf.field(p)?)))
        .collect::<Result<BTreeMap<String, Field>, GenError>>()?;
    let sig = btf
        .function(DO_UNLINKAT)?
        .ok_or_else(|| GenError::SymbolMissing {
            name: DO_UNLINKAT.into(),
            why: "has no BTF FUNC in this BTF".into(),
        })?;
    let unlink = model::unlink_function(&sig, "btf")?;
    let mut profile = model::assemble(
        abi,
        release_or(req, release),
        Provenance {
            method: "btf".into(),
            detail: format!("{label} sha256 {}", short_hash(&btf_bytes)),
            generator: String::new(),
        },
        fields,
        unlink,
    )?;
    profile.kernel.version = version.or_else(|| req.version.clone());
    let mut named = Named::default();
    for name in &req.structs {
        if let Some(layout) = btf.struct_layout(name)? {
            named.structs.insert(name.clone(), layout);
        }
    }
    for name in &req.enums {
        if let Some(value) = btf.enum_value(name)? {
            named.enums.insert(name.clone(), value);
        }
    }
    let mut warnings = Vec::new();
    record_named(&mut profile, req, named, &mut warnings)?;
    Ok(Generated { profile, warnings })
}

/// The layouts of the structs and the values of the enumerators a
/// `--fields-from` program asked for that the kernel has.
#[derive(Debug, Default)]
pub struct Named {
    pub structs: BTreeMap<String, StructLayout>,
    pub enums: BTreeMap<String, i64>,
}

/// Put the structs' layouts and the enumerators' values found into the
/// profile, and warn of each asked for that the kernel does not have: the
/// program then says which is missing when it runs.
pub(crate) fn record_named(
    profile: &mut Profile,
    req: &Request,
    Named { structs, enums }: Named,
    warnings: &mut Vec<String>,
) -> Result<(), GenError> {
    for name in req.structs.iter().filter(|n| !structs.contains_key(*n)) {
        warnings.push(format!(
            "struct `{name}` is not defined in this kernel: its size is not recorded"
        ));
    }
    for name in req.enums.iter().filter(|n| !enums.contains_key(*n)) {
        warnings.push(format!(
            "`{name}` is no enumerator of this kernel: its value is not recorded"
        ));
    }
    profile.structs = structs;
    profile.enums = enums;
    profile.validate()?;
    Ok(())
}

/// Parse a field list for callers that only validate.
pub fn parse_fields(fields: &[String]) -> Result<Vec<FieldPath>, GenError> {
    model::wanted_fields(fields)
}
