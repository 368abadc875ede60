//! A `nobtf trace` program that needs no BPF, as tracefs kprobe events: each
//! kprobe/kretprobe becomes an event whose fetch arguments are the values
//! its printf statements show (arguments, `retval`, struct members through
//! nested `+OFF(...)`, strings, `$comm`), its predicate an event filter;
//! each trace-pipe line of the event turns back into the records the BPF
//! programs would have written, for the same printers ([`crate::report`]).
//! Pure: the loader defines the events and reads the lines.
//!
//! What tracefs cannot do is refused, naming the construct and its place:
//! maps and aggregations, arithmetic, `?:`, tracepoint and interval probes
//! that read kernel state, `pid` (the trace line holds the thread id, not
//! the thread group's), `uid`, `gid`, `nsecs` (the line has microseconds).
//! BEGIN, END and timer bodies run in user space as with BPF.

use kernel_headers::bpf::Helper;
use kernel_headers::kprobe::ProbeKind;
use kernel_headers::pt_regs::Abi;

use crate::Compiled;
use crate::ast::{BinOp, Jump, UnOp};
use crate::compile::{Target, check_program};
use crate::diag::{Error, Span};
use crate::output::{self, Event, EventFormat, ValueType};
use crate::providers::AttachPoint;
use crate::tracefs::{self, ArgsError, Fetch, FetchArg, FetchType, PipeLine, ProbeEvent, Syntax};
use crate::typed::{Builtin, TExpr, TKind, TProbe, TStmt};

/// The program as tracefs events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracefsProgram {
    pub probes: Vec<EventProbe>,
    /// What the printers take, as from [`crate::compile`]: the printf
    /// formats, BEGIN, END and timers; no BPF probes and no maps.
    pub compiled: Compiled,
    /// The syscall tracepoints this kernel lacks, as the kprobes of
    /// `probes` that stand for them.
    pub lowered: Vec<crate::syscalls::Lowered>,
}

/// One attach point's event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventProbe {
    pub event: ProbeEvent,
    /// The predicate (and `-p PID`) as an event filter.
    pub filter: Option<String>,
    /// Per line of the event, in order.
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Record `event` of [`Compiled::events`] with these values.
    Printf {
        event: usize,
        args: Vec<Source>,
    },
    Exit,
}

/// Where a printed value comes from in a trace line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The event's fetch argument of this index.
    Fetched(usize),
    /// Memory of either address space (BPF's compatible readers on x86
    /// after 5.5 read whichever holds the address): fetched as kernel
    /// memory (the first index) and as user memory, the one that did not
    /// fault.
    Either(usize, usize),
    /// The line's pid column: the thread id.
    Tid,
    /// The line's CPU column: the CPU the probe ran on.
    Cpu,
    /// `$comm`, the event's last fetch argument.
    CommFetched,
    /// The line's comm column (where the kernel has no `$comm`).
    CommColumn,
    Int(u64),
    Str(Vec<u8>),
    /// `(u32)x`: the low bytes, extended by `signed`.
    Trunc {
        value: Box<Source>,
        bytes: u8,
        signed: bool,
    },
    /// A string kept to at most `bytes`, as the BPF buffer holds it.
    Limit {
        value: Box<Source>,
        bytes: usize,
    },
}

/// A construct tracefs cannot run: what, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub what: String,
    pub span: Span,
}

