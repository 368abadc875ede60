//! The C preprocessor lines bpftrace scripts carry (`#include`, `#define`,
//! `#ifdef BPFTRACE_HAVE_BTF` ... `#else` ... `#endif`), handled before
//! lexing.
//!
//! bpftrace hands these lines to clang with the kernel's headers; nobtf has
//! no headers, so `#include` is dropped (types come from the profile, BTF
//! or the script's own definitions, and the uapi constants the tools name
//! from `kernel_headers::uapi`). Object-like `#define`s become macros the
//! lexer expands, as bpftrace's lexer does. Directive lines and the lines a
//! conditional leaves out are blanked in place (newlines kept), so every
//! span still points into the text the user wrote.
//!
//! Hand-written: a directive is one line, and what bpftrace's tools use is
//! a handful of directives; a C preprocessor crate would bring a C
//! tokenizer and file inclusion nobtf has no use for.

use crate::diag::{Error, Span};

/// Defined by bpftrace when the kernel has BTF; tools test it to choose
/// between `#include`s and their own `#define`s.
pub const HAVE_BTF: &str = "BPFTRACE_HAVE_BTF";

/// Nested conditionals a program may use.
const MAX_NESTING: usize = 32;

/// The program with its directives blanked, and the macros they defined.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Preprocessed {
    pub text: String,
    /// `#define NAME VALUE`, in order; a later definition replaces an
    /// earlier one (`#undef` removes it).
    pub macros: Vec<(String, String)>,
}

