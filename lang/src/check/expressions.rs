//! Expressions: builtins, operators, casts and `str()`.

use super::*;

/// A name that is no builtin nor a constant anything defines.
fn unknown_identifier(name: &str, span: Span) -> Error {
    Error::at(
        span,
        format!(
            "unknown identifier `{name}`: not a builtin, nor a constant of the script's enums or #defines, the kernel's BTF, the offsets profile's [enums] (`offsets gen --fields-from PROGRAM` records them) or nobtf's uapi table"
        ),
    )
}

impl Checker<'_> {
    pub(super) fn ident(&mut self, scope: &Scope, name: &str, span: Span) -> Result<TExpr, Error> {
        let e = |kind, ty| Ok(TExpr { kind, ty, span });
        let abi = self.kernel.abi;
        if scope.context == Context::UserSpace && !matches!(name, "nsecs" | "elapsed") {
            if let Some(value) = self.fields.enum_value(name) {
                return e(TKind::Const(value as u64), int(value < 0));
            }
            // Builtins are lower case; a constant's name (`TCP_CLOSE`) that
            // nothing defines is unknown here as in a probe.
            if !name.chars().any(|c| c.is_ascii_lowercase()) {
                return Err(unknown_identifier(name, span));
            }
            return Err(Error::at(
                span,
                format!(
                    "`{name}` cannot be read in BEGIN or END: nobtf runs them in user space (constants, maps, nsecs and elapsed only)"
                ),
            ));
        }
        if let Some(n) = name
            .strip_prefix("arg")
            .and_then(|n| n.parse::<usize>().ok())
        {
            if scope.context != Context::Entry {
                return Err(Error::at(span, format!("`{name}` exists only in kprobes")));
            }
            let Some(&(_, off)) = abi.args.get(n) else {
                return Err(Error::at(
                    span,
                    format!(
                        "`{name}`: {} passes only {} arguments in registers",
                        abi.arch,
                        abi.args.len()
                    ),
                ));
            };
            return e(
                TKind::CtxLoad {
                    off: off as u32,
                    bytes: abi.pointer_bytes,
                    signed: false,
                },
                sized_int(false, abi.pointer_bytes),
            );
        }
        if let Some(n) = name
            .strip_prefix("sarg")
            .and_then(|n| n.parse::<u32>().ok())
        {
            return self.stack_arg(scope, name, n, span);
        }
        if let Some(value) = self.sampling_ident(name, span) {
            return value;
        }
        match name {
            "retval" => {
                if scope.context != Context::Return {
                    return Err(Error::at(span, "`retval` exists only in kretprobes"));
                }
                e(
                    TKind::CtxLoad {
                        off: abi.ret.1 as u32,
                        bytes: abi.pointer_bytes,
                        signed: true,
                    },
                    int(true),
                )
            }
            "pid" => e(TKind::Builtin(Builtin::Pid), int(false)),
            "tid" => e(TKind::Builtin(Builtin::Tid), int(false)),
            "uid" => e(TKind::Builtin(Builtin::Uid), int(false)),
            "gid" => e(TKind::Builtin(Builtin::Gid), int(false)),
            "nsecs" => e(TKind::Builtin(Builtin::Nsecs), int(false)),
            "elapsed" => Ok(self.elapsed(span)),
            "cpu" => e(TKind::Builtin(Builtin::Cpu), int(false)),
            "comm" => e(
                TKind::Comm {
                    task_btf: self.kernel.task_comm,
                },
                Ty::Str { len: COMM_LEN },
            ),
            "func" if matches!(scope.point, AttachPoint::KprobeMulti { .. }) => e(
                TKind::Builtin(Builtin::FuncIp),
                Ty::Symbol(crate::symbols::Symbolic::Func),
            ),
            "probe" if matches!(scope.point, AttachPoint::KprobeMulti { .. }) => Err(Error::at(
                span,
                "`probe` names each function's probe: not in one program for many functions",
            )),
            "func" => e(
                TKind::ConstStr(scope.point.func()),
                Ty::Str { len: STR_LEN },
            ),
            "probe" => e(
                TKind::ConstStr(scope.point.to_string()),
                Ty::Str { len: STR_LEN },
            ),
            "args" => Err(Error::at(span, "`args` is read by field: `args->NAME`")),
            _ if UNSUPPORTED.contains(&name) => Err(Error::at(
                span,
                format!("`{name}` is a bpftrace builtin nobtf trace does not support yet"),
            )),
            _ => match self.fields.enum_value(name) {
                // An enumerator (the script's, BTF's, the profile's) or a uapi constant.
                Some(value) => e(TKind::Const(value as u64), int(value < 0)),
                None => Err(unknown_identifier(name, span)),
            },
        }
    }

    /// `sargN`: the function's Nth argument passed on the stack, read from
    /// above the stack pointer at entry (in the process, for a uprobe).
    fn stack_arg(&self, scope: &Scope, name: &str, n: u32, span: Span) -> Result<TExpr, Error> {
        let abi = self.kernel.abi;
        if scope.context != Context::Entry {
            return Err(Error::at(
                span,
                format!("`{name}` exists only in kprobes and uprobes"),
            ));
        }
        let sp = abi.register("sp").ok_or_else(|| {
            Error::at(span, format!("`{name}`: no stack pointer on {}", abi.arch))
        })?;
        let bytes = abi.pointer_bytes;
        let slot = n
            .checked_add(u32::from(abi.stack_args_from))
            .and_then(|s| s.checked_mul(u32::from(bytes)))
            .ok_or_else(|| Error::at(span, format!("`{name}` is too far up the stack")))?;
        let user = scope.point.in_user_space();
        let stack_pointer = TExpr {
            kind: TKind::CtxLoad {
                off: sp as u32,
                bytes,
                signed: false,
            },
            ty: sized_int(false, bytes),
            span,
        };
        Ok(TExpr {
            kind: TKind::Read {
                addr: Box::new(stack_pointer),
                off: slot,
                bytes,
                signed: false,
                user,
                helper: self.read_helper(user),
            },
            ty: sized_int(false, bytes),
            span,
        })
    }

    /// `elapsed`: `nsecs` less the start the loader writes in the hidden
    /// map [`crate::userspace::ELAPSED_MAP`] before BEGIN, as bpftrace's
    /// own `elapsed` map (4.14 has no global variables to patch).
    fn elapsed(&mut self, span: Span) -> TExpr {
        let name = crate::userspace::ELAPSED_MAP;
        let map = match self.maps.iter().position(|m| m.name == name) {
            Some(i) => i,
            None => {
                let key = Slot {
                    ty: ValueType::Int { signed: false },
                    offset: 0,
                };
                self.maps.push(MapSpec {
                    name: name.into(),
                    kind: MapKind::Assign(ValueType::Int { signed: false }),
                    key: vec![key],
                    key_size: 8,
                    value_size: 8,
                    per_cpu: false,
                    array: false,
                    max_entries: 1,
                    tuple: None,
                });
                self.maps.len() - 1
            }
        };
        let t = |kind| TExpr {
            kind,
            ty: int(false),
            span,
        };
        let start = t(TKind::MapGet {
            map,
            keys: vec![t(TKind::Const(0))],
        });
        t(TKind::Binary {
            op: BinOp::Sub,
            signed: false,
            left: Box::new(t(TKind::Builtin(Builtin::Nsecs))),
            right: Box::new(start),
        })
    }

    pub(super) fn expr(&mut self, scope: &mut Scope, e: &Expr) -> Result<TExpr, Error> {
        let span = e.span;
        let t = |kind, ty| Ok(TExpr { kind, ty, span });
        match &e.kind {
            // A literal is an int64, as in bpftrace (`$n = 0; $n < 0` compares
            // signed); one past i64::MAX is a uint64.
            ExprKind::Int(n) => t(TKind::Const(*n), int(*n <= i64::MAX as u64)),
            ExprKind::Str(s) => {
                let len = (s.len() as u32 + 1).next_multiple_of(8).min(STR_MAX);
                t(TKind::ConstStr(s.clone()), Ty::Str { len })
            }
            ExprKind::Ident(name) => self.ident(scope, name, span),
            ExprKind::Var(name) => match scope.var(name) {
                Some(slot) => t(TKind::Var(slot), scope.vars[slot].1.clone()),
                None => Err(Error::at(
                    span,
                    format!("`${name}` is used before it is assigned"),
                )),
            },
            ExprKind::Map(m) => {
                let map = self.map_index(&m.name, m.span)?;
                let keys = self.keys(scope, m)?;
                self.check_keys(map, &keys, m.span)?;
                let user_space = scope.context == Context::UserSpace;
                let ty = match self.maps[map].kind {
                    MapKind::Assign(ValueType::Int { signed }) => int(signed),
                    MapKind::Assign(ValueType::Str { len }) => Ty::Str { len },
                    MapKind::Assign(ValueType::Buf { max }) => Ty::Buf { max },
                    MapKind::Tuple if user_space => {
                        return Err(crate::userspace::refusal(
                            span,
                            &format!("reading the tuple map `{}`", self.maps[map].name),
                        ));
                    }
                    MapKind::Tuple => match &self.maps[map].tuple {
                        Some(layout) => super::maps::tuple_type(layout),
                        None => return Err(Error::at(span, "internal: tuple map without layout")),
                    },
                    // In BEGIN and END, read in user space: combined over
                    // the CPUs, as bpftrace 0.23 reads them.
                    MapKind::Count if user_space => int(false),
                    MapKind::Sum { signed } | MapKind::Min { signed } | MapKind::Max { signed }
                        if user_space =>
                    {
                        int(signed)
                    }
                    MapKind::Avg { .. } if user_space => int(true),
                    MapKind::Hist | MapKind::Lhist { .. } if user_space => {
                        return Err(crate::userspace::refusal(
                            span,
                            &format!("reading the histogram `{}`", self.maps[map].name),
                        ));
                    }
                    _ => {
                        return Err(Error::at(
                            span,
                            format!(
                                "reading the aggregation `{}` in a probe is not supported; print it",
                                self.maps[map].name
                            ),
                        ));
                    }
                };
                t(TKind::MapGet { map, keys }, ty)
            }
            ExprKind::Call { name, args } => self.call(scope, name, args, span),
            ExprKind::Unary(op, v) => {
                let v = self.expr(scope, v)?;
                let v = self.scalar(v, "an operand")?;
                let ty = match op {
                    UnOp::Not => int(false),
                    _ => v.ty.clone(),
                };
                t(TKind::Unary(*op, Box::new(v)), ty)
            }
            ExprKind::Binary(op, l, r) => self.binary(scope, *op, l, r, span),
            ExprKind::Ternary(c, a, b) => {
                let c = self.expr(scope, c)?;
                let c = self.scalar(c, "a condition")?;
                let a = self.expr(scope, a)?;
                let b = self.expr(scope, b)?;
                let a = self.storable(a)?;
                let b = self.storable(b)?;
                let ty = match (&a.ty, &b.ty) {
                    (Ty::Str { len: x }, Ty::Str { len: y }) => Ty::Str { len: *x.max(y) },
                    (Ty::Inet, Ty::Inet) => Ty::Inet,
                    (Ty::Str { .. } | Ty::Inet | Ty::Buf { .. }, _)
                    | (_, Ty::Str { .. } | Ty::Inet | Ty::Buf { .. }) => {
                        return Err(Error::at(
                            span,
                            "the branches of `?:` must both be strings, both addresses or both integers",
                        ));
                    }
                    _ => {
                        let a = self.scalar(a.clone(), "a `?:` branch")?;
                        self.scalar(b.clone(), "a `?:` branch")?;
                        a.ty
                    }
                };
                t(TKind::Ternary(Box::new(c), Box::new(a), Box::new(b)), ty)
            }
            ExprKind::Cast { target, value } => {
                let v = self.expr(scope, value)?;
                // A cast pointer points into the probe's side (a uprobe's
                // process), as bpftrace's address spaces go.
                let user = scope.point.in_user_space();
                match target {
                    CastTarget::Struct { name, pointers: 1 } => match v.ty {
                        Ty::Int { .. } | Ty::Ptr { .. } => t(
                            v.kind,
                            Ty::Ptr {
                                to: Pointee::Struct(name.clone()),
                                user,
                            },
                        ),
                        _ => Err(Error::at(
                            v.span,
                            format!("cannot cast {} to a pointer", v.ty.describe()),
                        )),
                    },
                    CastTarget::Struct { .. } => Err(Error::at(
                        span,
                        "only casts to `struct NAME *` are supported",
                    )),
                    CastTarget::IntPtr {
                        bytes,
                        signed,
                        pointers,
                    } => {
                        let v = self.scalar(v, "a cast's operand")?;
                        let mut to = Pointee::Int {
                            bytes: *bytes,
                            signed: *signed,
                        };
                        for _ in 1..*pointers {
                            to = Pointee::Ptr(Box::new(to));
                        }
                        t(v.kind, Ty::Ptr { to, user })
                    }
                    CastTarget::Int { bytes, signed } => {
                        let v = self.scalar(v, "a cast's operand")?;
                        t(
                            TKind::Trunc {
                                value: Box::new(v),
                                bytes: *bytes,
                                signed: *signed,
                            },
                            sized_int(*signed, *bytes),
                        )
                    }
                }
            }
            ExprKind::Member {
                base,
                member,
                arrow,
                member_span,
            } => self.member(scope, base, member, *arrow, *member_span, span),
            ExprKind::Tuple(elements) => {
                let mut typed = Vec::new();
                for element in elements {
                    let v = self.expr(scope, element)?;
                    let v = self.storable(v)?;
                    match v.ty {
                        Ty::Int { .. }
                        | Ty::Ptr { .. }
                        | Ty::Str { .. }
                        | Ty::Inet
                        | Ty::Tuple(_) => typed.push(v),
                        _ => {
                            return Err(Error::at(
                                v.span,
                                format!("a tuple cannot hold {}", v.ty.describe()),
                            ));
                        }
                    }
                }
                let ty = Ty::Tuple(typed.iter().map(|e| e.ty.clone()).collect());
                t(TKind::Tuple(typed), ty)
            }
            ExprKind::TupleField { base, index } => {
                let b = self.expr(scope, base)?;
                let Ty::Tuple(elements) = &b.ty else {
                    return Err(Error::at(
                        b.span,
                        format!("`.{index}` needs a tuple, found {}", b.ty.describe()),
                    ));
                };
                let Some(ty) = elements.get(*index).cloned() else {
                    return Err(Error::at(
                        span,
                        format!(
                            "this tuple has {} elements; `.{index}` is past them",
                            elements.len()
                        ),
                    ));
                };
                t(
                    TKind::TupleField {
                        base: Box::new(b),
                        index: *index,
                    },
                    ty,
                )
            }
            ExprKind::Deref(value) => self.deref(scope, value, span),
            ExprKind::AddrOf(value) => self.addr_of(scope, value, span),
            ExprKind::Index { base, index } => self.index(scope, base, index, span),
            ExprKind::SizeofType(target) => self.sizeof_type(target, span),
        }
    }

    pub(super) fn binary(
        &mut self,
        scope: &mut Scope,
        op: BinOp,
        l: &Expr,
        r: &Expr,
        span: Span,
    ) -> Result<TExpr, Error> {
        let l = self.expr(scope, l)?;
        let r = self.expr(scope, r)?;
        let l = self.storable(l)?;
        let r = self.storable(r)?;
        let is_str = |e: &TExpr| matches!(e.ty, Ty::Str { .. });
        if is_str(&l) || is_str(&r) {
            let negate = match op {
                BinOp::Eq => false,
                BinOp::Ne => true,
                _ => {
                    return Err(Error::at(
                        span,
                        "strings can only be compared with `==`/`!=`",
                    ));
                }
            };
            if let Some(other) = [&l, &r].into_iter().find(|e| !is_str(e)) {
                return Err(Error::at(
                    other.span,
                    format!("{} cannot be compared with a string", other.ty.describe()),
                ));
            }
            let (value, literal) = match (&l.kind, &r.kind) {
                (_, TKind::ConstStr(s)) if !matches!(l.kind, TKind::ConstStr(_)) => (l, s.clone()),
                (TKind::ConstStr(s), _) => (r, s.clone()),
                _ => {
                    // Two strings: compared up to the shorter buffer.
                    let len = value_len(&l).min(value_len(&r));
                    return Ok(TExpr {
                        kind: TKind::StrCmp {
                            left: Box::new(l),
                            right: Box::new(r),
                            len,
                            negate,
                        },
                        ty: int(false),
                        span,
                    });
                }
            };
            return Ok(TExpr {
                kind: TKind::StrEq {
                    value: Box::new(value),
                    literal,
                    negate,
                },
                ty: int(false),
                span,
            });
        }
        let l = self.scalar(l, "an operand")?;
        let r = self.scalar(r, "an operand")?;
        // A typed pointer moves by whole elements.
        match (op, &l.ty, &r.ty) {
            (BinOp::Add | BinOp::Sub, Ty::Ptr { .. }, Ty::Int { .. }) => {
                return self.pointer_offset(op, l, r, span);
            }
            (BinOp::Add, Ty::Int { .. }, Ty::Ptr { .. }) => {
                return self.pointer_offset(op, r, l, span);
            }
            _ => {}
        }
        // Signed when both are, or one is and the other a literal.
        let signed_or_const = |e: &TExpr| {
            matches!(e.ty, Ty::Int { signed: true, .. }) || matches!(e.kind, TKind::Const(_))
        };
        let signed = (matches!(l.ty, Ty::Int { signed: true, .. })
            || matches!(r.ty, Ty::Int { signed: true, .. }))
            && signed_or_const(&l)
            && signed_or_const(&r);
        let ty = match op {
            BinOp::Eq
            | BinOp::Ne
            | BinOp::Lt
            | BinOp::Le
            | BinOp::Gt
            | BinOp::Ge
            | BinOp::LogAnd
            | BinOp::LogOr => int(false),
            _ => int(signed),
        };
        Ok(TExpr {
            kind: TKind::Binary {
                op,
                signed,
                left: Box::new(l),
                right: Box::new(r),
            },
            ty,
            span,
        })
    }

    /// `ntop(addr)` or `ntop(family, addr)`: an integer is an IPv4
    /// address as memory holds it; a 4- or 16-byte array is read.
    fn ntop(&mut self, scope: &mut Scope, args: &[Expr], span: Span) -> Result<TExpr, Error> {
        let (family, addr) = match args {
            [addr] => (None, addr),
            [family, addr] => (Some(family), addr),
            _ => {
                return Err(Error::at(
                    span,
                    "ntop takes an address and an optional family: ntop([AF, ] ADDR)",
                ));
            }
        };
        let addr = self.expr(scope, addr)?;
        let (from, implied) = match &addr.ty {
            Ty::Int { .. } => (InetSource::Int, AF_INET),
            // A member of unknown type and the size of an address (a
            // profile does not say `__u8[16]`) is read as its bytes too.
            Ty::Place {
                place:
                    Place::CharArray(n @ (4 | 16))
                    | Place::Opaque {
                        size: n @ (4 | 16), ..
                    },
                user,
            } => (
                InetSource::Memory {
                    bytes: *n as u8,
                    user: *user,
                    helper: self.read_helper(*user),
                },
                if *n == 4 { AF_INET } else { AF_INET6 },
            ),
            other => {
                return Err(Error::at(
                    addr.span,
                    format!(
                        "ntop takes an integer or a 4- or 16-byte array, found {}",
                        other.describe()
                    ),
                ));
            }
        };
        let family = match family {
            Some(f) => {
                let f = self.expr(scope, f)?;
                self.scalar(f, "ntop's family")?
            }
            None => TExpr {
                kind: TKind::Const(implied),
                ty: int(false),
                span,
            },
        };
        Ok(TExpr {
            kind: TKind::Ntop {
                family: Box::new(family),
                addr: Box::new(addr),
                from,
            },
            ty: Ty::Inet,
            span,
        })
    }

    pub(super) fn call(
        &mut self,
        scope: &mut Scope,
        name: &str,
        args: &[Expr],
        span: Span,
    ) -> Result<TExpr, Error> {
        self.refuse_unsafe(name, span)?;
        if let Some(value) = self.sampling_call(scope, name, args, span) {
            return value;
        }
        match name {
            "str" => {
                if args.is_empty() || args.len() > 2 {
                    return Err(Error::at(
                        span,
                        "str takes an address and an optional length: str(EXPR [, LEN])",
                    ));
                }
                let len = match args.get(1) {
                    None => self.str_len,
                    Some(a) => {
                        let n = constant(a).ok_or_else(|| {
                            Error::at(a.span, "str's length must be an integer constant")
                        })?;
                        if n < 1 || n > i64::from(STR_MAX) {
                            return Err(Error::at(
                                a.span,
                                format!("str's length must be 1..={STR_MAX}"),
                            ));
                        }
                        // bpftrace's length includes the NUL.
                        n as u32
                    }
                };
                let addr = self.expr(scope, &args[0])?;
                let user = match &addr.ty {
                    Ty::Ptr { user, .. } | Ty::Place { user, .. } => *user,
                    // An integer is an address of the probe's side: a
                    // uprobe's arguments are the process's.
                    Ty::Int { .. } => scope.point.in_user_space(),
                    // `str($1)`: the parameter's text.
                    Ty::Str { .. } if matches!(addr.kind, TKind::ConstStr(_)) => return Ok(addr),
                    Ty::Str { .. } => {
                        return Err(Error::at(
                            addr.span,
                            "str() of a string: use the string itself",
                        ));
                    }
                    Ty::Inet => {
                        return Err(Error::at(
                            addr.span,
                            "str() of an address: print it with %s",
                        ));
                    }
                    Ty::Buf { .. } => {
                        return Err(Error::at(addr.span, "str() of a buffer: print it with %r"));
                    }
                    Ty::Tuple(_) => {
                        return Err(Error::at(addr.span, "str() of a tuple"));
                    }
                    Ty::Symbol(_) => {
                        return Err(Error::at(
                            addr.span,
                            format!("str() of {}: print it with %s", addr.ty.describe()),
                        ));
                    }
                };
                let len = match &addr.ty {
                    Ty::Place {
                        place: Place::CharArray(n),
                        ..
                    } if args.get(1).is_none() => (*n).clamp(1, STR_MAX),
                    _ => len,
                };
                Ok(TExpr {
                    kind: TKind::StrRead {
                        addr: Box::new(addr),
                        len,
                        user,
                        helper: self.read_str_helper(user),
                    },
                    ty: Ty::Str { len },
                    span,
                })
            }
            "ntop" => self.ntop(scope, args, span),
            "sizeof" => self.sizeof_expr(scope, args, span),
            "strcontains" => {
                expect_args(name, args, 2, span)?;
                let mut strings = Vec::new();
                for arg in args {
                    let s = self.expr(scope, arg)?;
                    let s = self.storable(s)?;
                    if !matches!(s.ty, Ty::Str { .. }) {
                        return Err(Error::at(
                            s.span,
                            format!("strcontains takes strings, found {}", s.ty.describe()),
                        ));
                    }
                    strings.push(s);
                }
                let needle = strings.pop().expect("two strings");
                let haystack = strings.pop().expect("two strings");
                // Unrolled: every position of the haystack against every
                // byte of the needle, about four instructions a pair.
                let (h, n) = (value_len(&haystack), value_len(&needle));
                let cost = 4 * h as usize * n as usize;
                if cost > self.kernel.max_insns / 2 {
                    return Err(Error::at(
                        span,
                        format!(
                            "strcontains of a {h}-byte string and a {n}-byte one takes about {cost} BPF instructions; this kernel takes {} in all: shorten them, e.g. str(x, 16)",
                            self.kernel.max_insns
                        ),
                    ));
                }
                Ok(TExpr {
                    kind: TKind::StrContains {
                        haystack: Box::new(haystack),
                        needle: Box::new(needle),
                    },
                    ty: int(false),
                    span,
                })
            }
            "strncmp" => {
                expect_args(name, args, 3, span)?;
                let mut strings = Vec::new();
                for arg in &args[..2] {
                    let s = self.expr(scope, arg)?;
                    let s = self.storable(s)?;
                    if !matches!(s.ty, Ty::Str { .. }) {
                        return Err(Error::at(
                            s.span,
                            format!("strncmp compares strings, found {}", s.ty.describe()),
                        ));
                    }
                    strings.push(s);
                }
                let n = constant(&args[2]).filter(|n| *n >= 0).ok_or_else(|| {
                    Error::at(
                        args[2].span,
                        "strncmp's length must be a non-negative integer constant",
                    )
                })?;
                let right = strings.pop().expect("two strings");
                let left = strings.pop().expect("two strings");
                let len = (n.min(i64::from(STR_MAX)) as u32)
                    .min(value_len(&left))
                    .min(value_len(&right));
                // 0 when equal, as bpftrace's.
                Ok(TExpr {
                    kind: TKind::StrCmp {
                        left: Box::new(left),
                        right: Box::new(right),
                        len,
                        negate: true,
                    },
                    ty: int(false),
                    span,
                })
            }
            "bswap" => {
                expect_args(name, args, 1, span)?;
                let value = self.expr(scope, &args[0])?;
                let Ty::Int { bytes, .. } = value.ty else {
                    return Err(Error::at(
                        value.span,
                        format!("bswap() takes an integer, found {}", value.ty.describe()),
                    ));
                };
                Ok(TExpr {
                    kind: TKind::Bswap {
                        value: Box::new(value),
                        bytes,
                    },
                    ty: sized_int(false, bytes),
                    span,
                })
            }
            "count" | "sum" | "min" | "max" | "avg" | "hist" | "lhist" => Err(Error::at(
                span,
                format!("{name}() is assigned to a map: `@m = {name}(...)`"),
            )),
            "strftime" => Err(Error::at(
                span,
                "strftime() is printed by printf's %s: printf(\"%s\\n\", strftime(\"%H:%M:%S\", nsecs))",
            )),
            "buf" => self.buf_value(scope, args, span),
            "printf" | "print" | "exit" | "clear" | "delete" | "time" | "cat" | "system" => Err(
                Error::at(span, format!("{name}() is a statement, not a value")),
            ),
            _ if UNSUPPORTED.contains(&name) => Err(Error::at(
                span,
                format!("`{name}()` is a bpftrace function nobtf trace does not support yet"),
            )),
            _ => Err(Error::at(span, format!("unknown function `{name}()`"))),
        }
    }
}