impl Refusal {
    /// `the map `@x` at 1:20`.
    pub fn render(&self, source: &str) -> String {
        let (line, col) = self.span.line_col(source);
        format!("{} at {line}:{col}", self.what)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranslateError {
    /// The program is wrong whatever the back end: the checker's error.
    Program(Error),
    /// The program is right but needs BPF.
    NeedsBpf(Refusal),
}

impl From<Error> for TranslateError {
    fn from(e: Error) -> TranslateError {
        TranslateError::Program(e)
    }
}

/// Parse, check and translate `source` to tracefs events. `event_name`
/// names each event (the loader's unique, parseable names); `group` is
/// their group; `pids` (the threads of `-p PID`) filter every event;
/// `params` are the positional parameters.
pub fn translate(
    source: &str,
    target: &Target,
    params: &[String],
    syntax: Syntax,
    group: &str,
    event_name: &mut dyn FnMut(ProbeKind, &str) -> String,
    pids: &[u32],
) -> Result<TracefsProgram, TranslateError> {
    // The unsafe functions are BPF-only: refused below by name, with or
    // without --unsafe.
    let checked = check_program(source, target, params, true)?;
    let mut probes = Vec::new();
    let mut lowered = Vec::new();
    for (point, typed, attach_span) in &checked.probes {
        if let AttachPoint::Syscall(syscall) = point {
            lowered.push(syscall.clone());
        }
        let (kind, function) = match point {
            AttachPoint::Kprobe(f) => (ProbeKind::Kprobe, f),
            AttachPoint::Kretprobe(f) => (ProbeKind::Kretprobe, f),
            AttachPoint::Syscall(lowered) if lowered.exit => {
                (ProbeKind::Kretprobe, &lowered.function)
            }
            AttachPoint::Syscall(lowered) => (ProbeKind::Kprobe, &lowered.function),
            other => {
                return Err(TranslateError::NeedsBpf(Refusal {
                    what: format!("the probe `{other}` (it runs a BPF program)"),
                    span: *attach_span,
                }));
            }
        };
        let mut t = Translator {
            abi: target.kernel.abi,
            syntax,
            kind,
            args: Vec::new(),
            comm: false,
            vars: Vec::new(),
            maps: &checked.compiled.maps,
            events: &checked.compiled.events,
        };
        let (filter, actions) = t.probe(typed)?;
        let filter = match (tracefs::pid_filter(pids), filter) {
            (p, f) if p.is_empty() => f,
            (p, None) => Some(p),
            (p, Some(f)) => Some(format!("({p}) && ({f})")),
        };
        // `$comm` last: 4.14 stores it without its NUL.
        let mut args = t.args;
        if t.comm {
            args.push(FetchArg {
                name: COMM.into(),
                fetch: Fetch::Comm,
                ty: FetchType::String,
            });
        }
        probes.push(EventProbe {
            event: ProbeEvent {
                kind,
                group: group.into(),
                name: event_name(kind, function),
                function: function.clone(),
                args,
            },
            filter,
            actions,
        });
    }
    Ok(TracefsProgram {
        probes,
        compiled: checked.compiled,
        lowered,
    })
}

/// The fetch argument fetching `$comm`.
const COMM: &str = "comm";

fn arg_name(i: usize) -> String {
    format!("v{i}")
}

struct Translator<'a> {
    abi: &'static Abi,
    syntax: Syntax,
    kind: ProbeKind,
    /// Fetch arguments, `$comm` aside.
    args: Vec<FetchArg>,
    /// Whether `$comm` is fetched (last).
    comm: bool,
    /// Each scratch variable's expression so far, its own variables
    /// replaced (the checker saw to it that none is read before it is
    /// assigned): reads happen when the probe fires either way.
    vars: Vec<Option<TExpr>>,
    maps: &'a [output::MapSpec],
    events: &'a [EventFormat],
}

fn refuse<T>(what: impl Into<String>, span: Span) -> Result<T, TranslateError> {
    Err(TranslateError::NeedsBpf(Refusal {
        what: what.into(),
        span,
    }))
}

/// An integer fetch as it is compared in a filter: the field and its type.
struct Field {
    name: String,
    bytes: u8,
    signed: bool,
}

impl Translator<'_> {
    fn probe(&mut self, typed: &TProbe) -> Result<(Option<String>, Vec<Action>), TranslateError> {
        self.vars = vec![None; typed.vars.len()];
        let filter = typed
            .predicate
            .as_ref()
            .map(|p| self.filter(p))
            .transpose()?;
        let mut actions = Vec::new();
        for stmt in &typed.body {
            match stmt {
                TStmt::AssignVar { slot, value } => {
                    let value = self.substitute(value);
                    self.vars[*slot] = Some(value);
                }
                TStmt::MapAssign { map, span, .. }
                | TStmt::MapAgg { map, span, .. }
                | TStmt::Delete { map, span, .. } => {
                    return refuse(format!("the map `{}`", self.maps[*map].name), *span);
                }
                TStmt::Emit { event, args, span } => {
                    actions.push(self.emit(*event, args, *span)?);
                }
                // A line is printed whenever the probe fires: no branches.
                TStmt::If { span, .. } => return refuse("the statement `if`", *span),
                TStmt::While { span, .. } => return refuse("the loop `while`", *span),
                // join() is one record per argument, in an unroll(1).
                TStmt::Unroll { body, span, .. } => {
                    let join = matches!(body.first(), Some(TStmt::Emit { event, .. })
                        if matches!(self.events[*event], EventFormat::JoinArg { .. }));
                    let what = if join {
                        "`join()`"
                    } else {
                        "the loop `unroll`"
                    };
                    return refuse(what, *span);
                }
                TStmt::Jump { jump, span } => {
                    let word = match jump {
                        Jump::Return => "return",
                        Jump::Break => "break",
                        Jump::Continue => "continue",
                    };
                    return refuse(format!("the statement `{word}`"), *span);
                }
            }
        }
        Ok((filter, actions))
    }

    fn emit(&mut self, event: usize, args: &[TExpr], span: Span) -> Result<Action, TranslateError> {
        match &self.events[event] {
            EventFormat::Printf { .. } => {
                let mut sources = Vec::new();
                for arg in args {
                    sources.push(self.value(arg)?);
                }
                Ok(Action::Printf {
                    event,
                    args: sources,
                })
            }
            EventFormat::Exit => Ok(Action::Exit),
            EventFormat::Print { map }
            | EventFormat::PrintTop { map, .. }
            | EventFormat::Clear { map } => refuse(format!("the map `{map}`"), span),
            EventFormat::Time { .. } => refuse("`time()`", span),
            EventFormat::Value { .. } => refuse("`print()` of a value", span),
            EventFormat::Cat { .. } => refuse("`cat()`", span),
            EventFormat::System { .. } => refuse("`system()`", span),
            EventFormat::JoinArg { .. } => refuse("`join()`", span),
        }
    }

    /// `e` with each variable replaced by its expression now.
    fn substitute(&self, e: &TExpr) -> TExpr {
        if let TKind::Var(slot) = e.kind
            && let Some(value) = &self.vars[slot]
        {
            return value.clone();
        }
        let mut out = e.clone();
        for child in out.kind.children_mut() {
            *child = self.substitute(child);
        }
        out
    }

    /// The fetch argument for `fetch` as `ty`, added once: its index.
    /// Whether BPF reads this memory with a reader of either address space
    /// where the kernel's fetches tell them apart (5.5+, `ustring`).
    fn reads_either(&self, user: bool, helper: Helper) -> bool {
        !user && self.syntax.ustring && matches!(helper, Helper::ProbeRead | Helper::ProbeReadStr)
    }

