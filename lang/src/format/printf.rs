//! `printf` as bpftrace 0.23 runs it: the format string is cut into one part
//! per conversion, each part goes through C `snprintf` with its single
//! argument cast to the type the length modifier names (from a 64-bit
//! value), and the text after the last conversion is written out
//! unchanged.
//!
//! Consequences users see and this module keeps:
//! - conversions are `%[-][width][.precision]SPEC` with SPEC one of `s c d u
//!   o x X p`, the integer ones with a length `hh h l ll j z t` (and `r rx rh`
//!   for buffers, which nobtf has no values for); `%i`, `%+d`, `% d` and
//!   `%#x` are not conversions, so they count as text;
//! - a leading `0` in the width zero-pads (`%05d`), as C does;
//! - the argument is 64 bits wide, so `%d`/`%u`/`%x` show its low 32 bits and
//!   `%ld`/`%lu`/`%lx`/`%llu`/`%lld`/`%llx` all of it;
//! - `%%` before a conversion prints `%`, but after the last conversion (or in
//!   a format with no conversion) it prints `%%`;
//! - each part is written as a C string, so a `%c` of 0 ends its part;
//! - a string argument exactly [`MAX_STRLEN`]` - 1` bytes long is taken as
//!   cut short and gets [`STR_TRUNC_TRAILER`] appended before formatting.

use std::borrow::Cow;
use std::fmt;

/// bpftrace 0.23's default string buffer size (`BPFTRACE_MAX_STRLEN`):
/// `str()` reads up to this many bytes, NUL included.
pub const MAX_STRLEN: usize = 1024;

/// What bpftrace appends to a `printf` string argument that fills its
/// [`MAX_STRLEN`] buffer (`BPFTRACE_STR_TRUNC_TRAILER`).
pub const STR_TRUNC_TRAILER: &[u8] = b"..";

/// What a conversion accepts, as bpftrace's checker names it (`int`,
/// `string`, `buffer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    /// Integers of any size and sign, pointers, and characters.
    Integer,
    /// Strings (`str()`, `comm`, string literals, ...).
    String,
    /// bpftrace's `buf()` values, for `%r`.
    Buffer,
}

impl fmt::Display for ArgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArgType::Integer => "int",
            ArgType::String => "string",
            ArgType::Buffer => "buffer",
        })
    }
}

/// One argument value as it arrives in the event, after the 64-bit
/// promotion bpftrace applies (sign-extend signed values, zero-extend
/// unsigned ones). A `%c` argument is an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg<'a> {
    Signed(i64),
    Unsigned(u64),
    /// The bytes up to (not including) the first NUL.
    Str(&'a [u8]),
    /// An `ntop()` address's bytes, printed as its text by `%s`.
    Inet(&'a [u8]),
    /// A `buf()`'s bytes, printed by `%r` (`%rx`, `%rh`).
    Buf(&'a [u8]),
}

impl Arg<'_> {
    fn arg_type(&self) -> ArgType {
        match self {
            Arg::Signed(_) | Arg::Unsigned(_) => ArgType::Integer,
            Arg::Str(_) | Arg::Inet(_) => ArgType::String,
            Arg::Buf(_) => ArgType::Buffer,
        }
    }
}

/// A `printf` format mismatch, worded as bpftrace words it. `func` is the
/// builtin's name (`printf`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error(
        "{func}: Not enough arguments for format string ({supplied} supplied, {expected} expected)"
    )]
    NotEnoughArguments {
        func: String,
        supplied: usize,
        expected: usize,
    },
    #[error(
        "{func}: Too many arguments for format string ({supplied} supplied, {expected} expected)"
    )]
    TooManyArguments {
        func: String,
        supplied: usize,
        expected: usize,
    },
    #[error("{func}: %{token} specifier expects a value of type {expected} ({supplied} supplied)")]
    WrongType {
        func: String,
        token: String,
        expected: ArgType,
        supplied: ArgType,
    },
}

/// One conversion found in the format string: where it ends and what it
/// takes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    end: usize,
    /// The conversion without `%`, flags, width and precision: `d`, `llu`.
    spec: String,
    ty: ArgType,
}

/// A parsed format string. Parsing never fails: text that is not a
/// conversion is text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatString {
    text: Vec<u8>,
    tokens: Vec<Token>,
    /// What `snprintf` makes of each token's part, by token.
    parts: Vec<Part>,
}

