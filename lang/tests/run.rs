//! Compiled programs run in probes' interpreter against fake kernel memory;
//! their records and maps decoded as the loader would.

use kernel_headers::KernelVersion;
use kernel_headers::pt_regs::{self, NATIVE};
use lang::fields::FieldInfo;
use lang::kernel::Kernel;
use lang::output::{Event, EventFormat, MapSpec, MapValue, Value};
use lang::tracepoint::{NoTracepoints, TracepointFormat, TracepointSource, parse_format};
use lang::{Compiled, Target, compile};
use probes::interp::{Space, Vm, fake_pt_regs};

mod common;

const FIELDS: &[(&str, FieldInfo)] = &[];

fn field(offset: u32, size: u32, ty: Option<&str>) -> FieldInfo {
    FieldInfo {
        offset,
        size,
        c_type: ty.map(str::to_string),
    }
}

fn fields() -> Vec<(&'static str, FieldInfo)> {
    vec![
        ("filename.name", field(0, 8, None)),
        ("filename.refcnt", field(24, 4, Some("int"))),
        ("task_struct.mm", field(0x40, 8, Some("struct mm_struct *"))),
        ("task_struct.pid", field(0x48, 4, Some("pid_t"))),
        ("task_struct.comm", field(0x50, 16, Some("char[16]"))),
        (
            "mm_struct.owner",
            field(0x10, 8, Some("struct task_struct *")),
        ),
        ("sock.daddr", field(0, 4, Some("__be32"))),
        ("sock.v6_daddr", field(8, 16, Some("unsigned char[16]"))),
        ("sock.family", field(24, 2, Some("unsigned short"))),
    ]
}

struct Openat;
impl TracepointSource for Openat {
    fn format(&self, category: &str, name: &str) -> Option<TracepointFormat> {
        ((category, name) == ("syscalls", "sys_enter_openat")).then(|| {
            parse_format(
                "ID: 614\n\
                 \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
                 \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
                 \tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\
                 \tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;\n\
                 \tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;\n\
                 \tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;\n",
            )
            .unwrap()
        })
    }
}

fn kernel(release: KernelVersion) -> Kernel {
    Kernel::for_release(release, NATIVE)
}

fn build(src: &str, release: KernelVersion) -> Compiled {
    let fields = fields();
    let target = Target {
        fields: &fields,
        tracepoints: &Openat,
        kernel: kernel(release),
    };
    compile(src, &target).unwrap_or_else(|e| panic!("{}", e.render(src)))
}

use common::{printed, vm_for};

fn run(
    compiled: &Compiled,
    vm: &mut Vm,
    fd: impl Fn(&str) -> Option<i32>,
    probe: usize,
    ctx: &[u8],
) {
    let raw = compiled.probes[probe].encode(fd).unwrap();
    assert_eq!(vm.run(&raw, ctx), Ok(0), "{}", compiled.probes[probe].insns);
}

fn args_regs(args: &[u64]) -> Vec<u8> {
    let names: Vec<(&str, u64)> = args
        .iter()
        .zip(NATIVE.args)
        .map(|(&v, &(name, _))| (name, v))
        .collect();
    fake_pt_regs(&names).unwrap()
}

/// `src` (one kretprobe) built for 5.4 and run once for each return value.
fn run_on_returns(src: &str, returns: &[i64]) -> (Compiled, Vm) {
    let compiled = build(src, KernelVersion::new(5, 4, 0));
    let (mut vm, fd) = vm_for(&compiled);
    for &ret in returns {
        let regs = fake_pt_regs(&[(NATIVE.ret.0, ret as u64)]).unwrap();
        run(&compiled, &mut vm, fd.clone(), 0, &regs);
    }
    (compiled, vm)
}

/// The arguments of each printf the program sent, in order.
fn printf_args(compiled: &Compiled, vm: &Vm) -> Vec<Vec<Value>> {
    printed(compiled, vm)
        .into_iter()
        .map(|e| match e {
            Event::Printf { args, .. } => args,
            other => panic!("{other:?}"),
        })
        .collect()
}

const FILENAME: u64 = 0xffff_8880_0000_1000;
const NAME: u64 = 0xffff_8880_0000_2000;

#[test]
fn the_unlink_one_liner_prints_path_and_refcnt() {
    let src = r#"kprobe:do_unlinkat { $f = (struct filename *)arg1; printf("%s %d\n", str($f->name), $f->refcnt); }"#;
    for release in [
        KernelVersion::new(4, 14, 0),
        KernelVersion::new(5, 4, 0),
        KernelVersion::new(6, 1, 0),
    ] {
        let compiled = build(src, release);
        let (mut vm, fd) = vm_for(&compiled);
        let mut filename = vec![0u8; 32];
        filename[..8].copy_from_slice(&NAME.to_le_bytes());
        filename[24..28].copy_from_slice(&1i32.to_le_bytes());
        vm.map(Space::Kernel, FILENAME, filename).unwrap();
        vm.map(Space::Kernel, NAME, b"/tmp/a.txt\0".to_vec())
            .unwrap();
        run(&compiled, &mut vm, fd, 0, &args_regs(&[100, FILENAME]));
        assert_eq!(
            printed(&compiled, &vm),
            [Event::Printf {
                format: "%s %d\n".into(),
                args: vec![Value::Str("/tmp/a.txt".into()), Value::Int(1)],
            }],
            "{release}"
        );
    }
}

