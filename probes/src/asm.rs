//! Typed BPF instructions, a builder that hands out labels, one encoder, a
//! decoder, and the disassembler (`Display`).
//!
//! Instruction indices in errors and listings are *slot* indices, as in the
//! verifier log and `bpftool prog dump xlated`: an `ld_imm64` takes two.

use core::fmt;

use kernel_headers::bpf::{self, Helper, RawInsn, alu, class, jmp, mode, source};
use thiserror::Error;

/// A BPF register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reg {
    R0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    /// The read-only frame pointer.
    R10,
}

impl Reg {
    const ALL: [Reg; 11] = [
        Reg::R0,
        Reg::R1,
        Reg::R2,
        Reg::R3,
        Reg::R4,
        Reg::R5,
        Reg::R6,
        Reg::R7,
        Reg::R8,
        Reg::R9,
        Reg::R10,
    ];
    pub const FP: Reg = Reg::R10;

    pub const fn number(self) -> u8 {
        self as u8
    }

    pub fn from_number(n: u8) -> Option<Reg> {
        Reg::ALL.get(usize::from(n)).copied()
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.number())
    }
}

/// Width of a memory access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    pub const fn bytes(self) -> usize {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }

    const fn code(self) -> u8 {
        match self {
            Size::B => bpf::size::B,
            Size::H => bpf::size::H,
            Size::W => bpf::size::W,
            Size::DW => bpf::size::DW,
        }
    }

    fn from_code(code: u8) -> Size {
        match code & bpf::size::MASK {
            bpf::size::B => Size::B,
            bpf::size::H => Size::H,
            bpf::size::W => Size::W,
            _ => Size::DW,
        }
    }

    const fn c_type(self) -> &'static str {
        match self {
            Size::B => "u8",
            Size::H => "u16",
            Size::W => "u32",
            Size::DW => "u64",
        }
    }
}

/// The second operand of an ALU operation, a conditional jump or a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Imm(i32),
    Reg(Reg),
}

impl From<Reg> for Operand {
    fn from(reg: Reg) -> Operand {
        Operand::Reg(reg)
    }
}

impl From<i32> for Operand {
    fn from(imm: i32) -> Operand {
        Operand::Imm(imm)
    }
}

impl Operand {
    const fn source(self) -> u8 {
        match self {
            Operand::Imm(_) => source::K,
            Operand::Reg(_) => source::X,
        }
    }

    const fn parts(self) -> (u8, i32) {
        match self {
            Operand::Imm(imm) => (0, imm),
            Operand::Reg(reg) => (reg.number(), 0),
        }
    }
}

/// ALU operand width: `BPF_ALU64` or 32-bit `BPF_ALU` (zero-extends the result).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    W32,
    W64,
}

macro_rules! ops {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:expr, $sym:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant,)* }

        impl $name {
            const ALL: &[$name] = &[$($name::$variant),*];

            const fn code(self) -> u8 {
                match self { $($name::$variant => $code,)* }
            }

            /// The operator as the verifier log prints it.
            pub const fn symbol(self) -> &'static str {
                match self { $($name::$variant => $sym,)* }
            }

            fn from_code(code: u8) -> Option<$name> {
                $name::ALL.iter().copied().find(|op| op.code() == code)
            }
        }
    };
}

ops! {
    /// ALU operations (NEG and END are not needed by nobtf's probes).
    AluOp {
        Add = alu::ADD, "+=";
        Sub = alu::SUB, "-=";
        Mul = alu::MUL, "*=";
        Div = alu::DIV, "/=";
        Or = alu::OR, "|=";
        And = alu::AND, "&=";
        Lsh = alu::LSH, "<<=";
        Rsh = alu::RSH, ">>=";
        Mod = alu::MOD, "%=";
        Xor = alu::XOR, "^=";
        Mov = alu::MOV, "=";
        Arsh = alu::ARSH, "s>>=";
    }
}

ops! {
    /// Conditional jump comparisons. `Lt`, `Le`, `Slt` and `Sle` need 4.14.
    JmpOp {
        Eq = jmp::JEQ, "==";
        Gt = jmp::JGT, ">";
        Ge = jmp::JGE, ">=";
        Set = jmp::JSET, "&";
        Ne = jmp::JNE, "!=";
        Sgt = jmp::JSGT, "s>";
        Sge = jmp::JSGE, "s>=";
        Lt = jmp::JLT, "<";
        Le = jmp::JLE, "<=";
        Slt = jmp::JSLT, "s<";
        Sle = jmp::JSLE, "s<=";
    }
}

