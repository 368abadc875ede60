//! Syscall tracepoints where the kernel has none (built without
//! `CONFIG_FTRACE_SYSCALLS`, as many old and vendor kernels are):
//! `tracepoint:syscalls:sys_enter_NAME` becomes a kprobe on the syscall's
//! entry function and `sys_exit_NAME` a kretprobe on it, with `args.ARG`
//! read where the entry function finds the argument. The names and types
//! are the real tracepoint's, from [`kernel_headers::syscalls`].
//!
//! The entry function is the first the kernel can probe of the wrapper
//! taking the user's `struct pt_regs *` (`__x64_sys_NAME`, 4.17+;
//! `__arm64_sys_NAME`, 4.19+), whose arguments are read through that
//! pointer, and the plain `sys_NAME` of older kernels, whose arguments are
//! the kprobe's own registers.

use kernel_headers::bpf::Helper;
use kernel_headers::pt_regs::Abi;
use kernel_headers::syscalls::{self, PLAIN_PREFIX, Signature, SyscallAbi};

use crate::fields::CType;
use crate::glob;
use crate::providers::AttachPoint;
use crate::tracepoint::{TracepointField, TracepointFormat, TracepointSource};
use crate::typed::{TExpr, TKind};

/// The category of the tracepoints lowered here.
pub const CATEGORY: &str = "syscalls";
const ENTER: &str = "sys_enter_";
const EXIT: &str = "sys_exit_";

/// Where a record's fields are in a real syscall tracepoint: after the
/// common header, `int __syscall_nr`, then each argument (or `long ret`)
/// in 8 bytes.
const SYSCALL_NR_OFFSET: u32 = 8;
const FIRST_ARG_OFFSET: u32 = 16;
const ARG_SIZE: u32 = 8;

/// How a lowered syscall tracepoint is probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lowered {
    /// The tracepoint's name (`sys_enter_openat`), which `probe` shows.
    pub tracepoint: String,
    /// The function probed (`__x64_sys_openat`, `sys_openat`).
    pub function: String,
    /// `sys_exit_`: a kretprobe.
    pub exit: bool,
    /// The function takes the user's `struct pt_regs *` (the 4.17+ wrappers).
    pub wrapped: bool,
}

impl Lowered {
    /// For `-v`: what the tracepoint became.
    pub fn describe(&self) -> String {
        let kind = if self.exit { "kretprobe" } else { "kprobe" };
        let how = if self.wrapped {
            "arguments through its struct pt_regs *"
        } else {
            "arguments from its registers"
        };
        format!(
            "tracepoint:{CATEGORY}:{} lowered to {kind}:{} ({how}): this kernel has no syscall tracepoints",
            self.tracepoint, self.function
        )
    }
}

/// The syscall a tracepoint name is about, and whether it is the exit.
fn syscall_of(tracepoint: &str) -> Option<(&str, bool)> {
    if let Some(name) = tracepoint.strip_prefix(ENTER) {
        return Some((name, false));
    }
    tracepoint.strip_prefix(EXIT).map(|name| (name, true))
}

/// `syscalls:NAME` lowered to a kprobe, when the kernel lacks the real
/// tracepoint but can probe the syscall's entry function; `None` where
/// nothing changes (the tracepoint exists, or the syscall is not in the
/// architecture's table, or no entry function can be probed).
pub fn lower(name: &str, abi: &Abi, kernel: &dyn TracepointSource) -> Option<AttachPoint> {
    let (syscall, exit) = syscall_of(name)?;
    let table = syscalls::abi(abi.arch)?;
    syscalls::signature(table, syscall)?;
    if kernel.format(CATEGORY, name).is_some() {
        return None;
    }
    let wrapper = table
        .wrapper_prefix
        .map(|prefix| (format!("{prefix}{syscall}"), true));
    let plain = (format!("{PLAIN_PREFIX}{syscall}"), false);
    let (function, wrapped) = wrapper
        .into_iter()
        .chain([plain])
        .find(|(function, _)| kernel.can_probe(function))?;
    Some(AttachPoint::Syscall(Lowered {
        tracepoint: name.into(),
        function,
        exit,
        wrapped,
    }))
}