#[test]
fn nested_members_predicates_and_builtins() {
    let src = r#"kprobe:wake_up_new_task / pid == 42 && comm == "rm" / {
        $t = (struct task_struct *)arg0;
        printf("%d %s %d %u %u %d\n", $t->mm->owner->pid, $t->comm, tid, uid, gid, cpu);
    }"#;
    let compiled = build(src, KernelVersion::new(5, 10, 0));
    let (mut vm, fd) = vm_for(&compiled);
    const TASK: u64 = 0xffff_8880_0001_0000;
    const MM: u64 = 0xffff_8880_0002_0000;
    let mut task = vec![0u8; 0x60];
    task[0x40..0x48].copy_from_slice(&MM.to_le_bytes());
    task[0x48..0x4c].copy_from_slice(&(-7i32).to_le_bytes());
    task[0x50..0x55].copy_from_slice(b"bash\0");
    let mut mm = vec![0u8; 0x18];
    mm[0x10..0x18].copy_from_slice(&TASK.to_le_bytes());
    vm.map(Space::Kernel, TASK, task).unwrap();
    vm.map(Space::Kernel, MM, mm).unwrap();
    run(&compiled, &mut vm, fd.clone(), 0, &args_regs(&[TASK]));
    assert_eq!(
        printed(&compiled, &vm),
        [Event::Printf {
            format: "%d %s %d %u %u %d\n".into(),
            args: vec![
                Value::Int(-7),
                Value::Str("bash".into()),
                Value::Int(43),
                Value::Uint(1001),
                Value::Uint(1000),
                Value::Int(1),
            ],
        }]
    );
    // The predicate filters: another comm prints nothing.
    vm.comm = *b"rmdir\0\0\0\0\0\0\0\0\0\0\0";
    vm.perf_output.clear();
    run(&compiled, &mut vm, fd, 0, &args_regs(&[TASK]));
    assert!(vm.perf_output.is_empty());
}

#[test]
fn arithmetic_comparisons_and_ternary() {
    let src = r#"kretprobe:vfs_read { $x = retval; printf("%d %d %d %d %d %d %u\n", $x * 3 + 1, $x / 2, $x % 4, $x < 0 ? -1 : 1, -$x, !$x, (1 << 40) | 5 ^ 1); }"#;
    let (compiled, vm) = run_on_returns(src, &[10, -2]);
    let values = printf_args(&compiled, &vm);
    use Value::*;
    assert_eq!(
        values[0],
        [
            Int(31),
            Int(5),
            Int(2),
            Int(1),
            Int(-10),
            Int(0),
            // Literals are int64, as in bpftrace: the value is signed.
            Int((1 << 40) | 4)
        ]
    );
    assert_eq!(values[1][0], Int(-5));
    assert_eq!(values[1][3], Int(-1));
    assert_eq!(values[1][4], Int(2));
}

/// The map named `name`: its fd in `vm_for`'s VM, and its spec.
fn map_named<'a>(compiled: &'a Compiled, name: &str) -> (i32, &'a MapSpec) {
    let (i, spec) = compiled
        .maps
        .iter()
        .enumerate()
        .find(|(_, m)| m.name == name)
        .unwrap();
    (i as i32 + 1, spec)
}

fn map_values(compiled: &Compiled, vm: &Vm, name: &str) -> Vec<(Vec<Value>, MapValue)> {
    let (_, spec) = map_named(compiled, name);
    common::map_entries(compiled, vm, name)
        .into_iter()
        .map(|(k, v)| (spec.decode_key(&k).unwrap(), spec.combine(&[&v]).unwrap()))
        .collect()
}

#[test]
fn every_aggregation() {
    let src = r#"kprobe:vfs_read {
        @c[comm] = count(); @s = sum(arg2); @mn = min(arg2); @mx = max(arg2); @a = avg(arg2);
        @last[pid, comm] = arg2; @n++;
    }"#;
    let compiled = build(src, KernelVersion::new(4, 14, 0));
    assert!(
        compiled
            .maps
            .iter()
            .all(|m| m.per_cpu == (m.name != "@last" && m.name != "@n"))
    );
    let (mut vm, fd) = vm_for(&compiled);
    for n in [5u64, 3, 9] {
        run(&compiled, &mut vm, fd.clone(), 0, &args_regs(&[0, 0, n]));
    }
    use Value::*;
    assert_eq!(
        map_values(&compiled, &vm, "@c"),
        [(vec![Str("rm".into())], MapValue::Count(3))]
    );
    assert_eq!(
        map_values(&compiled, &vm, "@s"),
        [(vec![], MapValue::Sum(17))]
    );
    assert_eq!(
        map_values(&compiled, &vm, "@mn"),
        [(vec![], MapValue::Min(Some(3)))]
    );
    assert_eq!(
        map_values(&compiled, &vm, "@mx"),
        [(vec![], MapValue::Max(Some(9)))]
    );
    assert_eq!(
        map_values(&compiled, &vm, "@a"),
        [(vec![], MapValue::Avg { sum: 17, count: 3 })]
    );
    assert_eq!(
        map_values(&compiled, &vm, "@last"),
        [(vec![Uint(42), Str("rm".into())], MapValue::Value(Uint(9)))]
    );
    assert_eq!(
        map_values(&compiled, &vm, "@n"),
        [(vec![], MapValue::Value(Uint(3)))]
    );
}

#[test]
fn histograms_use_bpftraces_buckets() {
    let src = "kprobe:vfs_read { @h = hist(arg2); @l = lhist(arg2, 0, 100, 10); }";
    let compiled = build(src, KernelVersion::new(5, 4, 0));
    let (mut vm, fd) = vm_for(&compiled);
    let values: [i64; 7] = [-5, 0, 1, 3, 1024, 150, 55];
    for n in values {
        run(
            &compiled,
            &mut vm,
            fd.clone(),
            0,
            &args_regs(&[0, 0, n as u64]),
        );
    }
    let buckets = |name: &str| {
        let (_, spec) = map_named(&compiled, name);
        let mut out: Vec<(u64, u64)> = common::map_entries(&compiled, &vm, name)
            .into_iter()
            .map(|(k, v)| {
                let MapValue::Count(n) = spec.combine(&[&v]).unwrap() else {
                    panic!()
                };
                (spec.bucket(&k).unwrap(), n)
            })
            .collect();
        out.sort();
        out
    };
    // log2: <0 -> 0, 0 -> 1, 1 -> 2, 3 -> 3, 55 -> 7, 150 -> 9, 1024 -> 12.
    assert_eq!(
        buckets("@h"),
        [(0, 1), (1, 1), (2, 1), (3, 1), (7, 1), (9, 1), (12, 1)]
    );
    // linear 0..100 by 10: below -> 0, [0,10) -> 1, [50,60) -> 6, >= 100 -> 11.
    assert_eq!(buckets("@l"), [(0, 1), (1, 3), (6, 1), (11, 2)]);
}

