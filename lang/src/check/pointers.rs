//! Pointers: `*p`, `&member`, `p[i]`, `p + n` (scaled by what `p` points
//! to, as in C and bpftrace), pointer casts, and `sizeof`.

use super::*;

impl Checker<'_> {
    /// Bytes of what `to` names, when the checker knows them.
    fn pointee_size(&self, to: &Pointee) -> Option<u32> {
        match to {
            Pointee::Int { bytes, .. } => Some(u32::from(*bytes)),
            Pointee::Ptr(_) => Some(u32::from(self.kernel.abi.pointer_bytes)),
            Pointee::Struct(_) | Pointee::Other => None,
        }
    }

    /// `*addr` for a pointer to `to`.
    pub(super) fn deref_value(
        &self,
        addr: TExpr,
        to: &Pointee,
        user: bool,
        span: Span,
    ) -> Result<TExpr, Error> {
        let read = |bytes: u8, signed: bool, ty: Ty| TExpr {
            kind: TKind::Read {
                addr: Box::new(addr.clone()),
                off: 0,
                bytes,
                signed,
                user,
                helper: self.read_helper(user),
            },
            ty,
            span,
        };
        Ok(match to {
            Pointee::Int { bytes, signed } if [1, 2, 4, 8].contains(bytes) => {
                read(*bytes, *signed, sized_int(*signed, *bytes))
            }
            Pointee::Ptr(inner) => read(
                self.kernel.abi.pointer_bytes,
                false,
                Ty::Ptr {
                    to: (**inner).clone(),
                    user,
                },
            ),
            Pointee::Struct(s) => TExpr {
                kind: TKind::Offset {
                    base: Box::new(addr),
                    off: 0,
                },
                ty: Ty::Place {
                    place: Place::Struct(s.clone()),
                    user,
                },
                span,
            },
            Pointee::Int { .. } | Pointee::Other => {
                return Err(Error::at(
                    span,
                    "what this pointer points to is unknown: cast it first, e.g. `*(uint32 *)p`",
                ));
            }
        })
    }

    pub(super) fn deref(
        &mut self,
        scope: &mut Scope,
        value: &Expr,
        span: Span,
    ) -> Result<TExpr, Error> {
        let p = self.expr(scope, value)?;
        match p.ty.clone() {
            Ty::Ptr { to, user } => self.deref_value(p, &to, user, span),
            // bpftrace reads a u64 at an integer (`*kaddr("avenrun")`).
            Ty::Int { .. } => {
                let u64 = Pointee::Int {
                    bytes: 8,
                    signed: false,
                };
                self.deref_value(p, &u64, false, span)
            }
            other => Err(Error::at(
                p.span,
                format!(
                    "`*` needs a pointer, found {}; cast it first, e.g. `*(uint64 *)arg0`",
                    other.describe()
                ),
            )),
        }
    }

    /// `&member`: the address a member is read from.
    pub(super) fn addr_of(
        &mut self,
        scope: &mut Scope,
        value: &Expr,
        span: Span,
    ) -> Result<TExpr, Error> {
        let v = self.expr(scope, value)?;
        let (kind, to, user) = match (&v.kind, &v.ty) {
            (
                TKind::Read {
                    addr,
                    off,
                    bytes,
                    signed,
                    user,
                    ..
                },
                ty,
            ) => {
                let to = match ty {
                    Ty::Ptr { to, .. } => Pointee::Ptr(Box::new(to.clone())),
                    _ => Pointee::Int {
                        bytes: *bytes,
                        signed: *signed,
                    },
                };
                (
                    TKind::Offset {
                        base: addr.clone(),
                        off: *off,
                    },
                    to,
                    *user,
                )
            }
            (
                TKind::Offset { .. },
                Ty::Place {
                    place: Place::Struct(s),
                    user,
                },
            ) => (v.kind.clone(), Pointee::Struct(s.clone()), *user),
            (
                TKind::Offset { .. },
                Ty::Place {
                    place: Place::CharArray(_),
                    user,
                },
            ) => (
                v.kind.clone(),
                Pointee::Int {
                    bytes: 1,
                    signed: false,
                },
                *user,
            ),
            _ => {
                return Err(Error::at(
                    v.span,
                    "`&` takes a struct member (`&$t->field`); BPF values in registers and on the stack have no address to give",
                ));
            }
        };
        Ok(TExpr {
            kind,
            ty: Ty::Ptr { to, user },
            span,
        })
    }

    /// `p + n` / `p - n`: n scaled by the pointee's size.
    pub(super) fn pointer_offset(
        &self,
        op: BinOp,
        p: TExpr,
        n: TExpr,
        span: Span,
    ) -> Result<TExpr, Error> {
        let Ty::Ptr { to, .. } = &p.ty else {
            return Err(Error::at(p.span, "internal: pointer expected"));
        };
        let size = self.pointee_size(to).ok_or_else(|| {
            Error::at(
                span,
                format!(
                    "pointer arithmetic on {} needs the size of what it points to, which nobtf does not know: cast it to `(uint8 *)` first",
                    p.ty.describe()
                ),
            )
        })?;
        let n_span = n.span;
        let scaled = if size == 1 {
            n
        } else {
            TExpr {
                kind: TKind::Binary {
                    op: BinOp::Mul,
                    signed: false,
                    left: Box::new(n),
                    right: Box::new(TExpr {
                        kind: TKind::Const(u64::from(size)),
                        ty: int(false),
                        span: n_span,
                    }),
                },
                ty: int(false),
                span: n_span,
            }
        };
        let ty = p.ty.clone();
        Ok(TExpr {
            kind: TKind::Binary {
                op,
                signed: false,
                left: Box::new(p),
                right: Box::new(scaled),
            },
            ty,
            span,
        })
    }

    /// `base[index]`: a pointer's element or an array member's byte.
    pub(super) fn index(
        &mut self,
        scope: &mut Scope,
        base: &Expr,
        index: &Expr,
        span: Span,
    ) -> Result<TExpr, Error> {
        let b = self.expr(scope, base)?;
        let i = self.expr(scope, index)?;
        let i = self.scalar(i, "an index")?;
        match b.ty.clone() {
            Ty::Ptr { to, user } => {
                let at = self.pointer_offset(BinOp::Add, b, i, span)?;
                self.deref_value(at, &to, user, span)
            }
            Ty::Place {
                place: Place::CharArray(n),
                user,
            } => {
                if let TKind::Const(k) = i.kind
                    && k >= u64::from(n)
                {
                    return Err(Error::at(
                        i.span,
                        format!("index {k} is past the end of this {n}-byte array"),
                    ));
                }
                let byte = Pointee::Int {
                    bytes: 1,
                    signed: false,
                };
                let ptr = TExpr {
                    kind: b.kind,
                    ty: Ty::Ptr {
                        to: byte.clone(),
                        user,
                    },
                    span: b.span,
                };
                let at = self.pointer_offset(BinOp::Add, ptr, i, span)?;
                self.deref_value(at, &byte, user, span)
            }
            other => Err(Error::at(
                b.span,
                format!(
                    "{} cannot be indexed: cast it to a pointer first, e.g. `((uint64 *)arg0)[1]`",
                    other.describe()
                ),
            )),
        }
    }

    /// `sizeof(TYPE)`.
    pub(super) fn sizeof_type(&self, target: &CastTarget, span: Span) -> Result<TExpr, Error> {
        let bytes = match target {
            CastTarget::Int { bytes, .. } => u64::from(*bytes),
            CastTarget::IntPtr { .. } | CastTarget::Struct { pointers: 1.., .. } => {
                u64::from(self.kernel.abi.pointer_bytes)
            }
            CastTarget::Struct { name, .. } => {
                return Err(Error::at(
                    span,
                    format!(
                        "sizeof(struct {name}): the offsets profile holds members, not struct sizes"
                    ),
                ));
            }
        };
        Ok(TExpr {
            kind: TKind::Const(bytes),
            ty: int(false),
            span,
        })
    }

    /// `sizeof(EXPR)`: the bytes of its type; the expression is not run.
    pub(super) fn sizeof_expr(
        &mut self,
        scope: &mut Scope,
        args: &[Expr],
        span: Span,
    ) -> Result<TExpr, Error> {
        expect_args("sizeof", args, 1, span)?;
        let v = self.expr(scope, &args[0])?;
        let bytes = match &v.ty {
            Ty::Int { bytes, .. } => u32::from(*bytes),
            Ty::Ptr { .. } => u32::from(self.kernel.abi.pointer_bytes),
            Ty::Str { len } => *len,
            Ty::Inet => crate::output::INET_SIZE,
            Ty::Buf { .. } => v.ty.buffer_len().unwrap_or(0),
            Ty::Tuple(_) => v.ty.buffer_len().unwrap_or(0),
            // One program per function makes it a string of `str_len`.
            Ty::Symbol(crate::symbols::Symbolic::Func) => {
                return Err(Error::at(
                    args[0].span,
                    "sizeof(func) is its string's size: one program per function",
                ));
            }
            Ty::Symbol(_) => v.ty.buffer_len().unwrap_or(8),
            Ty::Place {
                place: Place::CharArray(n),
                ..
            } => *n,
            Ty::Place {
                place: Place::Opaque { size, .. },
                ..
            } => *size,
            Ty::Place {
                place: Place::Struct(s),
                ..
            } => {
                return Err(Error::at(
                    span,
                    format!(
                        "sizeof of a `struct {s}`: the offsets profile holds members, not struct sizes"
                    ),
                ));
            }
        };
        Ok(TExpr {
            kind: TKind::Const(u64::from(bytes)),
            ty: int(false),
            span,
        })
    }
}
