//! The static check run on encoded bytes before any load, so that the
//! mistakes every kernel would reject are reported here, with the slot index,
//! instead of as a verifier log.
//!
//! It checks what holds on *all* kernels nobtf targets, and the one limit
//! that depends on the kernel: at most as many slots as the target kernel
//! takes (the caller's capability value: 4096 before 5.2, the verifier's
//! complexity limit after), decodable instructions with intact `ld_imm64` pairs, `r10` never written,
//! jump targets inside the program, no backward jumps (kernels before 5.3
//! reject every loop), no unreachable instruction, and every path ending in
//! `exit`.

use kernel_headers::bpf::RawInsn;
use thiserror::Error;

use crate::asm::{DecodeError, Insn, Reg, decode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CheckError {
    #[error("the program is empty")]
    Empty,
    #[error(
        "{len} instructions is more than the {max} this kernel accepts (4096 before 5.2, 1,000,000 after)"
    )]
    TooLong { len: usize, max: usize },
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("instruction {index}: writes r10, the read-only frame pointer")]
    WritesFramePointer { index: usize },
    #[error("instruction {index}: jump to {target}, outside the program")]
    JumpOutOfRange { index: usize, target: i64 },
    #[error("instruction {index}: jump to {target}, the middle of an ld_imm64")]
    JumpIntoLdImm64 { index: usize, target: usize },
    #[error("instruction {index}: backward jump to {target} (kernels before 5.3 reject loops)")]
    BackwardJump { index: usize, target: usize },
    #[error("instruction {index}: execution falls off the end of the program (no exit)")]
    FallsOffEnd { index: usize },
    #[error("instruction {index}: unreachable")]
    Unreachable { index: usize },
}

/// Check an encoded program for a kernel that takes at most `max_insns`
/// slots. Indices in errors are slot indices.
pub fn check(raw: &[RawInsn], max_insns: usize) -> Result<(), CheckError> {
    if raw.is_empty() {
        return Err(CheckError::Empty);
    }
    if raw.len() > max_insns {
        return Err(CheckError::TooLong {
            len: raw.len(),
            max: max_insns,
        });
    }
    let insns = decode(raw)?;
    // Which slots start an instruction, and which instructions are reachable.
    let mut starts = vec![false; raw.len()];
    for &(index, _) in &insns {
        starts[index] = true;
    }
    let mut reachable = vec![false; raw.len()];
    reachable[0] = true;

    // All jumps go forward (checked before use), so one pass in order sees
    // every predecessor of an instruction before the instruction itself.
    for &(index, insn) in &insns {
        if insn.written() == Some(Reg::R10) {
            return Err(CheckError::WritesFramePointer { index });
        }
        let target = match insn.jump_offset() {
            None => None,
            Some(off) => {
                let target = index as i64 + 1 + i64::from(off);
                let Some(t) = usize::try_from(target).ok().filter(|&t| t < raw.len()) else {
                    return Err(CheckError::JumpOutOfRange { index, target });
                };
                if !starts[t] {
                    return Err(CheckError::JumpIntoLdImm64 { index, target: t });
                }
                if t <= index {
                    return Err(CheckError::BackwardJump { index, target: t });
                }
                Some(t)
            }
        };
        if !reachable[index] {
            return Err(CheckError::Unreachable { index });
        }
        let falls_through = !matches!(insn, Insn::Exit | Insn::Ja { .. });
        let next = index + insn.slots();
        if falls_through {
            if next >= raw.len() {
                return Err(CheckError::FallsOffEnd { index });
            }
            reachable[next] = true;
        }
        if let Some(t) = target {
            reachable[t] = true;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel_headers::bpf::{COMPLEXITY_LIMIT_INSNS, MAXINSNS, class, jmp, reg};

    const EXIT: RawInsn = RawInsn::new(class::JMP | jmp::EXIT, 0, 0, 0, 0);
    const MOV0: RawInsn = RawInsn::new(0xb7, reg::R0, 0, 0, 0);

    fn ja(off: i16) -> RawInsn {
        RawInsn::new(class::JMP | jmp::JA, 0, 0, off, 0)
    }

    fn jne0(off: i16) -> RawInsn {
        RawInsn::new(class::JMP | jmp::JNE, reg::R0, 0, off, 0)
    }

    #[test]
    fn accepts_a_straight_program() {
        assert_eq!(check(&[MOV0, jne0(1), MOV0, EXIT], MAXINSNS), Ok(()));
    }

    #[test]
    fn each_failure_names_its_instruction() {
        let ld_imm64 = RawInsn::new(0x18, reg::R1, 0, 0, 0);
        let cases: Vec<(Vec<RawInsn>, CheckError)> = vec![
            (vec![], CheckError::Empty),
            (
                vec![MOV0; MAXINSNS + 1],
                CheckError::TooLong {
                    len: MAXINSNS + 1,
                    max: MAXINSNS,
                },
            ),
            (
                vec![MOV0, RawInsn::new(0xbf, reg::R10, reg::R1, 0, 0), EXIT],
                CheckError::WritesFramePointer { index: 1 },
            ),
            (
                vec![MOV0, jne0(5), EXIT],
                CheckError::JumpOutOfRange {
                    index: 1,
                    target: 7,
                },
            ),
            (
                vec![jne0(-2), EXIT],
                CheckError::JumpOutOfRange {
                    index: 0,
                    target: -1,
                },
            ),
            (
                vec![jne0(1), ld_imm64, RawInsn::default(), EXIT],
                CheckError::JumpIntoLdImm64 {
                    index: 0,
                    target: 2,
                },
            ),
            (
                vec![MOV0, jne0(-2), EXIT],
                CheckError::BackwardJump {
                    index: 1,
                    target: 0,
                },
            ),
            (vec![MOV0, MOV0], CheckError::FallsOffEnd { index: 1 }),
            (
                vec![jne0(1), EXIT, MOV0],
                CheckError::FallsOffEnd { index: 2 },
            ),
            (
                vec![MOV0, EXIT, MOV0, EXIT],
                CheckError::Unreachable { index: 2 },
            ),
            (
                vec![ja(1), MOV0, EXIT],
                CheckError::Unreachable { index: 1 },
            ),
            (
                vec![MOV0, ld_imm64],
                CheckError::Decode(DecodeError::TruncatedLdImm64 { index: 1 }),
            ),
            (
                vec![ld_imm64, MOV0, EXIT],
                CheckError::Decode(DecodeError::BrokenLdImm64 { index: 0 }),
            ),
        ];
        for (program, error) in cases {
            assert_eq!(check(&program, MAXINSNS), Err(error), "{program:?}");
        }
    }

    #[test]
    fn messages_say_what_to_look_at() {
        let error = check(&[MOV0, jne0(-2), EXIT], MAXINSNS).unwrap_err();
        assert_eq!(
            error.to_string(),
            "instruction 1: backward jump to 0 (kernels before 5.3 reject loops)"
        );
    }

    #[test]
    fn the_limit_is_the_kernels() {
        // 4097 slots: too many before 5.2, fine after.
        let mut long = vec![MOV0; MAXINSNS];
        long.push(EXIT);
        let e = check(&long, MAXINSNS).unwrap_err();
        assert_eq!(
            e.to_string(),
            "4097 instructions is more than the 4096 this kernel accepts (4096 before 5.2, 1,000,000 after)"
        );
        assert_eq!(check(&long, COMPLEXITY_LIMIT_INSNS), Ok(()));
    }
}
