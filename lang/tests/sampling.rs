//! Sampling probes, stacks, symbols and helper builtins compile to what the
//! loader needs: perf-event programs, a stack map per depth read with
//! `bpf_get_stackid`, each builtin's helper, `kaddr()` resolved while
//! compiling.

use std::sync::Arc;

use kernel_headers::KernelVersion;
use kernel_headers::bpf::{Helper, map_type, prog_type};
use kernel_headers::pt_regs::NATIVE;
use lang::fields::FieldInfo;
use lang::kernel::Kernel;
use lang::output::{EventFormat, ValueType};
use lang::providers::AttachPoint;
use lang::symbols::{self, StackMode, StackType, Symbol, Symbolic, Symbolizer};
use lang::tracepoint::NoTracepoints;
use lang::{Compiled, Options, Target, compile, compile_with};

fn compiled(src: &str) -> Compiled {
    let fields: Vec<(&'static str, FieldInfo)> = Vec::new();
    let target = Target {
        fields: &fields,
        tracepoints: &NoTracepoints,
        kernel: Kernel::for_release(KernelVersion::new(5, 4, 0), NATIVE),
    };
    // signal() is one of bpftrace's unsafe functions.
    let options = Options {
        unsafe_allowed: true,
        ..Options::default()
    };
    compile_with(src, &target, options).unwrap_or_else(|e| panic!("{}", e.render(src)))
}

/// Knows one kernel symbol, `avenrun`.
struct Kallsyms;

impl Symbolizer for Kallsyms {
    fn stack(&self, _: u32, _: u32) -> Option<Vec<u64>> {
        None
    }
    fn kernel(&self, _: u64) -> Option<Symbol> {
        None
    }
    fn user(&self, _: u32, _: u64) -> Option<Symbol> {
        None
    }
    fn kernel_address(&self, name: &str) -> Option<u64> {
        (name == "avenrun").then_some(0xffff_ffff_8200_1000)
    }
    fn user_address(&self, _: &str, _: &str) -> Option<u64> {
        None
    }
}

#[test]
fn profile_with_kernel_stack_keys() {
    let c = compiled(
        "profile:hz:99 { @[kstack] = count(); } profile:ms:10 { @d[kstack(perf, 5)] = count(); }",
    );
    assert_eq!(c.probes.len(), 2);
    let AttachPoint::Sampling(hz) = &c.probes[0].attach else {
        panic!("{:?}", c.probes[0].attach)
    };
    assert_eq!((hz.period, hz.freq), (99, true));
    assert_eq!(c.probes[0].attach.prog_type(), Some(prog_type::PERF_EVENT));
    assert!(c.probes[0].helpers().contains(&Helper::GetStackid));
    let stacks: Vec<(&str, u32, u32, u32)> = c
        .maps
        .iter()
        .filter(|m| m.map_type() == map_type::STACK_TRACE)
        .map(|m| (m.name.as_str(), m.key_size, m.value_size, m.max_entries))
        .collect();
    assert_eq!(
        stacks,
        [("stack_127", 4, 127 * 8, 4096), ("stack_5", 4, 40, 4096)]
    );
    let key = |name: &str| c.maps.iter().find(|m| m.name == name).unwrap().key[0].ty;
    assert_eq!(
        key("@"),
        ValueType::Symbol(Symbolic::Stack(StackType {
            user: false,
            mode: StackMode::Bpftrace,
            limit: 127
        }))
    );
    assert_eq!(
        key("@d"),
        ValueType::Symbol(Symbolic::Stack(StackType {
            user: false,
            mode: StackMode::Perf,
            limit: 5
        }))
    );
}

#[test]
fn user_stacks_and_symbols_print_with_s() {
    let c = compiled(r#"kprobe:f { printf("%s %s %s\n", ustack(raw), ksym(arg0), usym(arg1)); }"#);
    let EventFormat::Printf { args, .. } = &c.events[0] else {
        panic!("{:?}", c.events)
    };
    let kinds: Vec<ValueType> = args.iter().map(|s| s.ty).collect();
    assert_eq!(
        kinds,
        [
            ValueType::Symbol(Symbolic::Stack(StackType {
                user: true,
                mode: StackMode::Raw,
                limit: 127
            })),
            ValueType::Symbol(Symbolic::Ksym),
            ValueType::Symbol(Symbolic::Usym),
        ]
    );
    let helpers = c.probes[0].helpers();
    assert!(helpers.contains(&Helper::GetStackid) && helpers.contains(&Helper::GetCurrentPidTgid));
    // usym() carries the thread group it was taken in, as bpftrace's
    // usym_t: 16 bytes, the pid after the address.
    assert_eq!(args[2].offset - args[1].offset, 8);
    let mut record = vec![0u8; args[2].offset as usize + 16];
    let at = args[2].offset as usize;
    record[at..at + 8].copy_from_slice(&0x1234u64.to_ne_bytes());
    record[at + 8..at + 12].copy_from_slice(&42u32.to_ne_bytes());
    assert_eq!(
        lang::output::slot_value(&record, &args[2]).unwrap(),
        lang::output::ValueRef::Symbol {
            kind: Symbolic::Usym,
            raw: 0x1234,
            pid: 42
        }
    );
    assert!(lang::output::slot_value(&record[..at + 8], &args[2]).is_err());
}

#[test]
fn builtins_call_their_helpers() {
    let c = compiled(
        r#"kprobe:f { @[curtask, rand, numaid] = count(); signal("KILL"); signal(10); } profile:hz:1 /pid/ { @cpu = lhist(cpu, 0, 1000, 1); }"#,
    );
    let helpers = c.probes[0].helpers();
    for helper in [
        Helper::GetCurrentTask,
        Helper::GetPrandomU32,
        Helper::GetNumaNodeId,
        Helper::SendSignal,
    ] {
        assert!(helpers.contains(&helper), "{helper:?} in {helpers:?}");
    }
    let text = c.probes[0].insns.to_string();
    assert!(text.contains("r0 = 9") || text.contains("= 9"), "{text}");
}

#[test]
fn kaddr_is_resolved_while_compiling() {
    symbols::install(Arc::new(Kallsyms));
    let c = compiled(
        r#"interval:s:1 { $avenrun = kaddr("avenrun"); $load1 = *$avenrun; printf("%d\n", $load1 >> 11); }"#,
    );
    let text = c.probes[0].insns.to_string();
    assert!(
        text.contains(&format!("{}", 0xffff_ffff_8200_1000u64 as i64))
            || text.contains("0xffffffff82001000"),
        "{text}"
    );
    let fields: Vec<(&'static str, FieldInfo)> = Vec::new();
    let target = Target {
        fields: &fields,
        tracepoints: &NoTracepoints,
        kernel: Kernel::for_release(KernelVersion::new(5, 4, 0), NATIVE),
    };
    let err = compile(r#"kprobe:f { @ = kaddr("no_such_symbol"); }"#, &target).unwrap_err();
    assert!(
        err.message.contains("no such symbol in /proc/kallsyms"),
        "{}",
        err.message
    );
}
