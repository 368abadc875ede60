//! The syntax tree, as written: every node carries its span.

use crate::diag::Span;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub probes: Vec<Probe>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `kprobe:a,kprobe:b`: one or more attach points sharing the body.
    pub attach: Vec<Attach>,
    pub predicate: Option<Expr>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

/// An attach point as written, split at `:` (`tracepoint:sched:sched_switch`
/// -> `["tracepoint", "sched", "sched_switch"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attach {
    pub parts: Vec<String>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StmtKind {
    Expr(Expr),
    /// `$x = e`.
    AssignVar {
        name: String,
        value: Expr,
    },
    /// `@m[k] = e` (including `@m = count()`).
    AssignMap {
        map: MapAccess,
        value: Expr,
    },
    /// `let $x;` or `let $x = e;`: `$x` belongs to the enclosing block.
    Let {
        name: String,
        value: Option<Expr>,
    },
    /// `if (c) { } else if (d) { } else { }` (`else if` nests in `otherwise`).
    If {
        cond: Expr,
        then: Vec<Stmt>,
        otherwise: Vec<Stmt>,
    },
    /// `while (c) { }`.
    While {
        cond: Expr,
        body: Vec<Stmt>,
    },
    /// `unroll(N) { }`: the body N times.
    Unroll {
        count: Expr,
        body: Vec<Stmt>,
    },
    /// `return`, `break`, `continue`.
    Jump(Jump),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jump {
    Return,
    Break,
    Continue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapAccess {
    pub name: String,
    pub keys: Vec<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    Not,
    Neg,
    BitNot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    And,
    Or,
    Xor,
    Shl,
    Shr,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    LogAnd,
    LogOr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprKind {
    Int(u64),
    Str(String),
    /// A bare name: a builtin such as `pid`, `arg0`, `comm`, or `args`.
    Ident(String),
    Var(String),
    Map(MapAccess),
    Call {
        name: String,
        args: Vec<Expr>,
    },
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Ternary(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `(struct NAME *)e`; `pointers` counts the stars (0 for `(struct NAME)`).
    Cast {
        target: CastTarget,
        value: Box<Expr>,
    },
    /// `*e`.
    Deref(Box<Expr>),
    /// `&e`.
    AddrOf(Box<Expr>),
    /// `e[i]` (not a map's keys).
    Index {
        base: Box<Expr>,
        index: Box<Expr>,
    },
    /// `(a, b, ...)`.
    Tuple(Vec<Expr>),
    /// `t.0`.
    TupleField {
        base: Box<Expr>,
        index: usize,
    },
    /// `sizeof(TYPE)`; `sizeof(EXPR)` is a call.
    SizeofType(CastTarget),
    /// `e->member` (`arrow`) or `e.member`.
    Member {
        base: Box<Expr>,
        member: String,
        arrow: bool,
        member_span: Span,
    },
}

/// What a cast names: `struct task_struct *`, or an integer type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CastTarget {
    Struct {
        name: String,
        pointers: u8,
    },
    Int {
        bytes: u8,
        signed: bool,
    },
    /// `(uint8 *)`, `(int32 **)`.
    IntPtr {
        bytes: u8,
        signed: bool,
        pointers: u8,
    },
}