impl Preprocessed {
    pub fn macro_value(&self, name: &str) -> Option<&str> {
        self.macros
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One open `#if`: whether its current branch is taken, whether any branch
/// was, and whether `#else` was seen.
struct Cond {
    taken: bool,
    any_taken: bool,
    seen_else: bool,
    span: Span,
}

/// Blank `src`'s directives and left-out lines; collect its macros.
/// `defined` names the macros defined before the program (`HAVE_BTF`).
pub fn preprocess(src: &str, defined: &[&str]) -> Result<Preprocessed, Error> {
    let mut out = String::with_capacity(src.len());
    let mut macros: Vec<(String, String)> = defined
        .iter()
        .map(|name| (name.to_string(), "1".to_string()))
        .collect();
    let mut conds: Vec<Cond> = Vec::new();
    let mut in_comment = false;
    let mut lines = Lines { src, pos: 0 };
    while let Some(line) = lines.next_logical() {
        let (code, still_in_comment) = strip_comments(line.text, in_comment);
        let was_in_comment = in_comment;
        in_comment = still_in_comment;
        let active = conds.iter().all(|c| c.taken);
        let span = Span::new(line.offset, line.offset + line.text.len());
        let trimmed = code.trim_start();
        let is_directive =
            !was_in_comment && trimmed.starts_with('#') && !trimmed.starts_with("#!");
        let shebang = line.offset == 0 && trimmed.starts_with("#!");
        if is_directive {
            directive(trimmed[1..].trim(), span, active, &mut conds, &mut macros)?;
        }
        if is_directive || shebang || !active {
            blank(&mut out, line.raw);
        } else {
            out.push_str(line.raw);
        }
    }
    if let Some(open) = conds.last() {
        return Err(Error::at(
            open.span,
            "this conditional never ends: expected `#endif`",
        ));
    }
    macros.retain(|(name, _)| !defined.contains(&name.as_str()));
    Ok(Preprocessed { text: out, macros })
}

/// Spaces for every byte but the newlines, so offsets stay put.
fn blank(out: &mut String, raw: &str) {
    out.extend(raw.bytes().map(|b| {
        if b == b'\n' || b == b'\r' {
            b as char
        } else {
            ' '
        }
    }));
}

fn directive(
    text: &str,
    span: Span,
    active: bool,
    conds: &mut Vec<Cond>,
    macros: &mut Vec<(String, String)>,
) -> Result<(), Error> {
    let (word, rest) = split_word(text);
    let rest = rest.trim();
    let is_defined =
        |macros: &Vec<(String, String)>, name: &str| macros.iter().any(|(n, _)| n == name);
    let open = |conds: &mut Vec<Cond>, value: bool| {
        if conds.len() >= MAX_NESTING {
            return Err(Error::at(
                span,
                format!("conditionals nested more than {MAX_NESTING} deep"),
            ));
        }
        conds.push(Cond {
            taken: value,
            any_taken: value,
            seen_else: false,
            span,
        });
        Ok(())
    };
    match word {
        "include" | "include_next" | "pragma" | "line" | "" => Ok(()),
        "ifdef" | "ifndef" => {
            let name = macro_name(rest, span, word)?;
            let value = is_defined(macros, name) == (word == "ifdef");
            open(conds, value)
        }
        "if" => {
            let value = condition(rest, span, macros)?;
            open(conds, value)
        }
        "elif" | "else" => {
            let Some(cond) = conds.last_mut() else {
                return Err(Error::at(span, format!("`#{word}` without `#if`")));
            };
            if cond.seen_else {
                return Err(Error::at(span, format!("`#{word}` after `#else`")));
            }
            let value = if word == "else" {
                cond.seen_else = true;
                true
            } else {
                // Only evaluated when no earlier branch was taken.
                !cond.any_taken && condition(rest, span, macros)?
            };
            cond.taken = !cond.any_taken && value;
            cond.any_taken |= cond.taken;
            Ok(())
        }
        "endif" => match conds.pop() {
            Some(_) => Ok(()),
            None => Err(Error::at(span, "`#endif` without `#if`")),
        },
        _ if !active => Ok(()),
        "define" => {
            let (name, value) = split_word(rest);
            if name.is_empty() || !is_identifier(name) {
                return Err(Error::at(span, "expected a macro name after `#define`"));
            }
            if value.starts_with('(') {
                return Err(Error::at(
                    span,
                    format!(
                        "function-like macro `{name}`: nobtf trace expands only `#define NAME VALUE`"
                    ),
                ));
            }
            macros.retain(|(n, _)| n != name);
            macros.push((name.to_string(), value.trim().to_string()));
            Ok(())
        }
        "undef" => {
            let name = macro_name(rest, span, word)?;
            macros.retain(|(n, _)| n != name);
            Ok(())
        }
        "error" => Err(Error::at(span, format!("#error {rest}"))),
        "warning" => Ok(()),
        other => Err(Error::at(
            span,
            format!("unknown preprocessor directive `#{other}`"),
        )),
    }
}

/// `#if`'s expression: `0`, `1`, `defined(X)`, `defined X`, `!` of those,
/// or a macro whose value is a number. Anything else is refused.
fn condition(text: &str, span: Span, macros: &[(String, String)]) -> Result<bool, Error> {
    let text = text.trim();
    if let Some(inner) = text.strip_prefix('!') {
        return Ok(!condition(inner, span, macros)?);
    }
    if let Some(rest) = text.strip_prefix("defined") {
        let name = rest
            .trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .trim();
        if is_identifier(name) {
            return Ok(macros.iter().any(|(n, _)| n == name));
        }
    }
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n != 0);
    }
    if is_identifier(text) {
        // An undefined name is 0 in `#if`, as in C.
        let value = macros.iter().find(|(n, _)| n == text).map(|(_, v)| v);
        return Ok(value.is_some_and(|v| v.trim().parse::<i64>().is_ok_and(|n| n != 0)));
    }
    Err(Error::at(
        span,
        format!("`#if {text}`: nobtf trace evaluates only 0, 1, NAME and defined(NAME) in `#if`"),
    ))
}