    fn fetched(&mut self, fetch: Fetch, ty: FetchType) -> usize {
        if let Some(i) = self
            .args
            .iter()
            .position(|a| a.fetch == fetch && a.ty == ty)
        {
            return i;
        }
        self.args.push(FetchArg {
            name: arg_name(self.args.len()),
            fetch,
            ty,
        });
        self.args.len() - 1
    }

    /// A register the context load at `off` reads.
    fn register(&self, e: &TExpr, off: u32) -> Result<Fetch, TranslateError> {
        if let Some(i) = self.abi.args.iter().position(|&(_, o)| o == off as usize) {
            return Ok(Fetch::Arg(i as u8 + 1));
        }
        if self.kind == ProbeKind::Kretprobe && self.abi.ret.1 == off as usize {
            return Ok(Fetch::Retval);
        }
        refuse("this context read", e.span)
    }

    /// The fetch yielding the address `e` computes, and an offset to add.
    fn address(&mut self, e: &TExpr) -> Result<(Fetch, i64), TranslateError> {
        match &e.kind {
            TKind::CtxLoad { off, bytes, .. } if *bytes == self.abi.pointer_bytes => {
                Ok((self.register(e, *off)?, 0))
            }
            TKind::Read {
                addr,
                off,
                bytes,
                user,
                ..
            } if *bytes == self.abi.pointer_bytes => {
                let (of, extra) = self.address(addr)?;
                Ok((deref(of, extra + i64::from(*off), *user), 0))
            }
            TKind::Offset { base, off } => {
                let (of, extra) = self.address(base)?;
                Ok((of, extra + i64::from(*off)))
            }
            TKind::Var(slot) => match self.vars[*slot].clone() {
                Some(value) => self.address(&value),
                None => self.unsupported(e),
            },
            TKind::CtxLoad { .. }
            | TKind::Read { .. }
            | TKind::Const(_)
            | TKind::ConstStr(_)
            | TKind::CtxAddr { .. }
            | TKind::DataLoc { .. }
            | TKind::Builtin(_)
            | TKind::Comm { .. }
            | TKind::MapGet { .. }
            | TKind::Unary(..)
            | TKind::Binary { .. }
            | TKind::Ternary(..)
            | TKind::StrEq { .. }
            | TKind::StrRead { .. }
            | TKind::Bswap { .. }
            | TKind::Ntop { .. }
            | TKind::Usym(_)
            | TKind::StrCmp { .. }
            | TKind::StrContains { .. }
            | TKind::Tuple(_)
            | TKind::Buf { .. }
            | TKind::TupleField { .. }
            | TKind::HelperValue(_)
            | TKind::HelperWith { .. }
            | TKind::StackId { .. }
            | TKind::Trunc { .. } => self.unsupported(e),
        }
    }

    /// Where a value printed from `e` comes from.
    fn value(&mut self, e: &TExpr) -> Result<Source, TranslateError> {
        Ok(match &e.kind {
            TKind::Const(n) => Source::Int(*n),
            TKind::ConstStr(s) => Source::Str(s.as_bytes().to_vec()),
            TKind::CtxLoad { off, bytes, signed } => {
                let fetch = self.register(e, *off)?;
                Source::Fetched(self.fetched(fetch, int_type(*bytes, *signed)))
            }
            // The kernel's fetch reads the address space the checker chose;
            // its helper is BPF's.
            TKind::Read {
                addr,
                off,
                bytes,
                signed,
                user,
                helper,
            } => {
                let (of, extra) = self.address(addr)?;
                let ty = int_type(*bytes, *signed);
                let offset = extra + i64::from(*off);
                if self.reads_either(*user, *helper) {
                    let kernel = self.fetched(deref(of.clone(), offset, false), ty);
                    Source::Either(kernel, self.fetched(deref(of, offset, true), ty))
                } else {
                    Source::Fetched(self.fetched(deref(of, offset, *user), ty))
                }
            }
            TKind::StrRead {
                addr,
                len,
                user,
                helper,
            } => {
                let (of, extra) = self.address(addr)?;
                // The string at the address (the last dereference is the
                // kernel's string read).
                let fetch = Fetch::Deref {
                    offset: extra,
                    of: Box::new(of),
                };
                let value = if self.reads_either(*user, *helper) {
                    let kernel = self.fetched(fetch.clone(), FetchType::String);
                    Source::Either(kernel, self.fetched(fetch, FetchType::UserString))
                } else if *user {
                    Source::Fetched(self.fetched(fetch, FetchType::UserString))
                } else {
                    Source::Fetched(self.fetched(fetch, FetchType::String))
                };
                Source::Limit {
                    value: Box::new(value),
                    bytes: (*len as usize).saturating_sub(1),
                }
            }
            TKind::Comm { .. } if self.syntax.comm => {
                self.comm = true;
                Source::Limit {
                    value: Box::new(Source::CommFetched),
                    bytes: crate::check::COMM_LEN as usize - 1,
                }
            }
            TKind::Comm { .. } => Source::CommColumn,
            TKind::Builtin(Builtin::Tid) => Source::Tid,
            TKind::Builtin(Builtin::Cpu) => Source::Cpu,
            TKind::Trunc {
                value,
                bytes,
                signed,
            } => Source::Trunc {
                value: Box::new(self.value(value)?),
                bytes: *bytes,
                signed: *signed,
            },
            TKind::Var(slot) => match self.vars[*slot].clone() {
                Some(value) => self.value(&value)?,
                None => return self.unsupported(e),
            },
            TKind::Builtin(
                Builtin::Pid | Builtin::Uid | Builtin::Gid | Builtin::Nsecs | Builtin::FuncIp,
            )
            | TKind::CtxAddr { .. }
            | TKind::DataLoc { .. }
            | TKind::MapGet { .. }
            | TKind::Unary(..)
            | TKind::Binary { .. }
            | TKind::Ternary(..)
            | TKind::StrEq { .. }
            | TKind::Bswap { .. }
            | TKind::Ntop { .. }
            | TKind::Usym(_)
            | TKind::StrCmp { .. }
            | TKind::StrContains { .. }
            | TKind::Tuple(_)
            | TKind::Buf { .. }
            | TKind::TupleField { .. }
            | TKind::HelperValue(_)
            | TKind::HelperWith { .. }
            | TKind::StackId { .. }
            | TKind::Offset { .. } => return self.unsupported(e),
        })
    }

