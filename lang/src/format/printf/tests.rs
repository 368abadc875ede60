use super::*;
use proptest::prelude::*;

fn out(format: &str, args: &[Arg<'_>]) -> String {
    let bytes = FormatString::parse(format).format(args).unwrap();
    String::from_utf8(bytes).unwrap()
}

fn check(format: &str, args: &[ArgType]) -> String {
    match FormatString::parse(format).validate("printf", args) {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    }
}

use ArgType::{Integer as I, String as S};

#[test]
fn counts_and_types_in_bpftrace_words() {
    assert_eq!(check("%d %s\n", &[I, S]), "ok");
    assert_eq!(
        check("%d %d\n", &[I]),
        "printf: Not enough arguments for format string (1 supplied, 2 expected)"
    );
    assert_eq!(
        check("%-6d %6d %s\n", &[I, I, S, I]),
        "printf: Too many arguments for format string (4 supplied, 3 expected)"
    );
    assert_eq!(
        check("%d\n", &[S]),
        "printf: %d specifier expects a value of type int (string supplied)"
    );
    assert_eq!(
        check("%-10llu|%s\n", &[I, I]),
        "printf: %s specifier expects a value of type string (int supplied)"
    );
    assert_eq!(
        check("%r\n", &[I]),
        "printf: %r specifier expects a value of type buffer (int supplied)"
    );
}

#[test]
fn what_counts_as_a_conversion() {
    let expected = |f: &str| FormatString::parse(f).expected_types();
    assert_eq!(expected("%d %i %u"), vec![I, I]);
    // Flags other than `-` are not part of bpftrace's pattern.
    assert_eq!(expected("%+d % d %#x"), vec![]);
    assert_eq!(
        expected("%hhd %hu %ld %lld %llx %lX %jd %zu %td %p %c %s"),
        vec![I, I, I, I, I, I, I, I, I, I, I, S]
    );
    assert_eq!(expected("100%%"), vec![]);
    // The pattern search finds `%d` inside `%%d`.
    assert_eq!(expected("%%d"), vec![I]);
    // A conversion may be followed by letters (bpftrace PR #1414).
    assert_eq!(expected("Elapsed: %ds\n"), vec![I]);
    assert_eq!(expected("%5.d %l %"), vec![]);
}

#[test]
fn integers_as_c_prints_a_64_bit_argument() {
    // Facts from glibc's snprintf with a 64-bit argument.
    assert_eq!(out("%d", &[Arg::Signed(4294967301)]), "5");
    assert_eq!(out("%u", &[Arg::Signed(-1)]), "4294967295");
    assert_eq!(out("%x", &[Arg::Signed(-1)]), "ffffffff");
    assert_eq!(out("%lx", &[Arg::Signed(-1)]), "ffffffffffffffff");
    assert_eq!(out("%llu", &[Arg::Signed(-1)]), "18446744073709551615");
    assert_eq!(out("%ld", &[Arg::Unsigned(u64::MAX)]), "-1");
    assert_eq!(
        out("%lld", &[Arg::Signed(i64::MIN)]),
        "-9223372036854775808"
    );
    assert_eq!(out("%d", &[Arg::Signed(-42)]), "-42");
    assert_eq!(out("%hhd", &[Arg::Unsigned(0x1ff)]), "-1");
    assert_eq!(out("%hu", &[Arg::Signed(-1)]), "65535");
    assert_eq!(out("%X", &[Arg::Unsigned(0xbeef)]), "BEEF");
    assert_eq!(out("%o", &[Arg::Unsigned(8)]), "10");
    assert_eq!(out("%c", &[Arg::Unsigned(0x141)]), "A");
    assert_eq!(out("%p", &[Arg::Unsigned(0x1234)]), "0x1234");
    assert_eq!(out("%p", &[Arg::Unsigned(0)]), "(nil)");
}

#[test]
fn widths_flags_and_precision_as_glibc() {
    assert_eq!(out("[%5d]", &[Arg::Signed(42)]), "[   42]");
    assert_eq!(out("[%-5d]", &[Arg::Signed(42)]), "[42   ]");
    assert_eq!(out("[%05d]", &[Arg::Signed(-42)]), "[-0042]");
    assert_eq!(out("[%-05d]", &[Arg::Signed(42)]), "[42   ]");
    assert_eq!(out("[%08.3d]", &[Arg::Signed(-42)]), "[    -042]");
    assert_eq!(out("[%-8.3x]", &[Arg::Signed(255)]), "[0ff     ]");
    assert_eq!(out("[%.0d]", &[Arg::Signed(0)]), "[]");
    assert_eq!(out("[%5.0d]", &[Arg::Signed(0)]), "[     ]");
    assert_eq!(out("[%02x]", &[Arg::Unsigned(2)]), "[02]");
    assert_eq!(
        out("[%018p]", &[Arg::Unsigned(0x1234)]),
        "[0x0000000000001234]"
    );
    assert_eq!(out("[%5p]", &[Arg::Unsigned(0)]), "[(nil)]");
    assert_eq!(out("[%-8s]", &[Arg::Str(b"ab")]), "[ab      ]");
    assert_eq!(out("[%8s]", &[Arg::Str(b"ab")]), "[      ab]");
    assert_eq!(out("[%05s]", &[Arg::Str(b"ab")]), "[   ab]");
    assert_eq!(out("[%.3s]", &[Arg::Str(b"abcdef")]), "[abc]");
    assert_eq!(out("[%05c]", &[Arg::Unsigned(b'x'.into())]), "[    x]");
}

#[test]
fn text_and_percent_signs_as_bpftrace_prints_them() {
    assert_eq!(
        out(
            "%-6d %6d %s\n",
            &[Arg::Signed(3669), Arg::Unsigned(3645), Arg::Str(b"mysqld")]
        ),
        "3669     3645 mysqld\n"
    );
    assert_eq!(out("Elapsed: %ds\n", &[Arg::Signed(1)]), "Elapsed: 1s\n");
    // Before a conversion `%%` goes through snprintf ...
    assert_eq!(out("%% %d\n", &[Arg::Signed(5)]), "% 5\n");
    // ... after the last one, bpftrace writes the text as it is.
    assert_eq!(out("%d%%\n", &[Arg::Signed(5)]), "5%%\n");
    assert_eq!(out("100%%\n", &[]), "100%%\n");
    // `%%d` is a conversion to the pattern but text to snprintf: the
    // argument is taken and not shown.
    assert_eq!(out("[%%d]", &[Arg::Signed(7)]), "[%d]");
}

#[test]
fn format_refuses_mismatched_arguments() {
    let f = FormatString::parse("%d\n");
    assert!(f.format(&[]).is_err());
    assert!(f.format(&[Arg::Str(b"x")]).is_err());
    assert!(f.format(&[Arg::Signed(1), Arg::Signed(2)]).is_err());
}

proptest! {
    #[test]
    fn any_format_and_arguments_never_panic(
        format in "[%-+ #0-9.hlljztdiuoxXpcsr%a]{0,24}",
        ints in proptest::collection::vec(any::<i64>(), 0..6),
        text in proptest::collection::vec(any::<u8>(), 0..12),
    ) {
        let f = FormatString::parse(&format);
        let args: Vec<Arg<'_>> = f
            .expected_types()
            .iter()
            .enumerate()
            .map(|(i, ty)| match ty {
                ArgType::String => Arg::Str(&text),
                _ => Arg::Signed(ints.get(i).copied().unwrap_or(0)),
            })
            .collect();
        let typed_ok = f.expected_types().iter().all(|t| *t != ArgType::Buffer);
        let result = f.format(&args);
        prop_assert_eq!(result.is_ok(), typed_ok);
        let _ = f.validate("printf", &[ArgType::Integer; 3]);
    }

    #[test]
    fn arbitrary_strings_parse(format in ".{0,40}") {
        let f = FormatString::parse(&format);
        let _ = f.format(&[]);
    }

    #[test]
    fn plain_text_is_copied(text in "[a-zA-Z0-9 ,.:\n]{0,40}") {
        prop_assert_eq!(out(&text, &[]), text);
    }
}

/// The outputs of `golden/NAME.bt` as Debian 13's bpftrace 0.23.2 printed
/// them (`golden/regen`), split at the `\x1f` each case starts with (and a
/// last one ends), or at lines when there is none.
fn golden_pieces(out: &str) -> Vec<&str> {
    let body = out
        .strip_prefix("Attaching 1 probe...\n")
        .expect("a BEGIN program's output starts with the attach line");
    let body = body
        .strip_suffix("\n\n")
        .expect("and ends with exit()'s two newlines");
    if body.contains('\x1f') {
        let mut pieces: Vec<&str> = body.split('\x1f').skip(1).collect();
        assert_eq!(pieces.pop(), Some(""), "the last \\x1f ends the output");
        pieces
    } else {
        body.split_inclusive('\n').collect()
    }
}

/// `golden/printf.bt` on bpftrace 0.23.2.
#[test]
fn as_bpftrace_0_23_printed_them() {
    use Arg::{Signed as N, Str, Unsigned as U};
    let lines = golden_pieces(include_str!("../golden/printf.out"));
    let cases: Vec<(&str, Vec<Arg<'_>>)> = vec![
        (
            "%s|%-3c|%hhd|%hu|%llu|%08.3d|%5.2x|%X|%o|%-10s|\n",
            vec![
                Str(b"x"),
                N(66),
                N(511),
                N(-1),
                N(-1),
                N(7),
                N(10),
                N(48879),
                N(8),
                Str(b"left"),
            ],
        ),
        ("%d %u %x %lx %ld|\n", vec![N(-1); 5]),
        ("%d %u %x %lx %ld|\n", vec![U(u64::MAX); 5]),
        (
            "[%05d][%-5d][%c][%p][%p][%.3s][%8s]\n",
            vec![
                N(-42),
                N(3),
                N(65),
                N(0),
                N(4660),
                Str(b"abcdef"),
                Str(b"ab"),
            ],
        ),
        ("100%%\n", vec![]),
        ("%% %d\n", vec![N(5)]),
        ("[%%d]\n", vec![N(7)]),
        ("%d%%\n", vec![N(5)]),
        ("%i %+d % d %#x\n", vec![]),
        // A NUL from `%c` ends the part it is in, not the rest of the format.
        ("<%-12c|%d\n", vec![N(0), N(1)]),
        ("<%5c%%\n", vec![N(0)]),
        ("Elapsed: %ds\n", vec![N(4)]),
        (
            "%s|%.3s|%-9s|\n",
            vec![Str(b"bpftrace"), Str(b"bpftrace"), Str(b"bpftrace")],
        ),
    ];
    // "<%-12c|%d\n" prints as one line.
    assert_eq!(lines.len(), cases.len());
    for ((format, args), expected) in cases.iter().zip(lines) {
        assert_eq!(out(format, args), expected, "format {format:?}");
    }
}

/// Refusals as bpftrace 0.23.2 worded them (after `stdin:1:9-28: ERROR: `).
#[test]
fn refusals_as_bpftrace_0_23_worded_them() {
    assert_eq!(
        check("%d\n", &[S]),
        "printf: %d specifier expects a value of type int (string supplied)"
    );
    assert_eq!(
        check("%s\n", &[I]),
        "printf: %s specifier expects a value of type string (int supplied)"
    );
    assert_eq!(
        check("%ld\n", &[S]),
        "printf: %ld specifier expects a value of type int (string supplied)"
    );
    assert_eq!(
        check("%c\n", &[S]),
        "printf: %c specifier expects a value of type int (string supplied)"
    );
    assert_eq!(
        check("%+d|%#x\n", &[I, I]),
        "printf: Too many arguments for format string (2 supplied, 0 expected)"
    );
    assert_eq!(
        check("%i\n", &[I]),
        "printf: Too many arguments for format string (1 supplied, 0 expected)"
    );
    assert_eq!(
        check("%5.d\n", &[I]),
        "printf: Too many arguments for format string (1 supplied, 0 expected)"
    );
}

/// A string argument of `MAX_STRLEN - 1` bytes gets `..`, as bpftrace
/// 0.23.2 printed `printf("%s|%5.3s|\n", S, S)` for a 63-byte S with
/// `BPFTRACE_MAX_STRLEN=64` (`S..|  aaa|`); one byte shorter or longer is
/// printed as it is.
#[test]
fn strings_filling_the_buffer_get_the_trailer() {
    let full = vec![b'a'; MAX_STRLEN - 1];
    let expected = format!("{}..|  aaa|", "a".repeat(MAX_STRLEN - 1));
    assert_eq!(
        out("%s|%5.3s|", &[Arg::Str(&full), Arg::Str(&full)]),
        expected
    );
    let shorter = vec![b'a'; MAX_STRLEN - 2];
    assert_eq!(out("%s", &[Arg::Str(&shorter)]), "a".repeat(MAX_STRLEN - 2));
}

/// One argument of a `golden/printf_random.cases` line.
fn case_arg(text: &str) -> Arg<'_> {
    let (kind, value) = text.split_at(2);
    match kind {
        "i:" => Arg::Signed(value.parse().unwrap()),
        "u:" => Arg::Unsigned(value.parse::<i64>().unwrap() as u64),
        "s:" => Arg::Str(value.as_bytes()),
        _ => panic!("bad case argument {text:?}"),
    }
}

/// Random formats and arguments (`golden/printf-random`) against what
/// bpftrace 0.23.2 printed for them.
#[test]
fn random_formats_as_bpftrace_0_23_printed_them() {
    let cases: Vec<&str> = include_str!("../golden/printf_random.cases")
        .lines()
        .collect();
    let outputs = golden_pieces(include_str!("../golden/printf_random.out"));
    assert_eq!(cases.len(), outputs.len());
    assert!(cases.len() >= 200);
    let mut wrong = Vec::new();
    for (case, expected) in cases.iter().zip(outputs) {
        let mut fields = case.split('\t');
        let format = fields.next().unwrap().replace("\\n", "\n");
        let args: Vec<Arg<'_>> = fields.map(case_arg).collect();
        let got = out(&format, &args);
        if got != expected {
            wrong.push(format!("{case:?}: got {got:?}, bpftrace {expected:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
