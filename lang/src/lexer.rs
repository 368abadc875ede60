//! Text to tokens. The parser pulls tokens one at a time because a probe's
//! attach point (`tracepoint:syscalls:sys_enter_openat`, `interval:s:1`) is
//! read as one raw word, in a mode only the parser knows it is in.

use crate::diag::{Error, Span};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Ident(String),
    /// `$name`.
    Var(String),
    /// `@name` (`@` alone is the map called `@`).
    Map(String),
    Int(u64),
    Str(String),
    /// `$N` (N from 1), or `$#` (0); the lexer substitutes it before the
    /// parser sees it.
    Param(usize),
    /// Punctuation and operators, as written.
    Punct(&'static str),
    Eof,
}

impl Tok {
    /// How a token is named in "expected X, found Y".
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(name) => format!("`{name}`"),
            Tok::Var(name) => format!("`${name}`"),
            Tok::Map(name) => format!("`@{name}`"),
            Tok::Int(n) => format!("`{n}`"),
            Tok::Str(_) => "a string".into(),
            Tok::Param(0) => "`$#`".into(),
            Tok::Param(n) => format!("`${n}`"),
            Tok::Punct(p) => format!("`{p}`"),
            Tok::Eof => "the end of the program".into(),
        }
    }
}

/// Longest first, so `<<` wins over `<`.
const PUNCTS: &[&str] = &[
    "<<=", ">>=", "->", "==", "!=", "<=", ">=", "&&", "||", "<<", ">>", "++", "--", "+=", "-=",
    "*=", "/=", "%=", "&=", "|=", "^=", "{", "}", "(", ")", "[", "]", ",", ";", ":", "?", ".", "+",
    "-", "*", "/", "%", "&", "|", "^", "!", "~", "<", ">", "=",
];

/// What the lexer substitutes: `#define`d macros (by name, as bpftrace's
/// lexer expands them) and the positional parameters `$1`, `$2`, `$#`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Substitutions<'a> {
    pub macros: &'a [(String, String)],
    pub params: &'a [String],
}

/// The lexer with one token of lookahead: both parsers (programs and the C
/// declarations of a preamble) read through it.
pub struct Tokens<'a> {
    lexer: Lexer<'a>,
    peeked: Option<(Tok, Span)>,
}

impl<'a> Tokens<'a> {
    pub fn new(lexer: Lexer<'a>) -> Tokens<'a> {
        Tokens {
            lexer,
            peeked: None,
        }
    }

    pub fn peek(&mut self) -> Result<&(Tok, Span), Error> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next_token()?);
        }
        Ok(self.peeked.as_ref().expect("just filled"))
    }

    pub fn take(&mut self) -> Result<(Tok, Span), Error> {
        self.peek()?;
        Ok(self.peeked.take().expect("just filled"))
    }

    pub fn at_punct(&mut self, p: &str) -> Result<bool, Error> {
        Ok(matches!(self.peek()?.0, Tok::Punct(q) if q == p))
    }

    /// Takes the punctuation `p` if it comes next.
    pub fn eat(&mut self, p: &str) -> Result<Option<Span>, Error> {
        if self.at_punct(p)? {
            Ok(Some(self.take()?.1))
        } else {
            Ok(None)
        }
    }

    pub fn expect(&mut self, p: &str, context: &str) -> Result<Span, Error> {
        match self.eat(p)? {
            Some(span) => Ok(span),
            None => Err(self.unexpected(&format!("`{p}` {context}"))?),
        }
    }

    /// "expected X, found Y" at the next token.
    pub fn unexpected(&mut self, expected: &str) -> Result<Error, Error> {
        let (tok, span) = self.peek()?.clone();
        Ok(Error::at(
            span,
            format!("expected {expected}, found {}", tok.describe()),
        ))
    }

    /// Where the peeked token starts, if one is peeked.
    pub fn peeked_span(&self) -> Option<Span> {
        self.peeked.as_ref().map(|p| p.1)
    }

    /// An attach point is a raw word: anything peeked is read again as one.
    pub fn attach_word(&mut self) -> Result<(String, Span), Error> {
        if let Some((_, span)) = self.peeked.take() {
            self.lexer.rewind(span.start);
        }
        self.lexer.attach_word()
    }
}

/// Macros expanding macros: deeper is refused (`#define A B`, `#define B A`).
const MAX_EXPANSION: usize = 16;

pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    subs: Substitutions<'a>,
    /// Tokens of an expansion not yet returned, last first.
    pending: Vec<(Tok, Span)>,
    /// The last two tokens returned: `str ( $1` reads the parameter as a
    /// string.
    recent: [Option<Tok>; 2],
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Lexer<'a> {
        Lexer::with(src, Substitutions::default())
    }

    pub fn with(src: &'a str, subs: Substitutions<'a>) -> Lexer<'a> {
        Lexer {
            src,
            pos: 0,
            subs,
            pending: Vec::new(),
            recent: [None, None],
        }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Go back to `pos`, a position this lexer returned.
    pub fn rewind(&mut self, pos: usize) {
        self.pos = pos.min(self.pos);
        self.pending.clear();
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    /// Only blanks between the start of the line and `pos`.
    fn at_line_start(&self) -> bool {
        let before = &self.src[..self.pos];
        before[before.rfind('\n').map_or(0, |i| i + 1)..]
            .trim()
            .is_empty()
    }

    /// Skip blanks and `//`, `/* */` comments.
    fn skip_trivia(&mut self) -> Result<(), Error> {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with("//") {
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
            } else if trimmed.starts_with('#') && self.at_line_start() {
                // `#!` and `#include` lines: struct layouts come from the
                // profile or BTF, not from headers.
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
            } else if trimmed.starts_with("/*") {
                let Some(end) = trimmed.find("*/") else {
                    return Err(Error::at(
                        Span::new(self.pos, self.pos + 2),
                        "comment never ends: expected `*/`",
                    ));
                };
                self.pos += end + 2;
            } else {
                return Ok(());
            }
        }
    }

    /// An attach point: letters, digits and `_ : * . - +` up to a blank,
    /// `,`, `{` or `/` (`+` for `uprobe:PATH:FUNC+OFFSET`).
    pub fn attach_word(&mut self) -> Result<(String, Span), Error> {
        self.skip_trivia()?;
        let start = self.pos;
        // A `/` right after `:` starts a path (`uprobe:/bin/sh:main`), which
        // runs to the next `:`; elsewhere `/` starts a predicate.
        let mut in_path = false;
        let mut prev = ' ';
        let len = self
            .rest()
            .find(|c: char| {
                if c == '/' && prev == ':' {
                    in_path = true;
                } else if c == ':' {
                    in_path = false;
                }
                prev = c;
                !(c.is_ascii_alphanumeric() || "_:*.-+".contains(c) || in_path && c == '/')
            })
            .unwrap_or(self.rest().len());
        self.pos += len;
        Ok((
            self.src[start..self.pos].to_string(),
            Span::new(start, self.pos),
        ))
    }

    /// The next token and its span, macros and parameters substituted (a
    /// substitution's tokens carry the span of the name it replaced).
    pub fn next_token(&mut self) -> Result<(Tok, Span), Error> {
        let (tok, span) = match self.pending.pop() {
            Some(next) => next,
            None => self.substituted(0)?,
        };
        self.recent = [self.recent[1].take(), Some(tok.clone())];
        Ok((tok, span))
    }

    fn substituted(&mut self, depth: usize) -> Result<(Tok, Span), Error> {
        let (tok, span) = self.raw_token()?;
        match &tok {
            Tok::Ident(name) => {
                let Some((_, value)) = self.subs.macros.iter().find(|(n, _)| n == name) else {
                    return Ok((tok, span));
                };
                // `#define X X` stays `X`, as in bpftrace.
                if value == name {
                    return Ok((tok, span));
                }
                if depth >= MAX_EXPANSION {
                    return Err(Error::at(
                        span,
                        format!("macro `{name}` expands more than {MAX_EXPANSION} deep"),
                    ));
                }
                let mut inner = Lexer::with(value, self.subs);
                let mut tokens = Vec::new();
                loop {
                    let (t, _) = inner.substituted(depth + 1).map_err(|e| {
                        Error::at(span, format!("in macro `{name}` ({value}): {}", e.message))
                    })?;
                    if t == Tok::Eof {
                        break;
                    }
                    tokens.push((t, span));
                }
                match tokens.is_empty() {
                    // An empty macro vanishes.
                    true => self.substituted(depth),
                    false => {
                        tokens.reverse();
                        let first = tokens.pop().expect("not empty");
                        self.pending.extend(tokens);
                        Ok(first)
                    }
                }
            }
            Tok::Param(n) => self.param(*n, span),
            _ => Ok((tok, span)),
        }
    }

    /// `$N` as bpftrace reads it: inside `str(...)` the argument's text
    /// (empty when not given), elsewhere its integer value (0 when not
    /// given); `$#` the number of arguments.
    fn param(&mut self, n: usize, span: Span) -> Result<(Tok, Span), Error> {
        let in_str =
            matches!(&self.recent, [Some(Tok::Ident(f)), Some(Tok::Punct("("))] if f == "str");
        if n == 0 {
            if in_str {
                return Err(Error::at(span, "use $#, not str($#)"));
            }
            return Ok((Tok::Int(self.subs.params.len() as u64), span));
        }
        let given = self.subs.params.get(n - 1);
        if in_str {
            return Ok((Tok::Str(given.cloned().unwrap_or_default()), span));
        }
        let Some(text) = given else {
            return Ok((Tok::Int(0), span));
        };
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        let value = match digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => digits.parse::<u64>().ok(),
        };
        match value {
            Some(v) if negative && v <= 1 << 63 => {
                self.pending.push((Tok::Int(v), span));
                Ok((Tok::Punct("-"), span))
            }
            Some(v) if !negative => Ok((Tok::Int(v), span)),
            _ => Err(Error::at(
                span,
                format!("${n} used numerically but given \"{text}\". Try using str(${n})."),
            )),
        }
    }

    /// The next token as written.
    fn raw_token(&mut self) -> Result<(Tok, Span), Error> {
        self.skip_trivia()?;
        let start = self.pos;
        let rest = self.rest();
        let Some(c) = rest.chars().next() else {
            return Ok((Tok::Eof, Span::new(start, start)));
        };
        let word_len = |s: &str| {
            s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(s.len())
        };
        let tok = if c.is_ascii_alphabetic() || c == '_' {
            let len = word_len(rest);
            self.pos += len;
            Tok::Ident(rest[..len].to_string())
        } else if c == '$' && rest[1..].starts_with('#') {
            self.pos += 2;
            Tok::Param(0)
        } else if c == '$' && rest[1..].starts_with(|d: char| d.is_ascii_digit()) {
            let len = word_len(&rest[1..]);
            self.pos += 1 + len;
            let digits = &rest[1..1 + len];
            match digits.parse::<usize>() {
                Ok(n) if n > 0 => Tok::Param(n),
                _ => {
                    return Err(Error::at(
                        Span::new(start, self.pos),
                        format!("${digits} is not a positional parameter: they are $1, $2, ..."),
                    ));
                }
            }
        } else if c == '$' || c == '@' {
            let len = word_len(&rest[1..]);
            self.pos += 1 + len;
            let name = rest[1..1 + len].to_string();
            if c == '$' {
                if name.is_empty() {
                    return Err(Error::at(
                        Span::new(start, start + 1),
                        "expected a variable name after `$`",
                    ));
                }
                Tok::Var(name)
            } else {
                Tok::Map(name)
            }
        } else if c.is_ascii_digit() {
            self.number()?
        } else if c == '"' {
            self.string()?
        } else if let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) {
            self.pos += p.len();
            Tok::Punct(p)
        } else {
            return Err(Error::at(
                Span::new(start, start + c.len_utf8()),
                format!("unexpected character `{c}`"),
            ));
        };
        Ok((tok, Span::new(start, self.pos)))
    }

    fn number(&mut self) -> Result<Tok, Error> {
        let start = self.pos;
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        self.pos += len;
        let text = rest[..len].replace('_', "");
        let parsed = if let Some(hex) = text.strip_prefix("0x").or(text.strip_prefix("0X")) {
            u64::from_str_radix(hex, 16).ok()
        } else {
            decimal(&text)
        };
        parsed.map(Tok::Int).ok_or_else(|| {
            Error::at(
                Span::new(start, self.pos),
                format!("`{}` is not a 64-bit integer", &rest[..len]),
            )
        })
    }

    fn string(&mut self) -> Result<Tok, Error> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.rest().chars().next() else {
                return Err(Error::at(
                    Span::new(start, start + 1),
                    "string never ends: expected `\"`",
                ));
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(Tok::Str(out)),
                '\\' => {
                    let at = self.pos - 1;
                    let Some(e) = self.rest().chars().next() else {
                        continue;
                    };
                    self.pos += e.len_utf8();
                    out.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '0' => '\0',
                        '\\' => '\\',
                        '"' => '"',
                        other => {
                            return Err(Error::at(
                                Span::new(at, self.pos),
                                format!("unknown escape `\\{other}`: expected \\n \\t \\r \\0 \\\\ or \\\""),
                            ));
                        }
                    });
                }
                c => out.push(c),
            }
        }
    }
}