    /// What the refusal of `e` calls it.
    fn unsupported<T>(&self, e: &TExpr) -> Result<T, TranslateError> {
        let what = match &e.kind {
            TKind::Builtin(Builtin::Pid) => {
                "`pid` (the thread group id: a trace line has only the thread id; `tid` works)"
                    .to_string()
            }
            TKind::Builtin(Builtin::Nsecs) => {
                "`nsecs` (a trace line's time has microseconds)".into()
            }
            TKind::Builtin(b) => format!("`{}`", format!("{b:?}").to_lowercase()),
            TKind::MapGet { map, .. } => format!("the map `{}`", self.maps[*map].name),
            TKind::Binary { op, .. } => format!("the operator `{}`", op_text(*op)),
            TKind::Unary(op, _) => format!(
                "the operator `{}`",
                match op {
                    UnOp::Not => "!",
                    UnOp::Neg => "-",
                    UnOp::BitNot => "~",
                }
            ),
            TKind::Ternary(..) => "the operator `?:`".into(),
            TKind::StrEq { .. } => "a string comparison outside a predicate".into(),
            TKind::CtxAddr { .. } | TKind::DataLoc { .. } => "a tracepoint field".into(),
            TKind::Var(_) => "this variable".into(),
            TKind::Offset { .. } => "a member's address".into(),
            TKind::Bswap { .. } => "the function `bswap`".into(),
            TKind::Ntop { .. } => "the function `ntop`".into(),
            TKind::Usym(_) => "the function `usym`".into(),
            TKind::StrCmp { .. } => "a comparison of two strings".into(),
            TKind::StrContains { .. } => "the function `strcontains`".into(),
            TKind::Tuple(_) | TKind::TupleField { .. } => "a tuple".into(),
            TKind::HelperValue(helper) | TKind::HelperWith { helper, .. } => {
                format!("`{}` (a BPF helper)", helper.name())
            }
            TKind::StackId { user: false, .. } => "`kstack` (a BPF stack map)".into(),
            TKind::StackId { user: true, .. } => "`ustack` (a BPF stack map)".into(),
            TKind::Buf { .. } => "`buf()`".into(),
            TKind::Const(_)
            | TKind::ConstStr(_)
            | TKind::CtxLoad { .. }
            | TKind::Comm { .. }
            | TKind::Read { .. }
            | TKind::StrRead { .. }
            | TKind::Trunc { .. } => "this expression".into(),
        };
        refuse(what, e.span)
    }

