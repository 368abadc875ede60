//! The static check run on encoded bytes before any load, so that the
//! mistakes every kernel would reject are reported here, with the slot index,
//! instead of as a verifier log.
//!
//! [`check`] checks what holds on *all* kernels nobtf targets: at most 4096
//! slots, decodable instructions with intact `ld_imm64` pairs, `r10` never
//! written, jump targets inside the program, no backward jumps (kernels
//! before 5.3 reject every loop), no unreachable instruction, and every path
//! ending in `exit`. [`check_with`] relaxes the length and the loops for a
//! kernel that takes them.

use kernel_headers::bpf::{MAXINSNS, RawInsn};
use thiserror::Error;

use crate::asm::{DecodeError, Insn, Reg, decode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CheckError {
    #[error("the program is empty")]
    Empty,
    #[error("{len} instructions is more than the {max} the kernel accepts")]
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

/// What the target kernel accepts beyond what every kernel does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Most slots a program may have.
    pub max_insns: usize,
    /// Backward jumps (bounded loops, 5.3+).
    pub loops: bool,
}

impl Rules {
    /// What every kernel nobtf targets accepts.
    pub const ALL_KERNELS: Rules = Rules {
        max_insns: MAXINSNS,
        loops: false,
    };
}

impl Default for Rules {
    fn default() -> Rules {
        Rules::ALL_KERNELS
    }
}

/// Check an encoded program for every kernel. Indices in errors are slot
/// indices.
pub fn check(raw: &[RawInsn]) -> Result<(), CheckError> {
    check_with(raw, Rules::ALL_KERNELS)
}

/// Check an encoded program for a kernel that follows `rules`.
pub fn check_with(raw: &[RawInsn], rules: Rules) -> Result<(), CheckError> {
    if raw.is_empty() {
        return Err(CheckError::Empty);
    }
    if raw.len() > rules.max_insns {
        return Err(CheckError::TooLong {
            len: raw.len(),
            max: rules.max_insns,
        });
    }
    let insns = decode(raw)?;
    // Which slots start an instruction.
    let mut starts = vec![false; raw.len()];
    for &(index, _) in &insns {
        starts[index] = true;
    }
    // Each instruction's successors, checked in order.
    let mut successors = Vec::with_capacity(insns.len());
    for &(index, insn) in &insns {
        if insn.written() == Some(Reg::R10) {
            return Err(CheckError::WritesFramePointer { index });
        }
        let mut next = Vec::with_capacity(2);
        if let Some(off) = insn.jump_offset() {
            let target = index as i64 + 1 + i64::from(off);
            let Some(t) = usize::try_from(target).ok().filter(|&t| t < raw.len()) else {
                return Err(CheckError::JumpOutOfRange { index, target });
            };
            if !starts[t] {
                return Err(CheckError::JumpIntoLdImm64 { index, target: t });
            }
            if t <= index && !rules.loops {
                return Err(CheckError::BackwardJump { index, target: t });
            }
            next.push(t);
        }
        if !matches!(insn, Insn::Exit | Insn::Ja { .. }) {
            let after = index + insn.slots();
            if after >= raw.len() {
                return Err(CheckError::FallsOffEnd { index });
            }
            next.push(after);
        }
        successors.push((index, next));
    }
    // Reachability from the first instruction, loops or not.
    let position: std::collections::HashMap<usize, usize> = successors
        .iter()
        .enumerate()
        .map(|(i, (index, _))| (*index, i))
        .collect();
    let mut reachable = vec![false; raw.len()];
    let mut pending = vec![0usize];
    reachable[0] = true;
    while let Some(index) = pending.pop() {
        for &t in &successors[position[&index]].1 {
            if !reachable[t] {
                reachable[t] = true;
                pending.push(t);
            }
        }
    }
    match insns.iter().find(|(index, _)| !reachable[*index]) {
        Some(&(index, _)) => Err(CheckError::Unreachable { index }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel_headers::bpf::{class, jmp, reg};

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
        assert_eq!(check(&[MOV0, jne0(1), MOV0, EXIT]), Ok(()));
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
            assert_eq!(check(&program), Err(error), "{program:?}");
        }
    }

    #[test]
    fn loops_and_length_where_the_kernel_takes_them() {
        let rules = Rules {
            max_insns: 1_000_000,
            loops: true,
        };
        // A loop whose exit is reachable, and a long program.
        let looping = [MOV0, jne0(1), ja(-3), EXIT];
        assert_eq!(check_with(&looping, rules), Ok(()));
        assert!(matches!(
            check(&looping),
            Err(CheckError::BackwardJump { index: 2, .. })
        ));
        let mut long = vec![MOV0; MAXINSNS + 1];
        long.push(EXIT);
        assert_eq!(check_with(&long, rules), Ok(()));
        // What follows a loop with no way out is still unreachable.
        assert_eq!(
            check_with(&[MOV0, ja(-2), EXIT], rules),
            Err(CheckError::Unreachable { index: 2 })
        );
    }

    #[test]
    fn messages_say_what_to_look_at() {
        let error = check(&[MOV0, jne0(-2), EXIT]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "instruction 1: backward jump to 0 (kernels before 5.3 reject loops)"
        );
    }
}
