//! The instruction limit is the kernel's, once: a program the compiler
//! accepts for a 5.2+ kernel (more than 4096 instructions) also passes the
//! static check run on encoding. (Before 5.2 the compiler refuses it in one
//! line: tests/errors.rs.)

use kernel_headers::KernelVersion;
use kernel_headers::pt_regs::NATIVE;
use lang::kernel::Kernel;
use lang::tracepoint::NoTracepoints;
use lang::{Target, compile};

/// One probe of `n` map updates: about 5,000 instructions for n = 400.
fn large_program(n: usize) -> String {
    let body: String = (0..n).map(|i| format!("@m[{i}] = {i}; ")).collect();
    format!("kprobe:vfs_read {{ {body}}}")
}

fn target(release: KernelVersion) -> Target<'static> {
    static NO_FIELDS: Vec<(&str, lang::fields::FieldInfo)> = Vec::new();
    Target {
        fields: &NO_FIELDS,
        tracepoints: &NoTracepoints,
        kernel: Kernel::for_release(release, NATIVE),
    }
}

#[test]
fn a_large_program_encodes_on_a_kernel_that_takes_it() {
    let src = large_program(400);
    let compiled = compile(&src, &target(KernelVersion::new(6, 1, 0))).unwrap();
    let probe = &compiled.probes[0];
    let len = probe.insns.len();
    assert!((4097..6000).contains(&len), "{len} instructions");
    let raw = probe.encode(|_| Some(3)).unwrap();
    assert_eq!(raw.len(), len);
}
