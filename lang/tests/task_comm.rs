//! `comm` read through the task's BTF pointer where the loader found the
//! kernel takes it, else through `bpf_get_current_comm`; the same text
//! either way.

mod common;

use kernel_headers::KernelVersion;
use kernel_headers::bpf::Helper;
use kernel_headers::pt_regs::x86_64::ABI;
use lang::fields::FieldInfo;
use lang::kernel::Kernel;
use lang::tracepoint::{TracepointFormat, TracepointSource};
use lang::{Compiled, Target};
use probes::interp::{Space, fake_pt_regs};

struct NoTracepoints;

impl TracepointSource for NoTracepoints {
    fn format(&self, _: &str, _: &str) -> Option<TracepointFormat> {
        None
    }
    fn matching(&self, _: &str) -> Option<Vec<String>> {
        None
    }
}

fn compile(source: &str, task_comm: Option<i16>) -> Compiled {
    let fields: Vec<(&'static str, FieldInfo)> = Vec::new();
    let mut kernel = Kernel::for_release(KernelVersion::new(6, 12, 0), &ABI);
    kernel.task_comm = task_comm;
    let target = Target {
        fields: &fields,
        tracepoints: &NoTracepoints,
        kernel,
    };
    lang::compile(source, &target).unwrap_or_else(|e| panic!("{source}: {}", e.render(source)))
}

#[test]
fn comm_is_two_loads_where_the_task_btf_read_was_found() {
    for source in [
        r#"kprobe:do_unlinkat { printf("%s\n", comm); }"#,
        r#"kprobe:do_unlinkat /comm == "rm"/ { @[comm] = count(); }"#,
    ] {
        let fast = compile(source, Some(2976));
        let helpers = fast.probes[0].helpers();
        assert!(helpers.contains(&Helper::GetCurrentTaskBtf), "{source}");
        assert!(!helpers.contains(&Helper::GetCurrentComm), "{source}");
        let text = fast.probes[0].insns.to_string();
        assert!(text.contains("*(u64 *)(r0 +2976)"), "{text}");
        assert!(text.contains("*(u64 *)(r0 +2984)"), "{text}");

        let plain = compile(source, None);
        let helpers = plain.probes[0].helpers();
        assert!(helpers.contains(&Helper::GetCurrentComm), "{source}");
        assert!(!helpers.contains(&Helper::GetCurrentTaskBtf), "{source}");
    }
}

/// The map key `@[comm]` makes from a task whose comm bytes are `comm`,
/// read through the task's BTF pointer in the interpreter.
fn key_from_task(comm: &[u8; 16]) -> Vec<u8> {
    const COMM_AT: usize = 2976;
    let compiled = compile(
        "kprobe:do_unlinkat { @[comm] = count(); }",
        Some(COMM_AT as i16),
    );
    let (mut vm, fd) = common::vm_for(&compiled);
    let mut task = vec![0x5au8; 4096];
    task[COMM_AT..COMM_AT + 16].copy_from_slice(comm);
    vm.map(Space::Task, 0xffff_8880_0000_0000, task).unwrap();
    let raw = compiled.probes[0].encode(fd.clone()).unwrap();
    vm.run(&raw, &fake_pt_regs(&[]).unwrap()).unwrap();
    assert!(
        common::printed(&compiled, &vm).is_empty(),
        "it prints nothing"
    );
    let entries = vm.map_entries(fd(&compiled.maps[0].name).unwrap());
    assert_eq!(entries.len(), 1);
    entries[0].0.clone()
}

#[test]
fn the_bytes_after_the_comm_nul_are_zero_as_the_helper_leaves_them() {
    // A kernel renaming with strlcpy leaves the old name's tail after the
    // NUL ("benchctl" exec'ing rm): the key must not carry it.
    let cases: [(&[u8; 16], &[u8]); 5] = [
        (b"rm\0chctl\0\0\0\0\0\0\0\0", b"rm"),
        (b"abcdefg\0XXXXXXXX", b"abcdefg"),
        (b"abcdefgh\0garbage", b"abcdefgh"),
        (b"0123456789abcde\0", b"0123456789abcde"),
        (
            b"\0\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f",
            b"",
        ),
    ];
    for (comm, want) in cases {
        let mut expected = want.to_vec();
        expected.resize(16, 0);
        assert_eq!(key_from_task(comm), expected, "{comm:?}");
    }
}
