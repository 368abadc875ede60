//! The checked program: every expression typed, every name resolved (fields
//! to offsets, variables to slots, maps to indices). Code generation reads
//! only this.

use kernel_headers::bpf::Helper;

use crate::ast::{BinOp, Jump, UnOp};
use crate::diag::Span;

/// What a pointer points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pointee {
    Struct(String),
    /// An integer of `bytes` (`char` is 1).
    Int {
        bytes: u8,
        signed: bool,
    },
    /// A pointer to what it points to.
    Ptr(Box<Pointee>),
    Other,
}

impl Pointee {
    /// What a C type pointed to is, for `*p`, `p[i]` and `p + n`.
    pub fn of(c_type: &crate::fields::CType) -> Pointee {
        use crate::fields::CType;
        match c_type {
            CType::Struct(s) => Pointee::Struct(s.clone()),
            CType::Int { bytes, signed } => Pointee::Int {
                bytes: *bytes,
                signed: *signed,
            },
            CType::Ptr { to, .. } => Pointee::Ptr(Box::new(Pointee::of(to))),
            CType::CharArray(_) | CType::Other => Pointee::Other,
        }
    }
}

/// A struct member's address that is not loaded (an embedded struct or
/// array, or a member of unknown type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    Struct(String),
    CharArray(u32),
    /// Unknown type: `strukt.path` names it for a nested lookup.
    Opaque {
        strukt: String,
        path: String,
        size: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    /// Held as 64 bits, sign- or zero-extended from its `bytes` (1, 2, 4
    /// or 8): the width `bswap` swaps and a variable keeps.
    Int {
        signed: bool,
        bytes: u8,
    },
    /// A string in a stack buffer of `len` bytes.
    Str {
        len: u32,
    },
    Ptr {
        to: Pointee,
        user: bool,
    },
    /// An address of kernel memory (held as 64 bits).
    Place {
        place: Place,
        user: bool,
    },
    /// `ntop()`'s address, in a stack buffer ([`crate::output::ValueType::Inet`]).
    Inet,
    /// `buf()`'s length and at most `max` bytes, in a stack buffer
    /// ([`crate::output::ValueType::Buf`]).
    Buf {
        max: u32,
    },
    /// A tuple: its elements one after the other, each laid out as a map
    /// key's part (so `@m[$t]` is `@m[a, b]`).
    Tuple(Vec<Ty>),
    /// A stack id or an address (64 bits) printed as symbols.
    Symbol(crate::symbols::Symbolic),
}

impl Ty {
    /// Bytes of the stack buffer a string or an address lives in; `None`
    /// for what a register holds.
    pub fn buffer_len(&self) -> Option<u32> {
        match self {
            Ty::Str { len } => Some(*len),
            Ty::Inet => Some(crate::output::INET_SIZE),
            Ty::Buf { max } => Some(crate::output::ValueType::Buf { max: *max }.size()),
            Ty::Tuple(elements) => Some(elements.iter().map(Ty::slot_size).sum()),
            Ty::Symbol(crate::symbols::Symbolic::Usym) => Some(crate::symbols::USYM_SIZE),
            Ty::Int { .. } | Ty::Ptr { .. } | Ty::Place { .. } | Ty::Symbol(_) => None,
        }
    }

    /// Bytes this value takes as a part of a record, key or tuple.
    pub fn slot_size(&self) -> u32 {
        self.buffer_len().map_or(8, |n| n.next_multiple_of(8))
    }

    /// Where each element of a tuple starts.
    pub fn tuple_offsets(elements: &[Ty]) -> Vec<u32> {
        elements
            .iter()
            .scan(0, |at, ty| {
                let here = *at;
                *at += ty.slot_size();
                Some(here)
            })
            .collect()
    }

    pub const U64: Ty = Ty::Int {
        signed: false,
        bytes: 8,
    };
    pub const S64: Ty = Ty::Int {
        signed: true,
        bytes: 8,
    };