    /// The predicate as an event filter.
    fn filter(&mut self, e: &TExpr) -> Result<String, TranslateError> {
        match &e.kind {
            TKind::Binary {
                op: op @ (BinOp::LogAnd | BinOp::LogOr),
                left: l,
                right: r,
                ..
            } => Ok(format!(
                "({}) {} ({})",
                self.filter(l)?,
                op_text(*op),
                self.filter(r)?
            )),
            TKind::Binary {
                op: op @ (BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge),
                signed: bpf_signed,
                left: l,
                right: r,
            } => {
                let (field, op, constant) = match (constant(r), constant(l)) {
                    (Some(c), _) => (l, *op, c),
                    (None, Some(c)) => (r, flip(*op), c),
                    (None, None) => {
                        return refuse(
                            format!(
                                "the comparison `{}` of two fetched values (an event filter compares a value with a constant)",
                                op_text(*op)
                            ),
                            e.span,
                        );
                    }
                };
                // The comparison as the BPF program makes it: the checker's sign.
                let bpf_signed = *bpf_signed;
                let f = self.field(field)?;
                // The kernel compares the field at its width and sign: the
                // same answer when the constant is one of the field's
                // values and, for an order, the signs agree.
                let fits = if f.signed {
                    let v = constant as i64;
                    let bits = u32::from(f.bytes) * 8;
                    bits >= 64 || (v >= -(1i64 << (bits - 1)) && v < (1i64 << (bits - 1)))
                } else {
                    let bits = u32::from(f.bytes) * 8;
                    bits >= 64 || constant < (1u64 << bits)
                };
                let ordered = !matches!(op, BinOp::Eq | BinOp::Ne);
                if !fits || (ordered && bpf_signed != f.signed) {
                    return refuse(
                        format!(
                            "the comparison `{}` (the event filter would compare at the field's width and sign, not as BPF does)",
                            op_text(op)
                        ),
                        e.span,
                    );
                }
                let value = if f.signed {
                    (constant as i64).to_string()
                } else {
                    constant.to_string()
                };
                Ok(format!("{} {} {value}", f.name, op_text(op)))
            }
            TKind::StrEq {
                value,
                literal,
                negate,
            } => {
                if literal.contains(['"', '\\', '*', '?', '[']) {
                    return refuse(
                        "a string literal with quotes, backslashes or glob characters in a predicate",
                        e.span,
                    );
                }
                let name = match self.value(value)? {
                    Source::Limit {
                        value: inner,
                        bytes,
                    } => match *inner {
                        // Longer than the BPF buffer holds: never equal there.
                        Source::Fetched(_) if literal.len() > bytes => {
                            return refuse("a string literal longer than its buffer", e.span);
                        }
                        Source::Fetched(i) => arg_name(i),
                        Source::CommFetched => COMM.to_string(),
                        _ => return refuse("this string in a predicate", value.span),
                    },
                    Source::CommColumn => {
                        return refuse(
                            "`comm` in a predicate (this kernel's kprobe events have no `$comm`)",
                            value.span,
                        );
                    }
                    _ => return refuse("this string in a predicate", value.span),
                };
                Ok(format!(
                    "{name} {} \"{literal}\"",
                    if *negate { "!=" } else { "==" }
                ))
            }
            // A bare value: true when not zero.
            TKind::Binary { .. }
            | TKind::Const(_)
            | TKind::ConstStr(_)
            | TKind::CtxLoad { .. }
            | TKind::CtxAddr { .. }
            | TKind::DataLoc { .. }
            | TKind::Builtin(_)
            | TKind::Comm { .. }
            | TKind::Var(_)
            | TKind::MapGet { .. }
            | TKind::Unary(..)
            | TKind::Ternary(..)
            | TKind::Read { .. }
            | TKind::Offset { .. }
            | TKind::StrRead { .. }
            | TKind::Bswap { .. }
            | TKind::Ntop { .. }
            | TKind::Usym(_)
            | TKind::StrCmp { .. }
            | TKind::StrContains { .. }
            | TKind::Tuple(_)
            | TKind::Buf { .. }
            | TKind::TupleField { .. }
            | TKind::HelperValue(_)
            | TKind::HelperWith { .. }
            | TKind::StackId { .. }
            | TKind::Trunc { .. } => {
                let f = self.field(e)?;
                Ok(format!("{} != 0", f.name))
            }
        }
    }

    /// An integer the filter can name: a fetch argument, or `common_pid`.
    fn field(&mut self, e: &TExpr) -> Result<Field, TranslateError> {
        match self.value(e)? {
            Source::Fetched(i) => {
                let arg = self.args[i].clone();
                match arg.ty {
                    FetchType::Signed(b) => Ok(Field {
                        name: arg.name,
                        bytes: b,
                        signed: true,
                    }),
                    FetchType::Unsigned(b) => Ok(Field {
                        name: arg.name,
                        bytes: b,
                        signed: false,
                    }),
                    _ => refuse("a string compared as an integer", e.span),
                }
            }
            // `common_pid` is an `int`; a thread id is never negative.
            Source::Tid => Ok(Field {
                name: "common_pid".into(),
                bytes: 4,
                signed: true,
            }),
            _ => refuse(
                "this value in a predicate (an event filter compares fetched values)",
                e.span,
            ),
        }
    }
}

fn deref(of: Fetch, offset: i64, user: bool) -> Fetch {
    let of = Box::new(of);
    if user {
        Fetch::UserDeref { offset, of }
    } else {
        Fetch::Deref { offset, of }
    }
}

fn int_type(bytes: u8, signed: bool) -> FetchType {
    if signed {
        FetchType::Signed(bytes)
    } else {
        FetchType::Unsigned(bytes)
    }
}

/// An integer constant (possibly negated), as the 64 bits BPF compares.
fn constant(e: &TExpr) -> Option<u64> {
    if let TKind::Const(n) = e.kind {
        return Some(n);
    }
    if let TKind::Unary(UnOp::Neg, inner) = &e.kind {
        return constant(inner).map(u64::wrapping_neg);
    }
    None
}

fn flip(op: BinOp) -> BinOp {
    match op {
        BinOp::Lt => BinOp::Gt,
        BinOp::Le => BinOp::Ge,
        BinOp::Gt => BinOp::Lt,
        BinOp::Ge => BinOp::Le,
        other => other,
    }
}

fn op_text(op: BinOp) -> &'static str {
    match op {
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Mod => "%",
        BinOp::And => "&",
        BinOp::Or => "|",
        BinOp::Xor => "^",
        BinOp::Shl => "<<",
        BinOp::Shr => ">>",
        BinOp::Eq => "==",
        BinOp::Ne => "!=",
        BinOp::Lt => "<",
        BinOp::Le => "<=",
        BinOp::Gt => ">",
        BinOp::Ge => ">=",
        BinOp::LogAnd => "&&",
        BinOp::LogOr => "||",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("trace line of {event}: {source}")]
    Args { event: String, source: ArgsError },
}

impl TracefsProgram {
    /// The probe whose event printed `line`, if one of ours did.
    pub fn probe_of(&self, line: &PipeLine) -> Option<&EventProbe> {
        self.probes.iter().find(|p| p.event.name == line.event)
    }

