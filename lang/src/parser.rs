//! Tokens to the syntax tree: recursive descent for statements, precedence
//! climbing for expressions.
//!
//! Hand-written rather than generated: the grammar is small, every error
//! must quote the source with a caret and say what was expected (which a
//! hand-written parser knows at each point), attach points need their own
//! lexing mode, and the crate keeps no parsing dependency.

use crate::ast::*;
use crate::diag::{Error, Span};
use crate::lexer::{Lexer, Substitutions, Tok, Tokens};

/// Nesting a program may use; deeper input is refused rather than allowed
/// to exhaust the parser's stack.
const MAX_DEPTH: usize = 64;

pub fn parse(src: &str) -> Result<Program, Error> {
    parse_with(src, Substitutions::default())
}

/// [`parse`] with macros and positional parameters substituted; the
/// preprocessor lines and preamble are gone already (see [`crate::source`]).
pub fn parse_with(src: &str, subs: Substitutions) -> Result<Program, Error> {
    let mut p = Parser {
        toks: Tokens::new(Lexer::with(src, subs)),
        depth: 0,
    };
    let mut probes = Vec::new();
    while p.toks.peek()?.0 != Tok::Eof {
        probes.push(p.probe()?);
    }
    if probes.is_empty() {
        return Err(Error::at(
            Span::new(0, 0),
            "expected a probe, e.g. `kprobe:vfs_read { @n = count(); }`",
        ));
    }
    Ok(Program { probes })
}

struct Parser<'a> {
    toks: Tokens<'a>,
    depth: usize,
}

/// Binary operators by precedence, loosest first (C's order).
const LEVELS: &[&[(&str, BinOp)]] = &[
    &[("||", BinOp::LogOr)],
    &[("&&", BinOp::LogAnd)],
    &[("|", BinOp::Or)],
    &[("^", BinOp::Xor)],
    &[("&", BinOp::And)],
    &[("==", BinOp::Eq), ("!=", BinOp::Ne)],
    &[
        ("<", BinOp::Lt),
        ("<=", BinOp::Le),
        (">", BinOp::Gt),
        (">=", BinOp::Ge),
    ],
    &[("<<", BinOp::Shl), (">>", BinOp::Shr)],
    &[("+", BinOp::Add), ("-", BinOp::Sub)],
    &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Mod)],
];

