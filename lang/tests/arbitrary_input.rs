//! Arbitrary text never panics the front end: it compiles or is an error
//! whose rendering quotes the source.

use proptest::prelude::*;

/// Pieces of real programs, so generated text reaches deep into the grammar.
const PIECES: &[&str] = &[
    "kprobe:f",
    "kretprobe:g",
    "tracepoint:syscalls:sys_enter_openat",
    "BEGIN",
    "END",
    "interval:s:1",
    ",",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ";",
    "/",
    "$x",
    "@m",
    "@",
    "=",
    "count()",
    "hist(",
    "printf(\"%d %s\\n\"",
    "str(",
    "arg0",
    "arg1",
    "retval",
    "comm",
    "pid",
    "args->",
    "->",
    ".",
    "name",
    "(struct task_struct *)",
    "?",
    ":",
    "+",
    "-",
    "*",
    "&&",
    "||",
    "!",
    "==",
    "<<",
    "1",
    "0x10",
    "\"x\"",
    " ",
    "\n",
    "exit()",
    "print(@m)",
    "delete(@m[1])",
    "clear(@m)",
    "lhist(",
    "$f->refcnt",
    "++",
    "+=",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn bytes_never_panic(src in ".{0,200}") {
        if let Err(error) = lang::parse(&src) {
            let _ = error.render(&src);
        }
    }

    #[test]
    fn program_shaped_text_never_panics(pieces in prop::collection::vec(prop::sample::select(PIECES), 0..40)) {
        let src = pieces.concat();
        if let Err(error) = lang::parse(&src) {
            let _ = error.render(&src);
        }
    }
}