/// The map an `ld_imm64` loads: by name while building, by fd once encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapRef {
    Name(&'static str),
    Fd(i32),
}

/// One instruction. Jump offsets count slots from the next instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insn {
    Alu {
        width: Width,
        op: AluOp,
        dst: Reg,
        src: Operand,
    },
    /// `dst = imm` with a full 64-bit immediate (two slots).
    LdImm64 {
        dst: Reg,
        imm: i64,
    },
    /// `dst = &map` (two slots, `src_reg = BPF_PSEUDO_MAP_FD`).
    LdMap {
        dst: Reg,
        map: MapRef,
    },
    /// `dst = *(size *)(src + off)`.
    Load {
        size: Size,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    /// `*(size *)(dst + off) = src` (`BPF_ST` for an immediate, `BPF_STX` for a register).
    Store {
        size: Size,
        dst: Reg,
        off: i16,
        src: Operand,
    },
    /// Unconditional jump.
    Ja {
        off: i16,
    },
    /// `if dst op src goto pc+off`.
    Jump {
        op: JmpOp,
        dst: Reg,
        src: Operand,
        off: i16,
    },
    Call(Helper),
    Exit,
}

/// Why an instruction cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum InsnError {
    #[error("r10 is the read-only frame pointer")]
    WritesFramePointer,
    #[error("division or modulo by the constant 0")]
    DivisionByZero,
    #[error("shift by {0} is out of range for the operand width")]
    ShiftRange(i32),
}

impl Insn {
    /// Slots this instruction takes in the encoded program.
    pub const fn slots(&self) -> usize {
        match self {
            Insn::LdImm64 { .. } | Insn::LdMap { .. } => 2,
            _ => 1,
        }
    }

    /// The register this instruction writes, if any (calls clobber r0..r5,
    /// which never includes r10).
    pub const fn written(&self) -> Option<Reg> {
        match *self {
            Insn::Alu { dst, .. }
            | Insn::LdImm64 { dst, .. }
            | Insn::LdMap { dst, .. }
            | Insn::Load { dst, .. } => Some(dst),
            _ => None,
        }
    }