    /// The records one line of `probe`'s event stands for, as the BPF
    /// programs would have written them. `comm` is the task's name for a
    /// program without `$comm` (the loader resolves the line's `<...>`).
    pub fn events(
        &self,
        probe: &EventProbe,
        line: &PipeLine,
        comm: &str,
    ) -> Result<Vec<Event>, LineError> {
        let values = tracefs::parse_args(&probe.event.args, line.args).map_err(|source| {
            LineError::Args {
                event: probe.event.name.clone(),
                source,
            }
        })?;
        let mut out = Vec::new();
        for action in &probe.actions {
            match action {
                Action::Exit => out.push(Event::Exit),
                Action::Printf { event, args } => {
                    let EventFormat::Printf {
                        format,
                        args: slots,
                    } = &self.compiled.events[*event]
                    else {
                        out.push(Event::Exit);
                        continue;
                    };
                    let args = args
                        .iter()
                        .zip(slots)
                        .map(|(source, slot)| {
                            let raw = resolve(source, &values, line, comm);
                            match (raw, slot.ty) {
                                (Raw::Int(n), ValueType::Int { signed: true }) => {
                                    output::Value::Int(n as i64)
                                }
                                (
                                    Raw::Int(n),
                                    ValueType::Int { signed: false } | ValueType::Timestamp { .. },
                                ) => output::Value::Uint(n),
                                // The BPF buffer holds `len` bytes, its NUL included.
                                (Raw::Str(mut s), ValueType::Str { len }) => {
                                    s.truncate((len as usize).saturating_sub(1));
                                    output::Value::Str(s)
                                }
                                (Raw::Str(s), _) => output::Value::Str(s),
                                // ntop() is refused before a line is read.
                                // Stacks and symbols need BPF.
                                (
                                    Raw::Int(n),
                                    ValueType::Str { .. }
                                    | ValueType::Inet
                                    | ValueType::Buf { .. }
                                    | ValueType::Symbol(_),
                                ) => output::Value::Str(n.to_string().into_bytes()),
                            }
                        })
                        .collect();
                    out.push(Event::Printf {
                        format: format.clone(),
                        args,
                    });
                }
            }
        }
        Ok(out)
    }
}

enum Raw {
    Int(u64),
    Str(Vec<u8>),
}

fn resolve(source: &Source, values: &[tracefs::Value], line: &PipeLine, comm: &str) -> Raw {
    match source {
        Source::Fetched(i) => match values.get(*i) {
            Some(tracefs::Value::Int(n)) => Raw::Int(*n as u64),
            Some(tracefs::Value::Str(s)) => Raw::Str(s.as_bytes().to_vec()),
            // A read that faulted: BPF's reads leave zeros.
            Some(tracefs::Value::Fault) | None => Raw::Int(0),
        },
        Source::Either(kernel, user) => match values.get(*kernel) {
            Some(tracefs::Value::Fault) | None => {
                resolve(&Source::Fetched(*user), values, line, comm)
            }
            Some(_) => resolve(&Source::Fetched(*kernel), values, line, comm),
        },
        Source::CommFetched => match values.last() {
            Some(tracefs::Value::Str(s)) => Raw::Str(s.as_bytes().to_vec()),
            _ => Raw::Str(comm.as_bytes().to_vec()),
        },
        Source::Tid => Raw::Int(u64::from(line.tid)),
        Source::Cpu => Raw::Int(u64::from(line.cpu)),
        Source::CommColumn => Raw::Str(comm.as_bytes().to_vec()),
        Source::Int(n) => Raw::Int(*n),
        Source::Str(s) => Raw::Str(s.clone()),
        Source::Trunc {
            value,
            bytes,
            signed,
        } => match resolve(value, values, line, comm) {
            Raw::Int(n) => Raw::Int(extend(n, *bytes, *signed)),
            other => other,
        },
        Source::Limit { value, bytes } => match resolve(value, values, line, comm) {
            Raw::Str(mut s) => {
                s.truncate(*bytes);
                Raw::Str(s)
            }
            // A string read that faulted: BPF's buffer stays empty.
            Raw::Int(_) => Raw::Str(Vec::new()),
        },
    }
}

