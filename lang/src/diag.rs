//! Source positions and errors that quote the source line with a caret.

use core::fmt;

/// Byte range `start..end` into the program text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub const fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// `(line, column)` of the span's start in `source`, both from 1.
    pub fn line_col(self, source: &str) -> (usize, usize) {
        let start = floor_char_boundary(source, self.start.min(source.len()));
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line = source[..line_start].matches('\n').count() + 1;
        (line, source[line_start..start].chars().count() + 1)
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// A compile error: what is wrong and, when it has one, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub span: Option<Span>,
    pub message: String,
}

impl Error {
    pub fn at(span: Span, message: impl Into<String>) -> Error {
        Error {
            span: Some(span),
            message: message.into(),
        }
    }

    /// An error about the program as a whole (a kernel limit, say).
    pub fn whole(message: impl Into<String>) -> Error {
        Error {
            span: None,
            message: message.into(),
        }
    }

    /// `LINE:COL: message`, then the source line and a caret under the
    /// column, as rustc and bpftrace print them. Without a span, one line.
    pub fn render(&self, source: &str) -> String {
        let Some(span) = self.span else {
            return self.message.clone();
        };
        let start = floor_char_boundary(source, span.start.min(source.len()));
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let (line_no, col) = span.line_col(source);
        let col = col - 1;
        // Tabs print as one space so that the caret lines up.
        let text = source[line_start..line_end].replace('\t', " ");
        let end = floor_char_boundary(source, span.end.clamp(start, line_end));
        let width = source[start..end].chars().count().max(1);
        format!(
            "{line_no}:{}: {}\n{text}\n{}{}",
            col + 1,
            self.message,
            " ".repeat(col),
            "^".repeat(width)
        )
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_sits_under_the_column_of_the_right_line() {
        let source = "kprobe:f {\n  printf(\"%d\", $x);\n}";
        let at = source.find("$x").unwrap();
        let error = Error::at(Span::new(at, at + 2), "unknown variable `$x`");
        assert_eq!(
            error.render(source),
            "2:16: unknown variable `$x`\n  printf(\"%d\", $x);\n               ^^"
        );
    }

    #[test]
    fn tabs_do_not_shift_the_caret() {
        let error = Error::at(Span::new(3, 4), "here");
        assert_eq!(error.render("\t\tx y"), "1:4: here\n  x y\n   ^");
    }

    #[test]
    fn spans_past_the_end_do_not_panic() {
        let error = Error::at(Span::new(10, 20), "expected `}`");
        assert_eq!(error.render("ab"), "1:3: expected `}`\nab\n  ^");
        assert_eq!(Error::whole("too big").render("x"), "too big");
    }
}
