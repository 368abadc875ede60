//! What comes before the first probe, as bpftrace's grammar orders it: C
//! definitions (`struct`, `union`, `enum`, `typedef`), then one
//! `config = { key = value; ... }` block. Each is cut from the text (blanked
//! in place, so spans still point into the program) and handed on: the
//! definitions to [`crate::ctypes`], the settings to [`crate::config`].

use crate::diag::{Error, Span};
use crate::lexer::{Lexer, Substitutions, Tok};

/// The C definitions and config settings of a program.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Preamble {
    /// Each top-level definition's text (to its closing `;` or `}`), at its
    /// place in the program.
    pub definitions: Vec<(String, Span)>,
    pub config: Vec<Setting>,
}

/// `key = value` in a config block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: SettingValue,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingValue {
    Int(u64),
    Str(String),
    /// A bare word (`stack_mode = perf`).
    Word(String),
}

impl SettingValue {
    pub fn describe(&self) -> String {
        match self {
            SettingValue::Int(n) => n.to_string(),
            SettingValue::Str(s) => format!("\"{s}\""),
            SettingValue::Word(w) => w.clone(),
        }
    }
}

/// Cut the preamble from `text` (blanking it) and return it.
pub fn take(text: &mut String, subs: Substitutions) -> Result<Preamble, Error> {
    let mut preamble = Preamble::default();
    let mut cut: Vec<Span> = Vec::new();
    {
        let mut lexer = Lexer::with(text, subs);
        loop {
            let at = lexer.pos();
            let (tok, span) = lexer.next_token()?;
            let Tok::Ident(word) = &tok else { break };
            match word.as_str() {
                "struct" | "union" | "enum" | "typedef" => {
                    let end = definition_end(&mut lexer, span, word == "typedef")?;
                    preamble.definitions.push((
                        text[span.start..end].to_string(),
                        Span::new(span.start, end),
                    ));
                    cut.push(Span::new(span.start, end));
                }
                "config" if preamble.config.is_empty() => {
                    let end = config_block(&mut lexer, &mut preamble.config)?;
                    cut.push(Span::new(span.start, end));
                }
                _ => {
                    lexer.rewind(at);
                    break;
                }
            }
        }
    }
    for span in cut {
        let blanked: String = text[span.start..span.end]
            .chars()
            .map(|c| match c {
                '\n' | '\r' => c.to_string(),
                c => " ".repeat(c.len_utf8()),
            })
            .collect();
        text.replace_range(span.start..span.end, &blanked);
    }
    Ok(preamble)
}

/// After `struct`/`union`/`enum`: the end of the definition, at the `}`
/// that closes its body (and a `;` right after it), as bpftrace's lexer
/// takes it, or at a `;` outside braces. A `typedef` runs to its `;`.
fn definition_end(lexer: &mut Lexer, start: Span, mut typedef: bool) -> Result<usize, Error> {
    let mut depth = 0usize;
    loop {
        let (tok, span) = lexer.next_token()?;
        match tok {
            Tok::Punct("{") => depth += 1,
            Tok::Punct("}") if depth > 0 => {
                depth -= 1;
                if depth == 0 && !typedef {
                    let after = lexer.pos();
                    return Ok(match lexer.next_token()? {
                        (Tok::Punct(";"), semi) => semi.end,
                        // Attributes run to the `;` (and are refused there).
                        (Tok::Ident(w), _) if w == "__attribute__" => {
                            typedef = true;
                            continue;
                        }
                        _ => {
                            lexer.rewind(after);
                            span.end
                        }
                    });
                }
            }
            Tok::Punct(";") if depth == 0 => return Ok(span.end),
            Tok::Eof => {
                return Err(Error::at(
                    start,
                    "this definition never ends: expected `;` or `}`",
                ));
            }
            _ => {}
        }
    }
}