    /// Reject combinations the verifier would refuse or that are certainly
    /// mistakes.
    pub fn validate(&self) -> Result<(), InsnError> {
        if self.written() == Some(Reg::R10) {
            return Err(InsnError::WritesFramePointer);
        }
        if let Insn::Alu {
            width,
            op,
            src: Operand::Imm(imm),
            ..
        } = *self
        {
            let bits = match width {
                Width::W32 => 32,
                Width::W64 => 64,
            };
            match op {
                AluOp::Div | AluOp::Mod if imm == 0 => return Err(InsnError::DivisionByZero),
                AluOp::Lsh | AluOp::Rsh | AluOp::Arsh if !(0..bits).contains(&imm) => {
                    return Err(InsnError::ShiftRange(imm));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The opcode byte, composed from class, size, mode, source and operation.
    pub const fn opcode(&self) -> u8 {
        match *self {
            Insn::Alu { width, op, src, .. } => {
                let class = match width {
                    Width::W32 => class::ALU,
                    Width::W64 => class::ALU64,
                };
                class | op.code() | src.source()
            }
            Insn::LdImm64 { .. } | Insn::LdMap { .. } => class::LD | bpf::size::DW | mode::IMM,
            Insn::Load { size, .. } => class::LDX | size.code() | mode::MEM,
            Insn::Store { size, src, .. } => {
                let class = match src {
                    Operand::Imm(_) => class::ST,
                    Operand::Reg(_) => class::STX,
                };
                class | size.code() | mode::MEM
            }
            Insn::Ja { .. } => class::JMP | jmp::JA,
            Insn::Jump { op, src, .. } => class::JMP | op.code() | src.source(),
            Insn::Call(_) => class::JMP | jmp::CALL,
            Insn::Exit => class::JMP | jmp::EXIT,
        }
    }

    /// Append this instruction's slots. A symbolic map is looked up in
    /// `map_fd`; `Err` carries the name of a map it does not know.
    fn encode_into(
        &self,
        out: &mut Vec<RawInsn>,
        map_fd: &dyn Fn(&str) -> Option<i32>,
    ) -> Result<(), &'static str> {
        let code = self.opcode();
        let (dst, src, off, imm) = match *self {
            Insn::Alu { dst, src, .. } => {
                let (src, imm) = src.parts();
                (dst.number(), src, 0, imm)
            }
            Insn::LdImm64 { dst, imm } => {
                // Low half in the first slot, high half in the second.
                out.push(RawInsn::new(code, dst.number(), 0, 0, imm as i32));
                out.push(RawInsn::new(0, 0, 0, 0, (imm >> 32) as i32));
                return Ok(());
            }
            Insn::LdMap { dst, map } => {
                let fd = match map {
                    MapRef::Fd(fd) => fd,
                    MapRef::Name(name) => map_fd(name).ok_or(name)?,
                };
                out.push(RawInsn::new(code, dst.number(), bpf::PSEUDO_MAP_FD, 0, fd));
                out.push(RawInsn::default());
                return Ok(());
            }
            Insn::Load { dst, src, off, .. } => (dst.number(), src.number(), off, 0),
            Insn::Store { dst, off, src, .. } => {
                let (src, imm) = src.parts();
                (dst.number(), src, off, imm)
            }
            Insn::Ja { off } => (0, 0, off, 0),
            Insn::Jump { dst, src, off, .. } => {
                let (src, imm) = src.parts();
                (dst.number(), src, off, imm)
            }
            Insn::Call(helper) => (0, 0, 0, helper.id() as i32),
            Insn::Exit => (0, 0, 0, 0),
        };
        out.push(RawInsn::new(code, dst, src, off, imm));
        Ok(())
    }

    /// The jump offset, for jumps.
    pub const fn jump_offset(&self) -> Option<i16> {
        match *self {
            Insn::Ja { off } | Insn::Jump { off, .. } => Some(off),
            _ => None,
        }
    }
}

impl fmt::Display for Insn {
    /// The verifier log's notation, without index and opcode.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operand = |src: Operand| match src {
            Operand::Imm(imm) => imm.to_string(),
            Operand::Reg(reg) => reg.to_string(),
        };
        match *self {
            Insn::Alu {
                width,
                op,
                dst,
                src,
            } => {
                let (dst, src) = match width {
                    Width::W64 => (dst.to_string(), operand(src)),
                    Width::W32 => (
                        format!("w{}", dst.number()),
                        match src {
                            Operand::Reg(reg) => format!("w{}", reg.number()),
                            Operand::Imm(imm) => imm.to_string(),
                        },
                    ),
                };
                write!(f, "{dst} {} {src}", op.symbol())
            }
            Insn::LdImm64 { dst, imm } => write!(f, "{dst} = {imm:#x}"),
            Insn::LdMap { dst, map } => match map {
                MapRef::Name(name) => write!(f, "{dst} = map[id:{name}]"),
                MapRef::Fd(fd) => write!(f, "{dst} = map[fd:{fd}]"),
            },
            Insn::Load {
                size,
                dst,
                src,
                off,
            } => write!(f, "{dst} = *({} *)({src} {off:+})", size.c_type()),
            Insn::Store {
                size,
                dst,
                off,
                src,
            } => {
                write!(
                    f,
                    "*({} *)({dst} {off:+}) = {}",
                    size.c_type(),
                    operand(src)
                )?;
                if let Operand::Imm(imm) = src
                    && let Some(text) = as_text(&imm.to_le_bytes()[..size.bytes().min(4)])
                {
                    // Strings are built on the stack a word at a time.
                    write!(f, " ; \"{text}\"")?;
                }
                Ok(())
            }
            Insn::Ja { off } => write!(f, "goto pc{off:+}"),
            Insn::Jump { op, dst, src, off } => {
                let src = match src {
                    // The verifier prints jump constants in hex.
                    Operand::Imm(imm) => format!("{:#x}", imm as u32),
                    Operand::Reg(reg) => reg.to_string(),
                };
                write!(f, "if {dst} {} {src} goto pc{off:+}", op.symbol())
            }
            Insn::Call(helper) => write!(f, "call {}#{}", helper.name(), helper.id()),
            Insn::Exit => write!(f, "exit"),
        }
    }
}

/// The bytes as escaped text, if they are printable ASCII followed only by NULs.
fn as_text(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().rposition(|&b| b != 0)? + 1;
    let text = &bytes[..end];
    text.iter()
        .all(|&b| b == b'\n' || b.is_ascii_graphic() || b == b' ')
        .then(|| text.escape_ascii().to_string())
}

/// Errors of assembling and encoding; `index` is the slot index.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AsmError {
    #[error("instruction {index}: {error}")]
    Insn { index: usize, error: InsnError },
    #[error("instruction {index}: jump to label `{label}`, never bound")]
    UnknownLabel { index: usize, label: &'static str },
    #[error("instruction {index}: label `{label}` is bound twice")]
    DuplicateLabel { index: usize, label: &'static str },
    #[error("instruction {index}: jump to `{label}` is {distance} slots, beyond a 16-bit offset")]
    OffsetOverflow {
        index: usize,
        label: &'static str,
        distance: i64,
    },
    #[error("instruction {index}: map `{name}` has no fd (was it created?)")]
    UnknownMap { index: usize, name: &'static str },
}

/// A jump target: handed out by [`Builder::new_label`], placed once with
/// [`Builder::bind`]. Its name only labels listings and errors, so many
/// labels may share one (every `if` has its `else`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Label {
    id: usize,
    name: &'static str,
}

impl Label {
    pub const fn name(self) -> &'static str {
        self.name
    }
}

#[derive(Debug, Clone, Copy)]
enum Item {
    Insn(Insn),
    /// A jump whose offset is known only once all labels are placed.
    Jump {
        cond: Option<(JmpOp, Reg, Operand)>,
        label: Label,
    },
}

/// Collects instructions and labels; [`Builder::finish`] resolves labels.
///
/// Building methods do not return `Result` so that programs read as
/// instruction lists; the first invalid instruction is kept and reported by
/// `finish`, with its index.
#[derive(Debug, Default)]
pub struct Builder {
    items: Vec<(usize, Item)>,
    /// The slot each label was bound to, by label id.
    bound: Vec<Option<usize>>,
    next_slot: usize,
    error: Option<AsmError>,
}

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Append an instruction, validating it.
    pub fn push(&mut self, insn: Insn) {
        if let Err(error) = insn.validate() {
            self.error.get_or_insert(AsmError::Insn {
                index: self.next_slot,
                error,
            });
        }
        self.items.push((self.next_slot, Item::Insn(insn)));
        self.next_slot += insn.slots();
    }

