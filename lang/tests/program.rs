//! Program-level syntax: preprocessor lines, `config` blocks, the script's
//! own C types and enums, positional parameters; checked by compiling and
//! by running the programs in probes' interpreter.

use kernel_headers::KernelVersion;
use kernel_headers::pt_regs::{self, NATIVE};
use lang::config::MissingProbes;
use lang::ctypes::{Layered, ScriptTypes};
use lang::fields::{FieldInfo, FieldSource, Lookup};
use lang::kernel::Kernel;
use lang::lexer::Substitutions;
use lang::output::{Event, Value, decode_event};
use lang::tracepoint::NoTracepoints;
use lang::{Compiled, Options, Target, compile_with, fields_used};
use probes::interp::{Space, Vm, fake_pt_regs};

/// A profile that knows one struct, as a no-BTF kernel's would.
fn profile() -> Vec<(&'static str, FieldInfo)> {
    vec![(
        "task_struct.pid",
        FieldInfo {
            offset: 0x48,
            size: 4,
            c_type: Some("pid_t".into()),
        },
    )]
}

/// A BTF-like source: fields, a struct size and enumerators.
struct FakeBtf;
impl FieldSource for FakeBtf {
    fn lookup(&self, strukt: &str, member: &str) -> Lookup {
        match (strukt, member) {
            ("qstr", "name") => Lookup::Found(FieldInfo {
                offset: 8,
                size: 8,
                c_type: Some("const unsigned char *".into()),
            }),
            _ => Lookup::Unknown,
        }
    }
    fn struct_layout(&self, strukt: &str) -> Option<(u32, u32)> {
        match strukt {
            "path" | "qstr" => Some((16, 8)),
            _ => None,
        }
    }
    fn enum_value(&self, name: &str) -> Option<i64> {
        (name == "SKB_DROP_REASON_NOT_SPECIFIED").then_some(2)
    }
    fn has_kernel_btf(&self) -> bool {
        true
    }
}

fn build_on(src: &str, fields: &dyn FieldSource, params: &[&str]) -> Result<Compiled, String> {
    let target = Target {
        fields,
        tracepoints: &NoTracepoints,
        kernel: Kernel::for_release(KernelVersion::new(5, 4, 0), NATIVE),
    };
    let options = Options {
        params: params.iter().map(|s| s.to_string()).collect(),
        ..Options::default()
    };
    compile_with(src, &target, options).map_err(|e| e.render(src))
}

fn build(src: &str, params: &[&str]) -> Compiled {
    build_on(src, &profile(), params).unwrap_or_else(|e| panic!("{e}"))
}

fn error(src: &str, params: &[&str]) -> String {
    match build_on(src, &profile(), params) {
        Ok(_) => panic!("compiled: {src}"),
        Err(e) => e,
    }
}

/// Run probe 0 with `args` in the argument registers and `memory` mapped;
/// the printf arguments it sent.
fn run(compiled: &Compiled, args: &[u64], memory: &[(u64, Vec<u8>)]) -> Vec<Vec<Value>> {
    let mut vm = Vm::new();
    vm.perf_map_fd = 100;
    for (addr, bytes) in memory {
        vm.map(Space::Kernel, *addr, bytes.clone()).unwrap();
    }
    let names: Vec<String> = compiled.maps.iter().map(|m| m.name.clone()).collect();
    let fd = |name: &str| match name {
        lang::output::EVENTS_MAP => Some(100),
        _ => names.iter().position(|n| n == name).map(|i| i as i32 + 1),
    };
    let regs: Vec<(&str, u64)> = args
        .iter()
        .zip(NATIVE.args)
        .map(|(&v, &(name, _))| (name, v))
        .collect();
    let raw = compiled.probes[0].encode(fd).unwrap();
    assert_eq!(
        vm.run(&raw, &fake_pt_regs(&regs).unwrap()),
        Ok(0),
        "{}",
        compiled.probes[0].insns
    );
    vm.perf_output
        .iter()
        .map(|r| match decode_event(&compiled.events, r).unwrap() {
            Event::Printf { args, .. } => args,
            other => panic!("{other:?}"),
        })
        .collect()
}

