//! Compiled programs run in probes' interpreter against fake kernel memory;
//! their records and maps decoded as the loader would.

use kernel_headers::KernelVersion;
use kernel_headers::pt_regs::{self, NATIVE};
use lang::fields::FieldInfo;
use lang::kernel::Kernel;
use lang::output::{Event, EventFormat, MapSpec, MapValue, Value, decode_event};
use lang::tracepoint::{NoTracepoints, TracepointFormat, TracepointSource, parse_format};
use lang::{Compiled, Target, compile};
use probes::interp::{Space, Vm, fake_pt_regs};

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

const EVENTS_FD: i32 = 100;

/// A VM with every map of the program served, and its fds by name.
fn vm_for(compiled: &Compiled) -> (Vm, impl Fn(&str) -> Option<i32> + Clone + use<>) {
    let mut vm = Vm::new();
    vm.perf_map_fd = EVENTS_FD;
    vm.pid_tgid = (42 << 32) | 43;
    vm.uid_gid = (1000 << 32) | 1001;
    vm.comm = *b"rm\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
    vm.ktime_ns = 5_000;
    vm.cpu = 1;
    let names: Vec<String> = compiled.maps.iter().map(|m| m.name.clone()).collect();
    for (i, m) in compiled.maps.iter().enumerate() {
        vm.add_hash_map(i as i32 + 1, m.key_size as usize, m.value_size as usize);
    }
    let fd = move |name: &str| {
        if name == lang::output::EVENTS_MAP {
            return Some(EVENTS_FD);
        }
        names.iter().position(|n| n == name).map(|i| i as i32 + 1)
    };
    (vm, fd)
}

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

fn printed(compiled: &Compiled, vm: &Vm) -> Vec<Event> {
    vm.perf_output
        .iter()
        .map(|r| decode_event(&compiled.events, r).unwrap())
        .collect()
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
            Uint((1 << 40) | 4)
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
    let (fd, spec) = map_named(compiled, name);
    vm.map_entries(fd)
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
        let (fd, spec) = map_named(&compiled, name);
        let mut out: Vec<(u64, u64)> = vm
            .map_entries(fd)
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
