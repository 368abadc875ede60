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

#[cfg(test)]
mod tests {
    use kernel_headers::bpf::jmp;

    use super::*;

    const STX_DW: u8 = class::STX | mode::MEM | size::DW;
    const ST_DW: u8 = class::ST | mode::MEM | size::DW;
    const ST_W: u8 = class::ST | mode::MEM | size::W;
    const LDX_W: u8 = class::LDX | mode::MEM | size::W;
    const MOV_X: u8 = class::ALU64 | alu::MOV | source::X;
    const MOV_K: u8 = class::ALU64 | alu::MOV | source::K;
    const ADD_K: u8 = class::ALU64 | alu::ADD | source::K;
    const ADD_X: u8 = class::ALU64 | alu::ADD | source::X;
    const JEQ_K: u8 = class::JMP | jmp::JEQ | source::K;
    const JA: u8 = class::JMP | jmp::JA;
    const CALL: u8 = class::JMP | jmp::CALL;
    const EXIT: u8 = class::JMP | jmp::EXIT;

    fn i(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
        RawInsn::new(code, dst, src, off, imm)
    }

    #[test]
    fn depth_is_the_deepest_slot_reached_any_way() {
        let program = [
            i(STX_DW, reg::FP, reg::R1, -8, 0), // *(u64 *)(r10 - 8) = r1
            i(MOV_X, reg::R2, reg::FP, 0, 0),   // r2 = r10
            i(ADD_K, reg::R2, 0, 0, -24),       // r2 += -24 (a helper's buffer)
            i(CALL, 0, 0, 0, 4),
            i(MOV_X, reg::R3, reg::FP, 0, 0), // r3 = r10
            i(ST_DW, reg::R3, 0, -40, 0),     // *(u64 *)(r3 - 40) = 0
            i(EXIT, 0, 0, 0, 0),
        ];
        assert_eq!(depth(&program), 40);
        assert_eq!(depth(&program[..3]), 24);
        assert_eq!(depth(&program[..1]), 8);
        // After the call r2 is no stack pointer: accesses through it do not count.
        let after_call = [
            i(MOV_X, reg::R2, reg::FP, 0, 0),
            i(CALL, 0, 0, 0, 4),
            i(LDX_W, reg::R0, reg::R2, -100, 0),
            i(EXIT, 0, 0, 0, 0),
        ];
        assert_eq!(depth(&after_call), 0);
        // A stack pointer moved by a register: any slot may be reached.
        let variable = [
            i(MOV_X, reg::R2, reg::FP, 0, 0),
            i(ADD_X, reg::R2, reg::R3, 0, 0),
            i(EXIT, 0, 0, 0, 0),
        ];
        assert_eq!(depth(&variable), STACK_SIZE);
        // The second slot of an ld_imm64 is not an instruction.
        let ld = [
            i(LD_IMM64, reg::R1, 0, 0, 0),
            i(0, 0, 0, 0, -1000),
            i(EXIT, 0, 0, 0, 0),
        ];
        assert_eq!(depth(&ld), 0);
    }

    #[test]
    fn stores_use_one_doubleword_where_the_value_sign_extends() {
        // "abc\0" then zero padding: 0x00636261 fits a sign-extended imm32.
        assert_eq!(
            stores(b"abc\0", -16),
            [i(ST_DW, reg::FP, 0, -16, 0x0063_6261)]
        );
        // Eight bytes of text need two words, low then high.
        assert_eq!(
            stores(b"KPROBE E", -24),
            [
                i(ST_W, reg::FP, 0, -24, i32::from_le_bytes(*b"KPRO")),
                i(ST_W, reg::FP, 0, -20, i32::from_le_bytes(*b"BE E")),
            ]
        );
        // All ones is -1 sign-extended: one store.
        assert_eq!(stores(&[0xff; 8], -8), [i(ST_DW, reg::FP, 0, -8, -1)]);
        // Nine bytes: two words, then the ninth byte padded in its own doubleword.
        let nine = stores(b"%d %s %x\0", -32);
        assert_eq!(nine.len(), 3);
        assert_eq!(nine[2], i(ST_DW, reg::FP, 0, -24, 0));
    }