/// After `config`: `= { key = value; ... }`; returns the end of the `}`.
fn config_block(lexer: &mut Lexer, out: &mut Vec<Setting>) -> Result<usize, Error> {
    let expect = |lexer: &mut Lexer, p: &str, what: &str| -> Result<Span, Error> {
        match lexer.next_token()? {
            (Tok::Punct(q), span) if q == p => Ok(span),
            (tok, span) => Err(Error::at(
                span,
                format!("expected `{p}` {what}, found {}", tok.describe()),
            )),
        }
    };
    expect(lexer, "=", "after `config`")?;
    expect(lexer, "{", "to start the config block")?;
    loop {
        let (tok, span) = lexer.next_token()?;
        let key = match tok {
            Tok::Punct("}") => return Ok(span.end),
            Tok::Punct(";") => continue,
            Tok::Ident(key) => key,
            other => {
                return Err(Error::at(
                    span,
                    format!("expected a config key or `}}`, found {}", other.describe()),
                ));
            }
        };
        expect(lexer, "=", &format!("after `{key}`"))?;
        let (tok, value_span) = lexer.next_token()?;
        let value = match tok {
            Tok::Int(n) => SettingValue::Int(n),
            Tok::Str(s) => SettingValue::Str(s),
            Tok::Ident(w) if w == "true" => SettingValue::Int(1),
            Tok::Ident(w) if w == "false" => SettingValue::Int(0),
            Tok::Ident(w) => SettingValue::Word(w),
            other => {
                return Err(Error::at(
                    value_span,
                    format!(
                        "the value of `{key}` must be a literal (a number or a string), found {}",
                        other.describe()
                    ),
                ));
            }
        };
        out.push(Setting {
            key,
            value,
            span: span.to(value_span),
        });
        let (tok, end) = lexer.next_token()?;
        match tok {
            Tok::Punct(";") => {}
            Tok::Punct("}") => return Ok(end.end),
            other => {
                return Err(Error::at(
                    end,
                    format!(
                        "expected `;` or `}}` after a config setting, found {}",
                        other.describe()
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take_all(src: &str) -> (Preamble, String) {
        let mut text = src.to_string();
        let preamble = take(&mut text, Substitutions::default()).unwrap();
        (preamble, text)
    }

    #[test]
    fn definitions_and_config_are_cut_before_the_probes() {
        let src = "struct a { int x; struct { int y; } in; };\n\
                   enum e { A = 1, B };\ntypedef unsigned int u32_t;\n\
                   typedef struct { int z; } anon_t;\n\
                   config = { max_strlen = 100; missing_probes = \"ignore\"; stack_mode = perf }\n\
                   kprobe:f { $x = (struct a *)arg0; }";
        let (preamble, text) = take_all(src);
        let defs: Vec<&str> = preamble
            .definitions
            .iter()
            .map(|(d, _)| d.as_str())
            .collect();
        assert_eq!(
            defs,
            [
                "struct a { int x; struct { int y; } in; };",
                "enum e { A = 1, B };",
                "typedef unsigned int u32_t;",
                "typedef struct { int z; } anon_t;"
            ]
        );
        let keys: Vec<(&str, String)> = preamble
            .config
            .iter()
            .map(|s| (s.key.as_str(), s.value.describe()))
            .collect();
        assert_eq!(
            keys,
            [
                ("max_strlen", "100".to_string()),
                ("missing_probes", "\"ignore\"".to_string()),
                ("stack_mode", "perf".to_string())
            ]
        );
        assert_eq!(text.len(), src.len());
        assert_eq!(text.trim_start(), "kprobe:f { $x = (struct a *)arg0; }");
    }

    #[test]
    fn a_struct_without_semicolon_ends_at_its_brace() {
        let (preamble, text) = take_all("struct a { int x; }\nBEGIN { }");
        assert_eq!(preamble.definitions[0].0, "struct a { int x; }");
        assert_eq!(text.trim(), "BEGIN { }");
    }

    #[test]
    fn errors_have_places() {
        let error = |src: &str| {
            let mut text = src.to_string();
            take(&mut text, Substitutions::default())
                .unwrap_err()
                .render(src)
        };
        assert!(error("struct a { int x;").starts_with("1:1: this definition never ends"));
        assert!(error("config = { a = $x }").contains("must be a literal"));
        assert!(error("config { a = 1 }").contains("expected `=` after `config`"));
        assert!(error("config = { a = 1 b = 2 }").contains("expected `;` or `}`"));
    }
}