fn macro_name<'t>(rest: &'t str, span: Span, word: &str) -> Result<&'t str, Error> {
    let (name, _) = split_word(rest);
    if is_identifier(name) {
        Ok(name)
    } else {
        Err(Error::at(
            span,
            format!("expected a macro name after `#{word}`"),
        ))
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The leading identifier and what follows it.
fn split_word(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    (&text[..end], &text[end..])
}

/// `line` with its comments replaced by a space (and continuation
/// backslash-newlines by nothing), and whether a `/*` is still open at its
/// end. Strings are kept whole: a `//` inside one is not a comment.
fn strip_comments(line: &str, mut in_comment: bool) -> (String, bool) {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_comment {
            if c == '*' && chars.peek() == Some(&'/') {
                chars.next();
                in_comment = false;
                out.push(' ');
            }
            continue;
        }
        if in_string {
            out.push(c);
            if c == '\\' {
                out.extend(chars.next());
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match (c, chars.peek()) {
            ('/', Some('/')) => break,
            ('/', Some('*')) => {
                chars.next();
                in_comment = true;
            }
            ('\\', Some('\n' | '\r')) => {
                chars.next();
            }
            ('\n' | '\r', _) => {}
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    (out, in_comment)
}

/// Logical lines: a line ending in `\` continues on the next, as in C.
struct Lines<'a> {
    src: &'a str,
    pos: usize,
}

struct Line<'a> {
    /// The text with its line break(s), as written.
    raw: &'a str,
    /// `raw` without its final line break.
    text: &'a str,
    offset: usize,
}

impl<'a> Lines<'a> {
    fn next_logical(&mut self) -> Option<Line<'a>> {
        if self.pos >= self.src.len() {
            return None;
        }
        let begin = self.pos;
        let mut end = begin;
        loop {
            let rest = &self.src[end..];
            let Some(nl) = rest.find('\n') else {
                end = self.src.len();
                break;
            };
            let line = rest[..nl].trim_end_matches('\r');
            end += nl + 1;
            if !line.ends_with('\\') {
                break;
            }
        }
        self.pos = end;
        let raw = &self.src[begin..end];
        Some(Line {
            raw,
            text: raw.trim_end_matches(['\n', '\r']),
            offset: begin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOOL: &str = "#!/usr/bin/env bpftrace\n\
        /* a #define in a comment\n#define NOT_ME 1 */\n\
        #ifndef BPFTRACE_HAVE_BTF\n#include <linux/socket.h>\nstruct x { int a; };\n\
        #else\n#define AF_INET   2 /* IPv4 */\n#define AF_INET6 10 // IPv6\n#endif\n\
        BEGIN { }\n";

    #[test]
    fn btf_chooses_the_branch_and_offsets_stay_put() {
        let with = preprocess(TOOL, &[HAVE_BTF]).unwrap();
        assert_eq!(with.text.len(), TOOL.len());
        assert_eq!(with.text.lines().count(), TOOL.lines().count());
        assert_eq!(
            with.macros,
            [
                ("AF_INET".to_string(), "2".to_string()),
                ("AF_INET6".to_string(), "10".to_string())
            ]
        );
        assert!(!with.text.contains("struct x"));
        assert_eq!(with.text.find("BEGIN"), TOOL.find("BEGIN"));

        let without = preprocess(TOOL, &[]).unwrap();
        assert!(without.macros.is_empty());
        assert!(without.text.contains("struct x { int a; };"));
        assert!(!without.text.contains("#include") && !without.text.contains("#if"));
        assert!(without.text.contains("/* a #define in a comment"));
    }

    #[test]
    fn conditionals_nest_and_else_if_chains_take_one_branch() {
        let src = "#define A 1\n#if 0\nx\n#elif A\ny\n#else\nz\n#endif\n#ifdef B\n#ifdef A\nw\n#endif\n#endif\n#undef A\n#if defined(A)\nv\n#endif";
        let out = preprocess(src, &[]).unwrap();
        let kept: String = out.text.split_whitespace().collect();
        assert_eq!(kept, "y");
        assert!(out.macros.is_empty());
    }

    #[test]
    fn continued_defines_and_errors() {
        let out = preprocess("#define LONG (1 << \\\n 4)\nBEGIN{}", &[]).unwrap();
        assert_eq!(out.macro_value("LONG"), Some("(1 <<  4)"));
        let error = |src: &str| preprocess(src, &[]).unwrap_err().render(src);
        assert!(error("#ifdef X\nBEGIN{}").contains("1:1: this conditional never ends"));
        assert!(error("#endif").contains("without `#if`"));
        assert!(error("#define F(x) x").contains("function-like macro `F`"));
        assert!(error("#frobnicate").contains("unknown preprocessor directive"));
        assert!(error("#if X > 2\n#endif").contains("evaluates only"));
        assert!(error("#error no BTF").contains("#error no BTF"));
        // An #error in a branch not taken is not an error.
        assert!(preprocess("#if 0\n#error x\n#endif", &[]).is_ok());
    }
}
