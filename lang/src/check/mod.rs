//! The type check: names resolved against the providers, the field source
//! and tracepoint formats; maps' kinds and key types agreed across probes;
//! printf formats matched to their arguments.

use std::collections::BTreeSet;

use crate::ast::*;
use crate::diag::{Error, Span};
use crate::fields::{CType, FieldSource};
use crate::kernel::{Kernel, Readers};
use crate::output::{
    AF_INET, AF_INET6, EventFormat, JOIN_ARGS, MAP_ENTRIES, MapKind, MapSpec, Shape, Slot,
    ValueType,
};
use crate::providers::{AttachPoint, Context};
use crate::tracepoint::{TracepointFormat, TracepointSource};
use crate::typed::*;
use kernel_headers::bpf::Helper;

mod builtins;
mod expressions;
mod flow;
mod maps;
mod members;
mod pointers;
mod statements;

/// bpftrace's default string length.
pub const STR_LEN: u32 = 64;
/// `TASK_COMM_LEN`.
pub const COMM_LEN: u32 = 16;
/// Longest `str()` a program may ask for: its buffer lives on the stack.
pub const STR_MAX: u32 = 200;
/// Most bytes a `buf()` holds: its record is built on the BPF stack
/// (bpftrace's limit is `max_strlen` less 4, 1020 by default).
pub const BUF_MAX: u32 = 256;
/// Longest string of each `join()` argument read (bpftrace's
/// `join_argsize` is 1024; nobtf's record is on the BPF stack), unless
/// `max_strlen` is shorter.
pub const JOIN_LEN: u32 = STR_MAX;

/// bpftrace builtins and functions nobtf trace does not offer yet: named so
/// that their use is "not supported", not "unknown".
const UNSUPPORTED: &[&str] = &[
    "username",
    "ctx",
    "cpid",
    "jiffies",
    "override",
    "zero",
    "len",
    "reg",
    "macaddr",
    "cgroupid",
    "path",
    "skboutput",
    "unwatch",
    "offsetof",
    "percpu_kaddr",
    "pton",
    "has_key",
    "print_tuple",
];

/// What bpftrace refuses without `--unsafe` (its safe mode).
const UNSAFE: &[&str] = &["system", "signal", "override"];

/// Everything the checker knows about the program as a whole.
pub struct Checker<'a> {
    pub fields: &'a dyn FieldSource,
    pub tracepoints: &'a dyn TracepointSource,
    pub kernel: Kernel,
    pub maps: Vec<MapSpec>,
    pub events: Vec<EventFormat>,
    /// `strftime()` formats, by [`ValueType::Timestamp`]'s index.
    pub time_formats: Vec<String>,
    /// `struct.member` of every field looked up.
    pub used_fields: BTreeSet<String>,
    /// Fields the source lacks, in order of first use.
    pub missing_fields: Vec<(String, Span)>,
    /// Members of unknown type read as integers, by span: `.member` after
    /// one is looked up as the nested path (`task_struct.se.vruntime`).
    untyped: Vec<(Span, Untyped)>,
    /// `str()`'s length when none is given (`config = { max_strlen = N }`).
    pub str_len: u32,
    /// Skip what fails and go on: the discovery pass that finds every map
    /// before the real one (which reports the errors).
    pub lenient: bool,
    /// `--unsafe` was given: [`UNSAFE`] functions may be called.
    pub unsafe_allowed: bool,
}

#[derive(Clone)]
struct Untyped {
    strukt: String,
    path: String,
    outer: TExpr,
    user: bool,
}

/// The probe being checked.
struct Scope<'p> {
    point: &'p AttachPoint,
    context: Context,
    tracepoint: Option<TracepointFormat>,
    /// Each variable slot's name and type.
    vars: Vec<(String, Ty)>,
    /// The blocks being checked, outermost first: the names each declares.
    blocks: Vec<flow::BlockNames>,
    /// `while` loops around the statement being checked.
    loops: usize,
}

