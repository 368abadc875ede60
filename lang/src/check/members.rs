//! Struct members through the field source, and tracepoint fields through the format.

use super::*;

impl Checker<'_> {
    pub(super) fn field(
        &mut self,
        strukt: &str,
        member: &str,
        span: Span,
    ) -> Result<crate::fields::FieldInfo, Error> {
        let key = format!("{strukt}.{member}");
        self.used_fields.insert(key.clone());
        match self.fields.field(strukt, member) {
            Some(f) => Ok(f),
            None => {
                self.missing_fields.push((key.clone(), span));
                Err(Error::at(
                    span,
                    format!(
                        "unknown field `{key}`: the offsets profile lacks it; add it with `offsets gen ... --field {key}`"
                    ),
                ))
            }
        }
    }

    pub(super) fn member(
        &mut self,
        scope: &mut Scope,
        base: &Expr,
        member: &str,
        arrow: bool,
        member_span: Span,
        span: Span,
    ) -> Result<TExpr, Error> {
        if let ExprKind::Ident(name) = &base.kind
            && name == "args"
        {
            return self.tracepoint_field(scope, member, member_span);
        }
        // `outer->a.b`: a source may know `S.a.b` by path without knowing
        // the type of `a`; prefer that lookup when it answers.
        if !arrow
            && let ExprKind::Member {
                base: inner,
                member: outer_member,
                arrow: inner_arrow,
                ..
            } = &base.kind
        {
            let inner = self.expr(scope, inner)?;
            let strukt = match (&inner.ty, inner_arrow) {
                (
                    Ty::Ptr {
                        to: Pointee::Struct(s),
                        user,
                    },
                    true,
                )
                | (
                    Ty::Place {
                        place: Place::Struct(s),
                        user,
                    },
                    false,
                ) => Some((s.clone(), *user)),
                _ => None,
            };
            if let Some((strukt, user)) = strukt {
                let path = format!("{outer_member}.{member}");
                if let Some(field) = self.fields.field(&strukt, &path) {
                    self.used_fields.insert(format!("{strukt}.{path}"));
                    let c_type = field
                        .c_type
                        .as_deref()
                        .map_or(CType::Other, |t| CType::parse(t, field.size));
                    return Ok(member_value(
                        inner,
                        (field.offset, field.size),
                        c_type,
                        (user, self.read_helper(user)),
                        (strukt, path),
                        span,
                    ));
                }
            }
        }
        let base = self.expr(scope, base)?;
        let untyped = self
            .untyped
            .iter()
            .find(|(s, _)| *s == base.span)
            .map(|(_, u)| u.clone());
        let (strukt, path, base_addr, user, off_base) = match (&base.ty, arrow) {
            (Ty::Int { .. }, false) if let Some(u) = untyped => {
                (u.strukt, format!("{}.{member}", u.path), u.outer, u.user, 0)
            }
            (
                Ty::Ptr {
                    to: Pointee::Struct(s),
                    user,
                },
                true,
            ) => (s.clone(), member.to_string(), base.clone(), *user, 0),
            (
                Ty::Place {
                    place: Place::Struct(s),
                    user,
                },
                false,
            ) => (s.clone(), member.to_string(), base.clone(), *user, 0),
            (
                Ty::Place {
                    place: Place::Opaque { strukt, path, .. },
                    user,
                },
                false,
            ) => {
                // Unknown type: look the nested member up by its path from
                // the outer struct, relative to the outer struct's address.
                let TKind::Offset { base: outer, off } = &base.kind else {
                    return Err(Error::at(
                        base.span,
                        "internal: opaque member without an address",
                    ));
                };
                let _ = off;
                (
                    strukt.clone(),
                    format!("{path}.{member}"),
                    (**outer).clone(),
                    *user,
                    0,
                )
            }
            (Ty::Ptr { .. } | Ty::Place { .. }, true) => {
                return Err(Error::at(
                    member_span,
                    format!(
                        "`->` needs a struct pointer; {} is not one (use `.`?)",
                        base.ty.describe()
                    ),
                ));
            }
            (
                Ty::Ptr {
                    to: Pointee::Struct(_),
                    ..
                },
                false,
            ) => {
                return Err(Error::at(
                    member_span,
                    format!("{} is a pointer: use `->{member}`", base.ty.describe()),
                ));
            }
            _ => {
                return Err(Error::at(
                    base.span,
                    format!(
                        "{} has no members; cast it first, e.g. `((struct NAME *){})->{member}`",
                        base.ty.describe(),
                        "EXPR"
                    ),
                ));
            }
        };
        let field = self.field(&strukt, &path, member_span)?;
        if field.c_type.is_none() {
            self.untyped.push((
                span,
                Untyped {
                    strukt: strukt.clone(),
                    path: path.clone(),
                    outer: base_addr.clone(),
                    user,
                },
            ));
        }
        let c_type = field
            .c_type
            .as_deref()
            .map_or(CType::Other, |t| CType::parse(t, field.size));
        Ok(member_value(
            base_addr,
            (off_base + field.offset, field.size),
            c_type,
            (user, self.read_helper(user)),
            (strukt, path),
            span,
        ))
    }

    pub(super) fn tracepoint_field(
        &mut self,
        scope: &Scope,
        member: &str,
        span: Span,
    ) -> Result<TExpr, Error> {
        let Some(format) = &scope.tracepoint else {
            return Err(Error::at(span, "`args` exists only in tracepoint probes"));
        };
        let Some(field) = format.fields.iter().find(|f| f.name == member) else {
            return Err(Error::at(
                span,
                format!("tracepoint `{}` has no field `{member}`", scope.point),
            ));
        };
        if field.offset < 8 {
            // The verifier refuses reads of a record's first 8 bytes.
            return Err(Error::at(
                span,
                format!(
                    "tracepoint field `{member}` is in the common header BPF may not read; use `pid`, `comm` or `cpu`"
                ),
            ));
        }
        let user = scope.point.to_string().starts_with("tracepoint:syscalls:");
        let ty_kind = if field.data_loc {
            (
                TKind::DataLoc { off: field.offset },
                Ty::Place {
                    place: Place::CharArray(self.str_len),
                    user: false,
                },
            )
        } else {
            match &field.c_type {
                CType::CharArray(n) => (
                    TKind::CtxAddr { off: field.offset },
                    Ty::Place {
                        place: Place::CharArray(*n),
                        user: false,
                    },
                ),
                CType::Ptr { to, .. } => (
                    TKind::CtxLoad {
                        off: field.offset,
                        bytes: field.size as u8,
                        signed: false,
                    },
                    Ty::Ptr {
                        to: Pointee::of(to),
                        user,
                    },
                ),
                _ if [1, 2, 4, 8].contains(&field.size) => {
                    let signed = matches!(field.c_type, CType::Int { signed: true, .. });
                    (
                        TKind::CtxLoad {
                            off: field.offset,
                            bytes: field.size as u8,
                            signed,
                        },
                        sized_int(signed, field.size as u8),
                    )
                }
                _ => {
                    return Err(Error::at(
                        span,
                        format!(
                            "tracepoint field `{member}` ({} bytes) is not an integer, pointer or string",
                            field.size
                        ),
                    ));
                }
            }
        };
        let value = TExpr {
            kind: ty_kind.0,
            ty: ty_kind.1,
            span,
        };
        match scope.point {
            AttachPoint::Syscall(lowered) => crate::syscalls::read_field(
                lowered,
                self.kernel.abi,
                value,
                self.read_helper(false),
            )
            .map_err(|why| Error::at(span, why)),
            _ => Ok(value),
        }
    }
}

