//! Program sections: which sections hold programs, splitting a section into
//! its function symbols, reading their instructions, resolving their
//! relocations, and patching map fds in.

use kernel_headers::bpf::{PSEUDO_MAP_FD, RawInsn, class, jmp, mode, size};
use object::LittleEndian as Le;
use object::read::elf::SectionHeader;
use object::{SectionIndex, SymbolIndex, elf as E};

use super::elf::{Elf, Section, Symbol};
use super::error::{ObjError, RelocCause};
use super::maps::Placed;
use super::{DataReloc, MapReloc, ObjProgram, ProbeKind};

/// Bytes in one instruction slot.
const SLOT: usize = 8;
/// `ld_imm64`: the two-slot 64-bit immediate load a map reference uses.
const LD_IMM64: u8 = class::LD | size::DW | mode::IMM;
const CALL: u8 = class::JMP | jmp::CALL;
/// A call's `src_reg` is 0 for helpers; other values (`BPF_PSEUDO_CALL` = 1,
/// `BPF_PSEUDO_KFUNC_CALL` = 2) call BPF functions or kernel functions.
const HELPER_CALL_SRC: u8 = 0;

/// Section prefixes libbpf gives program types nobtf does not load, so the
/// error can say what the code is.
const OTHER_PROGRAM_PREFIXES: &[&str] = &[
    "kprobe.multi",
    "kretprobe.multi",
    "ksyscall",
    "kretsyscall",
    "uprobe",
    "uretprobe",
    "usdt",
    "tracepoint",
    "tp",
    "raw_tracepoint",
    "raw_tp",
    "tp_btf",
    "fentry",
    "fexit",
    "fmod_ret",
    "lsm",
    "iter",
    "perf_event",
    "xdp",
    "tc",
    "classifier",
    "action",
    "socket",
    "sk_skb",
    "sk_msg",
    "cgroup",
    "struct_ops",
    "syscall",
];

pub(super) enum Role {
    Program(ProbeKind, String),
    Other,
}

/// Tells a program section (`kprobe/fn`, `kretprobe/fn`) from everything
/// else, and refuses code nobtf cannot load.
pub(super) fn classify(section: &Section<'_>) -> Result<Role, ObjError> {
    let name = section.name.as_str();
    for kind in [ProbeKind::Kprobe, ProbeKind::Kretprobe] {
        let prefix = kind.prefix();
        if name == prefix {
            return Err(ObjError::NoFunction {
                section: name.to_string(),
            });
        }
        if let Some(function) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) {
            if function.is_empty() {
                return Err(ObjError::NoFunction {
                    section: name.to_string(),
                });
            }
            if !function
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                return Err(ObjError::UnsupportedSection {
                    section: name.to_string(),
                    kind: format!(
                        "{prefix} at `{function}` (not a plain function name: offsets are not supported)"
                    ),
                });
            }
            return Ok(Role::Program(kind, function.to_string()));
        }
    }
    let flags = section.header.sh_flags(Le);
    let is_code = flags & u64::from(E::SHF_EXECINSTR) != 0 && section.header.sh_size(Le) > 0;
    // `.text` holds BPF-to-BPF callees; a call into it is refused where it is.
    if is_code && name != ".text" {
        let prefix = name.split('/').next().unwrap_or(name);
        let kind = if OTHER_PROGRAM_PREFIXES.contains(&prefix) {
            format!("`{prefix}` program")
        } else {
            "unknown".to_string()
        };
        return Err(ObjError::UnsupportedSection {
            section: name.to_string(),
            kind,
        });
    }
    Ok(Role::Other)
}

/// Symbols that name things (functions, variables), not sections or files.
pub(super) fn is_named_object(sym: &Symbol) -> bool {
    !matches!(sym.kind, E::STT_SECTION | E::STT_FILE) && !sym.name.is_empty()
}

/// What relocating a program needs from the whole object.
pub(super) struct Context<'e, 'a> {
    pub elf: &'e Elf<'a>,
    pub sections: &'e [Section<'a>],
    pub maps_section: Option<SectionIndex>,
    pub maps: &'e [Placed],
    /// Global data sections, in `Object::data` order.
    pub data: &'e [(SectionIndex, u64)],
}

/// A program's place in its section.
struct Span {
    name: String,
    start: u64,
    end: u64,
}

