//! The whole pipeline, and what it hands the loader.

use kernel_headers::bpf::{Helper, RawInsn};
use probes::asm::{Insn, Insns};

use crate::ast::Program;
use crate::check::Checker;
use crate::codegen::generate;
use crate::config::Config;
use crate::ctypes::Layered;
use crate::diag::{Error, Span};
use crate::expand::{MAX_PROBES, is_wildcard, points};
use crate::fields::CType;
use crate::fields::{FieldInfo, FieldSource, Lookup};
use crate::kernel::Kernel;
use crate::lexer::Tok;
use crate::output::{EventFormat, MapSpec};
use crate::providers::{AttachPoint, Context};
use crate::source::{ReadOptions, Source};
use crate::tracepoint::{TracepointField, TracepointFormat, TracepointSource};
use crate::typed::TProbe;
use crate::userspace;

/// What the program is checked and compiled against.
pub struct Target<'a> {
    pub fields: &'a dyn FieldSource,
    pub tracepoints: &'a dyn TracepointSource,
    pub kernel: Kernel,
}

/// What the user asked beyond the program text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Only this process's events (`-p PID`): kprobes, kretprobes and
    /// tracepoints check the current thread group first. Intervals and
    /// BEGIN/END are not filtered.
    pub pid: Option<u32>,
    /// The positional parameters `$1`, `$2`, ... (`$#` counts them).
    pub params: Vec<String>,
    /// `--unsafe`: the functions bpftrace calls unsafe (`system()`,
    /// `signal()`) are allowed.
    pub unsafe_allowed: bool,
}

/// A compiled program, ready for the loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// One BPF program per attach point (a probe list gives several).
    pub probes: Vec<CompiledProbe>,
    /// BEGIN's and END's bodies, in order: the loader runs them in user
    /// space ([`crate::userspace`]), BEGIN before attaching (so its map
    /// writes are in the kernel before the first probe fires), END after
    /// detaching.
    pub begin: Vec<TProbe>,
    pub end: Vec<TProbe>,
    /// `interval` probes whose bodies read no kernel state (print, clear,
    /// printf, maps: the usual `interval:s:1 { print(@); clear(@); }`): the
    /// loader runs them in user space on a timer, which works on every
    /// kernel. Intervals that read kernel state are BPF programs in `probes`.
    pub timers: Vec<Timer>,
    /// Maps to create, by symbolic name; plus [`crate::output::EVENTS_MAP`]
    /// (a perf event array) when `events` is not empty.
    pub maps: Vec<MapSpec>,
    /// Record formats: a record's first u64 indexes this table.
    pub events: Vec<EventFormat>,
    /// `strftime()` formats, indexed by [`crate::output::ValueType::Timestamp`].
    pub time_formats: Vec<String>,
    /// The program's `config = { ... }` settings.
    pub config: Config,
    /// Why a probe on several functions is one program per function where
    /// the kernel takes kprobe_multi links (the program's check with
    /// `func` as an address refused it: `probe` read, `func` used as a
    /// string), for `-v`; `None` when nothing fell back.
    pub multi_refused: Option<String>,
    /// Attach points written in a list with others (`kprobe:a,kprobe:b`):
    /// bpftrace leaves these out when the kernel lacks them, as
    /// `config.missing_probes` says; a probe of its own is an error.
    pub listed: Vec<AttachPoint>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub nanos: u64,
    pub block: TProbe,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledProbe {
    pub attach: AttachPoint,
    /// The bytecode, maps by symbolic name; `Display` is the disassembly.
    pub insns: Insns,
    /// What the kernel it was compiled for accepts (length, loops).
    pub rules: probes::check::Rules,
}

impl CompiledProbe {
    /// Bytes for `BPF_PROG_LOAD`, maps patched with `map_fd`'s fds and
    /// statically checked (`probes::check`).
    pub fn encode(&self, map_fd: impl Fn(&str) -> Option<i32>) -> Result<Vec<RawInsn>, String> {
        let raw = self.insns.encode(map_fd).map_err(|e| e.to_string())?;
        probes::check::check_with(&raw, self.rules).map_err(|e| format!("{}: {e}", self.attach))?;
        Ok(raw)
    }

