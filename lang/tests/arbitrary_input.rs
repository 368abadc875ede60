//! Arbitrary text never panics the front end: it compiles or is an error
//! whose rendering quotes the source. Whatever compiles passes the static
//! check every kernel applies (no loops, in bounds, ends in exit).

use kernel_headers::KernelVersion;
use kernel_headers::pt_regs::NATIVE;
use lang::fields::FieldInfo;
use lang::kernel::Kernel;
use lang::tracepoint::{TracepointFormat, TracepointSource, parse_format};
use lang::{Target, compile};
use proptest::prelude::*;

/// Pieces of real programs, so generated text reaches deep into the grammar.
const PIECES: &[&str] = &[
    "kprobe:f",
    "kretprobe:g",
    "tracepoint:syscalls:sys_enter_openat",
    "BEGIN",
    "END",
    "interval:s:1",
    ",",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ";",
    "/",
    "$x",
    "$y",
    "@m",
    "@",
    "=",
    "count()",
    "hist(",
    "printf(\"%d %s\\n\"",
    "printf(\"%d\\n\",",
    "str(",
    "arg0",
    "arg1",
    "retval",
    "comm",
    "pid",
    "args->",
    "filename",
    "->",
    ".",
    "mm",
    "owner",
    "se",
    "vruntime",
    "(struct task_struct *)",
    "(struct mm_struct *)",
    "?",
    ":",
    "+",
    "-",
    "*",
    "%",
    "&&",
    "||",
    "!",
    "==",
    "!=",
    "<",
    "<<",
    "1",
    "0x10",
    "-5",
    "\"x\"",
    " ",
    "\n",
    "exit()",
    "print(@m)",
    "delete(@m[1])",
    "clear(@m)",
    "lhist(",
    "0, 100, 10)",
    "sum(",
    "min(",
    "avg(",
    "++",
    "+=",
    "(u32)",
    "nsecs",
    "cpu",
    "uid",
    "func",
];

fn fields() -> Vec<(&'static str, FieldInfo)> {
    let f = |offset, size, ty: Option<&str>| FieldInfo {
        offset,
        size,
        c_type: ty.map(str::to_string),
    };
    vec![
        ("task_struct.mm", f(8, 8, Some("struct mm_struct *"))),
        ("task_struct.se", f(64, 64, None)),
        ("task_struct.se.vruntime", f(72, 8, Some("u64"))),
        ("mm_struct.owner", f(16, 8, Some("struct task_struct *"))),
    ]
}

struct Openat;
impl TracepointSource for Openat {
    fn format(&self, _: &str, name: &str) -> Option<TracepointFormat> {
        (name == "sys_enter_openat").then(|| {
            parse_format("field:const char * filename;\toffset:24;\tsize:8;\tsigned:0;").unwrap()
        })
    }
}

fn check_text(src: &str) {
    let fields = fields();
    for release in [KernelVersion::new(4, 14, 0), KernelVersion::new(5, 10, 0)] {
        let target = Target {
            fields: &fields,
            tracepoints: &Openat,
            kernel: Kernel::for_release(release, NATIVE),
        };
        match compile(src, &target) {
            Err(error) => {
                let _ = error.render(src);
            }
            Ok(compiled) => {
                for probe in &compiled.probes {
                    if let Err(e) = probe.encode(|_| Some(3)) {
                        panic!(
                            "{src}\ncompiled but fails the static check: {e}\n{}",
                            probe.insns
                        );
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn bytes_never_panic(src in ".{0,200}") {
        check_text(&src);
    }

    #[test]
    fn program_shaped_text_never_panics(pieces in prop::collection::vec(prop::sample::select(PIECES), 0..40)) {
        check_text(&pieces.concat());
    }

    #[test]
    fn probe_bodies_never_panic(pieces in prop::collection::vec(prop::sample::select(PIECES), 0..30)) {
        check_text(&format!("kprobe:f {{ $x = arg0; {} }}", pieces.concat()));
    }
}

/// Integer expressions from the grammar, as text.
fn int_expr() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(vec![
        "arg0",
        "arg1",
        "1",
        "0",
        "-5",
        "0x7fffffffff",
        "$x",
        "pid",
        "tid",
        "nsecs",
        "cpu",
        "uid",
        "gid",
        "@v",
        "(comm == \"rm\")",
        "(str(arg1) != \"x\")",
    ])
    .prop_map(str::to_string);
    leaf.prop_recursive(4, 24, 3, |inner| {
        let ops = prop::sample::select(vec![
            "+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>", "==", "!=", "<", "<=", ">", ">=",
            "&&", "||",
        ]);
        prop_oneof![
            (inner.clone(), ops, inner.clone()).prop_map(|(l, op, r)| format!("({l} {op} {r})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
            inner.clone().prop_map(|e| format!("!({e})")),
            inner.clone().prop_map(|e| format!("(u16){e}")),
            inner.prop_map(|e| format!("-({e})")),
        ]
    })
}

fn statement() -> impl Strategy<Value = String> {
    (0..8usize, int_expr(), int_expr()).prop_map(|(kind, a, b)| match kind {
        0 => format!("$x = {a}"),
        1 => format!("@c[{a}] = count()"),
        2 => format!("@s = sum({a})"),
        3 => format!("@h = hist({a})"),
        4 => format!("@l = lhist({a}, 0, 100, 7)"),
        5 => format!("printf(\"%d %u %s\\n\", {a}, {b}, comm)"),
        6 => format!("@mx[comm, {a}] = max({b})"),
        _ => format!("@v = {a}"),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Well-typed programs compile, pass the static check, and run in the
    /// interpreter without a bad memory access or a helper misuse.
    #[test]
    fn generated_programs_compile_and_run(stmts in prop::collection::vec(statement(), 1..6), a0 in any::<u64>(), a1 in any::<u64>()) {
        let src = format!("kprobe:f {{ $x = arg0; @v = 0; {} }}", stmts.join("; "));
        let fields = fields();
        let target = Target {
            fields: &fields,
            tracepoints: &Openat,
            kernel: Kernel::for_release(KernelVersion::new(5, 4, 0), NATIVE),
        };
        let compiled = match compile(&src, &target) {
            Ok(c) => c,
            // Limits and constant mistakes are the only acceptable refusals.
            Err(e) if ["stack", "instructions", "division by zero", "shift by"]
                .iter()
                .any(|m| e.message.contains(m)) => return Ok(()),
            Err(e) => panic!("{}", e.render(&src)),
        };
        let mut vm = probes::interp::Vm::new();
        vm.perf_map_fd = 100;
        for (i, m) in compiled.maps.iter().enumerate() {
            let (key, value) = (m.key_size as usize, m.value_size as usize);
            vm.add_map(i as i32 + 1, m.map_type(), key, value, m.max_entries);
        }
        let names: Vec<String> = compiled.maps.iter().map(|m| m.name.clone()).collect();
        let fd = |name: &str| {
            if name == "events" { return Some(100); }
            names.iter().position(|n| n == name).map(|i| i as i32 + 1)
        };
        let raw = compiled.probes[0].encode(fd).unwrap_or_else(|e| panic!("{src}\n{e}"));
        let regs: Vec<(&str, u64)> = vec![(NATIVE.args[0].0, a0), (NATIVE.args[1].0, a1)];
        let ctx = probes::interp::fake_pt_regs(&regs).unwrap();
        let result = vm.run(&raw, &ctx);
        prop_assert_eq!(result, Ok(0), "{}\n{}", src, compiled.probes[0].insns);
        for record in &vm.perf_output {
            prop_assert!(lang::output::decode_event(&compiled.events, record).is_ok());
        }
    }
}