#[test]
fn delete_print_clear_exit_are_records_or_map_ops() {
    let src = "kprobe:g { print(@m); } kprobe:f { @m[arg0] = 1; delete(@m[arg0]); print(@m); clear(@m); exit(); }";
    let compiled = build(src, KernelVersion::new(5, 4, 0));
    let (mut vm, fd) = vm_for(&compiled);
    run(&compiled, &mut vm, fd, 1, &args_regs(&[7]));
    assert!(map_values(&compiled, &vm, "@m").is_empty());
    assert_eq!(
        printed(&compiled, &vm),
        [
            Event::Print { map: "@m".into() },
            Event::Clear { map: "@m".into() },
            Event::Exit
        ]
    );
}

#[test]
fn tracepoint_fields_come_from_the_format() {
    let src = r#"tracepoint:syscalls:sys_enter_openat { printf("%d %s\n", args->dfd, str(args->filename)); }"#;
    let compiled = build(src, KernelVersion::new(6, 1, 0));
    let (mut vm, fd) = vm_for(&compiled);
    const PATH: u64 = 0x7fff_0000_1000;
    vm.map(Space::User, PATH, b"/etc/passwd\0".to_vec())
        .unwrap();
    let mut record = vec![0u8; 40];
    record[16..24].copy_from_slice(&(-100i64).to_le_bytes());
    record[24..32].copy_from_slice(&PATH.to_le_bytes());
    run(&compiled, &mut vm, fd, 0, &record);
    assert_eq!(
        printed(&compiled, &vm),
        [Event::Printf {
            format: "%d %s\n".into(),
            args: vec![Value::Int(-100), Value::Str("/etc/passwd".into())],
        }]
    );
    // A user pointer is read with the user reader where the kernel has one.
    assert!(
        compiled.probes[0]
            .helpers()
            .contains(&kernel_headers::bpf::Helper::ProbeReadUserStr)
    );
}

#[test]
fn begin_and_end_are_evaluated_here() {
    let src = r#"BEGIN { printf("Tracing %s... %d\n", "x", 3); } kprobe:f { @c = count(); } END { print(@c); clear(@c); }"#;
    let compiled = build(src, KernelVersion::new(4, 14, 0));
    assert_eq!(compiled.probes.len(), 1);
    assert_eq!(
        lang::userspace::events(&compiled, &compiled.begin),
        [Event::Printf {
            format: "Tracing %s... %d\n".into(),
            args: vec![Value::Str("x".into()), Value::Int(3)]
        }]
    );
    assert_eq!(
        lang::userspace::events(&compiled, &compiled.end),
        [
            Event::Print { map: "@c".into() },
            Event::Clear { map: "@c".into() }
        ]
    );
    assert!(matches!(
        compiled.events[..],
        [EventFormat::Printf { .. }, ..]
    ));
}

#[test]
fn strings_in_ternaries_and_comparisons() {
    let src = r#"kretprobe:f { $s = retval < 0 ? "fail" : comm; printf("%s %d\n", $s, $s == "rm"); @r[retval < 0 ? "fail" : "ok"] = count(); }"#;
    let (compiled, vm) = run_on_returns(src, &[3, -1]);
    let lines = printf_args(&compiled, &vm);
    use Value::*;
    assert_eq!(
        lines,
        [
            vec![Str("rm".into()), Int(1)],
            vec![Str("fail".into()), Int(0)]
        ]
    );
    let mut keys: Vec<Vec<Value>> = map_values(&compiled, &vm, "@r")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    keys.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(keys, [vec![Str("fail".into())], vec![Str("ok".into())]]);
}

#[test]
fn a_predicate_may_read_a_map_its_body_assigns() {
    let src = "kprobe:f / @budget[cpu] < 2 / { @budget[cpu] = @budget[cpu] + 1; exit(); }";
    let compiled = build(src, KernelVersion::new(4, 14, 0));
    let (mut vm, fd) = vm_for(&compiled);
    for _ in 0..4 {
        run(&compiled, &mut vm, fd.clone(), 0, &args_regs(&[]));
    }
    assert_eq!(printed(&compiled, &vm), [Event::Exit, Event::Exit]);
    assert_eq!(
        map_values(&compiled, &vm, "@budget"),
        [(vec![Value::Uint(1)], MapValue::Value(Value::Uint(2)))]
    );
}

#[test]
fn intervals_that_only_print_run_on_a_timer() {
    let src = "kprobe:f { @c = count(); } interval:s:2 { print(@c); clear(@c); } interval:ms:100 { @t = nsecs; }";
    let compiled = build(src, KernelVersion::new(4, 14, 0));
    let timers: Vec<(u64, Vec<Event>)> = compiled
        .timers
        .iter()
        .map(|t| {
            let events = lang::userspace::events(&compiled, std::slice::from_ref(&t.block));
            (t.nanos, events)
        })
        .collect();
    assert_eq!(
        timers,
        [(
            2_000_000_000,
            vec![
                Event::Print { map: "@c".into() },
                Event::Clear { map: "@c".into() }
            ],
        )]
    );
    let attach: Vec<String> = compiled
        .probes
        .iter()
        .map(|p| p.attach.to_string())
        .collect();
    assert_eq!(attach, ["kprobe:f", "interval:ms:100"]);
}

