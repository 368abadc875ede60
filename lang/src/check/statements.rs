//! Statements that produce output or delete: printf, print, clear, exit, delete.

use super::*;

impl Checker<'_> {
    pub(super) fn call_stmt(
        &mut self,
        scope: &mut Scope,
        e: &Expr,
    ) -> Result<Option<TStmt>, Error> {
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
                        ('s', Ty::Inet) => ValueType::Inet,
                        (_, Ty::Tuple(_)) => {
                            return Err(Error::at(
                                value.span,
                                "printf cannot print a tuple: print its elements (`$t.0`)",
                            ));
                        }
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
                        (_, Ty::Int { signed, .. }) => ValueType::Int { signed: *signed },
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
                let Some(m) = only_map(args) else {
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
                // `delete(@m[k])`, or bpftrace 0.23's `delete(@m, k)`.
                let (m, key) = match args.as_slice() {
                    [
                        Expr {
                            kind: ExprKind::Map(m),
                            ..
                        },
                    ] => (m, None),
                    [
                        Expr {
                            kind: ExprKind::Map(m),
                            ..
                        },
                        key,
                    ] if m.keys.is_empty() => (m, Some(key)),
                    _ => {
                        return Err(Error::at(
                            span,
                            "delete takes a map element, e.g. delete(@m[k]) or delete(@m, k)",
                        ));
                    }
                };
                let map = self.map_index(&m.name, m.span)?;
                let keys = match key {
                    None => self.keys(scope, m)?,
                    Some(key) => {
                        let access = MapAccess {
                            name: m.name.clone(),
                            keys: vec![key.clone()],
                            span: m.span.to(key.span),
                        };
                        self.keys(scope, &access)?
                    }
                };
                self.check_keys(map, &keys, m.span)?;
                Ok(Some(TStmt::Delete { map, keys, span }))
            }
            _ => {
                self.expr(scope, e)?;
                Ok(None)
            }
        }
    }

    pub(super) fn event(&mut self, format: EventFormat) -> usize {
        if let Some(i) = self.events.iter().position(|e| *e == format) {
            return i;
        }
        self.events.push(format);
        self.events.len() - 1
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
        // Flags, width and precision, as bpftrace passes them to the C
        // formatter.
        while let Some(&f) = chars.peek() {
            if "-+ #0123456789.".contains(f) {
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

/// The map a call's only argument names (`@m` or `@m[k]`).
fn only_map(args: &[Expr]) -> Option<&MapAccess> {
    let [arg] = args else { return None };
    match &arg.kind {
        ExprKind::Map(m) => Some(m),
        _ => None,
    }
}
