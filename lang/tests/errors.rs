//! Every error is one line naming the cause (plus the quoted source and a
//! caret when it has a place), found before anything loads.

use kernel_headers::KernelVersion;
use kernel_headers::pt_regs::NATIVE;
use lang::fields::FieldInfo;
use lang::kernel::Kernel;
use lang::tracepoint::NoTracepoints;
use lang::{Target, compile, fields_used};

fn fields() -> Vec<(&'static str, FieldInfo)> {
    vec![
        (
            "task_struct.mm",
            FieldInfo {
                offset: 8,
                size: 8,
                c_type: None,
            },
        ),
        (
            "mm_struct.owner",
            FieldInfo {
                offset: 8,
                size: 8,
                c_type: Some("struct task_struct *".into()),
            },
        ),
    ]
}

fn error_on(src: &str, release: KernelVersion) -> String {
    let fields = fields();
    let target = Target {
        fields: &fields,
        tracepoints: &NoTracepoints,
        kernel: Kernel::for_release(release, NATIVE),
    };
    match compile(src, &target) {
        Ok(_) => panic!("compiled: {src}"),
        Err(e) => e.render(src),
    }
}

fn error(src: &str) -> String {
    error_on(src, KernelVersion::new(5, 4, 0))
}

#[test]
fn an_unknown_field_names_the_command_that_adds_it() {
    let src = "kprobe:f { $t = (struct task_struct *)arg0; printf(\"%d\\n\", $t->pid); }";
    assert_eq!(
        error(src),
        "1:64: unknown field `task_struct.pid`: the offsets profile lacks it; add it with `offsets gen ... --field task_struct.pid`\n\
         kprobe:f { $t = (struct task_struct *)arg0; printf(\"%d\\n\", $t->pid); }\n\
         \x20                                                              ^^^"
    );
}

#[test]
fn a_member_of_unknown_type_needs_a_cast_to_be_followed() {
    let src = "kprobe:f { $t = (struct task_struct *)arg0; printf(\"%d\\n\", $t->mm->owner); }";
    assert!(
        error(src).contains("has no members; cast it first"),
        "{}",
        error(src)
    );
    let ok = "kprobe:f { $t = (struct task_struct *)arg0; printf(\"%d\\n\", ((struct mm_struct *)$t->mm)->owner); }";
    let fields = fields();
    let target = Target {
        fields: &fields,
        tracepoints: &NoTracepoints,
        kernel: Kernel::for_release(KernelVersion::new(5, 4, 0), NATIVE),
    };
    compile(ok, &target).unwrap();
}

#[test]
fn helpers_and_perf_events_are_refused_by_name_and_version_on_older_kernels() {
    let cases = [
        (
            "kprobe:f { @[curtask] = count(); }",
            (4, 7),
            "`curtask` needs the helper bpf_get_current_task of Linux 4.8; this kernel is 4.7.0",
        ),
        (
            "kprobe:f { @[cgroup] = count(); }",
            (4, 14),
            "`cgroup` needs the helper bpf_get_current_cgroup_id of Linux 4.18; this kernel is 4.14.0",
        ),
        (
            "kprobe:f { @[numaid] = count(); }",
            (4, 9),
            "`numaid` needs the helper bpf_get_numa_node_id of Linux 4.10",
        ),
        (
            "kprobe:f { @[kstack] = count(); }",
            (4, 5),
            "`kstack` needs the helper bpf_get_stackid of Linux 4.6",
        ),
        (
            "profile:hz:99 { @[cpu] = count(); }",
            (4, 8),
            "`profile:hz:99` runs a BPF program on a perf event, which needs Linux 4.9 or later",
        ),
        (
            "kprobe:f { @[kstack(flame)] = count(); }",
            (5, 4),
            "unknown stack mode `flame`: bpftrace, perf or raw",
        ),
        (
            "kprobe:f { @[ustack(2000)] = count(); }",
            (5, 4),
            "limit shouldn't exceed 1024, 2000 given",
        ),
        (
            "kprobe:f { @[ustack(raw, 200)] = count(); }",
            (5, 4),
            "at most 127 frames",
        ),
        (
            "software:nope:1 { }",
            (5, 4),
            "`software:nope:1`: expected software:EVENT",
        ),
    ];
    for (src, (major, minor), want) in cases {
        let got = error_on(src, KernelVersion::new(major, minor, 0));
        assert!(got.contains(want), "{src}: {got}");
    }
}

