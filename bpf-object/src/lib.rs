//! Legacy BPF C objects: the `.o` files `clang -target bpf -c` writes for
//! kernels without BTF (kprobes against a hand-written `pt_regs`, maps in the
//! old `maps` section), read into typed data with no syscall.
//!
//! - [`Object::parse`]: bytes in, an [`Object`] or one [`ObjError`] out;
//!   never a panic, whatever the bytes.
//! - [`ObjProgram::relocated`]: the program's instructions with each map
//!   reference patched to `PSEUDO_MAP_FD` and the fd of the map created for
//!   it; the fds come in as plain numbers.
//!
//! - [`Object::prepare`]: the object adapted to one kernel, given what it
//!   has ([`KernelFacts`]) and where its struct fields are
//!   ([`FieldSource`]): global data as maps (5.2+) or copied to the stack,
//!   helper fallback, CO-RE field relocations resolved; with a log of what
//!   was rewritten ([`Rewrite`]).
//! - [`Object::needed_fields`]: every `struct.member` its CO-RE relocations
//!   need from an offsets profile.
//!
//! What is refused, and why (each with its own error):
//! - programs other than `kprobe/<fn>` and `kretprobe/<fn>`;
//! - BTF-defined maps (`.maps`): their layout is only described by BTF;
//! - CO-RE relocations other than on fields (type ids, enum values), and
//!   field relocations through arrays or on bit-fields;
//! - BPF-to-BPF calls: inline the callee instead.
//!
//! `.BTF` and `.BTF.ext` serve the CO-RE records only; no BTF is loaded, so
//! an object built with `-g` loads as one built without it.

#![forbid(unsafe_code)]

mod btf_ext;
mod co_re;
mod elf;
mod error;
mod helpers;
mod maps;
mod prepare;
mod program;
mod stack;

#[cfg(test)]
mod tests;

use std::fmt;

use kernel_headers::bpf::RawInsn;

pub use co_re::{
    CoreKind, CoreReloc, Field, FieldPath, FieldSource, LocalField, Lookup, NoFields, Resolved,
};
pub use error::{ObjError, RelocCause};
/// Where a program attaches: its section is `kprobe/<fn>` or `kretprobe/<fn>`.
pub use kernel_headers::kprobe::ProbeKind;
pub use prepare::{DataMap, KernelFacts, MapRef, MapSpec, Prepared, ReadyProgram, Rewrite};

/// A parsed legacy object: everything needed to create its maps and load,
/// relocate and attach its programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The `license` section up to its NUL, e.g. `GPL`.
    pub license: String,
    /// The `version` section, when there is one. Loaders put the running
    /// kernel's version there instead (checked before 5.0).
    pub kern_version: Option<u32>,
    /// In `maps` section order: a relocation's map index points here.
    pub maps: Vec<MapDef>,
    /// In section order, then by offset in the section.
    pub programs: Vec<ObjProgram>,
    /// Global data sections (`.rodata*`, `.data*`, `.bss*`), in section
    /// order: a [`DataReloc`]'s index points here.
    pub data: Vec<DataSection>,
}

/// One global data section, as libbpf would make a map of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSection {
    /// e.g. `.rodata.str1.1`, `.bss`.
    pub name: String,
    /// The section's bytes; zeros for `.bss`.
    pub bytes: Vec<u8>,
    /// `.rodata*`: programs only read it.
    pub read_only: bool,
    /// Named objects in it (variables, `bpf_printk`'s format arrays), by
    /// offset: they say how many bytes a reference to one needs.
    pub symbols: Vec<DataSymbol>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSymbol {
    pub name: String,
    pub offset: u64,
    pub size: u64,
}

/// One `struct bpf_map_def` from the `maps` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDef {
    /// The symbol naming it.
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
}

