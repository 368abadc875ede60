//! Helper fallback, as libbpf does it: on kernels before 5.5 a call to
//! `bpf_probe_read_kernel`/`_user` (and the `_str` forms) becomes a call to
//! `bpf_probe_read`/`bpf_probe_read_str`, which read either memory on x86-64.

use kernel_headers::bpf::{Helper, RawInsn, class, jmp};

use crate::error::ObjError;

const CALL: u8 = class::JMP | jmp::CALL;

/// Rewrites calls to helpers the kernel lacks into their older form; returns
/// (newer, older, calls rewritten) per pair. Only helpers with an older form
/// are asked about; the rest are left for the verifier to judge.
pub(super) fn fall_back(
    program: &str,
    insns: &mut [RawInsn],
    has_helper: &mut dyn FnMut(Helper) -> bool,
) -> Result<Vec<(Helper, Helper, usize)>, ObjError> {
    let mut done: Vec<(Helper, Helper, usize)> = Vec::new();
    let mut asked: Vec<(Helper, bool)> = Vec::new();
    let mut has = |h: Helper| match asked.iter().find(|(a, _)| *a == h) {
        Some(&(_, yes)) => yes,
        None => {
            let yes = has_helper(h);
            asked.push((h, yes));
            yes
        }
    };
    for (index, insn) in insns.iter_mut().enumerate() {
        if insn.code != CALL || insn.src() != 0 {
            continue;
        }
        let Some(helper) = Helper::from_id(insn.imm as u32) else {
            continue;
        };
        let Some(older) = helper.fallback() else {
            continue;
        };
        if has(helper) {
            continue;
        }
        if !has(older) {
            return Err(ObjError::MissingHelper {
                program: program.to_string(),
                insn: index,
                helper,
                fallback: older,
            });
        }
        insn.imm = older.id() as i32;
        match done.iter_mut().find(|(h, _, _)| *h == helper) {
            Some(entry) => entry.2 += 1,
            None => done.push((helper, older, 1)),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(h: Helper) -> RawInsn {
        RawInsn::new(CALL, 0, 0, 0, h.id() as i32)
    }

    #[test]
    fn rewrites_only_what_the_kernel_lacks() {
        let mut insns = vec![
            call(Helper::ProbeReadKernel),
            call(Helper::GetCurrentPidTgid),
            call(Helper::ProbeReadKernel),
            call(Helper::ProbeReadUserStr),
        ];
        // A 5.4 kernel: the old readers only.
        let mut asked = Vec::new();
        let mut has = |h: Helper| {
            asked.push(h);
            h.since() < kernel_headers::KernelVersion::new(5, 5, 0)
        };
        let done = fall_back("p", &mut insns, &mut has).unwrap();
        assert_eq!(
            done,
            [
                (Helper::ProbeReadKernel, Helper::ProbeRead, 2),
                (Helper::ProbeReadUserStr, Helper::ProbeReadStr, 1)
            ]
        );
        let ids: Vec<i32> = insns.iter().map(|i| i.imm).collect();
        assert_eq!(ids, [4, 14, 4, 45]);
        // Each helper asked once; helpers without an older form never.
        assert_eq!(
            asked,
            [
                Helper::ProbeReadKernel,
                Helper::ProbeRead,
                Helper::ProbeReadUserStr,
                Helper::ProbeReadStr
            ]
        );
    }

    #[test]
    fn a_kernel_with_the_new_helpers_is_left_alone() {
        let mut insns = vec![call(Helper::ProbeReadKernelStr)];
        let done = fall_back("p", &mut insns, &mut |_| true).unwrap();
        assert!(done.is_empty());
        assert_eq!(insns[0].imm, 115);
    }

    #[test]
    fn before_4_11_there_is_no_string_reader() {
        let mut insns = vec![
            call(Helper::GetCurrentPidTgid),
            call(Helper::ProbeReadKernelStr),
        ];
        let has = |h: Helper| h.since() < kernel_headers::KernelVersion::new(4, 11, 0);
        let err = fall_back("p", &mut insns, &mut { has }).unwrap_err();
        assert_eq!(
            err,
            ObjError::MissingHelper {
                program: "p".into(),
                insn: 1,
                helper: Helper::ProbeReadKernelStr,
                fallback: Helper::ProbeReadStr
            }
        );
        assert_eq!(
            err.to_string(),
            "program `p` calls bpf_probe_read_kernel_str (instruction 1, mainline 5.5+), which \
             this kernel lacks, and its older form bpf_probe_read_str (4.11+) is missing too: \
             this kernel is too old for the program"
        );
    }
}