#[test]
fn old_kernels_get_old_helpers() {
    let src = r#"kprobe:f { printf("%s\n", str(arg0)); }"#;
    let helpers = |r| build(src, r).probes[0].helpers();
    use kernel_headers::bpf::Helper::*;
    assert!(helpers(KernelVersion::new(4, 9, 0)).contains(&ProbeRead));
    assert!(helpers(KernelVersion::new(4, 14, 0)).contains(&ProbeReadStr));
    // A pointer of unknown space on x86 after 5.5: the compat reader.
    assert!(helpers(KernelVersion::new(5, 10, 0)).contains(&ProbeReadStr));
    let fields = fields();
    let mut kernel = kernel(KernelVersion::new(5, 10, 0));
    kernel.compat_readers = false;
    let target = Target {
        fields: &fields,
        tracepoints: &Openat,
        kernel,
    };
    let compiled = compile(src, &target).unwrap();
    assert!(compiled.probes[0].helpers().contains(&ProbeReadKernelStr));
    for r in [
        KernelVersion::new(4, 9, 0),
        KernelVersion::new(4, 14, 0),
        KernelVersion::new(5, 10, 0),
    ] {
        assert!(helpers(r).iter().all(|h| h.since() <= r), "{r}");
    }
    // No jump needs 4.14 (JLT and friends): comparisons use their negations.
    let src = "kprobe:f { @a = (int64)arg0 < 5; @b = arg0 <= arg1; @c = hist(arg0); @d = lhist(arg0, 0, 10, 1); }";
    let compiled = build(src, KernelVersion::new(4, 9, 0));
    use probes::asm::{Insn, JmpOp};
    assert!(
        compiled.probes[0]
            .insns
            .as_slice()
            .iter()
            .all(|i| !matches!(
                i,
                Insn::Jump {
                    op: JmpOp::Lt | JmpOp::Le | JmpOp::Slt | JmpOp::Sle,
                    ..
                }
            ))
    );
    let _ = (FIELDS, pt_regs::SIZE, NoTracepoints);
}

#[test]
fn if_else_if_else_chooses_one_branch() {
    // With and without parentheses, `else if` chains, a block-local
    // variable, and a variable assigned in a branch read after it.
    let src = r#"kretprobe:f {
        $kind = "none";
        if (retval < 0) { $kind = "error"; } else if retval == 0 { $kind = "zero"; }
        else { $big = retval > 100; if $big { $kind = "big"; } else { $kind = "small"; } }
        printf("%s\n", $kind);
    }"#;
    let (compiled, vm) = run_on_returns(src, &[-3, 0, 7, 1000]);
    let kinds: Vec<Value> = printf_args(&compiled, &vm)
        .into_iter()
        .map(|mut a| a.remove(0))
        .collect();
    use Value::Str;
    assert_eq!(
        kinds,
        [
            Str("error".into()),
            Str("zero".into()),
            Str("small".into()),
            Str("big".into())
        ]
    );
}

#[test]
fn return_ends_the_probe_and_unroll_repeats() {
    let src = r#"kretprobe:f {
        if (retval == 1) { return; }
        $i = 0; $sum = 0;
        unroll(5) { $i++; $sum += $i * retval; }
        printf("%d %d\n", $i, $sum);
    }"#;
    let (compiled, vm) = run_on_returns(src, &[1, 2]);
    use Value::Int;
    assert_eq!(printf_args(&compiled, &vm), [vec![Int(5), Int(30)]]);
}

#[test]
fn while_loops_with_break_and_continue_where_the_kernel_has_them() {
    let src = r#"kretprobe:f {
        $i = 0; $odd = 0;
        while ($i < 100) {
            $i++;
            if ($i > retval) { break; }
            if ($i % 2 == 0) { continue; }
            $odd++;
        }
        printf("%d %d\n", $i, $odd);
    }"#;
    let compiled = build(src, KernelVersion::new(5, 4, 0));
    let (mut vm, fd) = vm_for(&compiled);
    for ret in [7u64, 1000] {
        let regs = fake_pt_regs(&[(NATIVE.ret.0, ret)]).unwrap();
        run(&compiled, &mut vm, fd.clone(), 0, &regs);
    }
    use Value::Int;
    assert_eq!(
        printf_args(&compiled, &vm),
        [vec![Int(8), Int(4)], vec![Int(100), Int(50)]]
    );
    // Before 5.3 the verifier takes no back edge: refused, with the place.
    let fields = fields();
    let target = Target {
        fields: &fields,
        tracepoints: &Openat,
        kernel: kernel(KernelVersion::new(5, 2, 0)),
    };
    let error = compile(src, &target).unwrap_err().render(src);
    assert!(
        error.starts_with("3:9: `while` needs a kernel whose verifier takes loops (5.3+)"),
        "{error}"
    );
}

#[test]
fn let_declares_in_its_block_and_division_and_shifts_are_unsigned_as_in_bpftrace() {
    // `let $x;` takes its type from the first assignment, in a branch.
    let src = r#"kretprobe:f {
        let $s;
        if (retval < 0) { $s = "neg"; } else { $s = "pos"; }
        let $half = retval / 2;
        printf("%s %d %d\n", $s, $half, retval >> 1);
    }"#;
    let (compiled, vm) = run_on_returns(src, &[-9, 9]);
    use Value::*;
    assert_eq!(
        printf_args(&compiled, &vm),
        [
            vec![Str("neg".into()), Int(i64::MAX - 4), Int(i64::MAX - 4)],
            vec![Str("pos".into()), Int(4), Int(4)]
        ]
    );
}

