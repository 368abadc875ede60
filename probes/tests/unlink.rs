//! The unlink programs compared with hand-written instructions, and their
//! dependence on the profile.

mod common;

use common::*;
use kernel_headers::bpf::Helper;
use probes::asm::{AluOp, Insn, JmpOp, Operand, Reg::*, Size, Width};
use probes::unlink::{self, Output, Readers};
use probes::{BuildError, MaxEntries, ProbeKind};
use profile::{DO_UNLINKAT, FILENAME_NAME};

fn mov(dst: probes::asm::Reg, src: impl Into<Operand>) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst,
        src: src.into(),
    }
}

fn add(dst: probes::asm::Reg, imm: i32) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: AluOp::Add,
        dst,
        src: imm.into(),
    }
}

fn store_w(off: i16, text: &[u8; 4]) -> Insn {
    let imm = i32::from_le_bytes(*text);
    Insn::Store {
        size: Size::W,
        dst: R10,
        off,
        src: imm.into(),
    }
}

#[test]
fn printk_exit_is_the_reference_kretprobe() {
    let program = unlink::exit(
        &profile_5_4(),
        &choices(Output::TracePrintk, Readers::ProbeReadStr),
    )
    .unwrap();
    #[rustfmt::skip]
    let expected = [
        mov(R6, R1),                                       // keep ctx
        Insn::Call(Helper::GetCurrentPidTgid),
        mov(R3, R0),                                       // %d: pid = tgid, the upper half
        Insn::Alu { width: Width::W64, op: AluOp::Rsh, dst: R3, src: 32.into() },
        Insn::Load { size: Size::DW, dst: R4, src: R6, off: 80 }, // %ld: pt_regs->ax
        Insn::Alu { width: Width::W64, op: AluOp::Lsh, dst: R4, src: 32.into() },  // sign-extend
        Insn::Alu { width: Width::W64, op: AluOp::Arsh, dst: R4, src: 32.into() }, // the int half
        // "KPROBE EXIT: pid = %d, ret = %ld\n\0", padded to 40 bytes
        store_w(-40, b"KPRO"), store_w(-36, b"BE E"), store_w(-32, b"XIT:"),
        store_w(-28, b" pid"), store_w(-24, b" = %"), store_w(-20, b"d, r"),
        store_w(-16, b"et ="), store_w(-12, b" %ld"), store_w(-8, b"\n\0\0\0"),
        store_w(-4, b"\0\0\0\0"),
        mov(R1, R10), add(R1, -40),                        // format
        mov(R2, 34),                                       // its size, NUL included
        Insn::Call(Helper::TracePrintk),
        mov(R0, 0),
        Insn::Exit,
    ];
    assert_eq!(program.insns(), expected);
    assert_eq!(program.kind(), ProbeKind::Kretprobe);
    assert_eq!(program.name(), "unlink_exit");
    assert!(program.maps().is_empty());
}

/// The profile-driven part of the perf entry probe on a 4.x layout.
#[test]
fn perf_entry_reads_at_the_profile_offsets() {
    let program = unlink::entry(
        &profile_4_x(),
        &choices(Output::PerfEvents, Readers::ProbeReadStr),
    )
    .unwrap();
    let insns = program.insns();
    let start = insns
        .iter()
        .position(|i| matches!(i, Insn::Load { dst: R7, .. }))
        .unwrap();
    #[rustfmt::skip]
    let expected = [
        Insn::Load { size: Size::DW, dst: R7, src: R6, off: 104 }, // arg 2 = pt_regs->si
        mov(R1, R10), add(R1, -320 + 24),                         // &event.refcnt
        mov(R2, 4),
        mov(R3, R7), add(R3, 24),                                 // &name->refcnt on 4.x
        Insn::Call(Helper::ProbeRead),
        Insn::Jump { op: JmpOp::Ne, dst: R0, src: 0.into(), off: 1 },
        Insn::Store { size: Size::W, dst: R10, off: -320 + 28, src: 1.into() }, // HAS_REFCNT
        mov(R1, R10), add(R1, -328),                              // the pointer's slot
        mov(R2, 8),
        mov(R3, R7), add(R3, 0),                                  // &name->name
        Insn::Call(Helper::ProbeRead),
        Insn::Load { size: Size::DW, dst: R3, src: R10, off: -328 },
        mov(R1, R10), add(R1, -320 + 64),                         // event.filename
        mov(R2, 256),
        Insn::Call(Helper::ProbeReadStr),
    ];
    assert_eq!(&insns[start..start + expected.len()], expected);
    let maps = program.maps();
    assert_eq!(maps.len(), 1);
    assert_eq!(maps[0].name, unlink::EVENTS_MAP);
    assert_eq!(
        maps[0].map_type,
        kernel_headers::bpf::map_type::PERF_EVENT_ARRAY
    );
    assert_eq!(maps[0].max_entries, MaxEntries::PossibleCpus);
}