/// One program: a function symbol in a `kprobe/` or `kretprobe/` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjProgram {
    /// The section, e.g. `kprobe/do_unlinkat`.
    pub section: String,
    /// The function symbol (the C function name), e.g. `unlink_entry`.
    pub name: String,
    pub kind: ProbeKind,
    /// The kernel function to attach to, from the section name.
    pub function: String,
    /// Byte offset of the program in its section.
    pub offset: u64,
    /// As in the object: map references still hold the object's addend.
    pub insns: Vec<RawInsn>,
    /// Which `ld_imm64` loads which map.
    pub map_relocs: Vec<MapReloc>,
    /// Which `ld_imm64` loads an address in global data.
    pub data_relocs: Vec<DataReloc>,
    /// CO-RE field relocations, resolved against the object's own BTF.
    pub core_relocs: Vec<CoreReloc>,
}

/// A global data reference: the `ld_imm64` at instruction `insn` loads the
/// address of byte `offset` of `Object::data[data]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataReloc {
    pub insn: usize,
    pub data: usize,
    pub offset: u32,
}

/// A map reference: the `ld_imm64` at instruction `insn` (its first slot)
/// loads the map `Object::maps[map]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapReloc {
    pub insn: usize,
    pub map: usize,
}

/// How sections are told apart.
const LICENSE: &str = "license";
const VERSION: &str = "version";
const MAPS: &str = "maps";
const BTF_MAPS: &str = ".maps";
const BTF: &str = ".BTF";
const BTF_EXT: &str = ".BTF.ext";

impl Object {
    /// Reads a legacy BPF object. Checks, in order: the ELF header, that
    /// every section is inside the file, the section kinds, CO-RE, the maps,
    /// then each program and its relocations.
    pub fn parse(data: &[u8]) -> Result<Object, ObjError> {
        let elf = elf::Elf::parse(data)?;
        let sections = elf.sections()?;
        let symbols = elf.symbols()?;

        let mut license = None;
        let mut kern_version = None;
        let mut maps_section = None;
        let mut program_sections = Vec::new();
        let mut data_sections = Vec::new();
        let (mut btf, mut core_records) = (None, Vec::new());
        for section in &sections {
            match program::classify(section)? {
                program::Role::Program(kind, function) => {
                    program_sections.push((section, kind, function))
                }
                program::Role::Other => match section.name.as_str() {
                    LICENSE => license = Some(read_license(elf.data(section)?)),
                    VERSION => kern_version = Some(read_version(elf.data(section)?)?),
                    MAPS => maps_section = Some(section),
                    BTF_MAPS if section_size(section) > 0 => return Err(ObjError::BtfMaps),
                    BTF => btf = Some(elf.data(section)?),
                    BTF_EXT => {
                        core_records = btf_ext::core_records(elf.data(section)?)
                            .map_err(|cause| ObjError::BadBtf { cause })?;
                    }
                    name if program::is_global_data(name) && section_size(section) > 0 => {
                        data_sections.push(section)
                    }
                    _ => {}
                },
            }
        }

        let maps = match maps_section {
            Some(section) => {
                let in_maps: Vec<elf::Symbol> = symbols
                    .iter()
                    .filter(|s| s.section == Some(section.index) && program::is_named_object(s))
                    .cloned()
                    .collect();
                maps::parse(elf.data(section)?, section_size(section), &in_maps)?
            }
            None => Vec::new(),
        };
        let mut data = Vec::with_capacity(data_sections.len());
        for section in &data_sections {
            data.push(read_data(&elf, section, &symbols)?);
        }
        let data_places: Vec<_> = data_sections
            .iter()
            .map(|s| (s.index, section_size(s)))
            .collect();
        let context = program::Context {
            elf: &elf,
            sections: &sections,
            maps_section: maps_section.map(|s| s.index),
            maps: &maps,
            data: &data_places,
        };
        let mut programs = Vec::new();
        for (section, kind, function) in program_sections {
            programs.extend(context.programs(section, kind, &function, &symbols)?);
        }
        if programs.is_empty() {
            return Err(ObjError::NoPrograms);
        }
        if !core_records.is_empty() {
            let btf = btf::Btf::parse(btf.unwrap_or_default())
                .map_err(|e| ObjError::BadBtf { cause: e.0 })?;
            prepare::attach_core(&btf, &core_records, &mut programs)?;
        }
        let license = license.ok_or(ObjError::MissingLicense)?;
        Ok(Object {
            license,
            kern_version,
            maps: maps.into_iter().map(|m| m.def).collect(),
            programs,
            data,
        })
    }