#[test]
fn bswap_swaps_the_values_width_and_delete_takes_the_key_apart() {
    let src = r#"kprobe:f {
        $t = (struct task_struct *)arg0;
        $port = (uint16)arg1;
        @by[comm]++; @gone[arg1] = 1; delete(@gone, arg1);
        printf("%u %u %u\n", bswap($port), bswap((uint32)arg1), bswap($t->pid));
    }"#;
    let compiled = build(src, KernelVersion::new(4, 14, 0));
    let (mut vm, fd) = vm_for(&compiled);
    const TASK: u64 = 0xffff_8880_0001_0000;
    let mut task = vec![0u8; 0x60];
    task[0x48..0x4c].copy_from_slice(&0x0102_0304u32.to_le_bytes());
    vm.map(Space::Kernel, TASK, task).unwrap();
    run(&compiled, &mut vm, fd, 0, &args_regs(&[TASK, 0x1234]));
    use Value::*;
    assert_eq!(
        printf_args(&compiled, &vm),
        [vec![Uint(0x3412), Uint(0x3412_0000), Uint(0x0403_0201)]]
    );
    assert!(map_values(&compiled, &vm, "@gone").is_empty());
    assert_eq!(
        map_values(&compiled, &vm, "@by"),
        [(vec![Str("rm".into())], MapValue::Value(Uint(1)))]
    );
}

#[test]
fn ntop_formats_ipv4_and_ipv6_in_user_space() {
    let src = r#"kprobe:f {
        $sk = (struct sock *)arg0;
        let $addr;
        if ($sk->family == 10) { $addr = ntop($sk->v6_daddr); } else { $addr = ntop($sk->daddr); }
        printf("%s|%-10s|%s|%s\n", $addr, ntop(0), ntop(2, 0x0100007f), ntop(10, $sk->v6_daddr));
        @by[ntop($sk->daddr)] = count();
    }"#;
    let compiled = build(src, KernelVersion::new(4, 14, 0));
    let (mut vm, fd) = vm_for(&compiled);
    const SOCK: u64 = 0xffff_8880_0003_0000;
    const SOCK6: u64 = 0xffff_8880_0004_0000;
    let mut sock = vec![0u8; 32];
    sock[0..4].copy_from_slice(&[10, 0, 0, 7]);
    let v6: std::net::Ipv6Addr = "fe80::1".parse().unwrap();
    sock[8..24].copy_from_slice(&v6.octets());
    sock[24..26].copy_from_slice(&2u16.to_le_bytes());
    vm.map(Space::Kernel, SOCK, sock.clone()).unwrap();
    run(&compiled, &mut vm, fd.clone(), 0, &args_regs(&[SOCK]));
    sock[24..26].copy_from_slice(&10u16.to_le_bytes());
    vm.map(Space::Kernel, SOCK6, sock).unwrap();
    run(&compiled, &mut vm, fd, 0, &args_regs(&[SOCK6]));
    // The printers format the address from the record's bytes.
    let text: Vec<String> = vm
        .perf_output
        .iter()
        .map(
            |r| match lang::report::record(&compiled, lang::report::Format::Text, r).unwrap() {
                lang::report::Step::Write(b) => String::from_utf8(b).unwrap(),
                other => panic!("{other:?}"),
            },
        )
        .collect();
    assert_eq!(
        text,
        [
            "10.0.0.7|0.0.0.0   |127.0.0.1|fe80::1\n",
            "fe80::1|0.0.0.0   |127.0.0.1|fe80::1\n"
        ]
    );
    assert_eq!(
        map_values(&compiled, &vm, "@by"),
        [(vec![Value::Str("10.0.0.7".into())], MapValue::Count(2))]
    );
}

#[test]
fn string_comparisons_strncmp_and_strcontains() {
    let src = r#"kprobe:f {
        $t = (struct task_struct *)arg0;
        $name = $t->comm;
        printf("%d %d %d %d %d %d %d %d\n",
            $name == comm, $name != comm, strncmp($name, "bash", 2), strncmp($name, "rm", 8),
            strcontains($name, "as"), strcontains($name, "sh!"), strcontains(comm, $name), strcontains($name, ""));
    }"#;
    let compiled = build(src, KernelVersion::new(4, 14, 0));
    let (mut vm, fd) = vm_for(&compiled);
    const TASK: u64 = 0xffff_8880_0001_0000;
    let mut task = vec![0u8; 0x60];
    task[0x50..0x55].copy_from_slice(b"bash\0");
    vm.map(Space::Kernel, TASK, task).unwrap();
    run(&compiled, &mut vm, fd, 0, &args_regs(&[TASK]));
    use Value::*;
    assert_eq!(
        printf_args(&compiled, &vm),
        [[0, 1, 0, 1, 1, 0, 0, 1].map(Int).to_vec()]
    );
    // Too many pairs for a 4096-instruction kernel: refused with the place.
    let src = r#"kprobe:f { $a = str(arg0, 200); $b = str(arg1, 200); printf("%d\n", strcontains($a, $b)); }"#;
    let fields = fields();
    let target = Target {
        fields: &fields,
        tracepoints: &Openat,
        kernel: kernel(KernelVersion::new(4, 14, 0)),
    };
    let error = compile(src, &target).unwrap_err().render(src);
    assert!(
        error.starts_with("1:69: strcontains of a 200-byte string"),
        "{error}"
    );
}