    /// A new label, not yet placed; `name` is what listings call it.
    pub fn new_label(&mut self, name: &'static str) -> Label {
        self.bound.push(None);
        Label {
            id: self.bound.len() - 1,
            name,
        }
    }

    /// Place `label` at the next instruction. A label is placed once.
    pub fn bind(&mut self, label: Label) {
        match self.bound.get_mut(label.id) {
            Some(slot @ None) => *slot = Some(self.next_slot),
            _ => {
                self.error.get_or_insert(AsmError::DuplicateLabel {
                    index: self.next_slot,
                    label: label.name,
                });
            }
        }
    }

    /// 64-bit `dst op= src`.
    pub fn alu(&mut self, op: AluOp, dst: Reg, src: impl Into<Operand>) {
        let src = src.into();
        self.push(Insn::Alu {
            width: Width::W64,
            op,
            dst,
            src,
        });
    }

    /// 64-bit `dst = src` (an immediate is sign-extended).
    pub fn mov(&mut self, dst: Reg, src: impl Into<Operand>) {
        self.alu(AluOp::Mov, dst, src);
    }

    /// 64-bit `dst += src`.
    pub fn add(&mut self, dst: Reg, src: impl Into<Operand>) {
        self.alu(AluOp::Add, dst, src);
    }

    pub fn ld_imm64(&mut self, dst: Reg, imm: i64) {
        self.push(Insn::LdImm64 { dst, imm });
    }

    /// `dst = &map`, the map named here and given an fd by `encode`.
    pub fn ld_map(&mut self, dst: Reg, name: &'static str) {
        self.push(Insn::LdMap {
            dst,
            map: MapRef::Name(name),
        });
    }

    pub fn load(&mut self, size: Size, dst: Reg, src: Reg, off: i16) {
        self.push(Insn::Load {
            size,
            dst,
            src,
            off,
        });
    }

    pub fn store(&mut self, size: Size, dst: Reg, off: i16, src: impl Into<Operand>) {
        let src = src.into();
        self.push(Insn::Store {
            size,
            dst,
            off,
            src,
        });
    }

    pub fn call(&mut self, helper: Helper) {
        self.push(Insn::Call(helper));
    }

    pub fn exit(&mut self) {
        self.push(Insn::Exit);
    }

