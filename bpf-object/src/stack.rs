//! Read-only data on the stack, for kernels without global data maps
//! (before 5.2): the bytes a program uses (a `bpf_printk` format) are
//! written below the deepest stack slot the program uses by stores at its
//! start, and each `ld_imm64` of their address becomes `r = r10; r += -off`.
//! Inserting instructions moves everything after them, so every jump that
//! crosses the insertion point is re-linked.

use kernel_headers::bpf::{RawInsn, STACK_SIZE, alu, class, jmp, mode, reg, size, source};

const LD_IMM64: u8 = class::LD | size::DW | mode::IMM;
const SLOT: usize = 8;

/// Bytes of stack below r10 the program may touch, found by a linear scan:
/// every pointer derived from r10 by constant steps and every access through
/// one counts wherever it is, so branches can only make the answer larger.
/// A pointer moved by a register (unknown amount) counts as the whole stack.
pub(super) fn depth(insns: &[RawInsn]) -> usize {
    let mut frame: [Option<i64>; reg::COUNT as usize] = [None; reg::COUNT as usize];
    let mut deepest: i64 = 0;
    let mut note = |at: i64| deepest = deepest.min(at);
    let mut index = 0;
    while let Some(insn) = insns.get(index) {
        index += if insn.code == LD_IMM64 { 2 } else { 1 };
        frame[usize::from(reg::FP)] = Some(0);
        let (dst, src) = (usize::from(insn.dst()), usize::from(insn.src()));
        if dst >= frame.len() || src >= frame.len() {
            continue;
        }
        let code = insn.code;
        match code & class::MASK {
            class::ALU64 => {
                let op = code & alu::MASK;
                let by_reg = code & source::MASK == source::X;
                frame[dst] = match (op, by_reg, frame[dst]) {
                    (alu::MOV, true, _) => frame[src],
                    (alu::ADD, false, Some(at)) => Some(at + i64::from(insn.imm)),
                    (alu::SUB, false, Some(at)) => Some(at - i64::from(insn.imm)),
                    (_, _, Some(_)) => {
                        note(-(STACK_SIZE as i64));
                        None
                    }
                    _ => None,
                };
                if let Some(at) = frame[dst] {
                    note(at);
                }
            }
            class::ALU => frame[dst] = None,
            class::LD => frame[dst] = None,
            class::LDX => {
                if let Some(at) = frame[src] {
                    note(at + i64::from(insn.off));
                }
                frame[dst] = None;
            }
            class::ST | class::STX => {
                if let Some(at) = frame[dst] {
                    note(at + i64::from(insn.off));
                }
            }
            class::JMP if code & jmp::MASK == jmp::CALL => {
                frame[..=usize::from(reg::R5)].fill(None);
            }
            _ => {}
        }
    }
    usize::try_from(-deepest).unwrap_or(0)
}

/// Stores that write `bytes` (zero-padded to whole 8-byte words) at
/// `r10 + at`: one `st` of a doubleword where its value is a sign-extended
/// 32-bit immediate, else two `st` of words. No register is needed.
pub(super) fn stores(bytes: &[u8], at: i16) -> Vec<RawInsn> {
    let mut out = Vec::new();
    for (n, chunk) in bytes.chunks(SLOT).enumerate() {
        let mut word = [0u8; SLOT];
        word[..chunk.len()].copy_from_slice(chunk);
        let value = i64::from_le_bytes(word);
        let off = at + (n * SLOT) as i16;
        let st = |sz: u8, off: i16, imm: i32| {
            RawInsn::new(class::ST | mode::MEM | sz, reg::FP, 0, off, imm)
        };
        match i32::try_from(value) {
            Ok(imm) => out.push(st(size::DW, off, imm)),
            Err(_) => {
                let (low, high) = (value as u32 as i32, (value >> 32) as u32 as i32);
                out.push(st(size::W, off, low));
                out.push(st(size::W, off + 4, high));
            }
        }
    }
    out
}

/// The two slots that replace an `ld_imm64` of an address on the stack.
pub(super) fn address(dst: u8, at: i16) -> [RawInsn; 2] {
    [
        RawInsn::new(class::ALU64 | alu::MOV | source::X, dst, reg::FP, 0, 0),
        RawInsn::new(
            class::ALU64 | alu::ADD | source::K,
            dst,
            0,
            0,
            i32::from(at),
        ),
    ]
}

/// Where old instruction `index` is once `count` instructions are inserted
/// before instruction `at`.
pub(super) fn moved(index: usize, at: usize, count: usize) -> usize {
    if index >= at { index + count } else { index }
}

/// Inserts `new` before instruction `at` and re-links every jump (and
/// BPF-to-BPF call) whose span crosses the insertion point. A jump to
/// instruction `at` itself lands on the first inserted one: inserted code
/// belongs to the instruction it precedes.
pub(super) fn insert(insns: &mut Vec<RawInsn>, at: usize, new: &[RawInsn]) -> Result<(), String> {
    let count = new.len();
    let mut index = 0;
    while let Some(insn) = insns.get(index).copied() {
        let slots = if insn.code == LD_IMM64 { 2 } else { 1 };
        if let Some(Relative::Off | Relative::Imm) = relative(insn) {
            let delta = if relative(insn) == Some(Relative::Off) {
                i64::from(insn.off)
            } else {
                i64::from(insn.imm)
            };
            let target = index as i64 + 1 + delta;
            let new_index = moved(index, at, count) as i64;
            let new_target = match usize::try_from(target) {
                Ok(t) if t > at => (t + count) as i64,
                Ok(t) => t as i64,
                Err(_) => target,
            };
            let new_delta = new_target - new_index - 1;
            match relative(insn) {
                Some(Relative::Off) => {
                    insns[index].off = i16::try_from(new_delta).map_err(|_| {
                        format!("the jump at instruction {index} no longer fits 16 bits")
                    })?;
                }
                _ => {
                    insns[index].imm = i32::try_from(new_delta).map_err(|_| {
                        format!("the call at instruction {index} no longer fits 32 bits")
                    })?;
                }
            }
        }
        index += slots;
    }
    insns.splice(at..at, new.iter().copied());
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relative {
    /// A jump: `off` counts from the next instruction.
    Off,
    /// A BPF-to-BPF call: `imm` counts from the next instruction.
    Imm,
}

/// `BPF_PSEUDO_CALL`: a call whose `imm` is relative, not a helper id.
const PSEUDO_CALL: u8 = 1;

fn relative(insn: RawInsn) -> Option<Relative> {
    let class = insn.code & class::MASK;
    if class != class::JMP && class != class::JMP32 {
        return None;
    }
    match insn.code & jmp::MASK {
        jmp::EXIT => None,
        jmp::CALL if insn.src() == PSEUDO_CALL => Some(Relative::Imm),
        jmp::CALL => None,
        _ => Some(Relative::Off),
    }
}