#[test]
fn pointers_dereference_index_and_move_by_elements() {
    let src = r#"kprobe:f {
        $p = (int32 *)arg0;
        $t = (struct task_struct *)arg1;
        $pp = (uint64 **)arg2;
        printf("%d %d %d %d %d %c %d %d %d %d\n",
            *$p, $p[1], *($p + 2), $p[-1 + 1], (*$t).pid, $t->comm[1], *&$t->pid,
            sizeof(int16), sizeof($t->comm), **$pp);
    }"#;
    let compiled = build(src, KernelVersion::new(4, 14, 0));
    let (mut vm, fd) = vm_for(&compiled);
    const INTS: u64 = 0xffff_8880_0005_0000;
    const TASK: u64 = 0xffff_8880_0001_0000;
    const PP: u64 = 0xffff_8880_0006_0000;
    let ints: Vec<u8> = [-1i32, 20, 300]
        .iter()
        .flat_map(|n| n.to_le_bytes())
        .collect();
    vm.map(Space::Kernel, INTS, ints).unwrap();
    let mut task = vec![0u8; 0x60];
    task[0x48..0x4c].copy_from_slice(&77i32.to_le_bytes());
    task[0x50..0x55].copy_from_slice(b"bash\0");
    vm.map(Space::Kernel, TASK, task).unwrap();
    let mut pp = vec![0u8; 16];
    pp[..8].copy_from_slice(&(PP + 8).to_le_bytes());
    pp[8..].copy_from_slice(&99u64.to_le_bytes());
    vm.map(Space::Kernel, PP, pp).unwrap();
    run(&compiled, &mut vm, fd, 0, &args_regs(&[INTS, TASK, PP]));
    use Value::*;
    assert_eq!(
        printf_args(&compiled, &vm),
        [vec![
            Int(-1),
            Int(20),
            Int(300),
            Int(-1),
            Int(77),
            Uint(u64::from(b'a')),
            Int(77),
            Int(2),
            Int(16),
            Int(99)
        ]]
    );
}

#[test]
fn tuples_are_map_keys_like_key_lists() {
    let src = r#"kprobe:f {
        $key = (arg0, comm);
        @a[$key] = 1; @b[arg0, comm] = 2; @c[(arg1, "x")]++;
        if (@a[arg0, comm] == 1) { printf("%d %s %d\n", $key.0, $key.1, (7, 8).1); }
    }"#;
    let compiled = build(src, KernelVersion::new(4, 14, 0));
    let (mut vm, fd) = vm_for(&compiled);
    run(&compiled, &mut vm, fd, 0, &args_regs(&[5, 6]));
    use Value::*;
    assert_eq!(
        printf_args(&compiled, &vm),
        [vec![Int(5), Str("rm".into()), Int(8)]]
    );
    let key = vec![Uint(5), Str("rm".into())];
    assert_eq!(
        map_values(&compiled, &vm, "@a"),
        [(key.clone(), MapValue::Value(Int(1)))]
    );
    assert_eq!(
        map_values(&compiled, &vm, "@b"),
        [(key, MapValue::Value(Int(2)))]
    );
    assert_eq!(
        map_values(&compiled, &vm, "@c"),
        [(vec![Uint(6), Str("x".into())], MapValue::Value(Uint(1)))]
    );
}

#[test]
fn a_condition_may_read_a_map_its_branch_assigns() {
    // The map is first assigned inside the branch its condition reads.
    let src = r#"kprobe:f { if (@seen[arg0] == 0) { @seen[arg0] = 1; printf("first %-4.2s|\n", comm); } }"#;
    let compiled = build(src, KernelVersion::new(4, 14, 0));
    let (mut vm, fd) = vm_for(&compiled);
    for arg in [3, 3, 4] {
        run(&compiled, &mut vm, fd.clone(), 0, &args_regs(&[arg]));
    }
    assert_eq!(printed(&compiled, &vm).len(), 2);
    let text = lang::report::record(&compiled, lang::report::Format::Text, &vm.perf_output[0]);
    assert_eq!(
        text.unwrap(),
        lang::report::Step::Write(b"first rm  |\n".to_vec())
    );
}

#[test]
fn a_while_with_a_constant_bound_is_unrolled_before_5_3() {
    let src = r#"kretprobe:f {
        $i = 0; $sum = 0;
        while ($i < 6) { $sum += $i; $i += 2; if ($sum > retval) { break; } }
        printf("%d %d\n", $i, $sum);
    }"#;
    let compiled = build(src, KernelVersion::new(4, 14, 0));
    use probes::asm::Insn;
    let insns = compiled.probes[0].insns.as_slice();
    assert!(
        insns
            .iter()
            .all(|i| i.jump_offset().is_none_or(|off| off >= 0)),
        "{}",
        compiled.probes[0].insns
    );
    assert!(insns.iter().any(|i| matches!(i, Insn::Exit)));
    let (mut vm, fd) = vm_for(&compiled);
    for ret in [100u64, 1] {
        let regs = fake_pt_regs(&[(NATIVE.ret.0, ret)]).unwrap();
        run(&compiled, &mut vm, fd.clone(), 0, &regs);
    }
    use Value::Int;
    assert_eq!(
        printf_args(&compiled, &vm),
        [vec![Int(6), Int(6)], vec![Int(4), Int(2)]]
    );
    // A bound the checker cannot prove is still refused there.
    let fields = fields();
    let target = Target {
        fields: &fields,
        tracepoints: &Openat,
        kernel: kernel(KernelVersion::new(4, 14, 0)),
    };
    for src in [
        "kretprobe:f { $i = 0; while ($i < retval) { $i++; } }",
        "kretprobe:f { $i = 0; while ($i < 500) { $i++; } }",
        "kretprobe:f { $i = retval; while ($i < 5) { $i++; } }",
        "kretprobe:f { $i = 0; while ($i < 5) { if (retval) { $i++; } } }",
    ] {
        let error = compile(src, &target).unwrap_err().render(src);
        assert!(
            error.contains("`while` needs a kernel whose verifier takes loops"),
            "{src}: {error}"
        );
    }
}