/// BEGIN's printf arguments, as the loader runs it in user space.
fn begin_args(compiled: &Compiled) -> Vec<Vec<Value>> {
    lang::userspace::events(compiled, &compiled.begin)
        .into_iter()
        .map(|e| match e {
            Event::Printf { args, .. } => args,
            other => panic!("{other:?}"),
        })
        .collect()
}

/// dcsnoop's shape: headers, a conditional on BTF, a struct of the script
/// embedding kernel structs, read through a cast.
const DCSNOOP: &str = r#"#!/usr/bin/env bpftrace
/*
 * A block comment with #include <not/a/directive.h> in it.
 */
#ifndef BPFTRACE_HAVE_BTF
#include <linux/fs.h>
#include <linux/sched.h>

// kernel structs the profile cannot size, defined here
struct path {
        void *mnt;
        void *dentry;
};
struct qstr {
        unsigned int hash;
        unsigned int len;
        const unsigned char *name;
};
#endif

struct nameidata {
        struct path     path;
        struct qstr     last;
        // [...]
};

kprobe:lookup_fast
{
	$nd = (struct nameidata *)arg0;
	printf("%s\n", str($nd->last.name));
}
"#;

const ND: u64 = 0xffff_8880_0000_1000;
const NAME: u64 = 0xffff_8880_0000_2000;

fn nameidata_memory(name_at: usize) -> Vec<(u64, Vec<u8>)> {
    let mut nd = vec![0u8; 64];
    nd[name_at..name_at + 8].copy_from_slice(&NAME.to_le_bytes());
    vec![(ND, nd), (NAME, b"passwd\0".to_vec())]
}

#[test]
fn a_struct_the_script_defines_is_laid_out_and_read() {
    // No BTF: the #ifndef branch defines path and qstr; `last.name` is at
    // 16 (path) + 8 (hash, len).
    let compiled = build(DCSNOOP, &[]);
    assert_eq!(
        run(&compiled, &[ND], &nameidata_memory(24)),
        [vec![Value::Str("passwd".into())]]
    );
    // With BTF the branch is left out: path's size and qstr.name come from
    // BTF, nameidata still from the script.
    let compiled = build_on(DCSNOOP, &FakeBtf, &[]).unwrap();
    assert_eq!(
        run(&compiled, &[ND], &nameidata_memory(24)),
        [vec![Value::Str("passwd".into())]]
    );
    // The script's members are not the profile's to supply; qstr's are when
    // the script only names it.
    assert_eq!(
        fields_used(
            DCSNOOP,
            Kernel::for_release(KernelVersion::new(5, 4, 0), NATIVE)
        )
        .unwrap(),
        Vec::<String>::new()
    );
    let naming_qstr = DCSNOOP.replace("#ifndef", "#ifdef");
    assert_eq!(
        fields_used(
            &naming_qstr,
            Kernel::for_release(KernelVersion::new(5, 4, 0), NATIVE)
        )
        .unwrap(),
        ["qstr.name"]
    );
}

#[test]
fn an_embedded_struct_nobody_sizes_is_an_error_naming_it() {
    let src = "struct nameidata { struct path path; struct qstr last; };\n\
               kprobe:f { $nd = (struct nameidata *)arg0; printf(\"%d\\n\", $nd->last.len); }";
    let message = error(src, &[]);
    assert!(
        message.contains("the size of `struct path` is unknown")
            && message.contains("define it in the script"),
        "{message}"
    );
    // A member before the unknown one still has its place.
    let src = "struct s { int a; struct unknown u; };\n\
               kprobe:f { $s = (struct s *)arg0; printf(\"%d\\n\", $s->a); }";
    build(src, &[]);
}

fn layout(defs: &str, arch: &str, strukt: &str, member: &str) -> Option<(u32, u32)> {
    let abi = pt_regs::abi(arch).unwrap();
    let types = ScriptTypes::parse(
        &[(defs.to_string(), lang::Span::new(0, defs.len()))],
        Substitutions::default(),
        abi.pointer_bytes,
    )
    .unwrap();
    let none: Vec<(&str, FieldInfo)> = Vec::new();
    let fields = Layered::new(&none, &types, abi.pointer_bytes);
    fields.field(strukt, member).map(|f| (f.offset, f.size))
}

