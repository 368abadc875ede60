//! Why a legacy BPF object cannot be loaded: one variant per cause, each
//! message one line that names the cause and what to do about it.

use thiserror::Error;

/// Building the objects nobtf loads, quoted in the fixes below.
const BUILD: &str = "clang -target bpf -O2 -c prog.bpf.c -o prog.o";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ObjError {
    #[error("not an ELF file (no \\x7fELF magic): give the .o that `{BUILD}` writes")]
    NotElf,

    #[error(
        "truncated ELF: {what} needs bytes up to {need} but the file has {len}: \
         the file was cut short, copy or rebuild it (`{BUILD}`)"
    )]
    Truncated { what: String, need: u64, len: u64 },

    #[error("malformed ELF: {what}: {cause}: rebuild the object with `{BUILD}`")]
    Malformed { what: String, cause: String },

    #[error("ELF class {class} is not 64-bit: BPF objects are ELF64, build with `{BUILD}`")]
    NotElf64 { class: u8 },

    #[error(
        "big-endian ELF: nobtf loads little-endian BPF for x86-64, build with \
         `-target bpfel` (or `-target bpf` on a little-endian host)"
    )]
    BigEndian,

    #[error(
        "ELF machine {machine} ({}) is not BPF (247): this object was built for the \
         host, build it with `{BUILD}`",
        machine_name(*machine)
    )]
    WrongMachine { machine: u16 },

    #[error(
        "ELF type {e_type} is not a relocatable object (ET_REL = 1): give the .o \
         from `clang -c`, not a linked or bpftool-generated file"
    )]
    NotRelocatable { e_type: u16 },

    #[error(
        "section `{section}` holds {kind} code, which nobtf does not load: only \
         `kprobe/<function>` and `kretprobe/<function>` programs are supported"
    )]
    UnsupportedSection { section: String, kind: String },

    #[error(
        "section `{section}` names no function to probe: write \
         SEC(\"kprobe/<function>\") or SEC(\"kretprobe/<function>\")"
    )]
    NoFunction { section: String },

    #[error(
        "section `{section}`: {cause}: the symbol table does not match the code, \
         rebuild the object with `{BUILD}`"
    )]
    BadProgramSymbol { section: String, cause: String },

    #[error(
        "no programs: the object has no `kprobe/<function>` or \
         `kretprobe/<function>` section with code; mark each program with SEC(\"kprobe/...\")"
    )]
    NoPrograms,

    #[error(
        "no `license` section: add `char LICENSE[] SEC(\"license\") = \"GPL\";` \
         (bpf_trace_printk and bpf_probe_read are GPL-only helpers)"
    )]
    MissingLicense,

    #[error(
        "`version` section is {size} bytes, not 4: declare it as \
         `__u32 _version SEC(\"version\") = ...;` or leave it out"
    )]
    BadVersion { size: u64 },

    #[error(
        "the object defines maps in `.maps`, whose layout only BTF describes, and \
         nobtf loads no BTF: define them in the legacy `maps` section as \
         `struct bpf_map_def SEC(\"maps\") name = {{ .type = ..., .key_size = ..., ... }};`"
    )]
    BtfMaps,

    #[error(
        "`maps` section: {cause}: each map must be one \
         `struct bpf_map_def {{ type, key_size, value_size, max_entries, map_flags }}`"
    )]
    BadMapsSection { cause: String },

    #[error(
        "map `{map}`: bytes {from}..{to} of its {stride}-byte definition are not zero \
         and nobtf does not know what they mean: define it with the 20-byte \
         `struct bpf_map_def` (type, key_size, value_size, max_entries, map_flags)"
    )]
    MapExtraFields {
        map: String,
        stride: usize,
        from: usize,
        to: usize,
    },

    #[error("program `{program}`: relocation at section offset {offset:#x}: {cause}")]
    BadRelocation {
        program: String,
        offset: u64,
        cause: RelocCause,
    },

    #[error(
        "program `{program}` instruction {insn} calls another BPF function: nobtf \
         loads no BPF-to-BPF calls, mark the callee `static __attribute__((always_inline))`"
    )]
    BpfToBpfCall { program: String, insn: usize },

    #[error(
        "program `{program}` instruction {insn} uses global data, which only \
         `Object::prepare` places (as a map on 5.2+, on the stack before): prepare \
         the object for the kernel before relocating"
    )]
    GlobalData { program: String, insn: usize },

    #[error(
        "program `{program}` uses writable global data in `{section}`, which needs \
         global data maps (BPF_PSEUDO_MAP_VALUE, 5.2+) and this kernel has none: \
         keep state in a map (`struct bpf_map_def SEC(\"maps\")`) or make it `const`"
    )]
    WritableGlobal { program: String, section: String },

    #[error(
        "program `{program}`: its constants from `{section}` need {need} bytes of \
         stack below the {used} it uses, and a program has {limit}: this kernel has no \
         global data maps (5.2+), so shorten the strings or use fewer of them",
        limit = kernel_headers::bpf::STACK_SIZE
    )]
    StackFull {
        program: String,
        section: String,
        used: usize,
        need: usize,
    },

    #[error(
        "program `{program}` calls {} (instruction {insn}, mainline {}+), which this \
         kernel lacks, and its older form {} ({}+) is missing too: this kernel is too \
         old for the program",
        .helper.name(), .helper.since().series(), .fallback.name(), .fallback.since().series()
    )]
    MissingHelper {
        program: String,
        insn: usize,
        helper: kernel_headers::bpf::Helper,
        fallback: kernel_headers::bpf::Helper,
    },

    #[error(
        "program `{program}`: inserting instructions: {cause}: the program is too long to rewrite"
    )]
    Relink { program: String, cause: String },

    #[error("the object's BTF is unreadable ({cause}): rebuild it with `clang -g`")]
    BadBtf { cause: String },

    #[error("CO-RE record {index} in `.BTF.ext`: {cause}: the object is corrupt, rebuild it")]
    BadCoreRecord { index: usize, cause: String },

    #[error(
        "program `{program}` instruction {insn}: CO-RE {kind} relocation on `{what}` is \
         not supported without the kernel's BTF: read the field at a fixed offset instead"
    )]
    CoreUnsupported {
        program: String,
        insn: usize,
        kind: &'static str,
        what: String,
    },

    #[error(
        "program `{program}` instruction {insn} needs field `{field}` ({kind}), which the \
         offsets source does not know: `offsets gen --field {field}` adds it to the profile"
    )]
    CoreUnknownField {
        program: String,
        insn: usize,
        field: String,
        kind: &'static str,
    },

    #[error(
        "program `{program}` instruction {insn} reads field `{field}`, which this kernel's \
         `struct {strukt}` does not have: the program does not fit this kernel"
    )]
    CoreMissingField {
        program: String,
        insn: usize,
        field: String,
        strukt: String,
    },

    #[error("program `{program}` instruction {insn}: CO-RE {kind} on `{field}`: {cause}")]
    CorePatch {
        program: String,
        insn: usize,
        field: String,
        kind: &'static str,
        cause: String,
    },

    #[error(
        "the program has {count} CO-RE relocation(s), which only `Object::prepare` \
         resolves (from an offsets profile or the kernel's BTF): prepare the object \
         for the kernel before relocating"
    )]
    CoRe { count: usize },

    #[error(
        "program `{program}` references map {map_index} but only {fds} map fd(s) \
         were given: create every map of the object before relocating"
    )]
    MissingMapFd {
        program: String,
        map_index: usize,
        fds: usize,
    },
}