#[test]
fn a_uprobes_integers_point_into_the_process() {
    let src = r#"uprobe:/bin/sh:main { printf("%s\n", str(arg0)); } uretprobe:/bin/sh:main { printf("%s\n", str(retval)); }"#;
    use kernel_headers::bpf::Helper::*;
    let compiled = build(src, KernelVersion::new(6, 1, 0));
    for probe in &compiled.probes {
        assert!(
            probe.helpers().contains(&ProbeReadUserStr),
            "{}",
            probe.attach
        );
    }
    // One reader for both spaces before 5.5.
    let old = build(src, KernelVersion::new(4, 14, 0));
    assert!(old.probes[0].helpers().contains(&ProbeReadStr));
    let (mut vm, fd) = vm_for(&compiled);
    const NAME: u64 = 0x7fff_0000_2000;
    vm.map(Space::User, NAME, b"localhost\0".to_vec()).unwrap();
    run(&compiled, &mut vm, fd, 0, &args_regs(&[NAME]));
    assert_eq!(
        printed(&compiled, &vm),
        [Event::Printf {
            format: "%s\n".into(),
            args: vec![Value::Str("localhost".into())],
        }]
    );
}

#[test]
fn sarg_reads_the_stack_above_the_entrys_stack_pointer() {
    let src = r#"uprobe:/bin/sh:main { printf("%d\n", sarg1); }"#;
    let compiled = build(src, KernelVersion::new(6, 1, 0));
    let (mut vm, fd) = vm_for(&compiled);
    const STACK: u64 = 0x7fff_0000_3000;
    let word = usize::from(NATIVE.pointer_bytes);
    let mut stack = vec![0u8; 4 * word];
    // Past the slots before the first stack argument, the second one.
    let at = (usize::from(NATIVE.stack_args_from) + 1) * word;
    stack[at] = 42;
    vm.map(Space::User, STACK, stack).unwrap();
    let regs = fake_pt_regs(&[("sp", STACK)]).unwrap();
    run(&compiled, &mut vm, fd, 0, &regs);
    assert_eq!(printf_args(&compiled, &vm), [vec![Value::Int(42)]]);
}

/// `print()` of values, tuples (in place and in a variable, nested) and
/// map elements prints as bpftrace 0.23's `print_non_map`.
#[test]
fn print_of_values_and_tuples() {
    let src = r#"kprobe:f { $t = (arg0, "b"); @m[1] = 7;
        print(1); print(-2); print((arg0, "b", comm, (int32)-1));
        print($t); print(@m[1]); print((uint32)-1); print(comm) }"#;
    let compiled = build(src, KernelVersion::new(5, 4, 0));
    let (mut vm, fd) = vm_for(&compiled);
    run(&compiled, &mut vm, fd, 0, &args_regs(&[42]));
    let text: Vec<String> = printed(&compiled, &vm)
        .iter()
        .map(
            |e| match lang::report::event(lang::report::Format::Text, e) {
                Ok(lang::report::Step::Write(bytes)) => String::from_utf8(bytes).unwrap(),
                other => panic!("{other:?}"),
            },
        )
        .collect();
    assert_eq!(
        text.concat(),
        "1\n-2\n(42, b, rm, -1)\n(42, b)\n7\n4294967295\nrm\n"
    );
    let json = printed(&compiled, &vm)
        .iter()
        .map(
            |e| match lang::report::event(lang::report::Format::Json, e) {
                Ok(lang::report::Step::Write(bytes)) => String::from_utf8(bytes).unwrap(),
                other => panic!("{other:?}"),
            },
        )
        .nth(2)
        .unwrap();
    assert_eq!(
        json,
        "{\"type\": \"value\", \"data\": [42,\"b\",\"rm\",-1]}\n"
    );
}

/// `buf()` read for printf's `%r`, `%rx` and `%rh` prints as bpftrace
/// 0.23's `hex_format_buffer`: its length clamped, NULs kept, nothing read
/// for a length of 0.
#[test]
fn buf_prints_as_r_rx_rh() {
    const DATA: u64 = 0xffff_8880_0000_1000;
    let src = r#"kprobe:f { printf("[%r] [%rx] [%rh]\n", buf(arg0, arg1), buf(arg0, 3), buf(arg0, 2)); }"#;
    let compiled = build(src, KernelVersion::new(4, 9, 0));
    let (mut vm, fd) = vm_for(&compiled);
    vm.map(Space::Kernel, DATA, b"hi\0\x7f\n\"z".to_vec())
        .unwrap();
    run(&compiled, &mut vm, fd.clone(), 0, &args_regs(&[DATA, 6]));
    run(&compiled, &mut vm, fd.clone(), 0, &args_regs(&[DATA, 0]));
    run(&compiled, &mut vm, fd, 0, &args_regs(&[DATA, 1 << 40]));
    let text: Vec<u8> = vm
        .perf_output
        .iter()
        .flat_map(
            |r| match lang::report::record(&compiled, lang::report::Format::Text, r) {
                Ok(lang::report::Step::Write(bytes)) => bytes,
                other => panic!("{other:?}"),
            },
        )
        .collect();
    // A length past the limit reads the limit; the region is shorter, so
    // the read fails and leaves zeros, as bpftrace's would.
    let zeros = "\\x00".repeat(lang::check::BUF_MAX as usize);
    assert_eq!(
        String::from_utf8(text).unwrap(),
        format!(
            "[hi\\x00\\x7f\\x0a\"] [\\x68\\x69\\x00] [68 69]\n\
             [] [\\x68\\x69\\x00] [68 69]\n\
             [{zeros}] [\\x68\\x69\\x00] [68 69]\n"
        )
    );
}

