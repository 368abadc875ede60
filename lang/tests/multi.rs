//! The compile decision for probes on several kernel functions: one
//! program for all (a kprobe_multi link) where the kernel takes them and
//! the program allows it, else one program per function.

use kernel_headers::KernelVersion;
use kernel_headers::bpf::Helper;
use kernel_headers::pt_regs::x86_64::ABI;
use lang::fields::FieldInfo;
use lang::kernel::Kernel;
use lang::output::ValueType;
use lang::providers::AttachPoint;
use lang::symbols::Symbolic;
use lang::tracepoint::{TracepointFormat, TracepointSource};
use lang::{Compiled, Target};

/// A kernel with three `vfs_` functions and `do_unlinkat`.
struct Functions;

impl TracepointSource for Functions {
    fn format(&self, _: &str, _: &str) -> Option<TracepointFormat> {
        None
    }
    fn matching(&self, pattern: &str) -> Option<Vec<String>> {
        let names = [
            "kprobe:vfs_read",
            "kprobe:vfs_readv",
            "kprobe:vfs_write",
            "kprobe:do_unlinkat",
        ];
        Some(
            names
                .iter()
                .filter(|n| lang::glob::matches(pattern, n))
                .map(|n| n.to_string())
                .collect(),
        )
    }
}

/// `source` compiled for a 6.12 kernel with or without kprobe_multi links.
fn try_compile(source: &str, multi: bool) -> Result<Compiled, lang::Error> {
    let fields: Vec<(&'static str, FieldInfo)> = Vec::new();
    let mut kernel = Kernel::for_release(KernelVersion::new(6, 12, 0), &ABI);
    kernel.kprobe_multi = multi;
    let target = Target {
        fields: &fields,
        tracepoints: &Functions,
        kernel,
    };
    lang::compile(source, &target)
}

fn compile(source: &str, multi: bool) -> Compiled {
    try_compile(source, multi).unwrap_or_else(|e| panic!("{source}: {}", e.render(source)))
}

fn points(compiled: &Compiled) -> Vec<String> {
    compiled
        .probes
        .iter()
        .map(|p| format!("{:?}", p.attach))
        .collect()
}

#[test]
fn a_wildcard_is_one_program_with_func_read_at_run_time() {
    let compiled = compile("kprobe:vfs_* { @[func] = count(); }", true);
    assert_eq!(compiled.probes.len(), 1, "{:?}", points(&compiled));
    let AttachPoint::KprobeMulti {
        written,
        functions,
        ret,
    } = &compiled.probes[0].attach
    else {
        panic!("{:?}", points(&compiled))
    };
    assert_eq!(written, "kprobe:vfs_*");
    assert_eq!(functions, &["vfs_read", "vfs_readv", "vfs_write"]);
    assert!(!ret);
    assert!(compiled.probes[0].helpers().contains(&Helper::GetFuncIp));
    assert_eq!(
        compiled.maps[0].key[0].ty,
        ValueType::Symbol(Symbolic::Func)
    );
    assert_eq!(compiled.multi_refused, None);
}

#[test]
fn without_kprobe_multi_each_function_is_its_own_program() {
    let compiled = compile("kprobe:vfs_* { @[func] = count(); }", false);
    assert_eq!(compiled.probes.len(), 3);
    assert!(
        compiled
            .probes
            .iter()
            .all(|p| !p.helpers().contains(&Helper::GetFuncIp))
    );
    // `func` a constant per program, numbered (`func_keys`).
    assert_eq!(
        compiled.maps[0].key[0].ty,
        ValueType::Symbol(Symbolic::Name)
    );
}

#[test]
fn lists_group_by_entry_and_return_and_lone_functions_stay() {
    let compiled = compile(
        "kprobe:vfs_read,kprobe:vfs_write,kretprobe:vfs_read,kretprobe:vfs_write { @[func] = count(); } kprobe:do_unlinkat { @u[func] = count(); }",
        true,
    );
    let kinds: Vec<_> = compiled
        .probes
        .iter()
        .map(|p| match &p.attach {
            AttachPoint::KprobeMulti { functions, ret, .. } => format!("multi {ret} {functions:?}"),
            other => other.to_string(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            r#"multi false ["vfs_read", "vfs_write"]"#,
            r#"multi true ["vfs_read", "vfs_write"]"#,
            "kprobe:do_unlinkat",
        ]
    );
}

#[test]
fn a_program_that_needs_a_name_per_function_falls_back_whole() {
    for source in [
        // `probe` names each function's probe.
        "kprobe:vfs_* { @[probe] = count(); }",
        // `func` compared as a string.
        r#"kprobe:vfs_* /func == "vfs_read"/ { @ = count(); }"#,
        // One map keyed by `func` of a lone function (a string) too.
        "kprobe:vfs_* { @[func] = count(); } kprobe:do_unlinkat { @[func] = count(); }",
        // `func`'s size is its string's.
        "kprobe:vfs_* { @ = sizeof(func); }",
        "kprobe:vfs_* { @[func] = count(); } kprobe:do_unlinkat { @[func] = count(); }",
    ] {
        let compiled = compile(source, true);
        assert!(
            compiled.probes.len() >= 3,
            "{source}: {:?}",
            points(&compiled)
        );
        assert!(
            compiled
                .probes
                .iter()
                .all(|p| matches!(p.attach, AttachPoint::Kprobe(_))),
            "{source}"
        );
        assert!(compiled.multi_refused.is_some(), "{source}");
    }
}

#[test]
fn func_prints_through_the_symbolizer_in_printf() {
    let compiled = compile(
        r#"kretprobe:vfs_* { printf("%s %d\n", func, retval); }"#,
        true,
    );
    assert_eq!(compiled.probes.len(), 1);
    assert!(matches!(
        compiled.probes[0].attach,
        AttachPoint::KprobeMulti { ret: true, .. }
    ));
}

#[test]
fn func_is_a_string_to_printf_integer_conversions() {
    for multi in [true, false] {
        for conv in ["%d", "%x", "%u"] {
            let source = format!(r#"kprobe:vfs_* {{ printf("{conv}\n", func); }}"#);
            let refused = try_compile(&source, multi).err();
            let message = refused.map(|e| e.message).unwrap_or_default();
            assert_eq!(
                message,
                format!("{conv} needs an integer, found a string; use %s"),
                "{source} (multi {multi})"
            );
        }
    }
}

#[test]
fn a_function_named_twice_is_in_two_programs_as_with_one_per_function() {
    let compiled = compile("kprobe:vfs_read,kprobe:vfs_* { @[func] = count(); }", true);
    let groups: Vec<_> = compiled
        .probes
        .iter()
        .map(|p| match &p.attach {
            AttachPoint::KprobeMulti { functions, .. } => functions.clone(),
            other => panic!("{other}"),
        })
        .collect();
    // One link per group: the kernel refuses a link naming a function twice.
    assert_eq!(
        groups,
        [vec!["vfs_read", "vfs_readv", "vfs_write"], vec!["vfs_read"]]
    );
    assert_eq!(
        compile("kprobe:vfs_read,kprobe:vfs_* { @[func] = count(); }", false)
            .probes
            .len(),
        4
    );
}