#[test]
fn two_layouts_differ_in_immediates_alone() {
    let c = choices(Output::PerfEvents, Readers::Split);
    let a = unlink::entry(&profile_5_4(), &c)
        .unwrap()
        .encode(|_| Some(3))
        .unwrap();
    let b = unlink::entry(&profile_4_x(), &c)
        .unwrap()
        .encode(|_| Some(3))
        .unwrap();
    assert_eq!(a.len(), b.len());
    let differ: Vec<_> = a.iter().zip(&b).filter(|(x, y)| x != y).collect();
    assert_eq!(differ.len(), 1);
    let (x, y) = differ[0];
    assert_eq!((x.code, x.regs, x.imm, y.imm), (0x07, 3, 16, 24)); // r3 += refcnt offset
}

#[test]
fn helpers_follow_the_choices() {
    let filename = profile_5_4();
    let user = profile_user_path();
    let helpers = |profile, output, read| {
        unlink::entry(profile, &choices(output, read))
            .unwrap()
            .helpers()
    };
    use Helper::*;
    assert_eq!(
        helpers(&filename, Output::PerfEvents, Readers::ProbeReadStr),
        [
            KtimeGetNs,
            GetCurrentPidTgid,
            GetCurrentComm,
            ProbeRead,
            ProbeReadStr,
            PerfEventOutput
        ]
    );
    assert_eq!(
        helpers(&filename, Output::PerfEvents, Readers::Split),
        [
            KtimeGetNs,
            GetCurrentPidTgid,
            GetCurrentComm,
            ProbeReadKernel,
            ProbeReadKernelStr,
            PerfEventOutput
        ]
    );
    assert_eq!(
        helpers(&user, Output::TracePrintk, Readers::Split),
        [GetCurrentPidTgid, ProbeReadUserStr, TracePrintk]
    );
    assert_eq!(
        helpers(&user, Output::TracePrintk, Readers::ProbeReadStr),
        [GetCurrentPidTgid, ProbeReadStr, TracePrintk]
    );
    // Before 4.11: probe_read alone, whatever the path's address space.
    for profile in [&filename, &user] {
        let used = helpers(profile, Output::PerfEvents, Readers::ProbeRead);
        assert!(used.contains(&ProbeRead), "{used:?}");
        assert!(
            !used
                .iter()
                .any(|h| matches!(h, ProbeReadStr | ProbeReadKernelStr | ProbeReadUserStr)),
            "{used:?}"
        );
    }
    assert_eq!(
        unlink::Readers::for_release(kernel_headers::KernelVersion::new(4, 10, 0)),
        Readers::ProbeRead
    );
    assert_eq!(
        unlink::Readers::for_release(kernel_headers::KernelVersion::new(4, 11, 0)),
        Readers::ProbeReadStr
    );
    assert_eq!(
        unlink::Readers::for_release(kernel_headers::KernelVersion::new(5, 4, 0)),
        Readers::ProbeReadStr
    );
    assert_eq!(
        unlink::Readers::for_release(kernel_headers::KernelVersion::new(5, 5, 0)),
        Readers::Split
    );
}

#[test]
fn unusable_profiles_are_errors() {
    let c = choices(Output::PerfEvents, Readers::ProbeReadStr);
    let mut profile = profile_5_4();
    profile.fields.remove(FILENAME_NAME);
    assert!(matches!(
        unlink::entry(&profile, &c),
        Err(BuildError::Profile(_))
    ));
    assert!(matches!(
        unlink::exit(&profile, &c),
        Err(BuildError::Profile(_))
    ));

    let mut profile = profile_5_4();
    profile.functions.get_mut(DO_UNLINKAT).unwrap().name_arg = 7;
    let error = unlink::entry(&profile, &c).unwrap_err();
    assert!(matches!(error, BuildError::ArgRegister(7)));
    assert!(error.to_string().contains("name_arg"));
}

#[test]
fn encode_needs_the_events_map() {
    let program = unlink::entry(
        &profile_5_4(),
        &choices(Output::PerfEvents, Readers::ProbeReadStr),
    )
    .unwrap();
    let error = program.encode(|_| None).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "assembling: instruction {}: map `events` has no fd (was it created?)",
            program.len() - 10
        )
    );
}

/// The ring entry probe reads name pointer and refcnt in one read only
/// where the stack loads of both stay aligned: refcnt at 12 before a name
/// at 16 (a custom profile) keeps the two reads. (One more read each: the
/// path's first 64 bytes.)
#[test]
fn one_filename_read_only_where_its_loads_are_aligned() {
    let reads = |profile: &profile::Profile| {
        let c = choices(Output::RingBuffer, Readers::Split);
        let text = unlink::entry(profile, &c).unwrap().to_string();
        text.matches("call bpf_probe_read_kernel#").count()
    };
    assert_eq!(reads(&profile_5_4()), 2);
    let mut odd = profile_5_4();
    odd.fields.insert(
        profile::FILENAME_REFCNT.into(),
        profile::Field::typed(12, 4, "int"),
    );
    odd.fields.insert(
        profile::FILENAME_NAME.into(),
        profile::Field::typed(16, 8, "const char *"),
    );
    assert_eq!(reads(&odd), 3);
}