impl Context<'_, '_> {
    /// Every program of one section: one per function symbol, or one for the
    /// whole section when it has none (hand-assembled objects).
    pub fn programs(
        &self,
        section: &Section<'_>,
        kind: ProbeKind,
        function: &str,
        symbols: &[Symbol],
    ) -> Result<Vec<ObjProgram>, ObjError> {
        let data = self.elf.data(section)?;
        let spans = spans(section, data.len() as u64, symbols)?;
        let mut programs = Vec::with_capacity(spans.len());
        for span in &spans {
            let bytes = &data[span.start as usize..span.end as usize];
            let insns: Vec<RawInsn> = bytes.chunks_exact(SLOT).map(decode).collect();
            if let Some(insn) = insns
                .iter()
                .position(|i| i.code == CALL && i.src() != HELPER_CALL_SRC)
            {
                return Err(ObjError::BpfToBpfCall {
                    program: span.name.clone(),
                    insn,
                });
            }
            programs.push(ObjProgram {
                section: section.name.clone(),
                name: span.name.clone(),
                kind,
                function: function.to_string(),
                offset: span.start,
                insns,
                map_relocs: Vec::new(),
                data_relocs: Vec::new(),
                core_relocs: Vec::new(),
            });
        }
        for (offset, sym, r_type) in self.elf.relocations(section, &spans[0].name)? {
            let Some(at) = spans
                .iter()
                .position(|s| s.start <= offset && offset < s.end)
            else {
                return Err(ObjError::BadRelocation {
                    program: spans[0].name.clone(),
                    offset,
                    cause: RelocCause::OutOfRange {
                        size: data.len() as u64,
                    },
                });
            };
            let insn = ((offset - spans[at].start) / SLOT as u64) as usize;
            let bad = |cause| ObjError::BadRelocation {
                program: spans[at].name.clone(),
                offset,
                cause,
            };
            if offset % SLOT as u64 != 0 {
                return Err(bad(RelocCause::Misaligned));
            }
            let target = self
                .target_of(&programs[at], insn, sym, r_type)
                .map_err(|e| match e {
                    Target::Refused(e) => e,
                    Target::Bad(cause) => bad(cause),
                })?;
            match target {
                Ref::Map(map) => programs[at].map_relocs.push(MapReloc { insn, map }),
                Ref::Data { data, offset } => {
                    programs[at]
                        .data_relocs
                        .push(DataReloc { insn, data, offset })
                }
            }
        }
        Ok(programs)
    }

    /// The map, or the global data, a relocation at instruction `insn`
    /// refers to.
    fn target_of(
        &self,
        program: &ObjProgram,
        insn: usize,
        sym: u32,
        r_type: u32,
    ) -> Result<Ref, Target> {
        let unknown = || Target::Bad(RelocCause::UnknownSymbol { index: sym });
        if sym == 0 {
            return Err(unknown());
        }
        let symbol = self
            .elf
            .symbol(SymbolIndex(sym as usize))
            .map_err(|_| unknown())?;
        let target = symbol
            .section
            .and_then(|index| self.sections.iter().find(|s| s.index == index));
        let section_name = target.map_or("(none)", |s| s.name.as_str());
        if target.is_some_and(|s| s.header.sh_flags(Le) & u64::from(E::SHF_EXECINSTR) != 0) {
            return Err(Target::Refused(ObjError::BpfToBpfCall {
                program: program.name.clone(),
                insn,
            }));
        }
        let data = symbol
            .section
            .and_then(|index| self.data.iter().position(|&(s, _)| s == index));
        if data.is_none() && (symbol.section.is_none() || symbol.section != self.maps_section) {
            return Err(Target::Bad(RelocCause::NotAMap {
                symbol: symbol.name,
                section: section_name.to_string(),
            }));
        }
        if r_type != E::R_BPF_64_64 {
            return Err(Target::Bad(RelocCause::UnsupportedType { r_type }));
        }
        let first = program.insns.get(insn).copied().unwrap_or_default();
        if first.code != LD_IMM64 || insn + 1 >= program.insns.len() {
            return Err(Target::Bad(RelocCause::NotLdImm64 { code: first.code }));
        }
        // REL relocations keep the addend in the instruction: the offset
        // into the section is the symbol's plus `imm` (0 for a map symbol;
        // a string's offset for a reference through the section symbol).
        let offset = symbol.value.wrapping_add(first.imm as u32 as u64);
        if let Some(data) = data {
            let size = self.data[data].1;
            return match u32::try_from(offset) {
                Ok(offset) if u64::from(offset) < size => Ok(Ref::Data { data, offset }),
                _ => Err(Target::Bad(RelocCause::OutsideData {
                    section: section_name.to_string(),
                    offset,
                    size,
                })),
            };
        }
        self.maps
            .iter()
            .position(|m| m.offset == offset)
            .map(Ref::Map)
            .ok_or(Target::Bad(RelocCause::NoMapAtOffset { offset }))
    }
}