/// A decimal literal as bpftrace reads it: `1000`, C's suffixes (`10u`,
/// `5ll`, `7ULL`), or scientific notation of integers (`1e6`).
fn decimal(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let digits = ["ull", "ll", "ul", "u", "l"]
        .iter()
        .find_map(|suffix| lower.strip_suffix(suffix))
        .unwrap_or(&lower);
    match digits.split_once('e') {
        Some((mantissa, exponent)) => {
            let mantissa: u64 = mantissa.parse().ok()?;
            let exponent: u32 = exponent.parse().ok()?;
            10u64
                .checked_pow(exponent)
                .and_then(|p| mantissa.checked_mul(p))
        }
        None => digits.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Lexer<'_> {
        fn nth_is_err(mut self, n: usize) -> bool {
            (0..n).all(|_| self.next_token().is_ok()) && self.next_token().is_err()
        }
    }

    fn tokens(src: &str) -> Vec<Tok> {
        let mut lexer = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let (tok, _) = lexer.next_token().unwrap();
            if tok == Tok::Eof {
                return out;
            }
            out.push(tok);
        }
    }

    #[test]
    fn operators_take_the_longest_match() {
        assert_eq!(
            tokens("a<<=b>>c->d // note\n /* x */ @m[$k] 0x1f \"a\\n\""),
            [
                Tok::Ident("a".into()),
                Tok::Punct("<<="),
                Tok::Ident("b".into()),
                Tok::Punct(">>"),
                Tok::Ident("c".into()),
                Tok::Punct("->"),
                Tok::Ident("d".into()),
                Tok::Map("m".into()),
                Tok::Punct("["),
                Tok::Var("k".into()),
                Tok::Punct("]"),
                Tok::Int(31),
                Tok::Str("a\n".into()),
            ]
        );
    }

    #[test]
    fn macros_and_parameters_are_substituted() {
        let macros = [
            ("AF_INET".to_string(), "2".to_string()),
            ("SELF".to_string(), "SELF".to_string()),
            ("PAIR".to_string(), "(AF_INET + 1)".to_string()),
            ("LOOP".to_string(), "LOOP2".to_string()),
            ("LOOP2".to_string(), "LOOP".to_string()),
        ];
        let params = ["-4".to_string(), "sda".to_string()];
        let subs = Substitutions {
            macros: &macros,
            params: &params,
        };
        let mut lexer = Lexer::with("PAIR SELF $1 str($2) $#", subs);
        let mut out = Vec::new();
        loop {
            let (tok, span) = lexer.next_token().unwrap();
            if tok == Tok::Eof {
                break;
            }
            out.push((tok, span.start));
        }
        let expected = [
            (Tok::Punct("("), 0),
            (Tok::Int(2), 0),
            (Tok::Punct("+"), 0),
            (Tok::Int(1), 0),
            (Tok::Punct(")"), 0),
            (Tok::Ident("SELF".into()), 5),
            (Tok::Punct("-"), 10),
            (Tok::Int(4), 10),
            (Tok::Ident("str".into()), 13),
            (Tok::Punct("("), 16),
            (Tok::Str("sda".into()), 17),
            (Tok::Punct(")"), 19),
            (Tok::Int(2), 21),
        ];
        assert_eq!(out, expected);
        let error = Lexer::with("LOOP", subs).next_token().unwrap_err();
        assert!(error.message.contains("expands more than"), "{error:?}");
    }

    #[test]
    fn integers_take_suffixes_underscores_and_exponents() {
        assert_eq!(
            tokens("1e6 2E3 10u 5ll 7ULL 1_000 0x1F"),
            [1_000_000, 2000, 10, 5, 7, 1000, 31].map(Tok::Int)
        );
    }

    #[test]
    fn shebang_and_include_lines_are_skipped() {
        assert_eq!(
            tokens("#!/usr/bin/env bpftrace\n#include <linux/sched.h>\n  # define X\nBEGIN"),
            [Tok::Ident("BEGIN".into())]
        );
    }

    #[test]
    fn bad_input_is_an_error_with_a_span() {
        let error = Lexer::new("  \"abc").next_token().unwrap_err();
        assert_eq!(error.span, Some(Span::new(2, 3)));
        assert!(Lexer::new("99999999999999999999").next_token().is_err());
        assert!(Lexer::new("1e20").next_token().is_err());
        assert!(Lexer::new("12x").next_token().is_err());
        assert!(Lexer::new("a #").nth_is_err(1));
        assert!(Lexer::new("/* x").next_token().is_err());
    }
}