/// What C `snprintf(part, arg)` does with one part (the text up to a
/// token's end), worked out once: the part's text is fixed, and so is
/// whether its argument is a string (the token's type, which the
/// argument must have). `%%` is `%`; the first conversion that fits the
/// argument takes it; a second conversion, or one C would read the
/// argument wrongly for (undefined behaviour in bpftrace), is text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    before: Vec<u8>,
    conversion: Option<Spec>,
    after: Vec<u8>,
    /// A `%c` or a NUL in the text: the output is cut at its first NUL.
    may_hold_nul: bool,
    /// A `%r` part (written as `%s`): how its `buf()` bytes become text.
    buffer: Option<BufferText>,
}

/// How `%r`, `%rx` and `%rh` write a `buf()`'s bytes (bpftrace's
/// `hex_format_buffer`): printable ASCII as it is and the rest as `\xNN`;
/// every byte as `\xNN`; every byte as `NN` with spaces between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferText {
    Escaped,
    AllHex,
    Spaced,
}

impl BufferText {
    /// The text of `bytes`.
    pub fn render(self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len() * 4);
        for (i, &b) in bytes.iter().enumerate() {
            match self {
                BufferText::Escaped if (32..=126).contains(&b) => out.push(b),
                BufferText::Escaped | BufferText::AllHex => {
                    out.extend_from_slice(format!("\\x{b:02x}").as_bytes())
                }
                BufferText::Spaced => {
                    if i > 0 {
                        out.push(b' ');
                    }
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
            }
        }
        out
    }
}

impl Part {
    /// A `%r` part: bpftrace prints it as `%s` of the bytes' text.
    fn buffer(part: &[u8], spec: &str) -> Part {
        let mode = match spec {
            "rx" => BufferText::AllHex,
            "rh" => BufferText::Spaced,
            _ => BufferText::Escaped,
        };
        let mut text = part[..part.len() - spec.len()].to_vec();
        text.push(b's');
        Part {
            buffer: Some(mode),
            ..Part::new(&text, true)
        }
    }

    fn new(part: &[u8], string_arg: bool) -> Part {
        let (mut before, mut after) = (Vec::new(), Vec::new());
        let mut conversion = None;
        let mut at = 0;
        while at < part.len() {
            let text = if conversion.is_some() {
                &mut after
            } else {
                &mut before
            };
            if part[at] != b'%' {
                text.push(part[at]);
                at += 1;
                continue;
            }
            if part.get(at + 1) == Some(&b'%') {
                text.push(b'%');
                at += 2;
                continue;
            }
            match parse_c_spec(part, at + 1) {
                Some((spec, end))
                    if conversion.is_none() && (spec.conversion == b's') == string_arg =>
                {
                    conversion = Some(spec);
                    at = end;
                }
                _ => {
                    text.push(b'%');
                    at += 1;
                }
            }
        }
        let may_hold_nul = before.contains(&0)
            || after.contains(&0)
            || conversion.as_ref().is_some_and(|c| c.conversion == b'c');
        Part {
            before,
            conversion,
            after,
            may_hold_nul,
            buffer: None,
        }
    }

    /// The part's bytes with `arg`, which has the type the part was made for.
    fn format_into(&self, arg: Arg<'_>, out: &mut Vec<u8>) {
        let start = out.len();
        // Each copy is a call to the C library's memcpy: none for nothing.
        if !self.before.is_empty() {
            out.extend_from_slice(&self.before);
        }
        match (&self.conversion, self.buffer, arg) {
            (Some(spec), Some(mode), Arg::Buf(bytes)) => text_field(spec, &mode.render(bytes), out),
            (Some(spec), _, arg) => render(spec, arg, out),
            (None, ..) => {}
        }
        if !self.after.is_empty() {
            out.extend_from_slice(&self.after);
        }
        // bpftrace writes each part as a C string: a `%c` of 0 ends it.
        if (self.may_hold_nul || matches!(arg, Arg::Str(s) if s.contains(&0)))
            && let Some(nul) = out[start..].iter().position(|&b| b == 0)
        {
            out.truncate(start + nul);
        }
    }
}