/// What an `ld_imm64` relocation points at.
enum Ref {
    /// `Object::maps[i]`.
    Map(usize),
    /// Byte `offset` of `Object::data[data]`.
    Data { data: usize, offset: u32 },
}

/// Why a relocation target is not a map: refused by design, or corrupt.
enum Target {
    Refused(ObjError),
    Bad(RelocCause),
}

/// Sections libbpf turns into global data maps.
pub(super) fn is_global_data(section: &str) -> bool {
    [".rodata", ".data", ".bss"]
        .iter()
        .any(|p| section == *p || section.starts_with(&format!("{p}.")))
}

/// The programs of a section from its function symbols, checked to lie in
/// the section on instruction boundaries, sorted by offset.
fn spans(section: &Section<'_>, size: u64, symbols: &[Symbol]) -> Result<Vec<Span>, ObjError> {
    let bad = |cause: String| ObjError::BadProgramSymbol {
        section: section.name.clone(),
        cause,
    };
    let mut funcs: Vec<&Symbol> = symbols
        .iter()
        .filter(|s| s.section == Some(section.index) && s.kind == E::STT_FUNC)
        .collect();
    funcs.sort_by_key(|s| s.value);
    if funcs.is_empty() {
        let name = section.name.replace(['/', '.'], "_");
        funcs_check(size, &name).map_err(bad)?;
        return Ok(vec![Span {
            name,
            start: 0,
            end: size,
        }]);
    }
    let mut spans: Vec<Span> = Vec::with_capacity(funcs.len());
    for (i, f) in funcs.iter().enumerate() {
        // A size of 0 (hand-written assembly) runs to the next symbol.
        let end = match f.size {
            0 => funcs.get(i + 1).map_or(size, |next| next.value),
            n => f.value.saturating_add(n),
        };
        if f.value % SLOT as u64 != 0 || end <= f.value || (end - f.value) % SLOT as u64 != 0 {
            return Err(bad(format!(
                "function `{}` at {} of {} bytes is not whole instructions",
                f.name,
                f.value,
                end.wrapping_sub(f.value)
            )));
        }
        if end > size {
            return Err(bad(format!(
                "function `{}` ends at {end}, past the section's {size} bytes",
                f.name
            )));
        }
        if let Some(prev) = spans.last()
            && prev.end > f.value
        {
            return Err(bad(format!(
                "functions `{}` and `{}` overlap",
                prev.name, f.name
            )));
        }
        spans.push(Span {
            name: f.name.clone(),
            start: f.value,
            end,
        });
    }
    Ok(spans)
}

fn funcs_check(size: u64, name: &str) -> Result<(), String> {
    if size == 0 || !size.is_multiple_of(SLOT as u64) {
        return Err(format!("`{name}` has {size} bytes, not whole instructions"));
    }
    Ok(())
}

fn decode(slot: &[u8]) -> RawInsn {
    RawInsn {
        code: slot[0],
        regs: slot[1],
        off: i16::from_le_bytes([slot[2], slot[3]]),
        imm: i32::from_le_bytes([slot[4], slot[5], slot[6], slot[7]]),
    }
}

pub(super) fn relocate(program: &ObjProgram, map_fds: &[i32]) -> Result<Vec<RawInsn>, ObjError> {
    // Global data and CO-RE need `Object::prepare`; loading the program
    // without it would pass addends off as pointers.
    if let Some(reloc) = program.data_relocs.first() {
        return Err(ObjError::GlobalData {
            program: program.name.clone(),
            insn: reloc.insn,
        });
    }
    if !program.core_relocs.is_empty() {
        return Err(ObjError::CoRe {
            count: program.core_relocs.len(),
        });
    }
    let mut insns = program.insns.clone();
    for reloc in &program.map_relocs {
        let fd = *map_fds
            .get(reloc.map)
            .ok_or_else(|| ObjError::MissingMapFd {
                program: program.name.clone(),
                map_index: reloc.map,
                fds: map_fds.len(),
            })?;
        // Parsing checked both slots exist; `get_mut` keeps this total anyway.
        if let Some(first) = insns.get_mut(reloc.insn) {
            *first = RawInsn::new(first.code, first.dst(), PSEUDO_MAP_FD, first.off, fd);
        }
        if let Some(second) = insns.get_mut(reloc.insn + 1) {
            second.imm = 0;
        }
    }
    Ok(insns)
}
