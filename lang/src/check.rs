//! The type check: names resolved against the providers, the field source
//! and tracepoint formats; maps' kinds and key types agreed across probes;
//! printf formats matched to their arguments.

use std::collections::BTreeSet;

use crate::ast::*;
use crate::diag::{Error, Span};
use crate::fields::{CType, FieldSource};
use crate::kernel::Kernel;
use crate::output::{EventFormat, MAP_ENTRIES, MapKind, MapSpec, Slot, ValueType};
use crate::providers::{AttachPoint, Context};
use crate::tracepoint::{TracepointFormat, TracepointSource};
use crate::typed::*;

/// bpftrace's default string length.
pub const STR_LEN: u32 = 64;
/// `TASK_COMM_LEN`.
pub const COMM_LEN: u32 = 16;
/// Longest `str()` a program may ask for: its buffer lives on the stack.
pub const STR_MAX: u32 = 200;

/// bpftrace builtins and functions nobtf trace does not offer yet: named so
/// that their use is "not supported", not "unknown".
const UNSUPPORTED: &[&str] = &[
    "kstack",
    "ustack",
    "curtask",
    "rand",
    "cgroup",
    "elapsed",
    "username",
    "ctx",
    "cpid",
    "sarg0",
    "jiffies",
    "numaid",
    "ksym",
    "usym",
    "kaddr",
    "uaddr",
    "ntop",
    "join",
    "system",
    "cat",
    "signal",
    "override",
    "strncmp",
    "buf",
    "time",
    "stats",
    "zero",
    "len",
    "reg",
    "macaddr",
    "cgroupid",
    "strftime",
    "path",
    "skboutput",
    "unwatch",
    "kptr",
    "uptr",
    "sizeof",
    "offsetof",
    "percpu_kaddr",
    "pton",
    "strcontains",
    "has_key",
    "print_tuple",
];

/// Everything the checker knows about the program as a whole.
pub struct Checker<'a> {
    pub fields: &'a dyn FieldSource,
    pub tracepoints: &'a dyn TracepointSource,
    pub kernel: Kernel,
    pub maps: Vec<MapSpec>,
    pub events: Vec<EventFormat>,
    /// `struct.member` of every field looked up.
    pub used_fields: BTreeSet<String>,
    /// Fields the source lacks, in order of first use.
    pub missing_fields: Vec<(String, Span)>,
    /// Members of unknown type read as integers, by span: `.member` after
    /// one is looked up as the nested path (`task_struct.se.vruntime`).
    untyped: Vec<(Span, Untyped)>,
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
    vars: Vec<(String, Ty)>,
}