const INTEGER_CONVERSIONS: &[u8] = b"duoxXp";
const LENGTHS: &[&str] = &["hh", "h", "ll", "l", "j", "z", "t"];

/// The conversion letters after width/precision at `rest`: the longest of
/// bpftrace's accepted specifiers.
fn match_spec(rest: &[u8]) -> Option<(usize, ArgType)> {
    match rest.first()? {
        b's' => return Some((1, ArgType::String)),
        b'c' => return Some((1, ArgType::Integer)),
        b'r' => {
            let len = if matches!(rest.get(1), Some(b'x' | b'h')) {
                2
            } else {
                1
            };
            return Some((len, ArgType::Buffer));
        }
        _ => {}
    }
    let length = LENGTHS
        .iter()
        .find(|l| rest.starts_with(l.as_bytes()))
        .map_or(0, |l| l.len());
    for skip in [length, 0] {
        if rest
            .get(skip)
            .is_some_and(|c| INTEGER_CONVERSIONS.contains(c))
        {
            return Some((skip + 1, ArgType::Integer));
        }
    }
    None
}

/// Matches `%-?[0-9]*(\.[0-9]+)?SPEC` at `start` (which holds `%`); returns
/// the end of the match and the token.
fn match_token(text: &[u8], start: usize) -> Option<Token> {
    let mut at = start + 1;
    if text.get(at) == Some(&b'-') {
        at += 1;
    }
    while text.get(at).is_some_and(u8::is_ascii_digit) {
        at += 1;
    }
    if text.get(at) == Some(&b'.') && text.get(at + 1).is_some_and(u8::is_ascii_digit) {
        at += 1;
        while text.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
    }
    let (len, ty) = match_spec(&text[at..])?;
    Some(Token {
        end: at + len,
        spec: String::from_utf8_lossy(&text[at..at + len]).into_owned(),
        ty,
    })
}

impl FormatString {
    /// Finds the conversions in `format` (the string literal after escape
    /// processing) the way bpftrace's pattern search does.
    pub fn parse(format: &str) -> FormatString {
        let text = format.as_bytes().to_vec();
        let mut tokens = Vec::new();
        let mut at = 0;
        while at < text.len() {
            if text[at] == b'%'
                && let Some(token) = match_token(&text, at)
            {
                at = token.end;
                tokens.push(token);
                continue;
            }
            at += 1;
        }
        let mut part_start = 0;
        let parts = tokens
            .iter()
            .map(|token| {
                let text = &text[part_start..token.end];
                part_start = token.end;
                match token.ty {
                    ArgType::Buffer => Part::buffer(text, &token.spec),
                    ty => Part::new(text, ty == ArgType::String),
                }
            })
            .collect();
        FormatString {
            text,
            tokens,
            parts,
        }
    }

    /// Each conversion's letters without `%`, flags, width and precision
    /// (`d`, `llu`, `-16s` gives `s`) and what it takes, in order.
    pub fn conversions(&self) -> Vec<(&str, ArgType)> {
        self.tokens
            .iter()
            .map(|t| (t.spec.as_str(), t.ty))
            .collect()
    }

    /// The first `%` that starts no conversion and is no `%%`, with what
    /// follows it up to a letter (`%i`, `%+d`, `%f`): bpftrace prints it
    /// as written, which is seldom what its author meant.
    pub fn stray_percent(&self) -> Option<String> {
        let text = &self.text;
        let mut at = 0;
        while at < text.len() {
            if text[at] != b'%' {
                at += 1;
            } else if let Some(token) = match_token(text, at) {
                at = token.end;
            } else if text.get(at + 1) == Some(&b'%') {
                at += 2;
            } else {
                let end = text[at + 1..]
                    .iter()
                    .position(u8::is_ascii_alphabetic)
                    .map_or(text.len(), |i| at + 2 + i);
                return Some(String::from_utf8_lossy(&text[at..end]).into_owned());
            }
        }
        None
    }

    /// The type each argument must have, in order.
    pub fn expected_types(&self) -> Vec<ArgType> {
        self.tokens.iter().map(|t| t.ty).collect()
    }