    #[test]
    fn address_is_r10_plus_a_negative_offset() {
        assert_eq!(
            address(reg::R1, -64),
            [
                i(MOV_X, reg::R1, reg::FP, 0, 0),
                i(ADD_K, reg::R1, 0, 0, -64)
            ]
        );
    }

    #[test]
    fn inserting_relinks_jumps_that_cross_the_point() {
        let x = |n: i32| i(MOV_K, reg::R0, 0, 0, n);
        let mut program = vec![
            /* 0 */ i(JEQ_K, reg::R1, 0, 3, 0), // -> 4: crosses
            /* 1 */ i(JA, 0, 0, 0, 0), // -> 2: before the point
            /* 2 */ i(JEQ_K, reg::R1, 0, 0, 1), // -> 3: lands on the point
            /* 3 */ x(3), // insertion point
            /* 4 */ i(LD_IMM64, reg::R2, 0, 0, 7),
            /* 5 */ i(0, 0, 0, 0, 0),
            /* 6 */ i(JA, 0, 0, -7, 0), // -> 0: crosses backwards
            /* 7 */ i(JA, 0, 0, -5, 0), // -> 3: back to the point
            /* 8 */ i(JA, 0, 0, -5, 0), // -> 4: after the point
            /* 9 */ i(EXIT, 0, 0, 0, 0),
        ];
        let new = [x(100), x(101)];
        insert(&mut program, 3, &new).unwrap();
        assert_eq!(
            program,
            [
                /* 0 */ i(JEQ_K, reg::R1, 0, 5, 0), // -> 6 (old 4)
                /* 1 */ i(JA, 0, 0, 0, 0),
                /* 2 */ i(JEQ_K, reg::R1, 0, 0, 1), // -> 3: the inserted code
                /* 3 */ x(100),
                /* 4 */ x(101),
                /* 5 */ x(3),
                /* 6 */ i(LD_IMM64, reg::R2, 0, 0, 7),
                /* 7 */ i(0, 0, 0, 0, 0),
                /* 8 */ i(JA, 0, 0, -9, 0), // -> 0
                /* 9 */ i(JA, 0, 0, -7, 0), // -> 3: the inserted code
                /* 10 */ i(JA, 0, 0, -5, 0), // -> 6: unchanged
                /* 11 */ i(EXIT, 0, 0, 0, 0),
            ]
        );
        assert_eq!([0, 2, 3, 4, 9].map(|n| moved(n, 3, 2)), [0, 2, 5, 6, 11]);
    }

    #[test]
    fn a_prologue_leaves_jumps_within_the_program_as_they_were() {
        let mut program = vec![
            i(JEQ_K, reg::R1, 0, 1, 0),
            i(MOV_K, reg::R0, 0, 0, 1),
            i(JA, 0, 0, -3, 0),
            i(EXIT, 0, 0, 0, 0),
        ];
        let original = program.clone();
        let prologue = stores(b"fmt\0", -8);
        insert(&mut program, 0, &prologue).unwrap();
        assert_eq!(program[..1], prologue[..]);
        assert_eq!(program[1..3], original[..2]);
        assert_eq!(program[4], original[3]);
        // The backward jump to instruction 0 lands on the stores (inserted
        // code belongs to the instruction it precedes): it reruns them, which
        // writes the same bytes again.
        assert_eq!(program[3], i(JA, 0, 0, -4, 0));
    }

    #[test]
    fn a_jump_pushed_out_of_range_is_an_error() {
        let mut program = vec![i(JA, 0, 0, i16::MAX, 0)];
        program.extend(std::iter::repeat_n(i(MOV_K, 0, 0, 0, 0), i16::MAX as usize));
        program.push(i(EXIT, 0, 0, 0, 0));
        let err = insert(&mut program, 5, &[i(MOV_K, 0, 0, 0, 0)]).unwrap_err();
        assert_eq!(err, "the jump at instruction 0 no longer fits 16 bits");
    }
}