    /// Helpers called, for the loader to check against the kernel.
    pub fn helpers(&self) -> Vec<Helper> {
        let mut out = Vec::new();
        for insn in self.insns.as_slice() {
            if let Insn::Call(h) = *insn
                && !out.contains(&h)
            {
                out.push(h);
            }
        }
        out
    }

    /// A program name for the kernel (15 bytes at most): `nt_` and the
    /// function or tracepoint name, cleaned.
    pub fn name(&self) -> String {
        let base = match &self.attach {
            AttachPoint::Tracepoint { name, .. } => name.clone(),
            AttachPoint::Syscall(lowered) => lowered.tracepoint.clone(),
            other => other.func(),
        };
        let clean: String = base
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(12)
            .collect();
        format!("nt_{clean}")
    }
}

/// Parse, check and compile `source`.
pub fn compile(source: &str, target: &Target) -> Result<Compiled, Error> {
    compile_with(source, target, Options::default())
}

/// [`compile`] with the user's [`Options`].
pub fn compile_with(source: &str, target: &Target, options: Options) -> Result<Compiled, Error> {
    let mut checked = check_program(source, target, &options.params, options.unsafe_allowed)?;
    settle_maps(&mut checked);
    let mut probes = Vec::new();
    for (attach, typed, _) in checked.probes {
        let pid = match attach {
            AttachPoint::Interval { .. } => None,
            _ => options.pid,
        };
        let insns = generate(&typed, &checked.compiled.maps, pid, &target.kernel)?;
        if insns.len() > target.kernel.max_insns {
            return Err(Error::whole(format!(
                "probe `{attach}` compiles to {} BPF instructions; this kernel accepts at most {} (4096 before 5.2)",
                insns.len(),
                target.kernel.max_insns
            )));
        }
        let rules = probes::check::Rules {
            max_insns: target.kernel.max_insns,
            loops: target.kernel.bounded_loops,
        };
        probes.push(CompiledProbe {
            attach,
            insns,
            rules,
        });
    }
    Ok(Compiled {
        probes,
        ..checked.compiled
    })
}

/// What the whole program decides of its maps: `@[func]`'s key as a
/// number ([`crate::func_keys`]), keyless aggregations in arrays
/// ([`crate::arrays`]).
fn settle_maps(checked: &mut Checked) {
    let Checked { probes, compiled } = checked;
    let mut blocks: Vec<&mut crate::typed::TProbe> = probes
        .iter_mut()
        .map(|(_, typed, _)| typed)
        .chain(compiled.begin.iter_mut())
        .chain(compiled.end.iter_mut())
        .chain(compiled.timers.iter_mut().map(|t| &mut t.block))
        .collect();
    crate::func_keys::number_constant_keys(&mut blocks, &mut compiled.maps);
    let blocks: Vec<&crate::typed::TProbe> = blocks.into_iter().map(|b| &*b).collect();
    crate::arrays::keyless_in_arrays(&blocks, &mut compiled.maps);
}

/// A program parsed and checked, before code generation: what runs in the
/// kernel (each attach point with its typed body and span), and the rest
/// of [`Compiled`] (no probes yet).
pub(crate) struct Checked {
    pub probes: Vec<(AttachPoint, crate::typed::TProbe, crate::diag::Span)>,
    pub compiled: Compiled,
}

/// Parse and check `source` with the positional parameters `params`: the
/// phases every back end shares. Where the kernel takes kprobe_multi links
/// a probe on several functions is one program for all of them, unless
/// the program only checks with one program per function (it reads
/// `probe`, or uses `func` where only a string will do): then every probe
/// is one per function, as on a kernel without them, and why is kept.
pub(crate) fn check_program(
    source: &str,
    target: &Target,
    params: &[String],
    unsafe_allowed: bool,
) -> Result<Checked, Error> {
    if !target.kernel.kprobe_multi {
        return check_program_as(source, target, params, unsafe_allowed, false);
    }
    match check_program_as(source, target, params, unsafe_allowed, true) {
        Ok(checked) => Ok(checked),
        Err(refused) => {
            let mut checked = check_program_as(source, target, params, unsafe_allowed, false)?;
            let several = checked
                .probes
                .iter()
                .filter(|(p, ..)| matches!(p, AttachPoint::Kprobe(_) | AttachPoint::Kretprobe(_)))
                .count()
                > 1;
            if several {
                checked.compiled.multi_refused = Some(refused.message);
            }
            Ok(checked)
        }
    }
}

