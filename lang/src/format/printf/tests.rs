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
        "printf: %d specifier expects a value of type integer (string supplied)"
    );
    assert_eq!(
        check("%-10llu|%s\n", &[I, I]),
        "printf: %s specifier expects a value of type string (integer supplied)"
    );
    assert_eq!(
        check("%r\n", &[I]),
        "printf: %r specifier expects a value of type buffer (integer supplied)"
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
fn text_and_percent_signs_as_bpftrace_0_17_prints_them() {
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

/// Outputs of Debian 12's bpftrace 0.17.0-1, run on BEGIN probes.
#[test]
fn as_debian_12_bpftrace_printed_them() {
    use Arg::{Signed as N, Str};
    assert_eq!(
        out(
            "%s|%-3c|%hhd|%hu|%llu|%08.3d|%5.2x|%X|%o|%-10s|\n",
            &[
                Str(b"x"),
                N(66),
                N(511),
                N(-1),
                N(-1),
                N(7),
                N(10),
                N(48879),
                N(8),
                Str(b"left")
            ]
        ),
        "x|B  |-1|65535|18446744073709551615|     007|   0a|BEEF|10|left      |\n"
    );
    assert_eq!(
        out("%d %u %x %lx %ld|\n", &[N(-1), N(-1), N(-1), N(-1), N(-1)]),
        "-1 4294967295 ffffffff ffffffffffffffff -1|\n"
    );
    assert_eq!(
        out(
            "[%05d][%-5d][%c][%p][%p][%.3s][%8s]\n",
            &[
                N(-42),
                N(3),
                N(65),
                N(0),
                N(4660),
                Str(b"abcdef"),
                Str(b"ab")
            ]
        ),
        "[-0042][3    ][A][(nil)][0x1234][abc][      ab]\n"
    );
    assert_eq!(out("100%%\n", &[]), "100%%\n");
    assert_eq!(out("%% %d\n", &[N(5)]), "% 5\n");
    assert_eq!(out("[%%d]\n", &[N(7)]), "[%d]\n");
    assert_eq!(out("%d%%\n", &[N(5)]), "5%%\n");
    assert_eq!(out("%i\n", &[]), "%i\n");
    // A NUL from `%c` ends the part it is in, not the rest of the format.
    assert_eq!(out("<%-12c|%d\n", &[N(0), N(1)]), "<|1\n");
    assert_eq!(out("<%5c%%\n", &[N(0)]), "<    %%\n");
    assert_eq!(
        check(
            "%s|%-3c|%hhd|%hu|%llu|%08.3d|%#x|%+d\n",
            &[S, I, I, I, I, I, I]
        ),
        "printf: Too many arguments for format string (7 supplied, 6 expected)"
    );
}