    /// `if dst op src goto label`.
    pub fn jump(&mut self, op: JmpOp, dst: Reg, src: impl Into<Operand>, label: Label) {
        let cond = Some((op, dst, src.into()));
        self.items
            .push((self.next_slot, Item::Jump { cond, label }));
        self.next_slot += 1;
    }

    /// `goto label`.
    pub fn ja(&mut self, label: Label) {
        self.items
            .push((self.next_slot, Item::Jump { cond: None, label }));
        self.next_slot += 1;
    }

    /// Resolve labels to offsets: the pure pass between building and encoding.
    pub fn finish(self) -> Result<Insns, AsmError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let mut insns = Vec::with_capacity(self.items.len());
        let mut targets = Vec::with_capacity(self.items.len());
        for (index, item) in self.items {
            let (insn, target) = match item {
                Item::Insn(insn) => (insn, None),
                Item::Jump { cond, label } => {
                    let target = self.bound.get(label.id).copied().flatten().ok_or(
                        AsmError::UnknownLabel {
                            index,
                            label: label.name,
                        },
                    )?;
                    let distance = target as i64 - (index as i64 + 1);
                    let off = i16::try_from(distance).map_err(|_| AsmError::OffsetOverflow {
                        index,
                        label: label.name,
                        distance,
                    })?;
                    let insn = match cond {
                        None => Insn::Ja { off },
                        Some((op, dst, src)) => Insn::Jump { op, dst, src, off },
                    };
                    (insn, Some(label.name))
                }
            };
            insns.push(insn);
            targets.push(target);
        }
        Ok(Insns { insns, targets })
    }
}

/// A finished instruction list: every jump resolved, maps still by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insns {
    insns: Vec<Insn>,
    /// The label each jump was written against, for the listing.
    targets: Vec<Option<&'static str>>,
}

impl Insns {
    pub fn as_slice(&self) -> &[Insn] {
        &self.insns
    }

    /// Length in slots.
    pub fn len(&self) -> usize {
        self.insns.iter().map(Insn::slots).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// The one place bytes are produced: patch each symbolic map with its fd
    /// (`BPF_PSEUDO_MAP_FD`) and lay out the slots.
    pub fn encode(&self, map_fd: impl Fn(&str) -> Option<i32>) -> Result<Vec<RawInsn>, AsmError> {
        let mut out = Vec::with_capacity(self.len());
        for insn in &self.insns {
            let index = out.len();
            insn.encode_into(&mut out, &map_fd)
                .map_err(|name| AsmError::UnknownMap { index, name })?;
        }
        Ok(out)
    }
}

impl fmt::Display for Insns {
    /// One instruction a line: `slot: (opcode) text`, jumps followed by the
    /// label they were written against.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut slot = 0;
        for (insn, target) in self.insns.iter().zip(&self.targets) {
            write!(f, "{slot}: ({:02x}) {insn}", insn.opcode())?;
            if let Some(label) = target {
                write!(f, " <{label}>")?;
            }
            writeln!(f)?;
            slot += insn.slots();
        }
        Ok(())
    }
}

/// Why encoded slots are not a valid instruction stream; `index` is the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("instruction {index}: unknown opcode {code:#04x}")]
    UnknownOpcode { index: usize, code: u8 },
    #[error("instruction {index}: register number {reg} does not exist")]
    BadRegister { index: usize, reg: u8 },
    #[error("instruction {index}: call to unknown helper {id}")]
    UnknownHelper { index: usize, id: i32 },
    #[error("instruction {index}: ld_imm64 is missing its second slot")]
    TruncatedLdImm64 { index: usize },
    #[error("instruction {index}: second slot of ld_imm64 is not empty")]
    BrokenLdImm64 { index: usize },
    #[error("instruction {index}: ld_imm64 source {src} is not supported")]
    UnknownPseudo { index: usize, src: u8 },
}

