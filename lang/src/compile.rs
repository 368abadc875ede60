//! The whole pipeline, and what it hands the loader.

use kernel_headers::bpf::{Helper, RawInsn};
use probes::asm::{Insn, Insns};

use crate::ast::Program;
use crate::check::Checker;
use crate::codegen::generate;
use crate::diag::Error;
use crate::fields::CType;
use crate::fields::{FieldInfo, FieldSource};
use crate::kernel::Kernel;
use crate::lexer::Tok;
use crate::output::{Event, EventFormat, MapSpec, Value};
use crate::providers::{AttachPoint, Context, resolve};
use crate::tracepoint::{TracepointField, TracepointFormat, TracepointSource};
use crate::typed::{TKind, TStmt};

/// What the program is checked and compiled against.
pub struct Target<'a> {
    pub fields: &'a dyn FieldSource,
    pub tracepoints: &'a dyn TracepointSource,
    pub kernel: Kernel,
}

/// What the user asked beyond the program text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Only this process's events (`-p PID`): kprobes, kretprobes and
    /// tracepoints check the current thread group first. Intervals and
    /// BEGIN/END are not filtered.
    pub pid: Option<u32>,
}

/// A compiled program, ready for the loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// One BPF program per attach point (a probe list gives several).
    pub probes: Vec<CompiledProbe>,
    /// BEGIN's and END's bodies, evaluated here: the loader handles these
    /// like decoded records, before attaching and after detaching.
    pub begin: Vec<Event>,
    pub end: Vec<Event>,
    /// `interval` probes whose bodies need no BPF (print, clear, exit,
    /// printf of constants: the usual `interval:s:1 { print(@); clear(@); }`):
    /// the loader runs them on a timer, which works on every kernel.
    /// Intervals that read kernel state are BPF programs in `probes`.
    pub timers: Vec<Timer>,
    /// Maps to create, by symbolic name; plus [`crate::output::EVENTS_MAP`]
    /// (a perf event array) when `events` is not empty.
    pub maps: Vec<MapSpec>,
    /// Record formats: a record's first u64 indexes this table.
    pub events: Vec<EventFormat>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub nanos: u64,
    pub events: Vec<Event>,
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
    let checked = check_program(source, target)?;
    let mut probes = Vec::new();
    for (attach, typed, _) in checked.probes {
        let pid = match attach {
            AttachPoint::Interval { .. } => None,
            _ => options.pid,
        };
        let insns = generate(&typed, &checked.compiled.maps, target.kernel, pid)?;
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

/// A program parsed and checked, before code generation: what runs in the
/// kernel (each attach point with its typed body and span), and the rest
/// of [`Compiled`] (no probes yet).
pub(crate) struct Checked {
    pub probes: Vec<(AttachPoint, crate::typed::TProbe, crate::diag::Span)>,
    pub compiled: Compiled,
}

/// Parse and check `source`: the phases every back end shares.
pub(crate) fn check_program(source: &str, target: &Target) -> Result<Checked, Error> {
    let program = crate::parser::parse(source)?;
    let mut checker = Checker::new(target.fields, target.tracepoints, target.kernel);
    checker.maps = discover_maps(&program, target);
    let mut checked = Vec::new();
    let (mut begin, mut end, mut timers) = (Vec::new(), Vec::new(), Vec::new());
    for probe in &program.probes {
        for attach in &probe.attach {
            let (point, context) = resolve(attach)?;
            let typed = checker.probe(probe, &point, context, attach.span)?;
            if context == Context::UserSpace {
                if let Some(p) = &probe.predicate {
                    return Err(Error::at(p.span, "BEGIN and END take no predicate"));
                }
                let events = user_space(&typed.body, &checker.events, probe)?;
                match point {
                    AttachPoint::Begin => begin.extend(events),
                    _ => end.extend(events),
                }
            } else if let (AttachPoint::Interval { nanos }, None) = (&point, &probe.predicate)
                && let Ok(events) = user_space(&typed.body, &checker.events, probe)
            {
                timers.push(Timer {
                    nanos: *nanos,
                    events,
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
            maps: checker.maps,
            events: checker.events,
        },
    })
}

/// The maps every probe assigns, so that a probe may print, clear, delete
/// or read a map another probe, later in the text, assigns (as in
/// bpftrace). Errors are left to the real pass.
fn discover_maps(program: &Program, target: &Target) -> Vec<MapSpec> {
    let mut checker = Checker::new(target.fields, target.tracepoints, target.kernel);
    checker.lenient = true;
    // Twice: a probe reading a map assigned later needs it on the second round.
    for _ in 0..2 {
        for probe in &program.probes {
            for attach in &probe.attach {
                if let Ok((point, context)) = resolve(attach) {
                    let _ = checker.probe(probe, &point, context, attach.span);
                }
            }
        }
    }
    checker.maps
}

/// BEGIN and END run in user space (nothing to attach to on 4.14 without
/// uprobes on the tracer itself): printf of constants, print, clear, exit.
fn user_space(
    body: &[TStmt],
    events: &[EventFormat],
    probe: &crate::ast::Probe,
) -> Result<Vec<Event>, Error> {
    let refuse = |span| {
        Error::at(
            span,
            "nobtf runs BEGIN and END in user space: they may only printf constants, print(@m), clear(@m) and exit()",
        )
    };
    let mut out = Vec::new();
    for stmt in body {
        let TStmt::Emit { event, args, span } = stmt else {
            return Err(refuse(probe.span));
        };
        let mut values = Vec::new();
        for arg in args {
            values.push(match &arg.kind {
                TKind::Const(n) => Value::Uint(*n),
                TKind::ConstStr(s) => Value::Str(s.clone().into_bytes()),
                _ => return Err(refuse(arg.span)),
            });
        }
        out.push(match &events[*event] {
            EventFormat::Printf { format, args } => {
                let values = values
                    .into_iter()
                    .zip(args)
                    .map(|(v, slot)| match (v, slot.ty) {
                        (Value::Uint(n), crate::output::ValueType::Int { signed: true }) => {
                            Value::Int(n as i64)
                        }
                        (v, _) => v,
                    })
                    .collect();
                Event::Printf {
                    format: format.clone(),
                    args: values,
                }
            }
            EventFormat::Print { map } => Event::Print { map: map.clone() },
            EventFormat::Clear { map } => Event::Clear { map: map.clone() },
            EventFormat::Exit => Event::Exit,
        });
        let _ = span;
    }
    Ok(out)
}

/// Every `struct.member` a program uses, sorted: what `offsets gen
/// --fields-from PROGRAM` must generate. Members are looked up as if every
/// one existed (a pointer-sized member of unknown type, so nested chains
/// need their casts, as they do against a profile). Tracepoint arguments
/// are not struct fields: every tracepoint is taken to exist, with each
/// `args->NAME` the program reads as an integer, so no tracefs is needed.
pub fn fields_used(source: &str, kernel: Kernel) -> Result<Vec<String>, Error> {
    struct Anything;
    impl FieldSource for Anything {
        fn field(&self, _: &str, _: &str) -> Option<FieldInfo> {
            Some(FieldInfo {
                offset: 0,
                size: 8,
                c_type: None,
            })
        }
    }
    let program: Program = crate::parser::parse(source)?;
    let tracepoints = AnyTracepoint(tracepoint_args(source));
    let target = Target {
        fields: &Anything,
        tracepoints: &tracepoints,
        kernel,
    };
    let mut checker = Checker::new(&Anything, &tracepoints, kernel);
    checker.maps = discover_maps(&program, &target);
    for probe in &program.probes {
        for attach in &probe.attach {
            let (point, context) = resolve(attach)?;
            checker.probe(probe, &point, context, attach.span)?;
        }
    }
    Ok(checker.used_fields.into_iter().collect())
}

/// Every tracepoint, each with the given argument names as 8-byte integers.
struct AnyTracepoint(Vec<String>);

impl TracepointSource for AnyTracepoint {
    fn format(&self, _: &str, _: &str) -> Option<TracepointFormat> {
        let fields = self
            .0
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