#[test]
fn one_line_causes() {
    let cases = [
        (
            "kprobe:f { printf(\"%d\\n\", foo); }",
            "unknown identifier `foo`",
        ),
        (
            "kprobe:f { printf(\"%s\\n\", username); }",
            "`username` is a bpftrace builtin nobtf trace does not support yet",
        ),
        (
            "kprobe:f { $x = macaddr(arg0); }",
            "`macaddr()` is a bpftrace function nobtf trace does not support yet",
        ),
        (
            "tracepoint:sched:nope { }",
            "unknown tracepoint `sched:nope`",
        ),
        ("usdt:/bin/sh:main { }", "`usdt` probes are not supported"),
        ("uprobe:/bin/sh { }", "expected uprobe:BINARY:SYMBOL"),
        (
            "kprobe:vfs_* { }",
            "a wildcard needs the kernel's list of probes",
        ),
        (
            "kprobe:f { printf(\"%d\\n\", retval); }",
            "`retval` exists only in kretprobes",
        ),
        (
            "kretprobe:f { printf(\"%d\\n\", arg0); }",
            "`arg0` exists only in kprobes",
        ),
        (
            "kprobe:f { printf(\"%d\\n\", arg6); }",
            "passes only 6 arguments in registers",
        ),
        (
            "kprobe:f { printf(\"%d %d\\n\", 1); }",
            "printf format has 2 conversions but 1 arguments",
        ),
        ("kprobe:f { printf(\"%s\\n\", arg0); }", "%s needs a string"),
        (
            "kprobe:f { printf(\"%d\\n\", comm); }",
            "%d needs an integer, found a string",
        ),
        (
            "kprobe:f { printf(\"%f\\n\", 1); }",
            "`%f` is not a printf conversion in bpftrace 0.23 (it prints as written)",
        ),
        (
            "kprobe:f { $x = $y; }",
            "`$y` is used before it is assigned",
        ),
        ("kprobe:f { $x = str($#); }", "use $#, not str($#)"),
        (
            "kprobe:f { print(@nope); }",
            "map `@nope` is used but never assigned",
        ),
        (
            "kprobe:f { @m = 1; clear(@m, @m); }",
            "clear takes one map, e.g. clear(@m)",
        ),
        (
            "kprobe:f { $t = (struct task_struct *)arg0; print(*$t); }",
            "print cannot print `struct task_struct`: print its members",
        ),
        (
            "kprobe:f { @m = 1; print(@m[1]); }",
            "`@m` is used with different keys elsewhere",
        ),
        (
            "kprobe:f { delete(1); }",
            "delete takes a map element, e.g. delete(@m[k]) or delete(@m, k)",
        ),
        (
            "kprobe:f { @a = count(); @a = sum(1); }",
            "assigned a different kind of value",
        ),
        (
            "kprobe:f { @a[1] = 1; @a[comm] = 2; }",
            "used with different keys",
        ),
        (
            "kprobe:f { @a = count(); $x = @a; }",
            "reading the aggregation `@a`",
        ),
        (
            "kprobe:f { $x = comm < \"a\"; }",
            "strings can only be compared with `==`/`!=`",
        ),
        ("kprobe:f { $x = 1 / 0; }", "division by zero"),
        (
            "kprobe:f { @h = lhist(arg0, 10, 0, 1); }",
            "lhist() min must be less than max (provided min 10 and max 0)",
        ),
        (
            "BEGIN { printf(\"%d\\n\", pid); }",
            "cannot be read in BEGIN or END",
        ),
        (
            "BEGIN { @x = count(); }",
            "an aggregation (count(), sum(), ...) cannot run in BEGIN or END: nobtf runs them in user space",
        ),
        (
            "kprobe:f { $x = args->foo; }",
            "`args` exists only in tracepoint probes",
        ),
        ("interval:s:0 { }", "expected interval:s:N, interval:ms:N"),
        (
            "kprobe:f { $x = *comm; }",
            "`*` needs a pointer, found a string; cast it first",
        ),
        (
            "kprobe:f { $x = 1; $x = comm; }",
            "`$x` holds a signed integer; it cannot be assigned a string",
        ),
        (
            "kprobe:f { if (arg0) { $in = 1; } $x = $in; }",
            "`$in` is used before it is assigned",
        ),
        (
            "kprobe:f { break; }",
            "`break` is only allowed in a `while` loop",
        ),
        (
            "kprobe:f { $x = 1; let $x; }",
            "`$x` is already declared or assigned here",
        ),
        (
            "kprobe:f { unroll(0) { } }",
            "unroll's count must be 1..=100",
        ),
        (
            "kprobe:f { unroll(arg0) { } }",
            "unroll's count must be an integer constant",
        ),
        (
            "kprobe:f { if (comm) { } }",
            "a condition must be an integer",
        ),
        (
            "kprobe:f { if (1) { exit(); } else }",
            "expected `{` after `else`",
        ),
        ("kprobe:f { return 1; }", "`return` with a value"),
        ("kprobe:f { $x = bswap(comm); }", "bswap() takes an integer"),
        (
            "kprobe:f { $x = (struct task_struct *)arg0 + 1; }",
            "pointer arithmetic on `struct task_struct *` needs the size",
        ),
        ("kprobe:f { $x = &arg0; }", "`&` takes a struct member"),
        ("kprobe:f { $x = comm[1]; }", "a string cannot be indexed"),
        (
            "kprobe:f { $x = sizeof(struct task_struct); }",
            "the offsets profile holds members, not struct sizes",
        ),
        (
            "kprobe:f { $x = strncmp(comm, 1, 2); }",
            "strncmp compares strings, found a signed integer",
        ),
        (
            "kprobe:f { $x = ntop(comm); }",
            "ntop takes an integer or a 4- or 16-byte array",
        ),
    ];
    for (src, expected) in cases {
        let message = error(src);
        assert!(message.contains(expected), "{src}\n{message}");
        // The first line is the cause; a caret follows when there is a place.
        assert!(!message.lines().next().unwrap().is_empty());
    }
}