/// Why one relocation of a program section cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RelocCause {
    #[error(
        "it lies outside every program of the section, whose size is {size}: the object is corrupt"
    )]
    OutOfRange { size: u64 },
    #[error("it is not on an 8-byte instruction boundary: the object is corrupt")]
    Misaligned,
    #[error(
        "the instruction there (opcode {code:#04x}) is not a 64-bit immediate load \
         (ld_imm64, 0x18): only map references can be relocated"
    )]
    NotLdImm64 { code: u8 },
    #[error("it names symbol {index}, which the symbol table does not have: the object is corrupt")]
    UnknownSymbol { index: u32 },
    #[error(
        "type {r_type} is not R_BPF_64_64 (1): nobtf relocates only map references \
         in 64-bit immediate loads"
    )]
    UnsupportedType { r_type: u32 },
    #[error(
        "it refers to `{symbol}` in section `{section}`, which is not a map: only \
         maps in the `maps` section can be referenced"
    )]
    NotAMap { symbol: String, section: String },
    #[error(
        "it points {offset} bytes into `maps`, where no map definition starts: \
         the object is corrupt"
    )]
    NoMapAtOffset { offset: u64 },
    #[error("relocations with addends (SHT_RELA) are not BPF's: build with `{BUILD}`")]
    Rela,
    #[error("it points at byte {offset} of `{section}`, which has {size}: the object is corrupt")]
    OutsideData {
        section: String,
        offset: u64,
        size: u64,
    },
}

/// Names of the machines a BPF object is most often confused with.
fn machine_name(machine: u16) -> &'static str {
    match machine {
        object::elf::EM_X86_64 => "x86-64",
        object::elf::EM_386 => "i386",
        object::elf::EM_AARCH64 => "AArch64",
        object::elf::EM_ARM => "ARM",
        object::elf::EM_RISCV => "RISC-V",
        object::elf::EM_PPC64 => "PowerPC64",
        object::elf::EM_S390 => "s390",
        _ => "unknown",
    }
}