/// `join(args.argv)` prints the strings before the first empty one, with
/// a space or the delimiter given, as bpftrace 0.23 does.
#[test]
fn join_prints_the_array() {
    const ARGV: u64 = 0x7ffd_0000_1000;
    const STRS: u64 = 0x7ffd_0000_2000;
    let src = r#"kprobe:f { join((uint64 *)arg0); join((uint64 *)arg0, ","); }"#;
    let compiled = build(src, KernelVersion::new(4, 9, 0));
    let (mut vm, fd) = vm_for(&compiled);
    let mut argv = Vec::new();
    for p in [STRS, STRS + 3, STRS + 6, 0] {
        argv.extend_from_slice(&p.to_ne_bytes());
    }
    argv.resize(8 * 16, 0);
    vm.map(Space::Kernel, ARGV, argv).unwrap();
    // 4.9 reads each string at full length (no probe_read_str).
    let mut strs = b"ls\0-l\0/a\0".to_vec();
    strs.resize(512, 0);
    vm.map(Space::Kernel, STRS, strs).unwrap();
    run(&compiled, &mut vm, fd, 0, &args_regs(&[ARGV]));
    for (format, want) in [
        (lang::report::Format::Text, "ls -l /a\nls,-l,/a\n"),
        (
            lang::report::Format::Json,
            "{\"type\": \"join\", \"data\": \"ls -l /a\"}\n{\"type\": \"join\", \"data\": \"ls,-l,/a\"}\n",
        ),
    ] {
        let clock = lang::format::time::FixedClock::default();
        let mut records = lang::report::Records::new(&compiled, format, &clock);
        let mut out = Vec::new();
        for r in &vm.perf_output {
            assert_eq!(records.record(r, &mut out).unwrap(), None);
        }
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }
}

/// A map printed as print() prints it, from the interpreter's table.
fn print_map(compiled: &Compiled, vm: &Vm, name: &str, format: lang::report::Format) -> Vec<u8> {
    let (_, spec) = map_named(compiled, name);
    let entries: Vec<_> = common::map_entries(compiled, vm, name)
        .into_iter()
        .map(|(k, v)| (k, vec![v]))
        .collect();
    lang::report::print_map(spec, &entries, format).unwrap()
}

/// The text the loader prints for every record the program sent.
fn text_output(compiled: &Compiled, vm: &Vm) -> String {
    let mut text = Vec::new();
    for r in &vm.perf_output {
        match lang::report::record(compiled, lang::report::Format::Text, r).unwrap() {
            lang::report::Step::Write(bytes) => text.extend(bytes),
            lang::report::Step::PrintMap(name) => {
                text.extend(print_map(compiled, vm, &name, lang::report::Format::Text))
            }
            other => panic!("{other:?}"),
        }
    }
    String::from_utf8(text).unwrap()
}

/// `buf()` outside printf: a map's value and key, a variable, print():
/// each written as `%r` writes it (bpftrace 0.23's `resolve_buf`).
#[test]
fn buf_is_a_value_maps_variables_and_print_hold() {
    const DATA: u64 = 0xffff_8880_0000_1000;
    let src = r#"kprobe:f { @b = buf(arg0, 4); @k[buf(arg0, 2)] = 1; $v = buf(arg0, 3); printf("[%r]\n", $v); print(buf(arg0, 5)); print(@b); }"#;
    let compiled = build(src, KernelVersion::new(4, 9, 0));
    let (mut vm, fd) = vm_for(&compiled);
    vm.map(Space::Kernel, DATA, b"hi\0\x7f\n".to_vec()).unwrap();
    run(&compiled, &mut vm, fd, 0, &args_regs(&[DATA]));
    assert_eq!(
        text_output(&compiled, &vm),
        "[hi\\x00]\nhi\\x00\\x7f\\x0a\n@b: hi\\x00\\x7f\n"
    );
    let json = print_map(&compiled, &vm, "@k", lang::report::Format::Json);
    assert_eq!(
        String::from_utf8(json).unwrap(),
        "{\"type\": \"map\", \"data\": {\"@k\": {\"hi\": 1}}}\n"
    );
}

/// Tuples inside tuples: built, read by index and printed as bpftrace
/// 0.23 prints them (`(1, (2, rm))`); as a map key, refused by name.
#[test]
fn nested_tuples_print_as_bpftrace_prints_them() {
    let src =
        r#"kprobe:f { $t = (1, (-2, "ab"), 3); print($t); printf("%d %s\n", $t.1.0, $t.1.1); }"#;
    let compiled = build(src, KernelVersion::new(4, 9, 0));
    let (mut vm, fd) = vm_for(&compiled);
    run(&compiled, &mut vm, fd, 0, &args_regs(&[]));
    assert_eq!(text_output(&compiled, &vm), "(1, (-2, ab), 3)\n-2 ab\n");
    for key in ["(7, (\"x\", 8))", "1, (2, 3)"] {
        let src = format!("kprobe:f {{ @k[{key}] = 1; }}");
        let fields = fields();
        let target = Target {
            fields: &fields,
            tracepoints: &Openat,
            kernel: kernel(KernelVersion::new(5, 4, 0)),
        };
        let err = compile(&src, &target).unwrap_err();
        assert!(
            err.message
                .contains("a map key cannot hold a tuple within a tuple yet"),
            "{key}: {}",
            err.message
        );
    }
}

/// A tuple stored in a map and read back, on 4.14 (bpf_probe_read, 4,096
/// instructions, 512 bytes of stack) as on 6.1: the value is copied from
/// the map lookup, as a string value is.
#[test]
fn tuple_map_values_read_back_on_old_kernels() {
    let src = r#"kprobe:f { @m[arg0] = (arg1, comm, ((int32)-3, "xy")); $t = @m[arg0];
        printf("%d %s %d %s\n", $t.0, @m[arg0].1, $t.2.0, @m[arg0].2.1); }"#;
    for release in [KernelVersion::new(4, 14, 0), KernelVersion::new(6, 1, 0)] {
        let compiled = build(src, release);
        let (mut vm, fd) = vm_for(&compiled);
        run(&compiled, &mut vm, fd, 0, &args_regs(&[5, 9]));
        assert_eq!(
            printf_args(&compiled, &vm),
            [vec![
                Value::Int(9),
                Value::Str(b"rm".to_vec()),
                Value::Int(-3),
                Value::Str(b"xy".to_vec()),
            ]]
        );
    }
}