    /// Checks argument count and types as bpftrace's checker does, with its
    /// words. `func` is the builtin's name for the message (`printf`).
    pub fn validate(&self, func: &str, args: &[ArgType]) -> Result<(), FormatError> {
        let expected = self.tokens.len();
        let supplied = args.len();
        if supplied < expected {
            return Err(FormatError::NotEnoughArguments {
                func: func.to_string(),
                supplied,
                expected,
            });
        }
        if supplied > expected {
            return Err(FormatError::TooManyArguments {
                func: func.to_string(),
                supplied,
                expected,
            });
        }
        for (token, &arg) in self.tokens.iter().zip(args) {
            if token.ty != arg {
                return Err(FormatError::WrongType {
                    func: func.to_string(),
                    token: token.spec.clone(),
                    expected: token.ty,
                    supplied: arg,
                });
            }
        }
        Ok(())
    }

    /// Renders the format with `args` into the bytes bpftrace prints.
    /// Fails only when the arguments do not pass [`FormatString::validate`].
    pub fn format(&self, args: &[Arg<'_>]) -> Result<Vec<u8>, FormatError> {
        let mut out = Vec::new();
        self.format_into(args, &mut out)?;
        Ok(out)
    }

    /// [`FormatString::format`] appended to `out`, which holds nothing
    /// new on error. No allocation: a busy trace formats every record.
    pub fn format_into(&self, args: &[Arg<'_>], out: &mut Vec<u8>) -> Result<(), FormatError> {
        let mismatch = args.len() != self.tokens.len()
            || self
                .tokens
                .iter()
                .zip(args)
                .any(|(t, a)| t.ty != a.arg_type());
        if mismatch {
            let types: Vec<ArgType> = args.iter().map(Arg::arg_type).collect();
            self.validate("printf", &types)?;
        }
        for (part, arg) in self.parts.iter().zip(args) {
            part.format_into(*arg, out);
        }
        let rest = self.tokens.last().map_or(0, |token| token.end);
        out.extend_from_slice(&self.text[rest..]);
        Ok(())
    }
}

/// A C conversion specification.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Spec {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    alt: bool,
    width: usize,
    precision: Option<usize>,
    /// Bytes of the argument the length modifier keeps: 1, 2, 4 or 8.
    int_bytes: u8,
    conversion: u8,
}

/// Parses a C conversion after `%` at `text[at..]`; returns the spec and
/// where it ends.
fn parse_c_spec(text: &[u8], mut at: usize) -> Option<(Spec, usize)> {
    let mut spec = Spec {
        int_bytes: 4,
        ..Spec::default()
    };
    while let Some(&c) = text.get(at) {
        match c {
            b'-' => spec.left = true,
            b'0' => spec.zero = true,
            b'+' => spec.plus = true,
            b' ' => spec.space = true,
            b'#' => spec.alt = true,
            _ => break,
        }
        at += 1;
    }
    let digits = |at: &mut usize| {
        let mut n: usize = 0;
        while let Some(d) = text.get(*at).filter(|c| c.is_ascii_digit()) {
            n = n.saturating_mul(10).saturating_add(usize::from(d - b'0'));
            *at += 1;
        }
        n
    };
    spec.width = digits(&mut at);
    if text.get(at) == Some(&b'.') {
        at += 1;
        spec.precision = Some(digits(&mut at));
    }
    if let Some(length) = LENGTHS
        .iter()
        .find(|l| text[at..].starts_with(l.as_bytes()))
    {
        spec.int_bytes = match *length {
            "hh" => 1,
            "h" => 2,
            _ => 8,
        };
        at += length.len();
    }
    let conversion = *text.get(at)?;
    if !b"sciduoxXp".contains(&conversion) {
        return None;
    }
    spec.conversion = conversion;
    Some((spec, at + 1))
}

fn pad(out: &mut Vec<u8>, count: usize, byte: u8) {
    if count > 0 {
        out.resize(out.len() + count, byte);
    }
}

/// Writes `body` in a field of `spec.width`, space-padded on the side the
/// `-` flag says.
/// `%s` of text, cut at the precision.
fn text_field(spec: &Spec, text: &[u8], out: &mut Vec<u8>) {
    let shown = spec.precision.map_or(text, |p| &text[..p.min(text.len())]);
    field(spec, shown, out);
}

fn field(spec: &Spec, body: &[u8], out: &mut Vec<u8>) {
    let fill = spec.width.saturating_sub(body.len());
    if !spec.left {
        pad(out, fill, b' ');
    }
    out.extend_from_slice(body);
    if spec.left {
        pad(out, fill, b' ');
    }
}

fn render(spec: &Spec, arg: Arg<'_>, out: &mut Vec<u8>) {
    let bits = match arg {
        Arg::Str(bytes) => {
            let text: Cow<'_, [u8]> = if bytes.len() + 1 == MAX_STRLEN {
                Cow::Owned([bytes, STR_TRUNC_TRAILER].concat())
            } else {
                Cow::Borrowed(bytes)
            };
            let shown = spec
                .precision
                .map_or(&text[..], |p| &text[..p.min(text.len())]);
            return field(spec, shown, out);
        }
        Arg::Inet(raw) => {
            let text = crate::output::inet_text(raw);
            let shown = spec
                .precision
                .map_or(text.as_bytes(), |p| &text.as_bytes()[..p.min(text.len())]);
            return field(spec, shown, out);
        }
        Arg::Buf(bytes) => return text_field(spec, &BufferText::Escaped.render(bytes), out),
        Arg::Signed(v) => v as u64,
        Arg::Unsigned(v) => v,
    };
    match spec.conversion {
        b'c' => field(spec, &[bits as u8], out),
        b'p' if bits == 0 => field(spec, b"(nil)", out),
        b'p' => render_integer(spec, false, bits, 16, b"0x", out),
        b'd' | b'i' => {
            let value = match spec.int_bytes {
                1 => i64::from(bits as i8),
                2 => i64::from(bits as i16),
                4 => i64::from(bits as i32),
                _ => bits as i64,
            };
            render_integer(spec, value < 0, value.unsigned_abs(), 10, b"", out);
        }
        conversion => {
            let value = match spec.int_bytes {
                1 => u64::from(bits as u8),
                2 => u64::from(bits as u16),
                4 => u64::from(bits as u32),
                _ => bits,
            };
            let (base, prefix): (u64, &[u8]) = match conversion {
                b'o' => (8, b""),
                b'x' if spec.alt && value != 0 => (16, b"0x"),
                b'X' if spec.alt && value != 0 => (16, b"0X"),
                b'x' | b'X' => (16, b""),
                _ => (10, b""),
            };
            render_integer(spec, false, value, base, prefix, out);
        }
    }
}