/// Decode slots into instructions, each with its slot index. The inverse of
/// [`Insns::encode`] (maps come back as fds).
pub fn decode(raw: &[RawInsn]) -> Result<Vec<(usize, Insn)>, DecodeError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut index = 0;
    while let Some(&r) = raw.get(index) {
        let reg = |n: u8| Reg::from_number(n).ok_or(DecodeError::BadRegister { index, reg: n });
        let unknown = DecodeError::UnknownOpcode {
            index,
            code: r.code,
        };
        let operand = || -> Result<Operand, DecodeError> {
            Ok(if r.code & source::MASK == source::X {
                Operand::Reg(reg(r.src())?)
            } else {
                Operand::Imm(r.imm)
            })
        };
        let (dst, src) = (reg(r.dst())?, reg(r.src()));
        let insn = match r.code & class::MASK {
            class::ALU | class::ALU64 => Insn::Alu {
                width: if r.code & class::MASK == class::ALU64 {
                    Width::W64
                } else {
                    Width::W32
                },
                op: AluOp::from_code(r.code & alu::MASK).ok_or(unknown)?,
                dst,
                src: operand()?,
            },
            class::LD if r.code == class::LD | bpf::size::DW | mode::IMM => {
                let next = raw
                    .get(index + 1)
                    .ok_or(DecodeError::TruncatedLdImm64 { index })?;
                if next.code != 0 || next.regs != 0 || next.off != 0 {
                    return Err(DecodeError::BrokenLdImm64 { index });
                }
                match r.src() {
                    0 => Insn::LdImm64 {
                        dst,
                        imm: (i64::from(next.imm) << 32) | i64::from(r.imm as u32),
                    },
                    bpf::PSEUDO_MAP_FD => Insn::LdMap {
                        dst,
                        map: MapRef::Fd(r.imm),
                    },
                    src => return Err(DecodeError::UnknownPseudo { index, src }),
                }
            }
            class::LDX if r.code & mode::MASK == mode::MEM => Insn::Load {
                size: Size::from_code(r.code),
                dst,
                src: src?,
                off: r.off,
            },
            class::ST | class::STX if r.code & mode::MASK == mode::MEM => Insn::Store {
                size: Size::from_code(r.code),
                dst,
                off: r.off,
                src: if r.code & class::MASK == class::STX {
                    Operand::Reg(src?)
                } else {
                    Operand::Imm(r.imm)
                },
            },
            class::JMP => match r.code & jmp::MASK {
                jmp::JA => Insn::Ja { off: r.off },
                jmp::CALL => Insn::Call(
                    u32::try_from(r.imm)
                        .ok()
                        .and_then(Helper::from_id)
                        .ok_or(DecodeError::UnknownHelper { index, id: r.imm })?,
                ),
                jmp::EXIT => Insn::Exit,
                op => Insn::Jump {
                    op: JmpOp::from_code(op).ok_or(unknown)?,
                    dst,
                    src: operand()?,
                    off: r.off,
                },
            },
            _ => return Err(unknown),
        };
        out.push((index, insn));
        index += insn.slots();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Reg::*;

    fn no_maps(_: &str) -> Option<i32> {
        None
    }

    #[test]
    fn opcodes_match_the_kernel() {
        let alu = |width, op, dst, src: Operand| Insn::Alu {
            width,
            op,
            dst,
            src,
        };
        let load = |size, dst, src, off| Insn::Load {
            size,
            dst,
            src,
            off,
        };
        let store = |size, dst, off, src: Operand| Insn::Store {
            size,
            dst,
            off,
            src,
        };
        #[rustfmt::skip]
        let cases = [
            (alu(Width::W64, AluOp::Mov, R6, R1.into()), 0xbf),
            (alu(Width::W64, AluOp::Mov, R2, 8.into()), 0xb7),
            (alu(Width::W32, AluOp::Mov, R2, (-1).into()), 0xb4),
            (alu(Width::W64, AluOp::Rsh, R0, 32.into()), 0x77),
            (alu(Width::W64, AluOp::Add, R1, (-8).into()), 0x07),
            (Insn::LdImm64 { dst: R1, imm: 1 }, 0x18),
            (load(Size::DW, R7, R6, 104), 0x79),
            (load(Size::W, R7, R6, 0), 0x61),
            (store(Size::DW, R10, -8, 0.into()), 0x7a),
            (store(Size::W, R10, -8, 0.into()), 0x62),
            (store(Size::W, R10, -8, R0.into()), 0x63),
            (store(Size::DW, R10, -8, R0.into()), 0x7b),
            (Insn::Ja { off: 1 }, 0x05),
            (Insn::Jump { op: JmpOp::Ne, dst: R0, src: 0.into(), off: 1 }, 0x55),
            (Insn::Jump { op: JmpOp::Eq, dst: R0, src: R1.into(), off: 1 }, 0x1d),
            (Insn::Call(Helper::ProbeRead), 0x85),
            (Insn::Exit, 0x95),
        ];
        for (insn, code) in cases {
            assert_eq!(insn.opcode(), code, "{insn}");
        }
    }

    #[test]
    fn ld_imm64_is_one_instruction_in_two_slots() {
        let mut b = Builder::new();
        b.ld_imm64(R3, 0x1234_5678_9abc_def0);
        b.exit();
        let insns = b.finish().unwrap();
        assert_eq!(insns.as_slice().len(), 2);
        assert_eq!(insns.len(), 3);
        let raw = insns.encode(no_maps).unwrap();
        assert_eq!(
            raw,
            [
                RawInsn::new(0x18, 3, 0, 0, 0x9abc_def0_u32 as i32),
                RawInsn::new(0, 0, 0, 0, 0x1234_5678),
                RawInsn::new(0x95, 0, 0, 0, 0),
            ]
        );
        assert_eq!(
            insns.to_string(),
            "0: (18) r3 = 0x123456789abcdef0\n2: (95) exit\n"
        );
    }

    #[test]
    fn maps_stay_symbolic_until_encoded() {
        let mut b = Builder::new();
        b.ld_map(R2, "events");
        b.exit();
        let insns = b.finish().unwrap();
        assert_eq!(
            insns.to_string(),
            "0: (18) r2 = map[id:events]\n2: (95) exit\n"
        );
        let raw = insns
            .encode(|name| (name == "events").then_some(7))
            .unwrap();
        assert_eq!(raw[0], RawInsn::new(0x18, 2, bpf::PSEUDO_MAP_FD, 0, 7));
        assert_eq!(raw[1], RawInsn::default());
        assert_eq!(
            insns.encode(no_maps),
            Err(AsmError::UnknownMap {
                index: 0,
                name: "events"
            })
        );
    }

    #[test]
    fn forward_jumps_count_slots() {
        let mut b = Builder::new();
        let out = b.new_label("out");
        b.jump(JmpOp::Ne, R0, 0, out); // 0
        b.ld_imm64(R1, 1); // 1, 2
        b.ja(out); // 3
        b.mov(R1, 2); // 4
        b.bind(out);
        b.exit(); // 5
        let insns = b.finish().unwrap();
        assert_eq!(
            insns.to_string(),
            "0: (55) if r0 != 0x0 goto pc+4 <out>\n\
             1: (18) r1 = 0x1\n\
             3: (05) goto pc+1 <out>\n\
             4: (b7) r1 = 2\n\
             5: (95) exit\n"
        );
    }

    #[test]
    fn labels_are_handles_so_names_may_repeat() {
        let mut b = Builder::new();
        let (first, second) = (b.new_label("else"), b.new_label("else"));
        b.jump(JmpOp::Eq, R0, 0, first); // 0
        b.jump(JmpOp::Eq, R0, 1, second); // 1
        b.mov(R0, 1); // 2
        b.bind(second);
        b.mov(R0, 2); // 3
        b.bind(first);
        b.exit(); // 4
        let offsets: Vec<Option<i16>> = b
            .finish()
            .unwrap()
            .as_slice()
            .iter()
            .map(Insn::jump_offset)
            .collect();
        assert_eq!(offsets, [Some(3), Some(1), None, None, None]);
    }

    #[test]
    fn label_errors_name_the_instruction() {
        let mut b = Builder::new();
        b.mov(R0, 0);
        let nowhere = b.new_label("nowhere");
        b.ja(nowhere);
        assert_eq!(
            b.finish(),
            Err(AsmError::UnknownLabel {
                index: 1,
                label: "nowhere"
            })
        );

        let mut b = Builder::new();
        let x = b.new_label("x");
        b.bind(x);
        b.mov(R0, 0);
        b.bind(x);
        b.exit();
        assert_eq!(
            b.finish(),
            Err(AsmError::DuplicateLabel {
                index: 1,
                label: "x"
            })
        );

        let mut b = Builder::new();
        let far = b.new_label("far");
        b.ja(far);
        for _ in 0..40_000 {
            b.mov(R0, 0);
        }
        b.bind(far);
        b.exit();
        assert_eq!(
            b.finish(),
            Err(AsmError::OffsetOverflow {
                index: 0,
                label: "far",
                distance: 40_000
            })
        );
    }

    #[test]
    fn invalid_combinations_are_rejected_when_built() {
        type Case = (fn(&mut Builder), InsnError);
        let cases: [Case; 5] = [
            (|b| b.mov(R10, R1), InsnError::WritesFramePointer),
            (
                |b| b.load(Size::DW, R10, R1, 0),
                InsnError::WritesFramePointer,
            ),
            (|b| b.alu(AluOp::Div, R1, 0), InsnError::DivisionByZero),
            (|b| b.alu(AluOp::Rsh, R1, 64), InsnError::ShiftRange(64)),
            (
                |b| {
                    b.push(Insn::Alu {
                        width: Width::W32,
                        op: AluOp::Lsh,
                        dst: R1,
                        src: 32.into(),
                    })
                },
                InsnError::ShiftRange(32),
            ),
        ];
        for (build, error) in cases {
            let mut b = Builder::new();
            b.mov(R0, 0);
            build(&mut b);
            b.exit();
            assert_eq!(b.finish(), Err(AsmError::Insn { index: 1, error }));
        }
        // Storing through r10 is how the stack is written: allowed.
        let mut b = Builder::new();
        b.store(Size::DW, R10, -8, R1);
        b.exit();
        assert!(b.finish().is_ok());
    }

    #[test]
    fn disassembly_reads_like_the_verifier_log() {
        let mut b = Builder::new();
        b.mov(R6, R1);
        b.call(Helper::GetCurrentPidTgid);
        b.alu(AluOp::Rsh, R0, 32);
        b.store(Size::W, R10, -4, R0);
        b.store(Size::DW, R10, -16, 0);
        b.load(Size::DW, R7, R6, 104);
        b.push(Insn::Alu {
            width: Width::W32,
            op: AluOp::Mov,
            dst: R3,
            src: (-1).into(),
        });
        let end = b.new_label("end");
        b.jump(JmpOp::Sgt, R0, R7, end);
        b.bind(end);
        b.exit();
        let text = b.finish().unwrap().to_string();
        assert_eq!(
            text,
            "0: (bf) r6 = r1\n\
             1: (85) call bpf_get_current_pid_tgid#14\n\
             2: (77) r0 >>= 32\n\
             3: (63) *(u32 *)(r10 -4) = r0\n\
             4: (7a) *(u64 *)(r10 -16) = 0\n\
             5: (79) r7 = *(u64 *)(r6 +104)\n\
             6: (b4) w3 = -1\n\
             7: (6d) if r0 s> r7 goto pc+0 <end>\n\
             8: (95) exit\n"
        );
    }

    #[test]
    fn decode_inverts_encode() {
        let mut b = Builder::new();
        b.mov(R6, R1);
        b.ld_imm64(R3, -5);
        b.ld_map(R2, "events");
        b.store(Size::H, R10, -2, 7);
        let end = b.new_label("end");
        b.jump(JmpOp::Ge, R3, R6, end);
        b.call(Helper::ProbeReadKernelStr);
        b.bind(end);
        b.exit();
        let insns = b.finish().unwrap();
        let raw = insns.encode(|_| Some(4)).unwrap();
        let decoded: Vec<Insn> = decode(&raw).unwrap().into_iter().map(|(_, i)| i).collect();
        let mut expected = insns.as_slice().to_vec();
        expected[2] = Insn::LdMap {
            dst: R2,
            map: MapRef::Fd(4),
        };
        assert_eq!(decoded, expected);
    }

    #[test]
    fn decode_rejects_garbage() {
        let exit = RawInsn::new(0x95, 0, 0, 0, 0);
        assert_eq!(
            decode(&[RawInsn::new(0xff, 0, 0, 0, 0)]),
            Err(DecodeError::UnknownOpcode {
                index: 0,
                code: 0xff
            })
        );
        assert_eq!(
            decode(&[exit, RawInsn::new(0xbf, 11, 1, 0, 0)]),
            Err(DecodeError::BadRegister { index: 1, reg: 11 })
        );
        assert_eq!(
            decode(&[RawInsn::new(0x85, 0, 0, 0, 9999)]),
            Err(DecodeError::UnknownHelper { index: 0, id: 9999 })
        );
        assert_eq!(
            decode(&[RawInsn::new(0x18, 1, 0, 0, 0)]),
            Err(DecodeError::TruncatedLdImm64 { index: 0 })
        );
        assert_eq!(
            decode(&[RawInsn::new(0x18, 1, 0, 0, 0), exit]),
            Err(DecodeError::BrokenLdImm64 { index: 0 })
        );
    }
}