/// A member of type `c_type` at `addr + off`.
fn member_value(
    addr: TExpr,
    (off, size): (u32, u32),
    c_type: CType,
    (user, helper): (bool, Helper),
    opaque: (String, String),
    span: Span,
) -> TExpr {
    let address = |place: Place| TExpr {
        ty: Ty::Place { place, user },
        kind: TKind::Offset {
            base: Box::new(addr.clone()),
            off,
        },
        span,
    };
    let read = |bytes: u8, signed: bool, ty: Ty| TExpr {
        kind: TKind::Read {
            addr: Box::new(addr.clone()),
            off,
            bytes,
            signed,
            user,
            helper,
        },
        ty,
        span,
    };
    match c_type {
        CType::Int { bytes, signed } if [1, 2, 4, 8].contains(&size) => {
            let bytes = if u32::from(bytes) == size {
                bytes
            } else {
                size as u8
            };
            read(bytes, signed, sized_int(signed, bytes))
        }
        CType::Ptr { to, user: to_user } => {
            let to = Pointee::of(&to);
            // A pointer is as wide as the source says (the target's, not ours).
            read(size.clamp(1, 8) as u8, false, Ty::Ptr { to, user: to_user })
        }
        CType::Struct(s) => address(Place::Struct(s)),
        CType::CharArray(n) => address(Place::CharArray(n.max(1))),
        _ if [1, 2, 4, 8].contains(&size) => read(size as u8, false, sized_int(false, size as u8)),
        _ => address(Place::Opaque {
            strukt: opaque.0,
            path: opaque.1,
            size,
        }),
    }
}