fn render_integer(
    spec: &Spec,
    negative: bool,
    magnitude: u64,
    base: u64,
    prefix: &[u8],
    out: &mut Vec<u8>,
) {
    let digit_chars: &[u8] = if spec.conversion == b'X' {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    // Written from the end; 22 octal digits hold a u64.
    let mut buf = [0u8; 22];
    let mut start = buf.len();
    let mut rest = magnitude;
    while rest != 0 {
        start -= 1;
        buf[start] = digit_chars[(rest % base) as usize];
        rest /= base;
    }
    // C prints no digit for value 0 with precision 0, and one 0 otherwise.
    if magnitude == 0 && spec.precision != Some(0) {
        start -= 1;
        buf[start] = b'0';
    }
    let digits = &buf[start..];
    let precision_zeros = spec.precision.unwrap_or(0).saturating_sub(digits.len());
    let leading_zero = precision_zeros > 0 || digits.first() == Some(&b'0');
    let alt_zero = usize::from(spec.conversion == b'o' && spec.alt && !leading_zero);

    let signed_conversion = matches!(spec.conversion, b'd' | b'i' | b'p');
    let sign: &[u8] = match (negative, signed_conversion) {
        (true, _) => b"-",
        (false, true) if spec.plus => b"+",
        (false, true) if spec.space => b" ",
        _ => b"",
    };
    let len = sign.len() + prefix.len() + alt_zero + precision_zeros + digits.len();
    let fill = spec.width.saturating_sub(len);
    let zero_fill = spec.zero && !spec.left && spec.precision.is_none();
    if !spec.left && !zero_fill {
        pad(out, fill, b' ');
    }
    if !sign.is_empty() || !prefix.is_empty() {
        out.extend_from_slice(sign);
        out.extend_from_slice(prefix);
    }
    if zero_fill {
        pad(out, fill, b'0');
    }
    pad(out, alt_zero + precision_zeros, b'0');
    out.extend_from_slice(digits);
    if spec.left {
        pad(out, fill, b' ');
    }
}

#[cfg(test)]
mod tests;