/// [`check_program`], with probes on several functions grouped (`multi`)
/// or not.
fn check_program_as(
    source: &str,
    target: &Target,
    params: &[String],
    unsafe_allowed: bool,
    multi: bool,
) -> Result<Checked, Error> {
    let Source {
        program,
        config,
        types,
    } = read_source(
        source,
        target.fields.has_kernel_btf(),
        target.kernel,
        params,
    )?;
    let fields = Layered::new(target.fields, &types, target.kernel.abi.pointer_bytes);
    let target = &Target {
        fields: &fields,
        tracepoints: target.tracepoints,
        kernel: target.kernel,
    };
    let mut checker = Checker::new(target.fields, target.tracepoints, target.kernel);
    checker.str_len = config.max_strlen.unwrap_or(checker.str_len);
    checker.unsafe_allowed = unsafe_allowed;
    checker.maps = discover_maps(&program, target, checker.str_len, multi);
    check_probes(&program, &mut checker, config, target.tracepoints, multi).map_err(|e| {
        // A member of a script type that could not be laid out: say why.
        match fields.problem.take() {
            Some((key, why)) if e.message.contains(&format!("`{key}`")) => Error {
                message: format!("cannot place `{key}` (a type the script defines): {why}"),
                ..e
            },
            _ => e,
        }
    })
}

/// The program as [`crate::source::read`] reads it for `kernel`.
fn read_source(
    source: &str,
    have_btf: bool,
    kernel: Kernel,
    params: &[String],
) -> Result<Source, Error> {
    crate::source::read(
        source,
        ReadOptions {
            have_btf,
            params,
            pointer_bytes: kernel.abi.pointer_bytes,
        },
    )
}

fn check_probes(
    program: &Program,
    checker: &mut Checker,
    config: Config,
    kernel: &dyn TracepointSource,
    multi: bool,
) -> Result<Checked, Error> {
    let abi = checker.kernel.abi;
    let mut checked = Vec::new();
    let (mut begin, mut end, mut timers) = (Vec::new(), Vec::new(), Vec::new());
    let expansions = program
        .probes
        .iter()
        .map(|probe| expanded(probe, kernel, abi, multi))
        .collect::<Result<Vec<_>, Error>>()?;
    // Before checking each match's body: `kprobe:*` has tens of thousands.
    let total: usize = expansions
        .iter()
        .flatten()
        .map(|(_, point, _)| match point {
            AttachPoint::KprobeMulti { functions, .. } => functions.len(),
            _ => 1,
        })
        .sum();
    if total > MAX_PROBES {
        return Err(Error::whole(format!(
            "Can't attach to {total} probes because it exceeds the current limit of {MAX_PROBES} probes: narrow the wildcards"
        )));
    }
    for (probe, points) in program.probes.iter().zip(expansions) {
        for (attach, point, context) in points {
            crate::sampling::check_kernel(&point, checker.kernel.release, attach.span)?;
            let typed = checker.probe(probe, &point, context, attach.span)?;
            if context == Context::UserSpace {
                if let Some(p) = &probe.predicate {
                    return Err(Error::at(p.span, "BEGIN and END take no predicate"));
                }
                userspace::check(&typed, &checker.maps, true).map_err(|(span, what)| {
                    let span = if span == Span::default() {
                        probe.span
                    } else {
                        span
                    };
                    userspace::refusal(span, &what)
                })?;
                match point {
                    AttachPoint::Begin => begin.push(typed),
                    _ => end.push(typed),
                }
            } else if let (AttachPoint::Interval { nanos }, None) = (&point, &probe.predicate)
                && userspace::check(&typed, &checker.maps, false).is_ok()
            {
                timers.push(Timer {
                    nanos: *nanos,
                    block: typed,
                });
            } else {
                checked.push((point, typed, attach.span));
            }
        }
    }
    Ok(Checked {
        probes: checked,
        compiled: Compiled {
            probes: Vec::new(),
            begin,
            end,
            timers,
            maps: std::mem::take(&mut checker.maps),
            events: std::mem::take(&mut checker.events),
            time_formats: std::mem::take(&mut checker.time_formats),
            config,
            multi_refused: None,
            listed: listed(program, kernel, abi),
        },
    })
}