impl Parser<'_> {
    fn probe(&mut self) -> Result<Probe, Error> {
        let mut attach = Vec::new();
        loop {
            let (word, span) = self.toks.attach_word()?;
            if word.is_empty() {
                return Err(self.toks.unexpected("a probe such as `kprobe:FUNC`")?);
            }
            if ["struct", "union", "enum", "typedef", "config"].contains(&word.as_str()) {
                return Err(Error::at(
                    span,
                    format!(
                        "`{word}` after a probe: C definitions and `config` come before the first probe"
                    ),
                ));
            }
            attach.push(Attach {
                parts: word.split(':').map(str::to_string).collect(),
                span,
            });
            if self.toks.eat(",")?.is_none() {
                break;
            }
        }
        let start = attach[0].span;
        let predicate = if self.toks.eat("/")?.is_some() {
            let e = self.expr_no_div()?;
            self.toks.expect("/", "to end the predicate")?;
            Some(e)
        } else {
            None
        };
        let (body, end) = self.block("to start the probe's body")?;
        Ok(Probe {
            attach,
            predicate,
            body,
            span: start.to(end),
        })
    }

    /// `{ statements }`; the span of its `}`.
    fn block(&mut self, context: &str) -> Result<(Vec<Stmt>, Span), Error> {
        let open = self.toks.expect("{", context)?;
        self.enter(open)?;
        let mut body = Vec::new();
        loop {
            if let Some(end) = self.toks.eat("}")? {
                self.depth -= 1;
                return Ok((body, end));
            }
            if self.toks.eat(";")?.is_some() {
                continue;
            }
            let stmt = self.stmt()?;
            // A statement ending in a block needs no `;`.
            let braced = matches!(
                stmt.kind,
                StmtKind::If { .. } | StmtKind::While { .. } | StmtKind::Unroll { .. }
            );
            body.push(stmt);
            if !braced && !self.toks.at_punct("}")? {
                self.toks.expect(";", "between statements")?;
            }
        }
    }

    /// The keyword starting a statement, if the next token is one.
    fn keyword(&mut self) -> Result<Option<(&'static str, Span)>, Error> {
        const KEYWORDS: &[&str] = &[
            "if", "while", "unroll", "for", "return", "break", "continue", "let",
        ];
        let (tok, span) = self.toks.peek()?.clone();
        Ok(match tok {
            Tok::Ident(word) => KEYWORDS.iter().find(|k| **k == word).map(|k| (*k, span)),
            _ => None,
        })
    }

    /// `if COND { } [else if ... | else { }]`; COND with or without
    /// parentheses.
    fn if_stmt(&mut self, start: Span) -> Result<Stmt, Error> {
        let cond = self.expr()?;
        let (then, mut end) = self.block("after `if`'s condition")?;
        let mut otherwise = Vec::new();
        if matches!(&self.toks.peek()?.0, Tok::Ident(w) if w == "else") {
            self.toks.take()?;
            if matches!(&self.toks.peek()?.0, Tok::Ident(w) if w == "if") {
                let (_, at) = self.toks.take()?;
                // A chain of `else if` nests: bounded like any nesting.
                self.enter(at)?;
                let nested = self.if_stmt(at)?;
                self.depth -= 1;
                end = nested.span;
                otherwise.push(nested);
            } else {
                let (body, close) = self.block("after `else`")?;
                otherwise = body;
                end = close;
            }
        }
        Ok(Stmt {
            kind: StmtKind::If {
                cond,
                then,
                otherwise,
            },
            span: start.to(end),
        })
    }

    fn keyword_stmt(&mut self, word: &str, start: Span) -> Result<Stmt, Error> {
        self.toks.take()?;
        let stmt = |kind, end: Span| Stmt {
            kind,
            span: start.to(end),
        };
        match word {
            "if" => self.if_stmt(start),
            "while" => {
                let cond = self.expr()?;
                let (body, end) = self.block("after `while`'s condition")?;
                Ok(stmt(StmtKind::While { cond, body }, end))
            }
            "unroll" => {
                self.toks.expect("(", "after `unroll`")?;
                let count = self.expr()?;
                self.toks.expect(")", "after `unroll`'s count")?;
                let (body, end) = self.block("after `unroll(N)`")?;
                Ok(stmt(StmtKind::Unroll { count, body }, end))
            }
            "for" => Err(Error::at(
                start,
                "`for` is not supported by nobtf trace: iterating a map needs bpf_for_each_map_elem (5.13); use `while` or `unroll`",
            )),
            "return" | "break" | "continue" => {
                let jump = match word {
                    "return" => Jump::Return,
                    "break" => Jump::Break,
                    _ => Jump::Continue,
                };
                if jump == Jump::Return && !self.toks.at_punct(";")? && !self.toks.at_punct("}")? {
                    let value = self.expr()?;
                    return Err(Error::at(
                        value.span,
                        "`return` with a value is for bpftrace's functions, which nobtf trace does not support",
                    ));
                }
                Ok(stmt(StmtKind::Jump(jump), start))
            }
            _ => {
                let (tok, span) = self.toks.take()?;
                let Tok::Var(name) = tok else {
                    return Err(Error::at(
                        span,
                        format!(
                            "expected a `$variable` after `let`, found {}",
                            tok.describe()
                        ),
                    ));
                };
                if self.toks.at_punct(":")? {
                    let at = self.toks.peek()?.1;
                    return Err(Error::at(
                        at,
                        "`let $x: TYPE` is not supported by nobtf trace yet: the type comes from the first assignment",
                    ));
                }
                let value = match self.toks.eat("=")? {
                    Some(_) => Some(self.expr()?),
                    None => None,
                };
                let end = value.as_ref().map_or(span, |v| v.span);
                Ok(stmt(StmtKind::Let { name, value }, end))
            }
        }
    }

    fn stmt(&mut self) -> Result<Stmt, Error> {
        if let Some((word, span)) = self.keyword()? {
            return self.keyword_stmt(word, span);
        }
        let target = self.expr()?;
        let compound = [
            ("=", None),
            ("+=", Some(BinOp::Add)),
            ("-=", Some(BinOp::Sub)),
            ("*=", Some(BinOp::Mul)),
            ("/=", Some(BinOp::Div)),
            ("%=", Some(BinOp::Mod)),
            ("&=", Some(BinOp::And)),
            ("|=", Some(BinOp::Or)),
            ("^=", Some(BinOp::Xor)),
            ("<<=", Some(BinOp::Shl)),
            (">>=", Some(BinOp::Shr)),
        ];
        let mut assign = None;
        for (p, op) in compound {
            if let Some(s) = self.toks.eat(p)? {
                assign = Some((op, self.expr()?, s));
                break;
            }
        }
        for (p, op) in [("++", BinOp::Add), ("--", BinOp::Sub)] {
            if let Some(s) = self.toks.eat(p)? {
                let one = Expr {
                    kind: ExprKind::Int(1),
                    span: s,
                };
                assign = Some((Some(op), one, s));
            }
        }
        let Some((op, value, op_span)) = assign else {
            let span = target.span;
            return Ok(Stmt {
                kind: StmtKind::Expr(target),
                span,
            });
        };
        let span = target.span.to(value.span);
        let value = match op {
            None => value,
            Some(op) => Expr {
                kind: ExprKind::Binary(op, Box::new(target.clone()), Box::new(value)),
                span,
            },
        };
        let kind = match target.kind {
            ExprKind::Var(name) => StmtKind::AssignVar { name, value },
            ExprKind::Map(map) => StmtKind::AssignMap { map, value },
            _ => {
                return Err(Error::at(
                    op_span,
                    "only a `$variable` or an `@map` can be assigned to",
                ));
            }
        };
        Ok(Stmt { kind, span })
    }

    fn expr(&mut self) -> Result<Expr, Error> {
        self.ternary(true)
    }

    /// An expression in which a top-level `/` ends the predicate.
    fn expr_no_div(&mut self) -> Result<Expr, Error> {
        self.ternary(false)
    }

    fn enter(&mut self, span: Span) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::at(
                span,
                format!("expression nested more than {MAX_DEPTH} deep"),
            ));
        }
        Ok(())
    }

    fn ternary(&mut self, div: bool) -> Result<Expr, Error> {
        let span = self.toks.peek()?.1;
        self.enter(span)?;
        let cond = self.binary(0, div)?;
        let result = if self.toks.eat("?")?.is_some() {
            let then = self.ternary(div)?;
            self.toks.expect(":", "between the branches of `?:`")?;
            let other = self.ternary(div)?;
            let span = cond.span.to(other.span);
            Ok(Expr {
                kind: ExprKind::Ternary(Box::new(cond), Box::new(then), Box::new(other)),
                span,
            })
        } else {
            Ok(cond)
        };
        self.depth -= 1;
        result
    }

    /// Operators of precedence `min` or tighter, left to right: one frame
    /// per rise in precedence, not one per level, so that nested
    /// parentheses stay shallow on the stack.
    fn binary(&mut self, min: usize, div: bool) -> Result<Expr, Error> {
        let mut left = self.unary(div)?;
        while let Some((level, op)) = self.binary_op(min, div)? {
            self.toks.take()?;
            let right = self.binary(level + 1, div)?;
            let span = left.span.to(right.span);
            left = Expr {
                kind: ExprKind::Binary(op, Box::new(left), Box::new(right)),
                span,
            };
        }
        Ok(left)
    }

    /// The binary operator next, if its precedence is `min` or tighter.
    fn binary_op(&mut self, min: usize, div: bool) -> Result<Option<(usize, BinOp)>, Error> {
        let Tok::Punct(p) = self.toks.peek()?.0 else {
            return Ok(None);
        };
        Ok(LEVELS
            .iter()
            .enumerate()
            .skip(min)
            .find_map(|(level, ops)| {
                ops.iter()
                    .find(|(q, _)| *q == p && (div || *q != "/"))
                    .map(|&(_, op)| (level, op))
            }))
    }

    fn unary(&mut self, div: bool) -> Result<Expr, Error> {
        for (p, op) in [("!", UnOp::Not), ("-", UnOp::Neg), ("~", UnOp::BitNot)] {
            if let Some(start) = self.toks.eat(p)? {
                self.enter(start)?;
                let value = self.unary(div)?;
                self.depth -= 1;
                let span = start.to(value.span);
                return Ok(Expr {
                    kind: ExprKind::Unary(op, Box::new(value)),
                    span,
                });
            }
        }
        for p in ["*", "&"] {
            if let Some(start) = self.toks.eat(p)? {
                self.enter(start)?;
                let value = Box::new(self.unary(div)?);
                self.depth -= 1;
                let span = start.to(value.span);
                let kind = if p == "*" {
                    ExprKind::Deref(value)
                } else {
                    ExprKind::AddrOf(value)
                };
                return Ok(Expr { kind, span });
            }
        }
        let primary = self.primary(div)?;
        self.postfix(primary)
    }

    fn postfix(&mut self, mut base: Expr) -> Result<Expr, Error> {
        loop {
            if !matches!(base.kind, ExprKind::Map(_)) && self.toks.eat("[")?.is_some() {
                let index = self.expr()?;
                let end = self.toks.expect("]", "to close `[`")?;
                let span = base.span.to(end);
                base = Expr {
                    kind: ExprKind::Index {
                        base: Box::new(base),
                        index: Box::new(index),
                    },
                    span,
                };
                continue;
            }
            let arrow = if self.toks.eat("->")?.is_some() {
                true
            } else if self.toks.eat(".")?.is_some() {
                false
            } else {
                return Ok(base);
            };
            let (tok, member_span) = self.toks.take()?;
            if let (Tok::Int(n), false) = (&tok, arrow) {
                let span = base.span.to(member_span);
                base = Expr {
                    kind: ExprKind::TupleField {
                        base: Box::new(base),
                        index: *n as usize,
                    },
                    span,
                };
                continue;
            }
            let Tok::Ident(member) = tok else {
                return Err(Error::at(
                    member_span,
                    format!("expected a member name, found {}", tok.describe()),
                ));
            };
            let span = base.span.to(member_span);
            base = Expr {
                kind: ExprKind::Member {
                    base: Box::new(base),
                    member,
                    arrow,
                    member_span,
                },
                span,
            };
        }
    }

    fn primary(&mut self, div: bool) -> Result<Expr, Error> {
        let (tok, span) = self.toks.take()?;
        let kind = match tok {
            Tok::Int(n) => ExprKind::Int(n),
            Tok::Str(s) => ExprKind::Str(s),
            Tok::Var(name) => ExprKind::Var(name),
            Tok::Map(name) => {
                let (keys, end) = if self.toks.at_punct("[")? {
                    self.toks.take()?;
                    self.list("]")?
                } else {
                    (Vec::new(), span)
                };
                let span = span.to(end);
                return Ok(Expr {
                    kind: ExprKind::Map(MapAccess { name, keys, span }),
                    span,
                });
            }
            Tok::Ident(name) => {
                if name == "sizeof" && self.toks.at_punct("(")? {
                    self.toks.take()?;
                    if let Some(target) = self.cast_target()? {
                        let end = self.toks.expect(")", "to end sizeof's type")?;
                        return Ok(Expr {
                            kind: ExprKind::SizeofType(target),
                            span: span.to(end),
                        });
                    }
                    let (args, end) = self.list(")")?;
                    return Ok(Expr {
                        kind: ExprKind::Call { name, args },
                        span: span.to(end),
                    });
                }
                if self.toks.at_punct("(")? {
                    self.toks.take()?;
                    let (args, end) = self.list(")")?;
                    return Ok(Expr {
                        kind: ExprKind::Call { name, args },
                        span: span.to(end),
                    });
                }
                ExprKind::Ident(name)
            }
            Tok::Punct("(") => {
                if let Some(target) = self.cast_target()? {
                    let close = self.toks.expect(")", "to end the cast")?;
                    self.enter(close)?;
                    let value = self.unary(div)?;
                    self.depth -= 1;
                    let span = span.to(value.span);
                    return Ok(Expr {
                        kind: ExprKind::Cast {
                            target,
                            value: Box::new(value),
                        },
                        span,
                    });
                }
                // Inside parentheses `/` divides again.
                let inner = self.expr()?;
                if self.toks.eat(",")?.is_some() {
                    let (mut rest, end) = self.list(")")?;
                    rest.insert(0, inner);
                    return Ok(Expr {
                        kind: ExprKind::Tuple(rest),
                        span: span.to(end),
                    });
                }
                let end = self.toks.expect(")", "to close `(`")?;
                return Ok(Expr {
                    kind: inner.kind,
                    span: span.to(end),
                });
            }
            other => {
                return Err(Error::at(
                    span,
                    format!("expected an expression, found {}", other.describe()),
                ));
            }
        };
        Ok(Expr { kind, span })
    }

    /// After `(`: a type name makes this a cast.
    fn cast_target(&mut self) -> Result<Option<CastTarget>, Error> {
        let Tok::Ident(word) = self.toks.peek()?.0.clone() else {
            return Ok(None);
        };
        let int = match word.as_str() {
            "u8" | "uint8" => Some((1, false)),
            "u16" | "uint16" => Some((2, false)),
            "u32" | "uint32" => Some((4, false)),
            "u64" | "uint64" => Some((8, false)),
            "s8" | "int8" => Some((1, true)),
            "s16" | "int16" => Some((2, true)),
            "s32" | "int32" => Some((4, true)),
            "s64" | "int64" => Some((8, true)),
            _ => None,
        };
        if let Some((bytes, signed)) = int {
            self.toks.take()?;
            let mut pointers = 0u8;
            while self.toks.eat("*")?.is_some() {
                pointers = pointers.saturating_add(1);
            }
            return Ok(Some(if pointers == 0 {
                CastTarget::Int { bytes, signed }
            } else {
                CastTarget::IntPtr {
                    bytes,
                    signed,
                    pointers,
                }
            }));
        }
        if word != "struct" {
            return Ok(None);
        }
        self.toks.take()?;
        let (tok, span) = self.toks.take()?;
        let Tok::Ident(name) = tok else {
            return Err(Error::at(
                span,
                format!("expected a struct name, found {}", tok.describe()),
            ));
        };
        let mut pointers = 0u8;
        while self.toks.eat("*")?.is_some() {
            pointers = pointers.saturating_add(1);
        }
        Ok(Some(CastTarget::Struct { name, pointers }))
    }

    /// Comma-separated expressions up to `close`; returns the close's span.
    fn list(&mut self, close: &str) -> Result<(Vec<Expr>, Span), Error> {
        let mut items = Vec::new();
        loop {
            if let Some(end) = self.toks.eat(close)? {
                return Ok((items, end));
            }
            items.push(self.expr()?);
            if !self.toks.at_punct(close)? {
                self.toks.expect(",", &format!("or `{close}`"))?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(src: &str) -> String {
        parse(src).unwrap_err().render(src)
    }

    #[test]
    fn parses_the_unlink_one_liner() {
        let src = r#"kprobe:do_unlinkat { $f = (struct filename *)arg1; printf("%s %d\n", str($f->name), $f->refcnt); }"#;
        let program = parse(src).unwrap();
        let probe = &program.probes[0];
        assert_eq!(probe.attach[0].parts, ["kprobe", "do_unlinkat"]);
        assert_eq!(probe.body.len(), 2);
        let StmtKind::AssignVar { name, value } = &probe.body[0].kind else {
            panic!("{:?}", probe.body[0]);
        };
        assert_eq!(name, "f");
        assert!(matches!(
            &value.kind,
            ExprKind::Cast { target: CastTarget::Struct { name, pointers: 1 }, .. } if name == "filename"
        ));
        assert_eq!(
            &src[value.span.start..value.span.end],
            "(struct filename *)arg1"
        );
    }

    #[test]
    fn precedence_follows_c() {
        let program = parse("BEGIN { $x = 1 + 2 * 3 == 7 && !0 ? 4 : 5 }").unwrap();
        let StmtKind::AssignVar { value, .. } = &program.probes[0].body[0].kind else {
            panic!()
        };
        let ExprKind::Ternary(cond, ..) = &value.kind else {
            panic!("{value:?}")
        };
        let ExprKind::Binary(BinOp::LogAnd, eq, _) = &cond.kind else {
            panic!("{cond:?}")
        };
        let ExprKind::Binary(BinOp::Eq, sum, _) = &eq.kind else {
            panic!("{eq:?}")
        };
        assert!(matches!(sum.kind, ExprKind::Binary(BinOp::Add, _, _)));
    }

    #[test]
    fn probe_lists_predicates_and_maps() {
        let src = "kprobe:a,kretprobe:b / pid == 1 && $x / 2 / { @m[comm, pid] = count(); @n++ }\ninterval:s:1 { print(@m); clear(@m) }";
        // `/` ends the predicate at top level...
        assert!(parse(src).is_err());
        // ...and divides inside parentheses.
        let src = src.replace("$x / 2", "($x / 2)");
        let program = parse(&src).unwrap();
        assert_eq!(program.probes.len(), 2);
        assert_eq!(program.probes[0].attach.len(), 2);
        assert_eq!(program.probes[1].attach[0].parts, ["interval", "s", "1"]);
        assert!(program.probes[0].predicate.is_some());
    }

    #[test]
    fn errors_say_what_was_expected_with_a_caret() {
        assert_eq!(
            error("kprobe:f { printf(\"x\" }"),
            "1:23: expected `,` or `)`, found `}`\nkprobe:f { printf(\"x\" }\n                      ^"
        );
        assert_eq!(
            error("kprobe:f { $x = ; }"),
            "1:17: expected an expression, found `;`\nkprobe:f { $x = ; }\n                ^"
        );
        assert!(error("kprobe:f { let x; }").contains("expected a `$variable` after `let`"));
        assert!(error("kprobe:f { for ($x : @m) { } }").contains("`for` is not supported"));
        assert!(error("kprobe:f").contains("expected `{` to start the probe's body"));
        assert!(error("").contains("expected a probe"));
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let src = format!("BEGIN {{ $x = {}1{} }}", "(".repeat(5000), ")".repeat(5000));
        assert!(error(&src).contains("nested more than"));
        let src = format!("BEGIN {{ $x = {}1 }}", "- ".repeat(5000));
        assert!(error(&src).contains("nested more than"));
        let src = format!(
            "kprobe:f {{ if (1) {{ }} {} }}",
            "else if (1) { } ".repeat(5000)
        );
        assert!(error(&src).contains("nested more than"));
        let src = format!(
            "kprobe:f {{ {}{} }}",
            "if (1) { ".repeat(5000),
            "}".repeat(5000)
        );
        assert!(error(&src).contains("nested more than"));
    }
}
