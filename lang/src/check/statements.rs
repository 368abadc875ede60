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
        self.refuse_unsafe(name, span)?;
        if let Some(stmt) = self.sampling_stmt(scope, name, args, span) {
            return stmt.map(Some);
        }
        match name.as_str() {
            "printf" | "cat" | "system" => {
                let Some((fmt, rest)) = args.split_first() else {
                    return Err(Error::at(span, format!("{name} needs a format string")));
                };
                let ExprKind::Str(format) = &fmt.kind else {
                    return Err(Error::at(
                        fmt.span,
                        format!("{name}'s format must be a string literal"),
                    ));
                };
                let (targs, slots) = self.printf_args(scope, format, fmt.span, rest, span)?;
                let format = format.clone();
                let event = self.event(if name == "cat" {
                    EventFormat::Cat {
                        format,
                        args: slots,
                    }
                } else if name == "system" {
                    EventFormat::System {
                        format,
                        args: slots,
                    }
                } else {
                    EventFormat::Printf {
                        format,
                        args: slots,
                    }
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
            "join" => self.join(scope, args, span),
            "print" if args.len() > 1 => self.print_top(args, span),
            "print" if only_map(args).is_none_or(|m| !m.keys.is_empty()) => {
                self.print_value(scope, args, span)
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

    /// A printf-style call's arguments (printf's, cat's) checked against
    /// its format: the values and the record slots they go to.
    fn printf_args(
        &mut self,
        scope: &mut Scope,
        format: &str,
        format_span: Span,
        rest: &[Expr],
        span: Span,
    ) -> Result<(Vec<TExpr>, Vec<Slot>), Error> {
        let convs = conversions(format, rest.len()).map_err(|m| Error::at(format_span, m))?;
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
                ('r', Ty::Buf { max }) => ValueType::Buf { max: *max },
                ('r', _) => {
                    return Err(Error::at(
                        arg.span,
                        "%r prints a buf() value: printf(\"%r\\n\", buf(ADDR, LEN))",
                    ));
                }
                (_, Ty::Buf { .. }) => {
                    return Err(Error::at(
                        value.span,
                        format!("%{conv} cannot print buf()'s bytes; use %r"),
                    ));
                }
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
                // `func` is a string in bpftrace, whatever holds it here.
                (_, Ty::Str { .. } | Ty::Symbol(crate::symbols::Symbolic::Func)) => {
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
        Ok((targs, slots))
    }

    /// `print(expr)` of a value, a map element or a tuple: the value as
    /// bpftrace 0.23 prints it, on its own line. A tuple written in place
    /// is emitted element by element (so BEGIN and END can print one).
    fn print_value(
        &mut self,
        scope: &mut Scope,
        args: &[Expr],
        span: Span,
    ) -> Result<Option<TStmt>, Error> {
        let [arg] = args else {
            return Err(Error::at(
                span,
                "print takes one value or map, e.g. print(@m) or print($x)",
            ));
        };
        let value = self.expr(scope, arg)?;
        let mut record = PrintRecord {
            args: Vec::new(),
            slots: Vec::new(),
            offset: 8,
        };
        let shape = record.add(self.storable(value)?)?;
        let event = self.event(EventFormat::Value {
            shape,
            args: record.slots,
        });
        Ok(Some(TStmt::Emit {
            event,
            args: record.args,
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

    /// `join(ARRAY[, DELIM])`: the strings of a NULL-ended array of
    /// pointers (`args.argv`), [`JOIN_ARGS`] of them, each read into a
    /// record of its own (the BPF stack holds one), joined by the printer.
    fn join(
        &mut self,
        scope: &mut Scope,
        args: &[Expr],
        span: Span,
    ) -> Result<Option<TStmt>, Error> {
        let usage = "join takes an array of string pointers and an optional delimiter literal: join(args.argv, \",\")";
        let (array, delimiter) = match args {
            [array] => (array, " ".to_string()),
            [
                array,
                Expr {
                    kind: ExprKind::Str(delimiter),
                    ..
                },
            ] => (array, delimiter.clone()),
            _ => return Err(Error::at(span, usage)),
        };
        let array = self.expr(scope, array)?;
        let user = match &array.ty {
            Ty::Ptr { user, .. } => *user,
            Ty::Int { .. } => false,
            other => {
                return Err(Error::at(
                    array.span,
                    format!(
                        "join reads an array of string pointers, found {}",
                        other.describe()
                    ),
                ));
            }
        };
        let pointer_bytes = self.kernel.abi.pointer_bytes;
        let len = self.str_len.min(JOIN_LEN);
        let mut body = Vec::new();
        for index in 0..JOIN_ARGS {
            let element = TExpr {
                kind: TKind::Read {
                    addr: Box::new(array.clone()),
                    off: index * u32::from(pointer_bytes),
                    bytes: pointer_bytes,
                    signed: false,
                    user,
                    helper: self.read_helper(user),
                },
                ty: int(false),
                span: array.span,
            };
            let text = TExpr {
                kind: TKind::StrRead {
                    addr: Box::new(element),
                    len,
                    user,
                    helper: self.read_str_helper(user),
                },
                ty: Ty::Str { len },
                span: array.span,
            };
            let event = self.event(EventFormat::JoinArg {
                delimiter: delimiter.clone(),
                index,
                args: vec![Slot {
                    ty: ValueType::Str { len },
                    offset: 8,
                }],
            });
            body.push(TStmt::Emit {
                event,
                args: vec![text],
                span,
            });
        }
        Ok(Some(TStmt::Unroll {
            count: 1,
            body,
            span,
        }))
    }

    /// `buf(ADDR, LEN)` or `buf(ARRAY)`: the read of its bytes (a value
    /// for `%r`, a map, a variable or print()).
    pub(super) fn buf_value(
        &mut self,
        scope: &mut Scope,
        args: &[Expr],
        span: Span,
    ) -> Result<TExpr, Error> {
        let usage = "buf takes an address and a length, or an array: buf(ADDR, LEN)";
        let (addr, len) = match args {
            [addr, len] => (addr, Some(len)),
            [array] => (array, None),
            _ => return Err(Error::at(span, usage)),
        };
        let addr = self.expr(scope, addr)?;
        let (user, array) = match &addr.ty {
            Ty::Ptr { user, .. } => (*user, None),
            Ty::Int { .. } => (false, None),
            Ty::Place {
                place: Place::CharArray(n),
                user,
            } => (*user, Some(*n)),
            other => {
                return Err(Error::at(
                    addr.span,
                    format!(
                        "buf reads from an address or an array, found {}",
                        other.describe()
                    ),
                ));
            }
        };
        let too_long = |n: u64| {
            Error::at(
                span,
                format!(
                    "buf() of {n} bytes: nobtf's record lives on the 512-byte BPF stack, which holds at most {BUF_MAX}"
                ),
            )
        };
        let (count, max) = match (len, array) {
            (Some(len), _) => {
                let count = self.expr(scope, len)?;
                let count = self.scalar(count, "buf's length")?;
                let max = match count.kind {
                    TKind::Const(n) if n > u64::from(BUF_MAX) => return Err(too_long(n)),
                    TKind::Const(n) => n as u32,
                    // bpftrace reads up to max_strlen less its header.
                    _ => BUF_MAX,
                };
                (count, max)
            }
            (None, Some(n)) if n > BUF_MAX => return Err(too_long(u64::from(n))),
            (None, Some(n)) => (
                TExpr {
                    kind: TKind::Const(u64::from(n)),
                    ty: int(false),
                    span,
                },
                n,
            ),
            (None, None) => {
                return Err(Error::at(
                    span,
                    "buf needs a length for what is not an array: buf(ADDR, LEN)",
                ));
            }
        };
        Ok(TExpr {
            kind: TKind::Buf {
                addr: Box::new(addr),
                len: Box::new(count),
                max,
                helper: self.read_helper(user),
            },
            ty: Ty::Buf { max },
            span,
        })
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
/// arguments then does not match. `%r` (`%rx`, `%rh`) is `r`: it takes a
/// `buf()`.
pub fn conversions(format: &str, args: usize) -> Result<Vec<char>, String> {
    let parsed = crate::format::FormatString::parse(format);
    let mut out = Vec::new();
    for (spec, ty) in parsed.conversions() {
        if ty == crate::format::ArgType::Buffer {
            out.push('r');
        } else {
            out.extend(spec.chars().last());
        }
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

/// The values of a `print(expr)` record, as they are laid out.
#[derive(Default)]
pub(super) struct PrintRecord {
    args: Vec<TExpr>,
    pub(super) slots: Vec<Slot>,
    offset: u32,
}

impl PrintRecord {
    /// Adds `value` to the record; how it is printed.
    fn add(&mut self, value: TExpr) -> Result<Shape, Error> {
        if let TKind::Tuple(elements) = value.kind {
            return elements
                .into_iter()
                .map(|e| self.add(e))
                .collect::<Result<_, _>>()
                .map(Shape::Tuple);
        }
        let shape = self.slots_of(&value.ty, value.span)?;
        self.args.push(value);
        Ok(shape)
    }

    /// The slots of a value of type `ty` at the record's end (a tuple's
    /// elements one after the other, as its buffer holds them).
    pub(super) fn slots_of(&mut self, ty: &Ty, span: Span) -> Result<Shape, Error> {
        let (value_type, pointer) = match ty {
            Ty::Tuple(elements) => {
                return elements
                    .iter()
                    .map(|e| self.slots_of(e, span))
                    .collect::<Result<_, _>>()
                    .map(Shape::Tuple);
            }
            Ty::Int { signed, .. } => (ValueType::Int { signed: *signed }, false),
            Ty::Str { len } => (ValueType::Str { len: *len }, false),
            Ty::Inet => (ValueType::Inet, false),
            Ty::Buf { max } => (ValueType::Buf { max: *max }, false),
            Ty::Symbol(kind) => (ValueType::Symbol(*kind), false),
            Ty::Ptr { .. } => (ValueType::Int { signed: false }, true),
            Ty::Place { .. } => {
                return Err(Error::at(
                    span,
                    format!("print cannot print {}: print its members", ty.describe()),
                ));
            }
        };
        let index = self.slots.len();
        self.slots.push(Slot {
            ty: value_type,
            offset: self.offset,
        });
        self.offset += value_type.size();
        Ok(if pointer {
            Shape::Pointer(index)
        } else {
            Shape::Value(index)
        })
    }
}

/// The map a call's only argument names (`@m` or `@m[k]`).
fn only_map(args: &[Expr]) -> Option<&MapAccess> {
    let [arg] = args else { return None };
    match &arg.kind {
        ExprKind::Map(m) => Some(m),
        _ => None,
    }
}