#[test]
fn layout_follows_each_targets_c_abi() {
    let defs = "struct s { char c; long l; long long ll; void *p; short sh[3]; \
                union { int i; char b[5]; }; struct { u8 x; u64 y; } in; unsigned long z; };";
    let x86: Vec<_> = ["c", "l", "ll", "p", "sh", "i", "b", "in", "in.y", "z"]
        .iter()
        .map(|m| layout(defs, "x86_64", "s", m))
        .collect();
    let some = |o, s| Some((o, s));
    assert_eq!(
        x86,
        [
            some(0, 1),
            some(8, 8),
            some(16, 8),
            some(24, 8),
            some(32, 6),
            some(40, 4),
            some(40, 5),
            some(48, 16),
            some(56, 8),
            some(64, 8)
        ]
    );
    assert_eq!(
        layout(defs, "aarch64", "s", "z"),
        layout(defs, "x86_64", "s", "z")
    );
    // 32-bit ARM: long and pointers are 4 bytes, long long and u64 still
    // aligned to 8.
    let arm: Vec<_> = ["l", "ll", "p", "sh", "i", "in", "in.y", "z"]
        .iter()
        .map(|m| layout(defs, "arm", "s", m))
        .collect();
    assert_eq!(
        arm,
        [
            some(4, 4),
            some(8, 8),
            some(16, 4),
            some(20, 6),
            some(28, 4),
            some(40, 16),
            some(48, 8),
            some(56, 4)
        ]
    );
    // Typedefs, function pointers, arrays of records, unions.
    let defs = "typedef struct { int a; int b; } pair_t; typedef unsigned short port_t;\n\
                union u { int i; long l; };\n\
                struct t { pair_t p[2]; port_t port; void (*cb)(int, char *); union u un; int last; };";
    assert_eq!(layout(defs, "x86_64", "t", "port"), some(16, 2));
    assert_eq!(layout(defs, "x86_64", "t", "cb"), some(24, 8));
    assert_eq!(layout(defs, "x86_64", "t", "un"), some(32, 8));
    assert_eq!(layout(defs, "x86_64", "u", "l"), some(0, 8));
    assert_eq!(layout(defs, "x86_64", "t", "last"), some(40, 4));
    assert_eq!(layout(defs, "arm", "t", "last"), some(28, 4));
    assert_eq!(layout(defs, "x86_64", "t", "nope"), None);
}

#[test]
fn bad_definitions_are_errors_with_places() {
    let cases = [
        (
            "struct s { int a }; BEGIN { }",
            "expected `;` after a member",
        ),
        (
            "struct s { int a; } __attribute__((packed)); BEGIN { }",
            "changes the layout",
        ),
        (
            "enum e { A = B }; BEGIN { }",
            "`B` is not a constant defined before this point",
        ),
        (
            "struct s { int a; };\nBEGIN { }\nstruct t { int b; };",
            "come before the first probe",
        ),
    ];
    for (src, expected) in cases {
        let message = error(src, &[]);
        assert!(message.contains(expected), "{src}\n{message}");
    }
    // A bit-field before the member read cannot be placed.
    let message = error(
        "struct s { int a : 3; int b; };\nkprobe:f { $s = (struct s *)arg0; printf(\"%d\\n\", $s->b); }",
        &[],
    );
    assert!(message.contains("bit-field `a`"), "{message}");
}

#[test]
fn enum_constants_come_from_the_script_btf_and_uapi() {
    let src = "enum e { A, B = 1 << 4, C, D = -1 };\n#define FOUR (2 * 2)\n\
               kprobe:f { printf(\"%d %d %d %d %d %d %d\\n\", A, B, C, D, AF_INET6, TCP_CLOSE, FOUR); }";
    assert_eq!(
        run(&build(src, &[]), &[], &[]),
        [vec![
            Value::Int(0),
            Value::Int(16),
            Value::Int(17),
            Value::Int(-1),
            Value::Int(10),
            Value::Int(7),
            Value::Int(4)
        ]]
    );
    let src = "BEGIN { printf(\"%d\\n\", SKB_DROP_REASON_NOT_SPECIFIED); }";
    let in_probe = src.replace("BEGIN", "kprobe:f");
    assert!(error(&in_probe, &[]).contains("unknown identifier `SKB_DROP_REASON_NOT_SPECIFIED`"));
    assert_eq!(
        begin_args(&build_on(src, &FakeBtf, &[]).unwrap()),
        [vec![Value::Int(2)]]
    );
}

