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
        if let Some(stmt) = self.sampling_stmt(scope, name, args, span) {
            return stmt.map(Some);
        }
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
                let convs = conversions(format, rest.len()).map_err(|m| Error::at(fmt.span, m))?;
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
                    if let Some(slot) = self.strftime(scope, *conv, arg, offset)? {
                        slots.push(slot.0);
                        offset += slot.0.ty.size();
                        targs.push(slot.1);
                        continue;
                    }
                    let value = self.expr(scope, arg)?;
                    let value = self.storable(value)?;
                    let ty = match (conv, &value.ty) {
                        ('s', Ty::Str { len }) => ValueType::Str { len: *len },
                        ('s', Ty::Inet) => ValueType::Inet,
                        ('s', Ty::Symbol(kind)) => ValueType::Symbol(*kind),
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
            "time" => {
                let format = match &args[..] {
                    [] => crate::format::time::DEFAULT_TIME_FORMAT.to_string(),
                    [
                        Expr {
                            kind: ExprKind::Str(format),
                            ..
                        },
                    ] => format.clone(),
                    _ => {
                        return Err(Error::at(
                            span,
                            "time takes an optional format string literal: time(\"%H:%M:%S\\n\")",
                        ));
                    }
                };
                let event = self.event(EventFormat::Time { format });
                Ok(Some(TStmt::Emit {
                    event,
                    args: Vec::new(),
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
            "print" if args.len() > 1 => self.print_top(args, span),
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

    /// `print(@m, top[, div])`: both integer constants, as bpftrace wants.
    fn print_top(&mut self, args: &[Expr], span: Span) -> Result<Option<TStmt>, Error> {
        let usage = "print takes a map and up to two integer constants: print(@m, TOP, DIV)";
        let (Some(m), rest) = (only_map(&args[..1]), &args[1..]) else {
            return Err(Error::at(span, usage));
        };
        if !m.keys.is_empty() || rest.len() > 2 {
            return Err(Error::at(span, usage));
        }
        self.map_index(&m.name, m.span)?;
        let mut numbers = [0u32; 2];
        for (n, arg) in numbers.iter_mut().zip(rest) {
            *n = constant(arg)
                .and_then(|c| u32::try_from(c).ok())
                .ok_or_else(|| Error::at(arg.span, usage))?;
        }
        let [top, div] = numbers;
        let event = self.event(EventFormat::PrintTop {
            map: format!("@{}", m.name),
            top,
            div,
        });
        Ok(Some(TStmt::Emit {
            event,
            args: Vec::new(),
            span,
        }))
    }

    /// A printf argument `strftime(FORMAT, NSECS)`: its slot (the `nsecs`,
    /// formatted in user space when the record is printed) and the
    /// `nsecs` expression. `None` for any other argument.
    fn strftime(
        &mut self,
        scope: &mut Scope,
        conv: char,
        arg: &Expr,
        offset: u32,
    ) -> Result<Option<(Slot, TExpr)>, Error> {
        let ExprKind::Call { name, args } = &arg.kind else {
            return Ok(None);
        };
        if name != "strftime" {
            return Ok(None);
        }
        let [format, nsecs] = &args[..] else {
            return Err(Error::at(
                arg.span,
                "strftime takes a format string literal and a time in nanoseconds: strftime(\"%H:%M:%S\", nsecs)",
            ));
        };
        let ExprKind::Str(format) = &format.kind else {
            return Err(Error::at(
                format.span,
                "strftime's format must be a string literal",
            ));
        };
        if conv != 's' {
            return Err(Error::at(
                arg.span,
                format!("%{conv} needs an integer, found strftime()'s text; use %s"),
            ));
        }
        let value = self.expr(scope, nsecs)?;
        let value = self.scalar(value, "strftime's time")?;
        let index = match self.time_formats.iter().position(|f| f == format) {
            Some(i) => i,
            None => {
                self.time_formats.push(format.clone());
                self.time_formats.len() - 1
            }
        };
        let ty = ValueType::Timestamp {
            format: index as u32,
        };
        Ok(Some((Slot { ty, offset }, value)))
    }

    pub(super) fn event(&mut self, format: EventFormat) -> usize {
        if let Some(i) = self.events.iter().position(|e| *e == format) {
            return i;
        }
        self.events.push(format);
        self.events.len() - 1
    }
}

/// The conversion letter of each of a printf format's conversions (`%lu`
/// -> `u`), found as bpftrace 0.23 finds them (`format::FormatString`):
/// `%[-][width][.precision]` then `s`, `c`, or `d u o x X p` after an
/// optional `hh h l ll j z t`. Anything else after `%` (`%i`, `%+d`, `%f`)
/// is text to bpftrace, printed as written; it is named when the number of
/// arguments then does not match. `%r` takes a `buf()`, which nobtf lacks.
pub fn conversions(format: &str, args: usize) -> Result<Vec<char>, String> {
    let parsed = crate::format::FormatString::parse(format);
    let mut out = Vec::new();
    for (spec, ty) in parsed.conversions() {
        if ty == crate::format::ArgType::Buffer {
            return Err(format!(
                "printf conversion `%{spec}` prints a buf() value, which nobtf trace does not support yet"
            ));
        }
        out.extend(spec.chars().last());
    }
    if out.len() != args
        && let Some(text) = parsed.stray_percent()
    {
        return Err(format!(
            "`{text}` is not a printf conversion in bpftrace 0.23 (it prints as written): use %d %u %x %o %p %c %s, with `-`, a width, a precision and hh h l ll"
        ));
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
