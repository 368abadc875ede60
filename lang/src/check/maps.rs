//! Maps: keys, kinds agreed across probes, aggregations and plain values.

use super::*;

impl Checker<'_> {
    pub(super) fn map_index(&self, name: &str, span: Span) -> Result<usize, Error> {
        let full = format!("@{name}");
        self.maps
            .iter()
            .position(|m| m.name == full)
            .ok_or_else(|| Error::at(span, format!("map `{full}` is used but never assigned")))
    }

    pub(super) fn keys(&mut self, scope: &mut Scope, m: &MapAccess) -> Result<Vec<TExpr>, Error> {
        let several = m.keys.len() > 1;
        m.keys
            .iter()
            .map(|k| {
                let value = self.expr(scope, k)?;
                let value = self.storable(value)?;
                // A key's parts are flat: a tuple within it would print
                // as its elements, where bpftrace prints `(a, b)`.
                let nested = match &value.ty {
                    Ty::Tuple(elements) => {
                        several || elements.iter().any(|e| matches!(e, Ty::Tuple(_)))
                    }
                    _ => false,
                };
                match value.ty {
                    Ty::Place { .. } => Err(Error::at(
                        value.span,
                        format!("a map key cannot be {}", value.ty.describe()),
                    )),
                    _ if nested => Err(Error::at(
                        value.span,
                        "a map key cannot hold a tuple within a tuple yet: key by its elements",
                    )),
                    _ => Ok(value),
                }
            })
            .collect()
    }

    /// The key's parts: a tuple's elements are parts of their own, so
    /// `@m[$t]` with `$t = (a, b)` is `@m[a, b]`.
    pub(super) fn key_slots(keys: &[TExpr]) -> Vec<Slot> {
        let mut offset = 0;
        let mut slots = Vec::new();
        for k in keys {
            let parts = match &k.ty {
                Ty::Tuple(elements) => elements.clone(),
                other => vec![other.clone()],
            };
            for part in parts {
                let ty = value_type(&part);
                slots.push(Slot { ty, offset });
                offset += ty.size();
            }
        }
        slots
    }

    pub(super) fn check_keys(&self, map: usize, keys: &[TExpr], span: Span) -> Result<(), Error> {
        let expected = &self.maps[map].key;
        let got = Checker::key_slots(keys);
        // Strings of any length: `@s[comm]` is read as `@s["rm"]`.
        let same = expected.len() == got.len()
            && expected.iter().zip(&got).all(|(a, b)| match (a.ty, b.ty) {
                (ValueType::Int { .. }, ValueType::Int { .. })
                | (ValueType::Str { .. }, ValueType::Str { .. }) => true,
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

    /// A string key part as long as the longest string written there
    /// (shorter ones are NUL-padded, as string values are).
    fn widen_string_keys(&mut self, map: usize, keys: &[TExpr]) {
        let spec = &mut self.maps[map];
        let mut offset = 0;
        for (slot, new) in spec.key.iter_mut().zip(Checker::key_slots(keys)) {
            if let (ValueType::Str { len: a }, ValueType::Str { len: b }) = (&mut slot.ty, new.ty) {
                *a = (*a).max(b);
            }
            slot.offset = offset;
            offset += slot.ty.size();
        }
        let bucket = matches!(spec.kind, MapKind::Hist | MapKind::Lhist { .. });
        spec.key_size = (offset + if bucket { 8 } else { 0 }).max(8);
    }

    pub(super) fn map_assign(
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
                array: false,
                max_entries: MAP_ENTRIES,
                tuple: None,
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
        let tuple = match &agg_or_value {
            Err(value) if kind == MapKind::Tuple => Some(tuple_layout(value)?),
            _ => None,
        };
        let (value_size, per_cpu) = match kind {
            MapKind::Assign(ty) => (ty.size(), false),
            MapKind::Tuple => (tuple.as_ref().map_or(8, layout_size), false),
            MapKind::Min { .. } | MapKind::Max { .. } | MapKind::Avg { .. } => {
                (16, self.kernel.percpu_hash)
            }
            _ => (8, self.kernel.percpu_hash),
        };
        let spec = MapSpec {
            name: name.clone(),
            kind,
            key,
            key_size,
            value_size,
            per_cpu,
            array: false,
            max_entries: MAP_ENTRIES,
            tuple,
        };
        let map = match self.maps.iter().position(|m| m.name == name) {
            Some(i) => {
                let old = &mut self.maps[i];
                // The same aggregation of values of either sign: signed
                // wins, as bpftrace promotes to the signed type.
                match (&mut old.kind, kind) {
                    (MapKind::Sum { signed: a }, MapKind::Sum { signed: b })
                    | (MapKind::Min { signed: a }, MapKind::Min { signed: b })
                    | (MapKind::Max { signed: a }, MapKind::Max { signed: b }) => *a |= b,
                    // Strings of any length share a map (`@cap[0] =
                    // "CAP_CHOWN"; @cap[1] = "CAP_DAC_OVERRIDE"`): its
                    // values are as long as the longest, shorter ones
                    // NUL-padded.
                    (
                        MapKind::Assign(ValueType::Str { len: a }),
                        MapKind::Assign(ValueType::Str { len: b }),
                    ) => {
                        *a = (*a).max(b);
                        old.value_size = ValueType::Str { len: *a }.size();
                    }
                    _ => {}
                }
                let old = &self.maps[i];
                let compatible = same_kind(old.kind, kind)
                    || matches!(
                        (old.kind, kind),
                        (
                            MapKind::Assign(ValueType::Int { .. }),
                            MapKind::Assign(ValueType::Int { .. })
                        ) | (
                            MapKind::Assign(ValueType::Str { .. }),
                            MapKind::Assign(ValueType::Str { .. })
                        )
                    );
                if kind == MapKind::Tuple && old.kind == kind && old.tuple != spec.tuple {
                    // Strings of any length, as for maps of strings: the
                    // map's parts are as long as the longest.
                    let Some(wider) = old
                        .tuple
                        .as_ref()
                        .zip(spec.tuple.as_ref())
                        .and_then(|(a, b)| widest(a, b))
                    else {
                        return Err(Error::at(
                            span,
                            format!("`{name}` holds a tuple of other types elsewhere"),
                        ));
                    };
                    let old = &mut self.maps[i];
                    old.value_size = layout_size(&wider);
                    old.tuple = Some(wider);
                }
                if !compatible {
                    return Err(Error::at(
                        span,
                        format!("`{name}` is assigned a different kind of value elsewhere"),
                    ));
                }
                self.check_keys(i, &keys, target.span)?;
                self.widen_string_keys(i, &keys);
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
            Err(value) => {
                let value = match &self.maps[map].tuple {
                    Some(layout) => laid_out(value, &tuple_type(layout)),
                    None => value,
                };
                TStmt::MapAssign {
                    map,
                    keys,
                    value,
                    span,
                }
            }
        }))
    }

    /// The map kind a value gives, and the aggregation or the plain value.
    #[allow(clippy::type_complexity)]
    pub(super) fn map_value(
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
                "sum" => {
                    let e = one(self, "sum's argument")?;
                    Some((
                        MapKind::Sum {
                            signed: is_signed(&e),
                        },
                        Agg::Sum(e),
                    ))
                }
                "min" => {
                    let e = one(self, "min's argument")?;
                    Some((
                        MapKind::Min {
                            signed: is_signed(&e),
                        },
                        Agg::Min(e),
                    ))
                }
                "max" => {
                    let e = one(self, "max's argument")?;
                    Some((
                        MapKind::Max {
                            signed: is_signed(&e),
                        },
                        Agg::Max(e),
                    ))
                }
                "avg" => Some((
                    MapKind::Avg { stats: false },
                    Agg::Avg(one(self, "avg's argument")?),
                )),
                "stats" => Some((
                    MapKind::Avg { stats: true },
                    Agg::Avg(one(self, "stats's argument")?),
                )),
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
                    // bpftrace's checks, so that the printer takes them too.
                    crate::format::LhistParams::new(min, max, step)
                        .map_err(|e| Error::at(span, e.to_string()))?;
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
        match e.ty {
            Ty::Place { .. } => Err(Error::at(
                e.span,
                format!("a map cannot hold {}", e.ty.describe()),
            )),
            Ty::Tuple(_) => Ok((MapKind::Tuple, Err(e))),
            _ => Ok((MapKind::Assign(value_type(&e.ty)), Err(e))),
        }
    }
}

/// Whether an aggregation's argument is signed (a constant is, as in
/// bpftrace, where literals are `int64`).
fn is_signed(e: &TExpr) -> bool {
    matches!(e.ty, Ty::Int { signed: true, .. }) || matches!(e.kind, TKind::Const(_))
}

/// Kinds that may share a map: equal up to the argument's sign.
fn same_kind(a: MapKind, b: MapKind) -> bool {
    let unsigned = |k| match k {
        MapKind::Sum { .. } => MapKind::Sum { signed: false },
        MapKind::Min { .. } => MapKind::Min { signed: false },
        MapKind::Max { .. } => MapKind::Max { signed: false },
        k => k,
    };
    unsigned(a) == unsigned(b)
}

/// Where a tuple's parts lie in a map value, and how they print: as
/// `print()` lays out a tuple in its record.
fn tuple_layout(value: &TExpr) -> Result<TupleLayout, Error> {
    let mut record = super::statements::PrintRecord::default();
    let shape = record.slots_of(&value.ty, value.span)?;
    Ok(TupleLayout {
        shape,
        slots: record.slots,
    })
}

/// The type of a value read back from a map of tuples (a pointer reads as
/// an untyped one: the layout keeps only that it prints in hex).
pub(super) fn tuple_type(layout: &TupleLayout) -> Ty {
    fn of(shape: &Shape, slots: &[Slot]) -> Ty {
        match shape {
            Shape::Tuple(elements) => Ty::Tuple(elements.iter().map(|e| of(e, slots)).collect()),
            Shape::Pointer(_) => Ty::Ptr {
                to: Pointee::Other,
                user: false,
            },
            Shape::Value(i) => match slots.get(*i).map(|s| s.ty) {
                Some(ValueType::Int { signed }) => Ty::Int { signed, bytes: 8 },
                Some(ValueType::Str { len }) => Ty::Str { len },
                Some(ValueType::Inet) => Ty::Inet,
                Some(ValueType::Buf { max }) => Ty::Buf { max },
                Some(ValueType::Symbol(kind)) => Ty::Symbol(kind),
                Some(ValueType::Timestamp { .. }) | None => Ty::U64,
            },
        }
    }
    of(&layout.shape, &layout.slots)
}

fn layout_size(layout: &TupleLayout) -> u32 {
    layout.slots.last().map_or(8, |s| s.offset + s.ty.size())
}

/// Two layouts of one shape whose strings may differ in length: the
/// longer of each, the parts after it moved along.
fn widest(a: &TupleLayout, b: &TupleLayout) -> Option<TupleLayout> {
    if a.shape != b.shape || a.slots.len() != b.slots.len() {
        return None;
    }
    let mut offset = 0;
    let mut slots = Vec::new();
    for (x, y) in a.slots.iter().zip(&b.slots) {
        let ty = match (x.ty, y.ty) {
            (ValueType::Str { len: m }, ValueType::Str { len: n }) => {
                ValueType::Str { len: m.max(n) }
            }
            (ValueType::Int { signed: m }, ValueType::Int { signed: n }) => {
                ValueType::Int { signed: m || n }
            }
            (m, n) if m == n => m,
            _ => return None,
        };
        slots.push(Slot { ty, offset });
        offset += ty.size();
    }
    Some(TupleLayout {
        shape: a.shape.clone(),
        slots,
    })
}

/// A tuple value laid out as the map's tuples are (`want`): its parts at
/// the map's offsets, each written as long as it is (the rest stays
/// zero). A tuple that is not written out part by part (a variable, a map
/// element) is taken apart with `.N`.
fn laid_out(value: TExpr, want: &Ty) -> TExpr {
    let (Ty::Tuple(have), Ty::Tuple(wanted)) = (&value.ty, want) else {
        return value;
    };
    if &value.ty == want || have.len() != wanted.len() {
        return value;
    }
    let span = value.span;
    let parts = match value.kind {
        TKind::Tuple(elements) => elements,
        kind => {
            let base = TExpr {
                kind,
                ty: value.ty.clone(),
                span,
            };
            have.iter()
                .enumerate()
                .map(|(index, ty)| TExpr {
                    kind: TKind::TupleField {
                        base: Box::new(base.clone()),
                        index,
                    },
                    ty: ty.clone(),
                    span,
                })
                .collect()
        }
    };
    let parts = parts
        .into_iter()
        .zip(wanted)
        .map(|(part, want)| laid_out(part, want))
        .collect();
    TExpr {
        kind: TKind::Tuple(parts),
        ty: want.clone(),
        span,
    }
}