#[test]
fn the_btf_branch_defines_what_the_other_includes() {
    // tcpconnect's shape: either branch gives AF_INET (a #define or the
    // uapi table standing in for <linux/socket.h>).
    let src = "#ifndef BPFTRACE_HAVE_BTF\n#include <linux/socket.h>\n#else\n#define AF_INET 2 /* IPv4 */\n#endif\n\
               kprobe:f / arg0 == AF_INET / { printf(\"%d\\n\", AF_INET); }";
    for compiled in [build(src, &[]), build_on(src, &FakeBtf, &[]).unwrap()] {
        assert_eq!(run(&compiled, &[2], &[]), [vec![Value::Int(2)]]);
        assert_eq!(run(&compiled, &[10], &[]), Vec::<Vec<Value>>::new());
    }
}

#[test]
fn positional_parameters_as_bpftrace_reads_them() {
    let src =
        "kprobe:f { printf(\"%d %d %s|%s| %d %d\\n\", $1, $2 + 1, str($3), str($4), $#, $5); }";
    assert_eq!(
        run(&build(src, &["7", "-3", "eth0"]), &[], &[]),
        [vec![
            Value::Int(7),
            Value::Int(-2),
            Value::Str("eth0".into()),
            Value::Str("".into()),
            Value::Int(3),
            Value::Int(0)
        ]]
    );
    // In BEGIN, a constant like any other.
    assert_eq!(
        begin_args(&build(
            "BEGIN { printf(\"%d %s\\n\", $1, str($1)); }",
            &["5"]
        )),
        [vec![Value::Int(5), Value::Str("5".into())]]
    );
    // As a predicate's constant.
    let compiled = build("kprobe:f / arg0 == $1 / { printf(\"hit\\n\"); }", &["0x10"]);
    assert_eq!(run(&compiled, &[16], &[]).len(), 1);
    assert_eq!(run(&compiled, &[17], &[]).len(), 0);
    assert!(
        error("BEGIN { printf(\"%d\\n\", $1); }", &["eth0"])
            .contains("$1 used numerically but given \"eth0\". Try using str($1).")
    );
    assert!(
        error("BEGIN { printf(\"%d\\n\", $0); }", &[]).contains("$0 is not a positional parameter")
    );
}

#[test]
fn config_blocks_set_what_nobtf_honours() {
    let src = "config = { max_strlen = 8; missing_probes = \"ignore\"; stack_mode = perf; print_maps_on_exit = 0 }\n\
               kprobe:f { printf(\"%s\\n\", str(arg0)); }";
    let compiled = build(src, &[]);
    assert_eq!(compiled.config.missing_probes, MissingProbes::Ignore);
    assert!(!compiled.config.print_maps_on_exit);
    assert_eq!(
        compiled.config.warnings,
        ["warning: config stack_mode = perf has no effect in nobtf trace"]
    );
    // max_strlen is str()'s default length, NUL included.
    let text = 0xffff_8880_0000_3000u64;
    assert_eq!(
        run(&compiled, &[text], &[(text, b"abcdefghijkl\0".to_vec())]),
        [vec![Value::Str("abcdefg".into())]]
    );
    assert!(error("config = { max_strlen = 4096 }\nBEGIN { }", &[]).contains("give 1..=200"));
    assert!(
        error("config = { nope = 1 }\nBEGIN { }", &[])
            .starts_with("1:12: unrecognized config variable: nope")
    );
}

#[test]
fn corpus_shaped_preambles_parse() {
    // runqlat's: the #else branch's #define, used in a comparison.
    let src = "#ifndef BPFTRACE_HAVE_BTF\n#include <linux/sched.h>\n#else\n\
               #define TASK_RUNNING 0\n#endif\n\
               kprobe:f / arg0 == TASK_RUNNING / { printf(\"r\\n\"); }";
    for compiled in [build(src, &[]), build_on(src, &FakeBtf, &[]).unwrap()] {
        assert_eq!(run(&compiled, &[0], &[]).len(), 1);
    }
}