/// For the error naming a missing tracepoint of `category`: why it was
/// not lowered, when it is a syscall's.
pub fn why_not_lowered(category: &str) -> &'static str {
    if category == CATEGORY {
        ", nor can nobtf probe the syscall's entry function in its place (not in nobtf's syscall table for this architecture, or no such function)"
    } else {
        ""
    }
}

/// Every syscall tracepoint of the architecture's table matching the
/// wildcard `pattern` (`tracepoint:syscalls:sys_enter_*`) that the kernel
/// lacks and [`lower`] can replace, as lowered attach points.
pub fn lower_matching(pattern: &str, abi: &Abi, kernel: &dyn TracepointSource) -> Vec<AttachPoint> {
    let Some(table) = syscalls::abi(abi.arch) else {
        return Vec::new();
    };
    syscalls::signatures(table)
        .flat_map(|s| [format!("{ENTER}{}", s.name), format!("{EXIT}{}", s.name)])
        .filter(|name| glob::matches(pattern, &format!("tracepoint:{CATEGORY}:{name}")))
        .filter_map(|name| lower(&name, abi, kernel))
        .collect()
}

fn signature(lowered: &Lowered, abi: &Abi) -> Option<(&'static Signature, &'static SyscallAbi)> {
    let table = syscalls::abi(abi.arch)?;
    let (syscall, _) = syscall_of(&lowered.tracepoint)?;
    Some((syscalls::signature(table, syscall)?, table))
}

/// The record format the real tracepoint would have: the checker types
/// `args.ARG` from it as it types a real one.
pub fn format(lowered: &Lowered, abi: &Abi) -> Option<TracepointFormat> {
    let (signature, _) = signature(lowered, abi)?;
    let field = |name: &str, c_type: &str, offset: u32, size: u32| TracepointField {
        name: name.into(),
        c_type: CType::parse(c_type, size),
        offset,
        size,
        data_loc: false,
    };
    let mut fields = vec![field("__syscall_nr", "int", SYSCALL_NR_OFFSET, 4)];
    if lowered.exit {
        fields.push(field("ret", "long", FIRST_ARG_OFFSET, ARG_SIZE));
    } else {
        fields.extend(
            signature
                .args
                .iter()
                .zip((FIRST_ARG_OFFSET..).step_by(ARG_SIZE as usize))
                .map(|(&(c_type, name), offset)| field(name, c_type, offset, ARG_SIZE)),
        );
    }
    Some(TracepointFormat { id: None, fields })
}

/// The record format the architecture's table gives the syscall
/// tracepoint `name`, whatever the kernel has: for `offsets gen
/// --fields-from`, which types `args.ARG` without a kernel's tracefs.
pub fn table_format(name: &str, abi: &Abi) -> Option<TracepointFormat> {
    let (_, exit) = syscall_of(name)?;
    let lowered = Lowered {
        tracepoint: name.into(),
        function: String::new(),
        exit,
        wrapped: false,
    };
    format(&lowered, abi)
}

