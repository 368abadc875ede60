//! The disassembly of a few programs, compared with lang/tests/golden/*.txt.
//! Each file names the kernel release and the architecture it was written
//! for (`unlink-5.10-x86_64.txt`), and is compiled for those, whatever the
//! host: the test passes the same on an x86-64 and an arm64 machine.
//!
//! After an intended change, regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p lang --test golden` and review the diff.

use std::path::PathBuf;

use kernel_headers::KernelVersion;
use kernel_headers::pt_regs::{Abi, aarch64, x86_64};
use lang::fields::FieldInfo;
use lang::kernel::Kernel;
use lang::tracepoint::{TracepointFormat, TracepointSource, parse_format};
use lang::{Target, compile};

/// The architectures with golden files.
const ABIS: &[&Abi] = &[&x86_64::ABI, &aarch64::ABI];

const PROGRAMS: &[(&str, &str)] = &[
    (
        "unlink",
        r#"kprobe:do_unlinkat { $f = (struct filename *)arg1; printf("%s %d\n", str($f->name), $f->refcnt); }"#,
    ),
    (
        "count-by-comm",
        r#"kprobe:vfs_read / comm != "sshd" / { @reads[comm] = count(); }"#,
    ),
    (
        "hist-retval",
        "kretprobe:vfs_read { @bytes = hist(retval); }",
    ),
    (
        "if-unroll",
        r#"kretprobe:vfs_read { $n = 0; unroll(2) { $n += retval; } if ($n > 10) { printf("big\n"); } else if $n < 0 { return; } else { @small = count(); } }"#,
    ),
    (
        "tracepoint-openat",
        r#"tracepoint:syscalls:sys_enter_openat { printf("%s %s\n", comm, str(args->filename)); }"#,
    ),
];

struct Openat;
impl TracepointSource for Openat {
    fn format(&self, _: &str, _: &str) -> Option<TracepointFormat> {
        parse_format("field:const char * filename;\toffset:24;\tsize:8;\tsigned:0;").ok()
    }
}

#[test]
fn disassembly_matches_golden_files() {
    let fields = vec![
        (
            "filename.name",
            FieldInfo {
                offset: 0,
                size: 8,
                c_type: None,
            },
        ),
        (
            "filename.refcnt",
            FieldInfo {
                offset: 24,
                size: 4,
                c_type: Some("int".into()),
            },
        ),
    ];
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let cases = PROGRAMS.iter().flat_map(|program| {
        ABIS.iter().flat_map(move |abi| {
            [
                ("4.14", KernelVersion::new(4, 14, 0)),
                ("5.10", KernelVersion::new(5, 10, 0)),
            ]
            .map(|release| (program, *abi, release))
        })
    });
    let texts = cases.map(|((name, src), abi, (tag, release))| {
        let target = Target {
            fields: &fields,
            tracepoints: &Openat,
            kernel: Kernel::for_release(release, abi),
        };
        let compiled = compile(src, &target).unwrap_or_else(|e| panic!("{}", e.render(src)));
        (
            format!("{name}-{tag}-{}.txt", abi.arch),
            format!("; {src}\n{}", compiled.probes[0].insns),
        )
    });
    if let Err(differ) = probes::golden::compare(&dir, texts) {
        panic!("differ from golden: {differ:?}; UPDATE_GOLDEN=1 regenerates");
    }
}