/// The attach points written in lists of several.
fn listed(
    program: &Program,
    kernel: &dyn TracepointSource,
    abi: &kernel_headers::pt_regs::Abi,
) -> Vec<AttachPoint> {
    program
        .probes
        .iter()
        .filter(|probe| probe.attach.len() > 1)
        .flat_map(|probe| {
            probe
                .attach
                .iter()
                .filter(|a| !is_wildcard(a))
                .filter_map(|a| points(a, kernel, abi).ok())
        })
        .flatten()
        .map(|(point, _)| point)
        .collect()
}

/// A probe's attach points, each wildcard expanded ([`crate::expand`]),
/// with the attach point each came from; with `multi`, its kernel
/// functions grouped into kprobe_multi programs.
fn expanded<'p>(
    probe: &'p crate::ast::Probe,
    kernel: &dyn TracepointSource,
    abi: &kernel_headers::pt_regs::Abi,
    multi: bool,
) -> Result<Vec<(&'p crate::ast::Attach, AttachPoint, Context)>, Error> {
    let points = crate::expand::list_points(&probe.attach, kernel, abi)?;
    Ok(if multi {
        crate::expand::group_multi(points)
    } else {
        points
    })
}

/// The maps every probe assigns, so that a probe may print, clear, delete
/// or read a map another probe, later in the text, assigns (as in
/// bpftrace). Errors are left to the real pass.
fn discover_maps(program: &Program, target: &Target, str_len: u32, multi: bool) -> Vec<MapSpec> {
    let mut checker = Checker::new(target.fields, target.tracepoints, target.kernel);
    checker.lenient = true;
    checker.str_len = str_len;
    // Twice: a probe reading a map assigned later needs it on the second round.
    for _ in 0..2 {
        for probe in &program.probes {
            let Ok(points) = expanded(probe, target.tracepoints, target.kernel.abi, multi) else {
                continue;
            };
            for (attach, point, context) in points {
                let _ = checker.probe(probe, &point, context, attach.span);
            }
        }
    }
    checker.maps
}

/// Every `struct.member` a program uses, sorted: what `offsets gen
/// --fields-from PROGRAM` must generate. Members are looked up as if every
/// one existed (a pointer-sized member of unknown type, so nested chains
/// need their casts, as they do against a format-1 profile). Tracepoint
/// arguments are not struct fields: every tracepoint is taken to exist, with
/// each `args->NAME` the program reads as an integer, so no tracefs is
/// needed.
pub fn fields_used(source: &str, kernel: Kernel) -> Result<Vec<String>, Error> {
    names_used(source, kernel).map(|used| used.fields)
}

/// [`fields_used`], and the enumerators the program names that neither the
/// script nor `kernel_headers::uapi` defines (BTF must give them): what a
/// field source must answer for the program.
pub fn names_used(source: &str, kernel: Kernel) -> Result<FieldsUsed, Error> {
    struct Nothing;
    impl FieldSource for Nothing {
        fn lookup(&self, _: &str, _: &str) -> Lookup {
            Lookup::Unknown
        }
    }
    let used = fields_used_with(source, kernel, &Nothing)?;
    match used.stopped {
        Some(e) => Err(e),
        None => Ok(used),
    }
}

/// What [`fields_used_with`] found: the members used, the enumerators
/// named, the kernel structs whose size the script's own types need (one
/// they embed), and the first error that stopped a probe's check early
/// (its later members are not listed).
pub struct FieldsUsed {
    pub fields: Vec<String>,
    pub enums: Vec<String>,
    pub structs: Vec<String>,
    pub stopped: Option<Error>,
}