    /// Every `struct.member` the CO-RE relocations need from an offsets
    /// profile (`offsets gen --fields-from OBJECT`); `pt_regs` members are
    /// left out, the architecture answers them.
    pub fn needed_fields(&self) -> Vec<String> {
        co_re::needed(self.programs.iter().flat_map(|p| &p.core_relocs))
            .iter()
            .map(FieldPath::key)
            .collect()
    }

    /// The object adapted to one kernel: see [`Prepared`].
    pub fn prepare(
        &self,
        kernel: &mut KernelFacts<'_>,
        fields: &dyn FieldSource,
    ) -> Result<Prepared, ObjError> {
        prepare::prepare(self, kernel, fields)
    }
}

fn read_data(
    elf: &elf::Elf<'_>,
    section: &elf::Section<'_>,
    symbols: &[elf::Symbol],
) -> Result<DataSection, ObjError> {
    let size = section_size(section);
    let mut bytes = elf.data(section)?.to_vec();
    // NOBITS (.bss) has no bytes in the file; the kernel's map starts zeroed.
    let len = usize::try_from(size).map_err(|_| ObjError::Malformed {
        what: format!("section `{}`", section.name),
        cause: format!("{size} bytes"),
    })?;
    bytes.resize(len, 0);
    let mut named: Vec<DataSymbol> = symbols
        .iter()
        .filter(|s| s.section == Some(section.index) && program::is_named_object(s))
        .map(|s| DataSymbol {
            name: s.name.clone(),
            offset: s.value,
            size: s.size,
        })
        .collect();
    named.sort_by_key(|s| s.offset);
    Ok(DataSection {
        name: section.name.clone(),
        bytes,
        read_only: section.name.starts_with(".rodata"),
        symbols: named,
    })
}

impl ObjProgram {
    /// The instructions with every map reference pointing at its map:
    /// `src_reg = PSEUDO_MAP_FD`, `imm = map_fds[map]`, the second slot's
    /// `imm = 0`. `map_fds[i]` is the fd of `Object::maps[i]`.
    pub fn relocated(&self, map_fds: &[i32]) -> Result<Vec<RawInsn>, ObjError> {
        program::relocate(self, map_fds)
    }
}

fn section_size(section: &elf::Section<'_>) -> u64 {
    use object::read::elf::SectionHeader;
    section.header.sh_size(object::LittleEndian)
}

/// The license string runs to the first NUL (C strings), or to the end.
fn read_license(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

fn read_version(data: &[u8]) -> Result<u32, ObjError> {
    match data {
        [a, b, c, d] => Ok(u32::from_le_bytes([*a, *b, *c, *d])),
        _ => Err(ObjError::BadVersion {
            size: data.len() as u64,
        }),
    }
}

impl fmt::Display for Object {
    /// A summary: license, version, maps, programs with their sizes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "license {:?}", self.license)?;
        match self.kern_version {
            Some(v) => writeln!(f, ", version {v:#x}")?,
            None => writeln!(f, ", no version")?,
        }
        for (i, m) in self.maps.iter().enumerate() {
            writeln!(
                f,
                "map {i} {}: type {} key {} value {} entries {} flags {:#x}",
                m.name, m.map_type, m.key_size, m.value_size, m.max_entries, m.map_flags
            )?;
        }
        for d in &self.data {
            let kind = if d.read_only { "read-only" } else { "writable" };
            writeln!(f, "data {}: {} bytes, {kind}", d.name, d.bytes.len())?;
        }
        for p in &self.programs {
            let maps: Vec<String> = p
                .map_relocs
                .iter()
                .map(|r| format!("{}@{}", r.map, r.insn))
                .collect();
            writeln!(
                f,
                "program {} in {}: {} insns, maps [{}]",
                p.name,
                p.section,
                p.insns.len(),
                maps.join(" ")
            )?;
        }
        Ok(())
    }
}