    pub fn describe(&self) -> String {
        match self {
            Ty::Int { signed: true, .. } => "a signed integer".into(),
            Ty::Int { signed: false, .. } => "an unsigned integer".into(),
            Ty::Str { .. } => "a string".into(),
            Ty::Inet => "an address (`ntop()`)".into(),
            Ty::Buf { .. } => "a buffer (`buf()`)".into(),
            Ty::Tuple(elements) => format!("a tuple of {}", elements.len()),
            Ty::Symbol(crate::symbols::Symbolic::Stack(s)) if s.user => "a user stack".into(),
            Ty::Symbol(crate::symbols::Symbolic::Stack(_)) => "a kernel stack".into(),
            Ty::Symbol(_) => "a symbol".into(),
            Ty::Ptr {
                to: Pointee::Struct(s),
                ..
            } => format!("`struct {s} *`"),
            Ty::Ptr { .. } => "a pointer".into(),
            Ty::Place {
                place: Place::Struct(s),
                ..
            } => format!("`struct {s}`"),
            Ty::Place {
                place: Place::CharArray(n),
                ..
            } => format!("`char[{n}]`"),
            Ty::Place {
                place: Place::Opaque { strukt, path, .. },
                ..
            } => {
                format!("`{strukt}.{path}` (type unknown)")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Pid,
    Tid,
    Uid,
    Gid,
    Nsecs,
    Cpu,
    /// `bpf_get_func_ip(ctx)`: the probed function's address (`func` in a
    /// kprobe_multi program).
    FuncIp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TExpr {
    pub kind: TKind,
    pub ty: Ty,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TKind {
    Const(u64),
    ConstStr(String),
    /// A load from the context (argument registers, tracepoint fields).
    CtxLoad {
        off: u32,
        bytes: u8,
        signed: bool,
    },
    /// The address of context bytes (a tracepoint's `char[N]`).
    CtxAddr {
        off: u32,
    },
    /// A tracepoint's `__data_loc` field: the address of its data.
    DataLoc {
        off: u32,
    },
    Builtin(Builtin),
    /// What a helper without arguments returns (`curtask`, `rand`,
    /// `numaid`, `cgroup`).
    HelperValue(Helper),
    /// What a helper returns given `arg` in r1 (`signal(SIG)`).
    HelperWith {
        helper: Helper,
        arg: Box<TExpr>,
    },
    /// `kstack`/`ustack`: the current stack's id in stack map `map`
    /// (`bpf_get_stackid`); for a user stack the thread group id is in the
    /// high 32 bits.
    StackId {
        map: usize,
        user: bool,
    },
    /// The current task's comm: through `bpf_get_current_task_btf` at this
    /// offset of `task_struct` where the kernel takes it (the loader found
    /// it: 5.11+ with BTF), else `bpf_get_current_comm`.
    Comm {
        task_btf: Option<i16>,
    },
    Var(usize),
    /// Reading `@m[keys]` (0 when absent).
    MapGet {
        map: usize,
        keys: Vec<TExpr>,
    },
    Unary(UnOp, Box<TExpr>),
    /// `signed`: the checker's choice of signed division, remainder,
    /// right shift and comparison; the back ends follow it.
    Binary {
        op: BinOp,
        signed: bool,
        left: Box<TExpr>,
        right: Box<TExpr>,
    },
    Ternary(Box<TExpr>, Box<TExpr>, Box<TExpr>),
    /// `s == "lit"` / `s != "lit"`.
    StrEq {
        value: Box<TExpr>,
        literal: String,
        negate: bool,
    },
    /// Two strings' first `len` bytes compared up to a NUL: 1 when equal
    /// (0 when `negate`: `!=`, and `strncmp`'s 0 for equal).
    StrCmp {
        left: Box<TExpr>,
        right: Box<TExpr>,
        len: u32,
        negate: bool,
    },
    /// `strcontains(haystack, needle)`: 1 when the needle occurs.
    StrContains {
        haystack: Box<TExpr>,
        needle: Box<TExpr>,
    },
    /// A member read through the probe-read helper: `*(addr + off)`.
    /// `user`: the address space; `helper`: the reader the checker chose
    /// for it on this kernel.
    Read {
        addr: Box<TExpr>,
        off: u32,
        bytes: u8,
        signed: bool,
        user: bool,
        helper: Helper,
    },
    /// A member's address: `addr + off`.
    Offset {
        base: Box<TExpr>,
        off: u32,
    },
    /// `str(addr, len)`, read with `helper`.
    StrRead {
        addr: Box<TExpr>,
        len: u32,
        user: bool,
        helper: Helper,
    },
    /// `buf(addr, len)`, a printf `%r` argument: `len` (at most `max`)
    /// as a u64, then that many bytes read from `addr` with `helper`. Its
    /// type is the record buffer it fills ([`crate::output::ValueType::Buf`]).
    Buf {
        addr: Box<TExpr>,
        len: Box<TExpr>,
        max: u32,
        helper: Helper,
    },
    /// `bswap(x)`: the low `bytes` of x in reverse order.
    Bswap {
        value: Box<TExpr>,
        bytes: u8,
    },
    /// `(a, b)`.
    Tuple(Vec<TExpr>),
    /// `t.N`: element `index` of a tuple value.
    TupleField {
        base: Box<TExpr>,
        index: usize,
    },
    /// `ntop([family,] addr)`: the family, and the address's bytes.
    Ntop {
        family: Box<TExpr>,
        addr: Box<TExpr>,
        from: InetSource,
    },
    /// `(u32)x`: keep the low bytes, extend by `signed`.
    Trunc {
        value: Box<TExpr>,
        bytes: u8,
        signed: bool,
    },
    /// `usym(addr)`: the address and the current thread group id, in a
    /// buffer of [`crate::symbols::USYM_SIZE`] bytes.
    Usym(Box<TExpr>),
}

impl TKind {
    /// The expressions this one is made of, in evaluation order: what a
    /// pass over the tree rewrites or visits. Every kind is listed, so a
    /// new one with operands cannot be missed.
    pub fn children_mut(&mut self) -> Vec<&mut TExpr> {
        match self {
            TKind::Const(_)
            | TKind::ConstStr(_)
            | TKind::CtxLoad { .. }
            | TKind::CtxAddr { .. }
            | TKind::DataLoc { .. }
            | TKind::Builtin(_)
            | TKind::HelperValue(_)
            | TKind::StackId { .. }
            | TKind::Comm { .. }
            | TKind::Var(_) => Vec::new(),
            TKind::MapGet { keys: many, .. } | TKind::Tuple(many) => many.iter_mut().collect(),
            TKind::HelperWith { arg: a, .. }
            | TKind::Unary(_, a)
            | TKind::StrEq { value: a, .. }
            | TKind::Read { addr: a, .. }
            | TKind::Offset { base: a, .. }
            | TKind::StrRead { addr: a, .. }
            | TKind::Bswap { value: a, .. }
            | TKind::TupleField { base: a, .. }
            | TKind::Trunc { value: a, .. }
            | TKind::Usym(a) => vec![a.as_mut()],
            TKind::Binary { left, right, .. } | TKind::StrCmp { left, right, .. } => {
                vec![left.as_mut(), right.as_mut()]
            }
            TKind::StrContains { haystack, needle } => vec![haystack.as_mut(), needle.as_mut()],
            TKind::Buf { addr, len, .. } => vec![addr.as_mut(), len.as_mut()],
            TKind::Ntop { family, addr, .. } => vec![family.as_mut(), addr.as_mut()],
            TKind::Ternary(a, b, c) => vec![a.as_mut(), b.as_mut(), c.as_mut()],
        }
    }
}

/// Where `ntop()`'s address bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InetSource {
    /// The integer's low 4 bytes, as memory holds them (a `__be32`).
    Int,
    /// `bytes` (4 or 16) read from the address the expression computes,
    /// with `helper`.
    Memory {
        bytes: u8,
        user: bool,
        helper: Helper,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agg {
    Count,
    Sum(TExpr),
    Min(TExpr),
    Max(TExpr),
    Avg(TExpr),
    Hist(TExpr),
    Lhist {
        value: TExpr,
        min: i64,
        max: i64,
        step: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TStmt {
    AssignVar {
        slot: usize,
        value: TExpr,
    },
    MapAssign {
        map: usize,
        keys: Vec<TExpr>,
        value: TExpr,
        span: Span,
    },
    MapAgg {
        map: usize,
        keys: Vec<TExpr>,
        agg: Agg,
        span: Span,
    },
    Delete {
        map: usize,
        keys: Vec<TExpr>,
        span: Span,
    },
    /// Write record `event` with these values (none for print/clear/exit).
    Emit {
        event: usize,
        args: Vec<TExpr>,
        span: Span,
    },
    If {
        cond: TExpr,
        then: Vec<TStmt>,
        otherwise: Vec<TStmt>,
        span: Span,
    },
    /// A loop: with a back edge where the kernel takes bounded loops; else
    /// `trips` is the most iterations the checker proved it runs
    /// (`$i = 0; while ($i < 8) { ...; $i++ }`), and it is unrolled.
    While {
        cond: TExpr,
        body: Vec<TStmt>,
        trips: Option<u32>,
        span: Span,
    },
    /// The body `count` times, one after the other.
    Unroll {
        count: u32,
        body: Vec<TStmt>,
        span: Span,
    },
    /// `return` ends the probe; `break`/`continue` the innermost `while`.
    Jump {
        jump: Jump,
        span: Span,
    },
}

impl TStmt {
    /// Whether `test` holds for any of `stmts` or a statement nested in
    /// them (in any branch or loop body).
    pub fn any_in(stmts: &[TStmt], test: &dyn Fn(&TStmt) -> bool) -> bool {
        stmts.iter().any(|stmt| {
            test(stmt)
                || match stmt {
                    TStmt::If {
                        then, otherwise, ..
                    } => TStmt::any_in(then, test) || TStmt::any_in(otherwise, test),
                    TStmt::While { body, .. } | TStmt::Unroll { body, .. } => {
                        TStmt::any_in(body, test)
                    }
                    TStmt::AssignVar { .. }
                    | TStmt::MapAssign { .. }
                    | TStmt::MapAgg { .. }
                    | TStmt::Delete { .. }
                    | TStmt::Emit { .. }
                    | TStmt::Jump { .. } => false,
                }
        })
    }
}

/// One BPF program's worth of checked code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TProbe {
    pub predicate: Option<TExpr>,
    pub body: Vec<TStmt>,
    /// Type of each scratch variable slot.
    pub vars: Vec<Ty>,
}