/// [`fields_used`] with the members `known` answers (with their types, so
/// chains are followed), the others as if they existed, untyped. A chain
/// through an untyped member stops its probe's check: `offsets gen` adds
/// the fields found, regenerates, and asks again until nothing is new. The
/// members of types the script defines are the script's, not listed; the
/// kernel structs they lead to are.
pub fn fields_used_with(
    source: &str,
    kernel: Kernel,
    known: &dyn FieldSource,
) -> Result<FieldsUsed, Error> {
    /// What `known` answers, every other member (untyped) and constant (1,
    /// so that no division is by zero); what is asked for is recorded.
    struct KnownOrAnything<'a> {
        known: &'a dyn FieldSource,
        fields: std::cell::RefCell<std::collections::BTreeSet<String>>,
        enums: std::cell::RefCell<std::collections::BTreeSet<String>>,
        structs: std::cell::RefCell<std::collections::BTreeSet<String>>,
    }
    impl FieldSource for KnownOrAnything<'_> {
        fn lookup(&self, strukt: &str, member: &str) -> Lookup {
            self.fields
                .borrow_mut()
                .insert(format!("{strukt}.{member}"));
            Lookup::Found(
                self.known
                    .field(strukt, member)
                    .unwrap_or(FieldInfo::untyped(0, 8)),
            )
        }
        fn struct_layout(&self, strukt: &str) -> Option<(u32, u32)> {
            self.structs.borrow_mut().insert(strukt.to_string());
            self.known.struct_layout(strukt).or(Some((8, 8)))
        }
        fn enum_value(&self, name: &str) -> Option<i64> {
            if let Some(value) = kernel_headers::uapi::constant(name) {
                return Some(value);
            }
            self.enums.borrow_mut().insert(name.to_string());
            Some(self.known.enum_value(name).unwrap_or(1))
        }
    }
    let anything = KnownOrAnything {
        known,
        fields: Default::default(),
        enums: Default::default(),
        structs: Default::default(),
    };
    let Source {
        program,
        config,
        types,
    } = read_source(source, false, kernel, &[])?;
    let mut fields = Layered::new(&anything, &types, kernel.abi.pointer_bytes);
    fields.script_first = true;
    let tracepoints = AnyTracepoint {
        args: tracepoint_args(source),
        abi: kernel.abi,
    };
    let target = Target {
        fields: &fields,
        tracepoints: &tracepoints,
        kernel,
    };
    let mut checker = Checker::new(&fields, &tracepoints, kernel);
    checker.str_len = config.max_strlen.unwrap_or(checker.str_len);
    checker.maps = discover_maps(&program, &target, checker.str_len, false);
    let mut stopped = None;
    for probe in &program.probes {
        for (attach, point, context) in expanded(probe, &tracepoints, kernel.abi, false)? {
            if let Err(e) = checker.probe(probe, &point, context, attach.span) {
                stopped.get_or_insert(e);
            }
        }
    }
    drop(checker);
    Ok(FieldsUsed {
        fields: anything.fields.into_inner().into_iter().collect(),
        enums: anything.enums.into_inner().into_iter().collect(),
        structs: anything.structs.into_inner().into_iter().collect(),
        stopped,
    })
}

/// Every tracepoint: a syscall's typed from the architecture's table,
/// any other with the given argument names as 8-byte integers.
struct AnyTracepoint {
    args: Vec<String>,
    abi: &'static kernel_headers::pt_regs::Abi,
}

impl TracepointSource for AnyTracepoint {
    /// A wildcard stands for itself: every probe exists.
    fn matching(&self, pattern: &str) -> Option<Vec<String>> {
        Some(vec![pattern.to_string()])
    }

    fn format(&self, category: &str, name: &str) -> Option<TracepointFormat> {
        if category == "syscalls"
            && let Some(format) = crate::syscalls::table_format(name, self.abi)
        {
            return Some(format);
        }
        let fields = self
            .args
            .iter()
            .zip(0u32..)
            .map(|(name, i)| TracepointField {
                name: name.clone(),
                c_type: CType::parse("unsigned long", 8),
                offset: 8 + 8 * i,
                size: 8,
                data_loc: false,
            })
            .collect();
        Some(TracepointFormat { id: None, fields })
    }
}

/// The names after `args->` (or `args.`) in `source`. A lexing error ends
/// the scan: the parser reports it.
fn tracepoint_args(source: &str) -> Vec<String> {
    let mut lexer = crate::lexer::Lexer::new(source);
    let mut tokens = Vec::new();
    while let Ok((tok, _)) = lexer.next_token() {
        if tok == Tok::Eof {
            break;
        }
        tokens.push(tok);
    }
    let mut names: Vec<String> = tokens
        .windows(3)
        .filter_map(|w| match w {
            [Tok::Ident(args), Tok::Punct("->" | "."), Tok::Ident(name)] if args == "args" => {
                Some(name.clone())
            }
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}