/// A 64-bit integer.
fn int(signed: bool) -> Ty {
    Ty::Int { signed, bytes: 8 }
}

/// An integer of `bytes`.
fn sized_int(signed: bool, bytes: u8) -> Ty {
    Ty::Int { signed, bytes }
}

impl<'a> Checker<'a> {
    pub fn new(
        fields: &'a dyn FieldSource,
        tracepoints: &'a dyn TracepointSource,
        kernel: Kernel,
    ) -> Checker<'a> {
        Checker {
            fields,
            tracepoints,
            kernel,
            maps: Vec::new(),
            events: Vec::new(),
            time_formats: Vec::new(),
            used_fields: BTreeSet::new(),
            missing_fields: Vec::new(),
            untyped: Vec::new(),
            str_len: STR_LEN,
            lenient: false,
            unsafe_allowed: false,
        }
    }

    /// bpftrace's safe mode: an unsafe function is refused first, whatever
    /// else is wrong with the call.
    fn refuse_unsafe(&self, name: &str, span: Span) -> Result<(), Error> {
        if UNSAFE.contains(&name) && !self.unsafe_allowed {
            return Err(Error::at(
                span,
                format!("{name}() is an unsafe function being used in safe mode"),
            ));
        }
        Ok(())
    }

    /// Check one probe's body for one of its attach points.
    pub fn probe(
        &mut self,
        probe: &Probe,
        point: &AttachPoint,
        context: Context,
        attach_span: Span,
    ) -> Result<TProbe, Error> {
        let tracepoint = match point {
            AttachPoint::Tracepoint { category, name } => Some(
                self.tracepoints.format(category, name).ok_or_else(|| {
                    Error::at(
                        attach_span,
                        format!(
                            "unknown tracepoint `{category}:{name}`: the kernel has no events/{category}/{name} in tracefs{}",
                            crate::syscalls::why_not_lowered(category)
                        ),
                    )
                })?,
            ),
            AttachPoint::Syscall(lowered) => crate::syscalls::format(lowered, self.kernel.abi),
            _ => None,
        };
        let mut scope = Scope {
            point,
            context,
            tracepoint,
            vars: Vec::new(),
            blocks: Vec::new(),
            loops: 0,
        };
        let predicate = match &probe.predicate {
            None => None,
            Some(p) => match self.expr(&mut scope, p) {
                Ok(e) => Some(self.scalar(e, "a predicate")?),
                Err(_) if self.lenient => None,
                Err(e) => return Err(e),
            },
        };
        let body = self.block(&mut scope, &probe.body)?;
        Ok(TProbe {
            predicate,
            body,
            vars: scope.vars.into_iter().map(|(_, ty)| ty).collect(),
        })
    }

    fn scalar(&self, e: TExpr, what: &str) -> Result<TExpr, Error> {
        match e.ty {
            Ty::Int { .. } | Ty::Ptr { .. } => Ok(e),
            _ => Err(Error::at(
                e.span,
                format!("{what} must be an integer, found {}", e.ty.describe()),
            )),
        }
    }

    fn stmt(&mut self, scope: &mut Scope, stmt: &Stmt) -> Result<Option<TStmt>, Error> {
        match &stmt.kind {
            StmtKind::AssignVar { name, value } => self.assign_var(scope, name, value),
            StmtKind::AssignMap { map, value } => self.map_assign(scope, map, value, stmt.span),
            StmtKind::Expr(e) => self.call_stmt(scope, e),
            StmtKind::Let { .. }
            | StmtKind::If { .. }
            | StmtKind::While { .. }
            | StmtKind::Unroll { .. }
            | StmtKind::Jump(_) => self.flow(scope, stmt),
        }
    }

    /// The helper reading fixed-size memory of `user` space on this kernel.
    pub fn read_helper(&self, user: bool) -> Helper {
        match (self.kernel.readers, user) {
            (Readers::Split, false) if !self.kernel.compat_readers => Helper::ProbeReadKernel,
            (Readers::Split, false) => Helper::ProbeRead,
            (Readers::Split, true) => Helper::ProbeReadUser,
            _ => Helper::ProbeRead,
        }
    }

    /// The helper reading a string of `user` space on this kernel.
    pub fn read_str_helper(&self, user: bool) -> Helper {
        match (self.kernel.readers, user) {
            (Readers::Split, false) if !self.kernel.compat_readers => Helper::ProbeReadKernelStr,
            (Readers::Split, false) => Helper::ProbeReadStr,
            (Readers::Split, true) => Helper::ProbeReadUserStr,
            (Readers::ProbeReadStr, _) => Helper::ProbeReadStr,
            // Before 4.11 a string is read at full length; the decoder
            // stops at the NUL.
            (Readers::ProbeRead, _) => Helper::ProbeRead,
        }
    }

    /// A value a variable or map can hold: strings are buffers, the rest 64 bits.
    fn storable(&self, value: TExpr) -> Result<TExpr, Error> {
        match &value.ty {
            Ty::Place {
                place: Place::CharArray(n),
                user,
            } => {
                let len = (*n).clamp(1, STR_MAX);
                let user = *user;
                let span = value.span;
                Ok(TExpr {
                    kind: TKind::StrRead {
                        addr: Box::new(value),
                        len,
                        user,
                        helper: self.read_str_helper(user),
                    },
                    ty: Ty::Str { len },
                    span,
                })
            }
            _ => Ok(value),
        }
    }
}