#[test]
fn interval_spellings_and_let() {
    let nanos =
        |src: &str| -> Vec<u64> { build(src, &[]).timers.iter().map(|t| t.nanos).collect() };
    assert_eq!(
        nanos(
            "interval:s:2 { exit(); } interval:1s { exit(); } interval:100ms { exit(); } interval:us:250 { exit(); } interval:hz:4 { exit(); } i:2m { exit(); }"
        ),
        [
            2_000_000_000,
            1_000_000_000,
            100_000_000,
            250_000,
            250_000_000,
            120_000_000_000
        ]
    );
    for bad in [
        "interval:1",
        "interval:1ns",
        "interval:1x",
        "interval:s:0",
        "interval:hz:x",
    ] {
        let message = error(&format!("{bad} {{ exit(); }}"), &[]);
        assert!(message.contains("interval:DURATION"), "{bad}: {message}");
    }
    // `let` declares; the first assignment types the variable.
    let compiled = build(
        "kprobe:f { let $a; let $b = arg0 + 1; $a = $b * 2; printf(\"%d\\n\", $a); }",
        &[],
    );
    assert_eq!(run(&compiled, &[20], &[]), [vec![Value::Int(42)]]);
}

#[test]
fn lists_and_names_the_loader_needs() {
    use lang::providers::AttachPoint;
    let compiled = build(
        "config = { missing_probes = \"ignore\" }\nkprobe:a,kretprobe:b { } kprobe:c { }",
        &[],
    );
    assert_eq!(
        compiled.listed,
        [
            AttachPoint::Kprobe("a".into()),
            AttachPoint::Kretprobe("b".into())
        ]
    );
    // Constants only BTF or a profile can give make the loader read them;
    // the script's own and the uapi table's do not.
    let kernel = Kernel::for_release(KernelVersion::new(5, 4, 0), NATIVE);
    let used = lang::names_used(
        "enum e { MINE };\nkprobe:f / arg0 == SKB_DROP_REASON_NOT_SPECIFIED || arg1 == AF_INET || arg2 == MINE / { }",
        kernel,
    )
    .unwrap();
    assert_eq!(used.enums, ["SKB_DROP_REASON_NOT_SPECIFIED"]);
    assert!(used.fields.is_empty());
}

/// Members of one struct in one record are read with one helper call, a
/// pointer member's struct with another; each value is the member's, of
/// its size and sign, and a struct that cannot be read gives zeros.
#[test]
fn members_of_one_struct_are_read_once_per_record() {
    let compiled = build(
        r#"struct s { int a; unsigned short b; unsigned char c; long d; struct s *next; }
kprobe:f { $p = (struct s *)arg0;
  printf("%d %d %d %d %d %d\n", $p->a, $p->b, $p->c, $p->d, $p->next->a, $p->next->d); }"#,
        &[],
    );
    let program = compiled.probes[0].insns.to_string();
    assert_eq!(
        program.matches("call bpf_probe_read").count(),
        2,
        "one read of *$p, one of *$p->next:\n{program}"
    );
    const S: u64 = 0xffff_8880_0500_0000;
    const NEXT: u64 = 0xffff_8880_0500_1000;
    let strukt = |a: i32, b: u16, c: u8, d: i64, next: u64| {
        let mut bytes = a.to_ne_bytes().to_vec();
        bytes.extend(b.to_ne_bytes());
        bytes.push(c);
        bytes.push(0xee);
        bytes.extend(d.to_ne_bytes());
        bytes.extend(next.to_ne_bytes());
        bytes
    };
    let memory = [
        (S, strukt(-5, 65000, 200, 1 << 40, NEXT)),
        (NEXT, strukt(7, 1, 2, -9, 0)),
    ];
    let ints = |v: [i64; 6]| vec![v.map(Value::Int).to_vec()];
    assert_eq!(
        run(&compiled, &[S], &memory),
        ints([-5, 65000, 200, 1 << 40, 7, -9])
    );
    // *$p->next unmapped, then *$p.
    assert_eq!(run(&compiled, &[NEXT], &memory), ints([7, 1, 2, -9, 0, 0]));
    assert_eq!(run(&compiled, &[0x1000], &memory), ints([0; 6]));
}