#[test]
fn stack_and_instruction_limits_name_the_construct() {
    let big = "kprobe:f { printf(\"%s %s %s %s %s %s %s %s\\n\", str(arg0), str(arg1), str(arg2), str(arg3), str(arg4), str(arg5), str(arg0), str(arg1)); }";
    let message = error(big);
    assert!(
        message.contains("needs") && message.contains("bytes of BPF stack; kernels allow 512"),
        "{message}"
    );
    assert!(message.starts_with("1:12: this record"), "{message}");

    let mut long = String::from("kprobe:f { ");
    for _ in 0..400 {
        long.push_str("@a[comm] = count(); ");
    }
    long.push('}');
    let message = error_on(&long, KernelVersion::new(4, 14, 0));
    assert!(
        message.starts_with("probe `kprobe:f` compiles to ")
            && message
                .ends_with("BPF instructions; this kernel accepts at most 4096 (4096 before 5.2)"),
        "{message}"
    );
    assert!(!message.contains('\n'));
}

#[test]
fn fields_used_lists_every_member() {
    let src = "kprobe:f { $t = (struct task_struct *)arg0; @[((struct mm_struct *)$t->mm)->owner] = count(); printf(\"%d\\n\", $t->se.vruntime); }";
    let fields = fields_used(
        src,
        Kernel::for_release(KernelVersion::new(5, 4, 0), NATIVE),
    )
    .unwrap();
    assert_eq!(
        fields,
        [
            "mm_struct.owner",
            "task_struct.mm",
            "task_struct.se.vruntime"
        ]
    );
    // Tracepoint arguments need no tracefs and are not fields.
    let src = r#"tracepoint:syscalls:sys_enter_openat /args->flags & 1/ { $f = (struct file *)args->dfd; printf("%s %d\n", str(args->filename), $f->f_flags); }"#;
    let fields = fields_used(
        src,
        Kernel::for_release(KernelVersion::new(5, 4, 0), NATIVE),
    )
    .unwrap();
    assert_eq!(fields, ["file.f_flags"]);
    // A syscall's pointer arguments are typed from nobtf's table (naptime's
    // `args.rqtp->tv_sec`), where an untyped 8-byte integer has no members.
    let src = "tracepoint:syscalls:sys_enter_nanosleep { printf(\"%d\\n\", args.rqtp->tv_sec); }";
    let fields = fields_used(
        src,
        Kernel::for_release(KernelVersion::new(5, 4, 0), NATIVE),
    )
    .unwrap();
    assert_eq!(fields, ["__kernel_timespec.tv_sec"]);
}