fn is_aggregation(e: &Expr) -> bool {
    matches!(&e.kind, ExprKind::Call { name, .. }
        if ["count", "sum", "min", "max", "avg", "hist", "lhist"].contains(&name.as_str()))
}

/// How a checked value is stored in a record or map.
pub fn value_type(ty: &Ty) -> ValueType {
    match ty {
        Ty::Str { len } => ValueType::Str { len: *len },
        Ty::Inet => ValueType::Inet,
        Ty::Buf { max } => ValueType::Buf { max: *max },
        Ty::Int { signed, .. } => ValueType::Int { signed: *signed },
        Ty::Symbol(kind) => ValueType::Symbol(*kind),
        _ => ValueType::Int { signed: false },
    }
}

/// Bytes a string value holds (its buffer; a literal's text and NUL).
fn value_len(e: &TExpr) -> u32 {
    match (&e.kind, &e.ty) {
        (TKind::ConstStr(s), _) => s.len() as u32 + 1,
        (_, ty) => ty.buffer_len().unwrap_or(0),
    }
}

fn same_storage(a: &Ty, b: &Ty) -> bool {
    match (a, b) {
        (Ty::Str { len: x }, Ty::Str { len: y }) => x == y,
        (Ty::Inet, Ty::Inet) => true,
        (Ty::Buf { max: x }, Ty::Buf { max: y }) => x == y,
        (Ty::Str { .. } | Ty::Inet | Ty::Buf { .. }, _)
        | (_, Ty::Str { .. } | Ty::Inet | Ty::Buf { .. }) => false,
        _ => true,
    }
}

fn expect_args(name: &str, args: &[Expr], n: usize, span: Span) -> Result<(), Error> {
    if args.len() == n {
        Ok(())
    } else {
        Err(Error::at(
            span,
            format!(
                "{name}() takes {n} argument{}",
                if n == 1 { "" } else { "s" }
            ),
        ))
    }
}

/// An integer constant, possibly negated.
fn constant(e: &Expr) -> Option<i64> {
    match &e.kind {
        ExprKind::Int(n) => i64::try_from(*n).ok(),
        ExprKind::Unary(UnOp::Neg, inner) => constant(inner).map(|n| -n),
        _ => None,
    }
}