/// The low `bytes` of `n`, sign- or zero-extended to 64 bits.
fn extend(n: u64, bytes: u8, signed: bool) -> u64 {
    if bytes >= 8 {
        return n;
    }
    let shift = 64 - u32::from(bytes) * 8;
    if signed {
        (((n << shift) as i64) >> shift) as u64
    } else {
        (n << shift) >> shift
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::FieldInfo;
    use crate::kernel::Kernel;
    use crate::report::{self, Format, Step};
    use crate::tracepoint::NoTracepoints;
    use kernel_headers::KernelVersion;
    use kernel_headers::pt_regs::x86_64::ABI;

    fn field(offset: u32, size: u32, ty: &str) -> FieldInfo {
        FieldInfo {
            offset,
            size,
            c_type: Some(ty.to_string()),
        }
    }

    fn fields() -> Vec<(&'static str, FieldInfo)> {
        vec![
            ("filename.name", field(0, 8, "const char *")),
            ("filename.refcnt", field(16, 4, "int")),
            ("task_struct.mm", field(0x40, 8, "struct mm_struct *")),
            ("task_struct.comm", field(0x50, 16, "char[16]")),
            ("mm_struct.owner", field(0x10, 8, "struct task_struct *")),
            ("mm_struct.map_count", field(0x20, 4, "int")),
        ]
    }

    fn translate_with(
        source: &str,
        syntax: Syntax,
        pids: &[u32],
    ) -> Result<TracefsProgram, String> {
        let fields = fields();
        let target = Target {
            fields: &fields,
            tracepoints: &NoTracepoints,
            kernel: Kernel::for_release(KernelVersion::new(5, 10, 0), &ABI),
        };
        let mut n = 0;
        let mut name = |kind: ProbeKind, f: &str| {
            n += 1;
            format!("nobtf_1_{}_{f}_{}", kind.letter(), n - 1)
        };
        translate(source, &target, &[], syntax, "nobtf", &mut name, pids).map_err(|e| match e {
            TranslateError::Program(e) => format!("program: {}", e.render(source)),
            TranslateError::NeedsBpf(r) => r.render(source),
        })
    }

    fn definitions(source: &str, syntax: Syntax) -> Vec<(String, Option<String>)> {
        translate_with(source, syntax, &[])
            .unwrap()
            .probes
            .iter()
            .map(|p| (p.event.definition(&ABI, syntax).unwrap(), p.filter.clone()))
            .collect()
    }

    fn refusal(source: &str) -> String {
        translate_with(source, Syntax::default(), &[]).unwrap_err()
    }

    #[test]
    fn members_strings_and_retval_become_fetch_arguments() {
        let src = r#"kprobe:do_unlinkat { printf("%d %s %d\n", arg0, str(((struct filename *)arg1)->name), ((struct filename *)arg1)->refcnt); }
kretprobe:do_unlinkat { printf("ret %d tid %d cpu %d %s\n", retval, tid, cpu, comm); }"#;
        assert_eq!(
            definitions(src, Syntax::default()),
            [
                (
                    "p:nobtf/nobtf_1_p_do_unlinkat_0 do_unlinkat v0=%di:u64 v1=+0(+0(%si)):string v2=+16(%si):s32".to_string(),
                    None
                ),
                (
                    "r:nobtf/nobtf_1_r_do_unlinkat_1 do_unlinkat v0=$retval:s64".to_string(),
                    None
                ),
            ]
        );
        // `$comm` where the kernel has it, last; a string of either address
        // space (x86's compatible readers) fetched as both.
        let syntax = Syntax {
            comm: true,
            ustring: true,
        };
        assert_eq!(
            definitions(
                r#"kprobe:f { printf("%s %s\n", comm, str(arg0)); }"#,
                syntax
            )[0]
            .0,
            "p:nobtf/nobtf_1_p_f_0 f v0=+0(%di):string v1=+0(%di):ustring comm=$comm:string"
        );
    }

    #[test]
    fn nested_arrows_nest_dereferences() {
        let src = r#"kprobe:f { printf("%d %s\n", ((struct task_struct *)arg0)->mm->owner->mm->map_count, ((struct task_struct *)arg0)->mm->owner->comm); }"#;
        assert_eq!(
            definitions(src, Syntax::default())[0].0,
            "p:nobtf/nobtf_1_p_f_0 f v0=+32(+64(+16(+64(%di)))):s32 v1=+80(+16(+64(%di))):string"
        );
    }

    #[test]
    fn variables_keep_the_variables_they_were_made_of() {
        // `$m` is made of `$t` inside a member read, and keeps the `$t` of
        // its assignment when `$t` changes afterwards.
        let src = r#"kprobe:f { $t = (struct task_struct *)arg0; $m = $t->mm->owner; $t = (struct task_struct *)arg1; printf("%d %s\n", $m->mm->map_count, $m->comm); }"#;
        assert_eq!(
            definitions(src, Syntax::default())[0].0,
            "p:nobtf/nobtf_1_p_f_0 f v0=+32(+64(+16(+64(%di)))):s32 v1=+80(+16(+64(%di))):string"
        );
    }

    #[test]
    fn predicates_become_event_filters() {
        let src = r#"kretprobe:f /retval < 0 && (tid == 42 || retval == -2)/ { printf("x\n"); }
kprobe:g /((struct filename *)arg1)->refcnt != 1/ { printf("y\n"); }
kprobe:h /arg0/ { printf("z\n"); }"#;
        let defs = definitions(src, Syntax::default());
        assert_eq!(
            defs[0].1.as_deref(),
            Some("(v0 < 0) && ((common_pid == 42) || (v0 == -2))")
        );
        assert_eq!(defs[1].1.as_deref(), Some("v0 != 1"));
        assert_eq!(defs[2].1.as_deref(), Some("v0 != 0"));
        let syntax = Syntax {
            comm: true,
            ustring: false,
        };
        assert_eq!(
            definitions(
                r#"kprobe:f /comm == "rm"/ { printf("%s\n", comm); }"#,
                syntax
            )[0]
            .1
            .as_deref(),
            Some(r#"comm == "rm""#)
        );
        // `-p PID`: its threads, and the predicate.
        let program = translate_with(
            r#"kprobe:f /arg0 > 3/ { printf("x\n"); }"#,
            Syntax::default(),
            &[7, 8],
        )
        .unwrap();
        assert_eq!(
            program.probes[0].filter.as_deref(),
            Some("(common_pid == 7 || common_pid == 8) && (v0 > 3)")
        );
    }

    #[test]
    fn what_needs_bpf_is_refused_with_its_place() {
        assert_eq!(
            refusal("kprobe:f { @x[tid] = count(); }"),
            "the map `@x` at 1:12"
        );
        assert_eq!(
            refusal(r#"kprobe:f { printf("%d\n", arg0 + 1); }"#),
            "the operator `+` at 1:27"
        );
        assert!(
            refusal(r#"kprobe:f { printf("%d\n", pid); }"#)
                .starts_with("`pid` (the thread group id"),
        );
        assert_eq!(
            refusal("kprobe:f /arg0 > arg1/ { exit(); }"),
            "the comparison `>` of two fetched values (an event filter compares a value with a constant) at 1:11"
        );
        assert!(refusal(r#"kprobe:f /retval/ { exit(); }"#).starts_with("program: "));
        assert_eq!(
            refusal("interval:s:1 { printf(\"%d\\n\", cpu); }"),
            "the probe `interval:s:1` (it runs a BPF program) at 1:1"
        );
        // A constant the 32-bit field cannot hold: BPF compares 64 bits.
        assert!(
            refusal(r#"kprobe:f /((struct filename *)arg1)->refcnt == 5000000000/ { exit(); }"#)
                .starts_with("the comparison `==` (the event filter would compare")
        );
        // Literals are int64, as in bpftrace: both compare signed.
        assert_eq!(
            definitions(
                r#"kretprobe:f /retval < -1/ { exit(); }"#,
                Syntax::default()
            )[0]
            .1
            .as_deref(),
            Some("v0 < -1")
        );
        assert_eq!(
            definitions(r#"kretprobe:f /retval < 0/ { exit(); }"#, Syntax::default())[0]
                .1
                .as_deref(),
            Some("v0 < 0")
        );
        // comm in a predicate needs `$comm`.
        assert!(
            refusal(r#"kprobe:f /comm == "rm"/ { exit(); }"#).starts_with("`comm` in a predicate")
        );
        assert_eq!(
            refusal(r#"kprobe:f { print(@m); } kprobe:g { @m = 1; }"#),
            "the map `@m` at 1:12"
        );
        assert_eq!(
            refusal(r#"kprobe:f { @t[1] = (arg0, comm); }"#),
            "the map `@t` at 1:12"
        );
        // What the printer or the loader does with a record of its own.
        assert_eq!(
            refusal("kprobe:f { print(arg0); }"),
            "`print()` of a value at 1:12"
        );
        assert_eq!(
            refusal(r#"kprobe:f { cat("/etc/%s", "x"); }"#),
            "`cat()` at 1:12"
        );
        assert_eq!(refusal("kprobe:f { join(arg0); }"), "`join()` at 1:12");
        assert_eq!(
            refusal(r#"kprobe:f { printf("%r\n", buf(arg0, 4)); }"#),
            "`buf()` at 1:27"
        );
        // Control flow: a line is printed whenever the probe fires.
        assert_eq!(
            refusal(r#"kprobe:f { if (arg0 == 1) { exit(); } }"#),
            "the statement `if` at 1:12"
        );
        assert_eq!(
            refusal(r#"kprobe:f { unroll(2) { exit(); } }"#),
            "the loop `unroll` at 1:12"
        );
        assert_eq!(
            refusal(r#"kprobe:f { return; }"#),
            "the statement `return` at 1:12"
        );
    }

    #[test]
    fn variables_are_inlined() {
        let src = r#"kprobe:f { $f = (struct filename *)arg1; $n = $f->refcnt; printf("%d %s\n", $n, str($f->name)); }"#;
        assert_eq!(
            definitions(src, Syntax::default())[0].0,
            "p:nobtf/nobtf_1_p_f_0 f v0=+16(%si):s32 v1=+0(+0(%si)):string"
        );
    }

    #[test]
    fn lines_print_as_the_bpf_records_do() {
        let src = r#"BEGIN { printf("start\n"); }
kprobe:do_unlinkat { printf("%-6d %s %s %d\n", tid, comm, str(((struct filename *)arg1)->name, 4), (int8)((struct filename *)arg1)->refcnt); }
kretprobe:do_unlinkat /retval == 0/ { printf("%u\n", retval); exit(); }"#;
        let program = translate_with(src, Syntax::default(), &[]).unwrap();
        assert_eq!(
            crate::userspace::events(&program.compiled, &program.compiled.begin),
            [Event::Printf {
                format: "start\n".into(),
                args: vec![]
            }]
        );
        let text = |line: &str, comm: &str| -> Vec<String> {
            let parsed = tracefs::parse_line(line).unwrap();
            let probe = program.probe_of(&parsed).unwrap();
            program
                .events(probe, &parsed, comm)
                .unwrap()
                .iter()
                .map(|e| match report::event(Format::Text, e).unwrap() {
                    Step::Write(b) => String::from_utf8(b).unwrap(),
                    other => format!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(
            text(
                r#"rm-99 [001] d... 3.4: nobtf_1_p_do_unlinkat_0: (do_unlinkat+0x0/0x2b0) v0="/tmp/a.txt" v1=257"#,
                "rm"
            ),
            ["99     rm /tm 1\n"]
        );
        assert_eq!(
            text(
                "rm-99 [001] d... 3.4: nobtf_1_r_do_unlinkat_1: (x <- do_unlinkat) v0=-1",
                "rm"
            ),
            ["4294967295\n", "Exit"]
        );
        // A faulted string prints empty, as BPF's failed read.
        assert_eq!(
            text(
                "rm-99 [001] d... 3.4: nobtf_1_p_do_unlinkat_0: (do_unlinkat+0x0/0x2b0) v0=(fault) v1=1",
                "rm"
            ),
            ["99     rm  1\n"]
        );
    }

    #[test]
    fn truncation_extends_as_bpf() {
        assert_eq!(extend(0x1ff, 1, true), u64::MAX);
        assert_eq!(extend(0x1ff, 1, false), 0xff);
        assert_eq!(extend(5, 8, true), 5);
    }
}