fn int(signed: bool) -> Ty {
    Ty::Int { signed }
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
            used_fields: BTreeSet::new(),
            missing_fields: Vec::new(),
            untyped: Vec::new(),
        }
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
                        format!("unknown tracepoint `{category}:{name}`: the kernel has no events/{category}/{name} in tracefs"),
                    )
                })?,
            ),
            _ => None,
        };
        let mut scope = Scope {
            point,
            context,
            tracepoint,
            vars: Vec::new(),
        };
        let predicate = match &probe.predicate {
            None => None,
            Some(p) => {
                let e = self.expr(&mut scope, p)?;
                Some(self.scalar(e, "a predicate")?)
            }
        };
        let mut body = Vec::new();
        for stmt in &probe.body {
            if let Some(s) = self.stmt(&mut scope, stmt)? {
                body.push(s);
            }
        }
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
            StmtKind::AssignVar { name, value } => {
                let value = self.expr(scope, value)?;
                let value = self.storable(value)?;
                let slot = match scope.vars.iter().position(|(n, _)| n == name) {
                    Some(slot) => {
                        let ty = &scope.vars[slot].1;
                        if !same_storage(ty, &value.ty) {
                            return Err(Error::at(
                                value.span,
                                format!(
                                    "`${name}` holds {}; it cannot be assigned {}",
                                    ty.describe(),
                                    value.ty.describe()
                                ),
                            ));
                        }
                        slot
                    }
                    None => {
                        scope.vars.push((name.clone(), value.ty.clone()));
                        scope.vars.len() - 1
                    }
                };
                Ok(Some(TStmt::AssignVar { slot, value }))
            }
            StmtKind::AssignMap { map, value } => self.map_assign(scope, map, value, stmt.span),
            StmtKind::Expr(e) => self.call_stmt(scope, e),
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
                    },
                    ty: Ty::Str { len },
                    span,
                })
            }
            _ => Ok(value),
        }
    }

    fn call_stmt(&mut self, scope: &mut Scope, e: &Expr) -> Result<Option<TStmt>, Error> {
        let ExprKind::Call { name, args } = &e.kind else {
            // bpftrace accepts and ignores a bare expression; so do we.
            self.expr(scope, e)?;
            return Ok(None);
        };
        let span = e.span;
        match name.as_str() {
            "printf" => {
                let Some((fmt, rest)) = args.split_first() else {
                    return Err(Error::at(span, "printf needs a format string"));
                };
                let ExprKind::Str(format) = &fmt.kind else {
                    return Err(Error::at(
                        fmt.span,
                        "printf's format must be a string literal",
                    ));
                };
                let convs = conversions(format).map_err(|m| Error::at(fmt.span, m))?;
                if convs.len() != rest.len() {
                    return Err(Error::at(
                        span,
                        format!(
                            "printf format has {} conversions but {} arguments",
                            convs.len(),
                            rest.len()
                        ),
                    ));
                }
                let mut targs = Vec::new();
                let mut slots = Vec::new();
                let mut offset = 8;
                for (conv, arg) in convs.iter().zip(rest) {
                    let value = self.expr(scope, arg)?;
                    let value = self.storable(value)?;
                    let ty = match (conv, &value.ty) {
                        ('s', Ty::Str { len }) => ValueType::Str { len: *len },
                        ('s', _) => {
                            return Err(Error::at(
                                value.span,
                                format!(
                                    "%s needs a string, found {}; use str()",
                                    value.ty.describe()
                                ),
                            ));
                        }
                        (_, Ty::Str { .. }) => {
                            return Err(Error::at(
                                value.span,
                                format!("%{conv} needs an integer, found a string; use %s"),
                            ));
                        }
                        ('d' | 'i', _) => ValueType::Int { signed: true },
                        (_, Ty::Int { signed }) => ValueType::Int { signed: *signed },
                        _ => ValueType::Int { signed: false },
                    };
                    slots.push(Slot { ty, offset });
                    offset += ty.size();
                    targs.push(value);
                }
                let event = self.event(EventFormat::Printf {
                    format: format.clone(),
                    args: slots,
                });
                Ok(Some(TStmt::Emit {
                    event,
                    args: targs,
                    span,
                }))
            }
            "exit" => {
                expect_args(name, args, 0, span)?;
                let event = self.event(EventFormat::Exit);
                Ok(Some(TStmt::Emit {
                    event,
                    args: Vec::new(),
                    span,
                }))
            }
            "print" | "clear" => {
                let [
                    Expr {
                        kind: ExprKind::Map(m),
                        ..
                    },
                ] = &args[..]
                else {
                    return Err(Error::at(
                        span,
                        format!("{name} takes one map, e.g. {name}(@m)"),
                    ));
                };
                if !m.keys.is_empty() {
                    return Err(Error::at(
                        m.span,
                        format!("{name} takes the whole map, without a key"),
                    ));
                }
                self.map_index(&m.name, m.span)?;
                let map = format!("@{}", m.name);
                let event = self.event(if name == "print" {
                    EventFormat::Print { map }
                } else {
                    EventFormat::Clear { map }
                });
                Ok(Some(TStmt::Emit {
                    event,
                    args: Vec::new(),
                    span,
                }))
            }
            "delete" => {
                let [
                    Expr {
                        kind: ExprKind::Map(m),
                        ..
                    },
                ] = &args[..]
                else {
                    return Err(Error::at(
                        span,
                        "delete takes one map element, e.g. delete(@m[k])",
                    ));
                };
                let map = self.map_index(&m.name, m.span)?;
                let keys = self.keys(scope, m)?;
                self.check_keys(map, &keys, m.span)?;
                Ok(Some(TStmt::Delete { map, keys, span }))
            }
            _ => {
                self.expr(scope, e)?;
                Ok(None)
            }
        }
    }

    fn event(&mut self, format: EventFormat) -> usize {
        if let Some(i) = self.events.iter().position(|e| *e == format) {
            return i;
        }
        self.events.push(format);
        self.events.len() - 1
    }

    fn map_index(&self, name: &str, span: Span) -> Result<usize, Error> {
        let full = format!("@{name}");
        self.maps
            .iter()
            .position(|m| m.name == full)
            .ok_or_else(|| Error::at(span, format!("map `{full}` is used but never assigned")))
    }

    fn keys(&mut self, scope: &mut Scope, m: &MapAccess) -> Result<Vec<TExpr>, Error> {
        m.keys
            .iter()
            .map(|k| {
                let value = self.expr(scope, k)?;
                let value = self.storable(value)?;
                match value.ty {
                    Ty::Place { .. } => Err(Error::at(
                        value.span,
                        format!("a map key cannot be {}", value.ty.describe()),
                    )),
                    _ => Ok(value),
                }
            })
            .collect()
    }

    fn key_slots(keys: &[TExpr]) -> Vec<Slot> {
        let mut offset = 0;
        keys.iter()
            .map(|k| {
                let ty = value_type(&k.ty);
                let slot = Slot { ty, offset };
                offset += ty.size();
                slot
            })
            .collect()
    }

    fn check_keys(&self, map: usize, keys: &[TExpr], span: Span) -> Result<(), Error> {
        let expected = &self.maps[map].key;
        let got = Checker::key_slots(keys);
        let same = expected.len() == got.len()
            && expected.iter().zip(&got).all(|(a, b)| match (a.ty, b.ty) {
                (ValueType::Int { .. }, ValueType::Int { .. }) => true,
                (a, b) => a == b,
            });
        if same {
            Ok(())
        } else {
            Err(Error::at(
                span,
                format!(
                    "`{}` is used with different keys elsewhere",
                    self.maps[map].name
                ),
            ))
        }
    }

    fn map_assign(
        &mut self,
        scope: &mut Scope,
        target: &MapAccess,
        value: &Expr,
        span: Span,
    ) -> Result<Option<TStmt>, Error> {
        let keys = self.keys(scope, target)?;
        let name = format!("@{}", target.name);
        // `@n = @n + 1` (and `@n++`) reads a map as it creates it: an
        // absent entry reads as 0, as in bpftrace.
        let provisional = !self.maps.iter().any(|m| m.name == name) && !is_aggregation(value);
        if provisional {
            self.maps.push(MapSpec {
                name: name.clone(),
                kind: MapKind::Assign(ValueType::Int { signed: false }),
                key: Checker::key_slots(&keys),
                key_size: 8,
                value_size: 8,
                per_cpu: false,
                max_entries: MAP_ENTRIES,
            });
        }
        let (kind, agg_or_value) = self.map_value(scope, value)?;
        if provisional {
            self.maps.pop();
        }
        let key = Checker::key_slots(&keys);
        let user_key: u32 = key.iter().map(|s| s.ty.size()).sum();
        let bucket = matches!(kind, MapKind::Hist | MapKind::Lhist { .. });
        let key_size = (user_key + if bucket { 8 } else { 0 }).max(8);
        let (value_size, per_cpu) = match kind {
            MapKind::Assign(ty) => (ty.size(), false),
            MapKind::Min | MapKind::Max | MapKind::Avg => (16, self.kernel.percpu_hash),
            _ => (8, self.kernel.percpu_hash),
        };
        let spec = MapSpec {
            name: name.clone(),
            kind,
            key,
            key_size,
            value_size,
            per_cpu,
            max_entries: MAP_ENTRIES,
        };
        let map = match self.maps.iter().position(|m| m.name == name) {
            Some(i) => {
                let old = &self.maps[i];
                let compatible = old.kind == kind
                    || matches!(
                        (old.kind, kind),
                        (
                            MapKind::Assign(ValueType::Int { .. }),
                            MapKind::Assign(ValueType::Int { .. })
                        )
                    );
                if !compatible {
                    return Err(Error::at(
                        span,
                        format!("`{name}` is assigned a different kind of value elsewhere"),
                    ));
                }
                self.check_keys(i, &keys, target.span)?;
                i
            }
            None => {
                self.maps.push(spec);
                self.maps.len() - 1
            }
        };
        Ok(Some(match agg_or_value {
            Ok(agg) => TStmt::MapAgg {
                map,
                keys,
                agg,
                span,
            },
            Err(value) => TStmt::MapAssign {
                map,
                keys,
                value,
                span,
            },
        }))
    }

    /// The map kind a value gives, and the aggregation or the plain value.
    #[allow(clippy::type_complexity)]
    fn map_value(
        &mut self,
        scope: &mut Scope,
        value: &Expr,
    ) -> Result<(MapKind, Result<Agg, TExpr>), Error> {
        if let ExprKind::Call { name, args } = &value.kind {
            let span = value.span;
            let mut one = |c: &mut Checker, what: &str| -> Result<TExpr, Error> {
                expect_args(name, args, 1, span)?;
                let e = c.expr(scope, &args[0])?;
                c.scalar(e, what)
            };
            let agg = match name.as_str() {
                "count" => {
                    expect_args(name, args, 0, span)?;
                    Some((MapKind::Count, Agg::Count))
                }
                "sum" => Some((MapKind::Sum, Agg::Sum(one(self, "sum's argument")?))),
                "min" => Some((MapKind::Min, Agg::Min(one(self, "min's argument")?))),
                "max" => Some((MapKind::Max, Agg::Max(one(self, "max's argument")?))),
                "avg" => Some((MapKind::Avg, Agg::Avg(one(self, "avg's argument")?))),
                "hist" => Some((MapKind::Hist, Agg::Hist(one(self, "hist's argument")?))),
                "lhist" => {
                    expect_args(name, args, 4, span)?;
                    let e = self.expr(scope, &args[0])?;
                    let value = self.scalar(e, "lhist's value")?;
                    let mut consts = [0i64; 3];
                    for (c, a) in consts.iter_mut().zip(&args[1..]) {
                        *c = constant(a).ok_or_else(|| {
                            Error::at(
                                a.span,
                                "lhist's min, max and step must be integer constants",
                            )
                        })?;
                    }
                    let [min, max, step] = consts;
                    if step <= 0 || max <= min {
                        return Err(Error::at(span, "lhist needs min < max and step > 0"));
                    }
                    if (max - min) / step > 1000 {
                        return Err(Error::at(span, "lhist would have more than 1000 buckets"));
                    }
                    Some((
                        MapKind::Lhist { min, max, step },
                        Agg::Lhist {
                            value,
                            min,
                            max,
                            step,
                        },
                    ))
                }
                _ => None,
            };
            if let Some((kind, agg)) = agg {
                return Ok((kind, Ok(agg)));
            }
        }
        let e = self.expr(scope, value)?;
        let e = self.storable(e)?;
        if let Ty::Place { .. } = e.ty {
            return Err(Error::at(
                e.span,
                format!("a map cannot hold {}", e.ty.describe()),
            ));
        }
        Ok((MapKind::Assign(value_type(&e.ty)), Err(e)))
    }

    fn field(
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

    fn member(
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
                        user,
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
            user,
            (strukt, path),
            span,
        ))
    }

    fn tracepoint_field(
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
                    place: Place::CharArray(STR_LEN),
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
                        to: match &**to {
                            CType::Struct(s) => Pointee::Struct(s.clone()),
                            CType::Int { bytes: 1, .. } => Pointee::Char,
                            _ => Pointee::Other,
                        },
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
                        int(signed),
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
        Ok(TExpr {
            kind: ty_kind.0,
            ty: ty_kind.1,
            span,
        })
    }

    fn ident(&mut self, scope: &Scope, name: &str, span: Span) -> Result<TExpr, Error> {
        let e = |kind, ty| Ok(TExpr { kind, ty, span });
        let abi = self.kernel.abi;
        if scope.context == Context::UserSpace {
            return Err(Error::at(
                span,
                format!(
                    "`{name}` cannot be read in BEGIN or END: nobtf runs them in user space (constants only)"
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
                int(false),
            );
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
            "cpu" => e(TKind::Builtin(Builtin::Cpu), int(false)),
            "comm" => e(TKind::Comm, Ty::Str { len: COMM_LEN }),
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
            _ => Err(Error::at(span, format!("unknown builtin `{name}`"))),
        }
    }

    fn expr(&mut self, scope: &mut Scope, e: &Expr) -> Result<TExpr, Error> {
        let span = e.span;
        let t = |kind, ty| Ok(TExpr { kind, ty, span });
        match &e.kind {
            ExprKind::Int(n) => t(TKind::Const(*n), int(*n > i64::MAX as u64)),
            ExprKind::Str(s) => {
                let len = (s.len() as u32 + 1).next_multiple_of(8).min(STR_MAX);
                t(TKind::ConstStr(s.clone()), Ty::Str { len })
            }
            ExprKind::Ident(name) => self.ident(scope, name, span),
            ExprKind::Var(name) => match scope.vars.iter().position(|(n, _)| n == name) {
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
                let ty = match self.maps[map].kind {
                    MapKind::Assign(ValueType::Int { signed }) => int(signed),
                    MapKind::Assign(ValueType::Str { len }) => Ty::Str { len },
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
                let a = self.scalar(a, "a `?:` branch (strings are not supported there yet)")?;
                let b = self.scalar(b, "a `?:` branch (strings are not supported there yet)")?;
                let ty = a.ty.clone();
                t(TKind::Ternary(Box::new(c), Box::new(a), Box::new(b)), ty)
            }
            ExprKind::Cast { target, value } => {
                let v = self.expr(scope, value)?;
                match target {
                    CastTarget::Struct { name, pointers: 1 } => match v.ty {
                        Ty::Int { .. } | Ty::Ptr { .. } => t(
                            v.kind,
                            Ty::Ptr {
                                to: Pointee::Struct(name.clone()),
                                user: false,
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
                    CastTarget::Int { bytes, signed } => {
                        let v = self.scalar(v, "a cast's operand")?;
                        t(
                            TKind::Trunc {
                                value: Box::new(v),
                                bytes: *bytes,
                                signed: *signed,
                            },
                            int(*signed),
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
        }
    }

    fn binary(
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
            let (value, literal) = match (&l.kind, &r.kind) {
                (_, TKind::ConstStr(s)) if !matches!(l.kind, TKind::ConstStr(_)) => (l, s.clone()),
                (TKind::ConstStr(s), _) => (r, s.clone()),
                _ => {
                    return Err(Error::at(
                        span,
                        "strings can only be compared with `==`/`!=` against a string literal",
                    ));
                }
            };
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
            if !is_str(&value) {
                return Err(Error::at(
                    value.span,
                    format!("{} cannot be compared with a string", value.ty.describe()),
                ));
            }
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
        // Signed when both are, or one is and the other a literal.
        let signed_or_const = |e: &TExpr| {
            matches!(e.ty, Ty::Int { signed: true }) || matches!(e.kind, TKind::Const(_))
        };
        let signed = (matches!(l.ty, Ty::Int { signed: true })
            || matches!(r.ty, Ty::Int { signed: true }))
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
            kind: TKind::Binary(op, Box::new(l), Box::new(r)),
            ty,
            span,
        })
    }

    fn call(
        &mut self,
        scope: &mut Scope,
        name: &str,
        args: &[Expr],
        span: Span,
    ) -> Result<TExpr, Error> {
        match name {
            "str" => {
                if args.is_empty() || args.len() > 2 {
                    return Err(Error::at(
                        span,
                        "str takes an address and an optional length: str(EXPR [, LEN])",
                    ));
                }
                let len = match args.get(1) {
                    None => STR_LEN,
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
                    Ty::Int { .. } => false,
                    Ty::Str { .. } => {
                        return Err(Error::at(
                            addr.span,
                            "str() of a string: use the string itself",
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
                    },
                    ty: Ty::Str { len },
                    span,
                })
            }
            "count" | "sum" | "min" | "max" | "avg" | "hist" | "lhist" => Err(Error::at(
                span,
                format!("{name}() is assigned to a map: `@m = {name}(...)`"),
            )),
            "printf" | "print" | "exit" | "clear" | "delete" => Err(Error::at(
                span,
                format!("{name}() is a statement, not a value"),
            )),
            _ if UNSUPPORTED.contains(&name) => Err(Error::at(
                span,
                format!("`{name}()` is a bpftrace function nobtf trace does not support yet"),
            )),
            _ => Err(Error::at(span, format!("unknown function `{name}()`"))),
        }
    }
}

/// A member of type `c_type` at `addr + off`.
fn member_value(
    addr: TExpr,
    (off, size): (u32, u32),
    c_type: CType,
    user: bool,
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
            read(bytes, signed, int(signed))
        }
        CType::Ptr { to, user: to_user } => {
            let to = match *to {
                CType::Struct(s) => Pointee::Struct(s),
                CType::Int { bytes: 1, .. } => Pointee::Char,
                _ => Pointee::Other,
            };
            // A pointer is as wide as the source says (the target's, not ours).
            read(size.clamp(1, 8) as u8, false, Ty::Ptr { to, user: to_user })
        }
        CType::Struct(s) => address(Place::Struct(s)),
        CType::CharArray(n) => address(Place::CharArray(n.max(1))),
        _ if [1, 2, 4, 8].contains(&size) => read(size as u8, false, int(false)),
        _ => address(Place::Opaque {
            strukt: opaque.0,
            path: opaque.1,
            size,
        }),
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
        Ty::Int { signed } => ValueType::Int { signed: *signed },
        _ => ValueType::Int { signed: false },
    }
}

fn same_storage(a: &Ty, b: &Ty) -> bool {
    match (a, b) {
        (Ty::Str { len: x }, Ty::Str { len: y }) => x == y,
        (Ty::Str { .. }, _) | (_, Ty::Str { .. }) => false,
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

/// The conversion letters of a printf format (`%lu` -> `u`), checked.
pub fn conversions(format: &str) -> Result<Vec<char>, String> {
    let mut out = Vec::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        // Flags and width, as bpftrace passes them to the C formatter.
        while let Some(&f) = chars.peek() {
            if "-+ #0123456789".contains(f) {
                chars.next();
            } else {
                break;
            }
        }
        let mut longs = 0;
        while chars.peek() == Some(&'l') {
            chars.next();
            longs += 1;
        }
        match chars.next() {
            Some('%') if longs == 0 => {}
            Some(conv @ ('d' | 'i' | 'u' | 'x' | 'X')) if longs <= 2 => out.push(conv),
            Some(conv @ ('s' | 'c')) if longs == 0 => out.push(conv),
            Some(other) => {
                return Err(format!(
                    "printf conversion `%{}{other}` is not supported: use %d %i %u %x %lu %ld %llu %llx %s %c %%",
                    "l".repeat(longs)
                ));
            }
            None => return Err("printf format ends inside a conversion".into()),
        }
    }
    Ok(out)
}