/// How the kprobe reads the field the real record has at `offset` (the
/// checker's `CtxLoad` of it), typed as the checker typed `load`; `Err`
/// with the reason where the kprobe cannot (`__syscall_nr`).
/// `helper` reads kernel memory (the wrappers' `struct pt_regs`).
pub fn read_field(
    lowered: &Lowered,
    abi: &Abi,
    load: TExpr,
    helper: Helper,
) -> Result<TExpr, String> {
    let TKind::CtxLoad { off, bytes, signed } = load.kind else {
        return Err("only integer and pointer arguments can be read".into());
    };
    let register = |off: usize| TKind::CtxLoad {
        off: off as u32,
        bytes: abi.pointer_bytes,
        signed,
    };
    let Some(index) = off
        .checked_sub(FIRST_ARG_OFFSET)
        .map(|o| (o / ARG_SIZE) as usize)
    else {
        return Err(format!(
            "`__syscall_nr` is not read where {} is lowered to a kprobe; use `probe` for the syscall",
            lowered.tracepoint
        ));
    };
    let kind = if lowered.exit {
        register(abi.ret.1)
    } else if lowered.wrapped {
        let (_, table) = signature(lowered, abi).ok_or("no syscall table")?;
        let regs = TExpr {
            kind: register(abi.args[0].1),
            ty: crate::typed::Ty::Int {
                signed: false,
                bytes: abi.pointer_bytes,
            },
            span: load.span,
        };
        TKind::Read {
            addr: Box::new(regs),
            off: table.user_args[index] as u32,
            bytes,
            signed,
            user: false,
            helper,
        }
    } else {
        let Some(&(_, off)) = abi.args.get(index) else {
            return Err(format!(
                "argument {} of {} is on the stack, which nobtf does not read on {}",
                index + 1,
                lowered.function,
                abi.arch
            ));
        };
        register(off)
    };
    Ok(TExpr { kind, ..load })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::FieldInfo;
    use crate::kernel::Kernel;
    use crate::tracefs::Syntax;
    use crate::typed::Ty;
    use crate::{Target, compile};
    use kernel_headers::KernelVersion;
    use kernel_headers::kprobe::ProbeKind;
    use kernel_headers::pt_regs::x86_64::ABI;

    /// A kernel whose only syscall tracepoints are `real`, with the
    /// functions `functions`.
    struct Kernel_ {
        real: &'static [&'static str],
        functions: &'static [&'static str],
    }

    impl TracepointSource for Kernel_ {
        fn format(&self, category: &str, name: &str) -> Option<TracepointFormat> {
            let real = category == CATEGORY && self.real.contains(&name);
            real.then(|| TracepointFormat {
                id: Some(1),
                fields: vec![TracepointField {
                    name: "filename".into(),
                    c_type: CType::parse("const char *", 8),
                    offset: 24,
                    size: 8,
                    data_loc: false,
                }],
            })
        }
        fn matching(&self, pattern: &str) -> Option<Vec<String>> {
            Some(
                self.real
                    .iter()
                    .map(|n| format!("tracepoint:{CATEGORY}:{n}"))
                    .filter(|n| glob::matches(pattern, n))
                    .collect(),
            )
        }
        fn can_probe(&self, function: &str) -> bool {
            self.functions.contains(&function)
        }
    }

    /// 5.4: the wrappers.
    const WRAPPED: Kernel_ = Kernel_ {
        real: &[],
        functions: &[
            "__x64_sys_openat",
            "__x64_sys_execve",
            "__x64_sys_execveat",
            "__x64_sys_kill",
            "__ia32_sys_openat",
        ],
    };
    /// 4.14: the plain functions.
    const PLAIN: Kernel_ = Kernel_ {
        real: &[],
        functions: &["sys_openat", "sys_execve", "sys_kill"],
    };
    /// A kernel with the tracepoints.
    const REAL: Kernel_ = Kernel_ {
        real: &["sys_enter_openat", "sys_exit_openat"],
        functions: &["__x64_sys_openat"],
    };

    fn compiled(source: &str, kernel: &Kernel_) -> Result<crate::Compiled, String> {
        let fields: Vec<(&str, FieldInfo)> = Vec::new();
        let target = Target {
            fields: &fields,
            tracepoints: kernel,
            kernel: Kernel::for_release(KernelVersion::new(5, 4, 0), &ABI),
        };
        compile(source, &target).map_err(|e| e.render(source))
    }

    fn attached(source: &str, kernel: &Kernel_) -> Vec<AttachPoint> {
        compiled(source, kernel)
            .unwrap()
            .probes
            .into_iter()
            .map(|p| p.attach)
            .collect()
    }

    fn lowered(tracepoint: &str, function: &str, exit: bool, wrapped: bool) -> AttachPoint {
        AttachPoint::Syscall(Lowered {
            tracepoint: tracepoint.into(),
            function: function.into(),
            exit,
            wrapped,
        })
    }

    #[test]
    fn a_missing_tracepoint_becomes_a_probe_on_the_entry_function() {
        let src =
            "tracepoint:syscalls:sys_enter_openat { } tracepoint:syscalls:sys_exit_openat { }";
        assert_eq!(
            attached(src, &WRAPPED),
            [
                lowered("sys_enter_openat", "__x64_sys_openat", false, true),
                lowered("sys_exit_openat", "__x64_sys_openat", true, true),
            ]
        );
        assert_eq!(
            attached(src, &PLAIN),
            [
                lowered("sys_enter_openat", "sys_openat", false, false),
                lowered("sys_exit_openat", "sys_openat", true, false),
            ]
        );
        // Where the tracepoint exists nothing changes.
        assert!(matches!(
            attached(src, &REAL)[0],
            AttachPoint::Tracepoint { .. }
        ));
        // `probe` is the tracepoint's name, and the program a kprobe.
        let point = &attached(src, &WRAPPED)[0];
        assert_eq!(point.to_string(), "tracepoint:syscalls:sys_enter_openat");
        assert_eq!(
            point.prog_type(),
            Some(kernel_headers::bpf::prog_type::KPROBE)
        );
    }

    #[test]
    fn a_syscall_without_a_function_or_signature_stays_unknown() {
        for src in [
            "tracepoint:syscalls:sys_enter_close { }",
            "tracepoint:syscalls:sys_enter_no_such_call { }",
        ] {
            let err = compiled(src, &WRAPPED).unwrap_err();
            assert!(err.contains("unknown tracepoint"), "{err}");
            assert!(err.contains("nor can nobtf probe"), "{err}");
        }
    }

    #[test]
    fn wildcards_take_the_lowered_tracepoints_in_order() {
        assert_eq!(
            attached("tracepoint:syscalls:sys_enter_exec* { }", &WRAPPED),
            [
                lowered("sys_enter_execve", "__x64_sys_execve", false, true),
                lowered("sys_enter_execveat", "__x64_sys_execveat", false, true),
            ]
        );
        let all = attached("tracepoint:syscalls:sys_*_openat { }", &REAL);
        assert!(
            all.iter()
                .all(|p| matches!(p, AttachPoint::Tracepoint { .. })),
            "{all:?}"
        );
    }

    /// The typed `args.NAME` of the first probe of `source`.
    fn read(source: &str, kernel: &Kernel_, name: &str) -> Result<TExpr, String> {
        let lowered = match attached(source, kernel).remove(0) {
            AttachPoint::Syscall(l) => l,
            other => panic!("{other:?}"),
        };
        let format = format(&lowered, &ABI).unwrap();
        let field = format.fields.iter().find(|f| f.name == name).unwrap();
        let load = TExpr {
            kind: TKind::CtxLoad {
                off: field.offset,
                bytes: 8,
                signed: true,
            },
            ty: Ty::Int {
                signed: true,
                bytes: 8,
            },
            span: crate::Span::default(),
        };
        read_field(&lowered, &ABI, load, Helper::ProbeRead)
    }

    #[test]
    fn arguments_are_read_where_the_entry_function_has_them() {
        let enter = "tracepoint:syscalls:sys_enter_kill { }";
        let exit = "tracepoint:syscalls:sys_exit_kill { }";
        let reg = |name| ABI.register(name).unwrap() as u32;
        // Through the user's registers: `sig`, the second argument, in si.
        match read(enter, &WRAPPED, "sig").unwrap().kind {
            TKind::Read { addr, off, .. } => {
                assert_eq!(off, reg("si"));
                assert!(
                    matches!(addr.kind, TKind::CtxLoad { off, .. } if off == reg("di")),
                    "{addr:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        // The plain function's own registers.
        assert!(matches!(
            read(enter, &PLAIN, "sig").unwrap().kind,
            TKind::CtxLoad { off, .. } if off == reg("si")
        ));
        // `ret` is the return register.
        for kernel in [&WRAPPED, &PLAIN] {
            assert!(matches!(
                read(exit, kernel, "ret").unwrap().kind,
                TKind::CtxLoad { off, signed: true, .. } if off == reg("ax")
            ));
        }
        let err = read(enter, &WRAPPED, "__syscall_nr").unwrap_err();
        assert!(err.contains("__syscall_nr"), "{err}");
    }

    #[test]
    fn the_format_has_the_real_tracepoints_names_and_types() {
        let src = r#"tracepoint:syscalls:sys_enter_openat { printf("%d %s\n", args.dfd, str(args->filename)); }"#;
        compiled(src, &WRAPPED).unwrap();
        // argv: a user array of user strings.
        compiled(
            r#"tracepoint:syscalls:sys_enter_execve { printf("%s\n", str(args.argv[1])); }"#,
            &WRAPPED,
        )
        .unwrap();
        let err = compiled(
            "tracepoint:syscalls:sys_enter_openat { @ = args.nope; }",
            &WRAPPED,
        )
        .unwrap_err();
        assert!(err.contains("has no field `nope`"), "{err}");
        let enter = lowered("sys_enter_openat", "__x64_sys_openat", false, true);
        let AttachPoint::Syscall(enter) = enter else {
            unreachable!()
        };
        let format = format(&enter, &ABI).unwrap();
        let names: Vec<(&str, u32)> = format
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.offset))
            .collect();
        assert_eq!(
            names,
            [
                ("__syscall_nr", 8),
                ("dfd", 16),
                ("filename", 24),
                ("flags", 32),
                ("mode", 40)
            ]
        );
        assert!(matches!(format.fields[2].c_type, CType::Ptr { .. }));
    }

    #[test]
    fn the_tracefs_form_fetches_through_the_users_registers() {
        let src = r#"tracepoint:syscalls:sys_enter_openat { printf("%s\n", str(args.filename)); }
tracepoint:syscalls:sys_exit_openat { printf("%d\n", args.ret); }"#;
        let fields: Vec<(&str, FieldInfo)> = Vec::new();
        let target = Target {
            fields: &fields,
            tracepoints: &WRAPPED,
            kernel: Kernel::for_release(KernelVersion::new(5, 10, 0), &ABI),
        };
        let mut name = |kind: ProbeKind, f: &str| format!("e_{}_{f}", kind.letter());
        let syntax = Syntax {
            ustring: true,
            comm: false,
        };
        let program =
            crate::tracefs_program::translate(src, &target, &[], syntax, "g", &mut name, &[])
                .map_err(|_| "refused")
                .unwrap();
        let lines: Vec<String> = program
            .probes
            .iter()
            .map(|p| p.event.definition(&ABI, syntax).unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                "p:g/e_p___x64_sys_openat __x64_sys_openat v0=+0(+104(%di)):ustring",
                "r:g/e_r___x64_sys_openat __x64_sys_openat v0=$retval:s64",
            ]
        );
        assert_eq!(program.lowered.len(), 2);
    }

    /// 32-bit ARM: no wrappers; the first four arguments are the plain
    /// function's r0..r3, the rest on the stack (refused by name).
    #[test]
    fn arm_reads_the_plain_functions_registers() {
        use kernel_headers::pt_regs::arm::ABI as ARM;
        const ARM_KERNEL: Kernel_ = Kernel_ {
            real: &[],
            functions: &["sys_openat", "sys_clone", "__x64_sys_openat"],
        };
        let fields: Vec<(&str, FieldInfo)> = Vec::new();
        let target = Target {
            fields: &fields,
            tracepoints: &ARM_KERNEL,
            kernel: Kernel::for_release(KernelVersion::new(6, 1, 0), &ARM),
        };
        let compiled = |src: &str| compile(src, &target).map_err(|e| e.render(src));
        let src = r#"tracepoint:syscalls:sys_enter_openat { printf("%s %o\n", str(args.filename), args.mode); }"#;
        let attach: Vec<AttachPoint> = compiled(src)
            .unwrap()
            .probes
            .into_iter()
            .map(|p| p.attach)
            .collect();
        assert_eq!(
            attach,
            [lowered("sys_enter_openat", "sys_openat", false, false)]
        );
        let AttachPoint::Syscall(openat) = &attach[0] else {
            unreachable!()
        };
        let load = |name: &str, lowered: &Lowered| {
            let format = format(lowered, &ARM).unwrap();
            let field = format.fields.iter().find(|f| f.name == name).unwrap();
            let load = TExpr {
                kind: TKind::CtxLoad {
                    off: field.offset,
                    bytes: 4,
                    signed: false,
                },
                ty: Ty::Int {
                    signed: false,
                    bytes: 4,
                },
                span: crate::Span::default(),
            };
            read_field(lowered, &ARM, load, Helper::ProbeRead)
        };
        let reg = |name| ARM.register(name).unwrap() as u32;
        assert!(matches!(
            load("mode", openat).unwrap().kind,
            TKind::CtxLoad { off, bytes: 4, .. } if off == reg("r3")
        ));
        let clone = lowered("sys_enter_clone", "sys_clone", false, false);
        let AttachPoint::Syscall(clone) = &clone else {
            unreachable!()
        };
        assert_eq!(
            load("child_tidptr", clone).unwrap_err(),
            "argument 5 of sys_clone is on the stack, which nobtf does not read on arm"
        );
        // A call 32-bit ARM makes through another function stays unknown.
        let err = compiled("tracepoint:syscalls:sys_enter_newfstatat { }").unwrap_err();
        assert!(err.contains("unknown tracepoint"), "{err}");
    }
}
