//! The tracefs form of a probe that needs no BPF: a kprobe event whose
//! fetch arguments (registers, dereferences at offsets, strings, the return
//! value) the kernel reads itself, an event filter, and the trace-pipe lines
//! such an event prints. Pure: the loader writes the definitions and reads
//! the lines.
//!
//! The syntax is the oldest every kernel with kprobe events takes (4.x):
//! `%reg`, `+OFF(...)` nested, `$retval`, sized integers and `string`;
//! `ustring` (5.5+) only where the tracefs README lists it.

use std::fmt;

use kernel_headers::kprobe::ProbeKind;
use kernel_headers::pt_regs::Abi;

/// Where a fetch argument's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// 1-based integer argument `n`, by the ABI's register (`%si`).
    Arg(u8),
    /// The return value (return probes only).
    Retval,
    /// The current task's name, when the probe fired (`$comm`; the trace
    /// line's own comm column is looked up later, when the line is read).
    Comm,
    /// The memory at `offset` bytes from the address `of` holds.
    Deref { offset: i64, of: Box<Fetch> },
    /// The same in user memory (`+uOFF(...)`, 5.5+ where `ustring` is;
    /// before, as `Deref`, which reads user memory on x86 kernels of that age).
    UserDeref { offset: i64, of: Box<Fetch> },
}

impl Fetch {
    /// The value at `offset` from the address this fetch yields.
    pub fn at(self, offset: i64) -> Fetch {
        Fetch::Deref {
            offset,
            of: Box::new(self),
        }
    }
}

/// How the kernel stores and prints a fetched value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchType {
    /// A signed integer of this many bytes (1, 2, 4, 8), printed in decimal.
    Signed(u8),
    /// An unsigned integer of this many bytes, printed in decimal.
    Unsigned(u8),
    /// A NUL-terminated string at the fetched kernel address.
    String,
    /// A NUL-terminated string at the fetched user address.
    UserString,
}

impl FetchType {
    pub fn is_string(self) -> bool {
        matches!(self, FetchType::String | FetchType::UserString)
    }
}

/// What this kernel's kprobe events understand beyond the oldest syntax,
/// read from tracefs' README (its `type:` line lists the types).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Syntax {
    /// `ustring` (5.5+); before it a user string is fetched as `string`,
    /// which reads user memory on x86 kernels of that age.
    pub ustring: bool,
    /// `$comm`.
    pub comm: bool,
}

impl Syntax {
    pub fn from_readme(readme: &str) -> Syntax {
        Syntax {
            comm: readme.contains("$comm"),
            ustring: readme
                .lines()
                .filter(|l| l.contains("type:") || l.contains("string"))
                .any(|l| {
                    l.split(|c: char| !c.is_ascii_alphanumeric())
                        .any(|w| w == "ustring")
                }),
        }
    }
}

/// One fetch argument: `name=fetch:type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchArg {
    pub name: String,
    pub fetch: Fetch,
    pub ty: FetchType,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    #[error("argument {n} of {function} is not passed in a register on {arch}")]
    NoRegister {
        n: u8,
        function: String,
        arch: &'static str,
    },
    #[error(
        "$retval is only known at a function's return (a kretprobe), not at {function}'s entry"
    )]
    RetvalAtEntry { function: String },
    #[error("fetch argument `{0}`: a name is letters, digits and `_`, not starting with a digit")]
    Name(String),
    #[error("fetch argument `{name}`: an integer is 1, 2, 4 or 8 bytes, not {bytes}")]
    Size { name: String, bytes: u8 },
}

/// A kprobe event with its fetch arguments, ready to be defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeEvent {
    pub kind: ProbeKind,
    pub group: String,
    pub name: String,
    pub function: String,
    pub args: Vec<FetchArg>,
}

impl ProbeEvent {
    /// The `kprobe_events` line that creates the event, e.g.
    /// `p:nobtf/ev do_unlinkat name=+0(+0(%si)):string refcnt=+16(%si):s32`.
    pub fn definition(&self, abi: &Abi, syntax: Syntax) -> Result<String, DefinitionError> {
        let mut line = format!(
            "{}:{}/{} {}",
            self.kind.letter(),
            self.group,
            self.name,
            self.function
        );
        for arg in &self.args {
            let valid_name = arg
                .name
                .starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && arg
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name {
                return Err(DefinitionError::Name(arg.name.clone()));
            }
            let fetch = self.fetch_text(&arg.fetch, abi, syntax)?;
            let ty = match arg.ty {
                FetchType::Signed(b) | FetchType::Unsigned(b) if ![1, 2, 4, 8].contains(&b) => {
                    return Err(DefinitionError::Size {
                        name: arg.name.clone(),
                        bytes: b,
                    });
                }
                FetchType::Signed(b) => format!("s{}", u32::from(b) * 8),
                FetchType::Unsigned(b) => format!("u{}", u32::from(b) * 8),
                FetchType::String => "string".into(),
                FetchType::UserString if syntax.ustring => "ustring".into(),
                FetchType::UserString => "string".into(),
            };
            line.push_str(&format!(" {}={fetch}:{ty}", arg.name));
        }
        Ok(line)
    }

    fn fetch_text(
        &self,
        fetch: &Fetch,
        abi: &Abi,
        syntax: Syntax,
    ) -> Result<String, DefinitionError> {
        Ok(match fetch {
            Fetch::Arg(n) => {
                let reg = usize::from(*n)
                    .checked_sub(1)
                    .and_then(|i| abi.fetch_args.get(i))
                    .ok_or_else(|| DefinitionError::NoRegister {
                        n: *n,
                        function: self.function.clone(),
                        arch: abi.arch,
                    })?;
                format!("%{reg}")
            }
            Fetch::Retval if self.kind == ProbeKind::Kprobe => {
                return Err(DefinitionError::RetvalAtEntry {
                    function: self.function.clone(),
                });
            }
            Fetch::Retval => "$retval".into(),
            Fetch::Comm => "$comm".into(),
            Fetch::Deref { offset, of } => {
                format!("{offset:+}({})", self.fetch_text(of, abi, syntax)?)
            }
            Fetch::UserDeref { offset, of } if syntax.ustring => format!(
                "{}u{}({})",
                if *offset < 0 { '-' } else { '+' },
                offset.unsigned_abs(),
                self.fetch_text(of, abi, syntax)?
            ),
            Fetch::UserDeref { offset, of } => {
                format!("{offset:+}({})", self.fetch_text(of, abi, syntax)?)
            }
        })
    }

    /// The `kprobe_events` line that removes the event.
    pub fn removal(&self) -> String {
        format!("-:{}/{}", self.group, self.name)
    }
}

/// An event filter keeping only these processes' events (`common_pid` is
/// the thread id the trace line shows).
pub fn pid_filter(pids: &[u32]) -> String {
    pids.iter()
        .map(|p| format!("common_pid == {p}"))
        .collect::<Vec<_>>()
        .join(" || ")
}

/// A fetched value as the trace line prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Str(String),
    /// The kernel could not read the memory (`(fault)`).
    Fault,
}

/// One trace-pipe line of a kprobe event:
/// `comm-tid [cpu] flags secs.usecs: event: (where) name=value ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeLine<'a> {
    pub comm: &'a str,
    pub tid: u32,
    pub cpu: u32,
    pub ts_ns: u64,
    pub event: &'a str,
    /// After `(where)`: the fetched arguments as printed.
    pub args: &'a str,
}

/// `None` for a line that is not a kprobe event's.
pub fn parse_line(line: &str) -> Option<PipeLine<'_>> {
    // The CPU column is the first ` [digits]` (a comm may hold `-`s and spaces).
    let mut search = 0;
    let (open, close) = loop {
        let open = search + line[search..].find(" [")?;
        let close = open + line[open..].find(']')?;
        let digits = &line[open + 2..close];
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            break (open, close);
        }
        search = open + 2;
    };
    let cpu = line[open + 2..close].parse().ok()?;
    let (comm, tid) = line[..open].trim().rsplit_once('-')?;
    let tid = tid.trim().parse().ok()?;
    let mut rest = &line[close + 1..];
    // Then optional irq flags, then `secs.usecs:`.
    let ts_ns = loop {
        let word_start = rest.len() - rest.trim_start().len();
        rest = &rest[word_start..];
        let end = rest.find(' ')?;
        let word = &rest[..end];
        rest = &rest[end..];
        if let Some(ts) = word.strip_suffix(':') {
            break timestamp_ns(ts)?;
        }
    };
    let rest = rest.trim_start();
    let (event, after) = rest.split_once(": ")?;
    let after = after.trim_start();
    let args = match after.strip_prefix('(') {
        Some(inner) => inner.split_once(')')?.1,
        None => after,
    };
    Some(PipeLine {
        comm: comm.trim(),
        tid,
        cpu,
        ts_ns,
        event,
        args: args.strip_prefix(' ').unwrap_or(args),
    })
}

fn timestamp_ns(text: &str) -> Option<u64> {
    let (secs, frac) = text.split_once('.')?;
    let secs: u64 = secs.parse().ok()?;
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = 10u64.pow(9 - frac.len() as u32);
    let frac: u64 = frac.parse().ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(frac * scale)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error("expected `{name}=` in `{text}`")]
    Missing { name: String, text: String },
    #[error("`{name}` is not a number: `{text}`")]
    Number { name: String, text: String },
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Fault => write!(f, "(fault)"),
        }
    }
}

/// The values of `args` (the event's fetch arguments, in order) in a line's
/// argument text. The kernel prints a string between quotes unescaped, so
/// a string ends at the quote before the next ` name=`, or at the last
/// quote when it is the last argument.
pub fn parse_args(args: &[FetchArg], text: &str) -> Result<Vec<Value>, ArgsError> {
    let mut values = Vec::with_capacity(args.len());
    let mut rest = text;
    for (i, arg) in args.iter().enumerate() {
        let prefix = format!("{}=", arg.name);
        let missing = || ArgsError::Missing {
            name: arg.name.clone(),
            text: text.to_string(),
        };
        rest = rest
            .trim_start()
            .strip_prefix(&prefix)
            .ok_or_else(missing)?;
        let next = args.get(i + 1).map(|a| format!(" {}=", a.name));
        if arg.ty.is_string()
            && let Some(quoted) = rest.strip_prefix('"')
        {
            let end = match &next {
                Some(next) => quoted.find(&format!("\"{next}")).ok_or_else(missing)?,
                None => quoted.rfind('"').ok_or_else(missing)?,
            };
            values.push(Value::Str(quoted[..end].to_string()));
            rest = &quoted[end + 1..];
            continue;
        }
        let end = rest.find(' ').unwrap_or(rest.len());
        let word = &rest[..end];
        rest = &rest[end..];
        values.push(if word == "(fault)" {
            Value::Fault
        } else if arg.ty.is_string() {
            Value::Str(word.to_string())
        } else {
            Value::Int(integer(word).ok_or_else(|| ArgsError::Number {
                name: arg.name.clone(),
                text: word.to_string(),
            })?)
        });
    }
    Ok(values)
}

fn integer(word: &str) -> Option<i64> {
    match word.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok().map(|n| n as i64),
        None => word
            .parse::<i64>()
            .ok()
            .or_else(|| word.parse::<u64>().ok().map(|n| n as i64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel_headers::pt_regs::x86_64::ABI;

    fn unlink_entry() -> ProbeEvent {
        ProbeEvent {
            kind: ProbeKind::Kprobe,
            group: "nobtf".into(),
            name: "ev".into(),
            function: "do_unlinkat".into(),
            args: vec![
                FetchArg {
                    name: "refcnt".into(),
                    fetch: Fetch::Arg(2).at(16),
                    ty: FetchType::Signed(4),
                },
                FetchArg {
                    name: "name".into(),
                    fetch: Fetch::Arg(2).at(0).at(0),
                    ty: FetchType::String,
                },
            ],
        }
    }

    #[test]
    fn definitions_use_the_abis_registers() {
        assert_eq!(
            unlink_entry().definition(&ABI, Syntax::default()).unwrap(),
            "p:nobtf/ev do_unlinkat refcnt=+16(%si):s32 name=+0(+0(%si)):string"
        );
        let user = ProbeEvent {
            args: vec![FetchArg {
                name: "path".into(),
                fetch: Fetch::Arg(2).at(0),
                ty: FetchType::UserString,
            }],
            ..unlink_entry()
        };
        assert_eq!(
            user.definition(&ABI, Syntax::default()).unwrap(),
            "p:nobtf/ev do_unlinkat path=+0(%si):string"
        );
        assert_eq!(
            user.definition(
                &ABI,
                Syntax {
                    ustring: true,
                    comm: false
                }
            )
            .unwrap(),
            "p:nobtf/ev do_unlinkat path=+0(%si):ustring"
        );
        let ret = ProbeEvent {
            kind: ProbeKind::Kretprobe,
            args: vec![FetchArg {
                name: "ret".into(),
                fetch: Fetch::Retval,
                ty: FetchType::Signed(4),
            }],
            ..unlink_entry()
        };
        assert_eq!(
            ret.definition(&ABI, Syntax::default()).unwrap(),
            "r:nobtf/ev do_unlinkat ret=$retval:s32"
        );
        assert_eq!(ret.removal(), "-:nobtf/ev");
        let negative = ProbeEvent {
            args: vec![FetchArg {
                name: "x".into(),
                fetch: Fetch::Arg(1).at(-8),
                ty: FetchType::Unsigned(8),
            }],
            ..unlink_entry()
        };
        assert_eq!(
            negative.definition(&ABI, Syntax::default()).unwrap(),
            "p:nobtf/ev do_unlinkat x=-8(%di):u64"
        );
    }

    #[test]
    fn user_dereferences_are_marked_where_the_kernel_knows_them() {
        let user = ProbeEvent {
            args: vec![FetchArg {
                name: "x".into(),
                fetch: Fetch::UserDeref {
                    offset: -8,
                    of: Box::new(Fetch::Arg(2).at(16)),
                },
                ty: FetchType::Unsigned(4),
            }],
            ..unlink_entry()
        };
        let new = Syntax {
            ustring: true,
            comm: true,
        };
        assert_eq!(
            user.definition(&ABI, new).unwrap(),
            "p:nobtf/ev do_unlinkat x=-u8(+16(%si)):u32"
        );
        assert_eq!(
            user.definition(&ABI, Syntax::default()).unwrap(),
            "p:nobtf/ev do_unlinkat x=-8(+16(%si)):u32"
        );
    }

    #[test]
    fn impossible_definitions_are_refused() {
        let mut ev = unlink_entry();
        ev.args[0].fetch = Fetch::Arg(7);
        assert_eq!(
            ev.definition(&ABI, Syntax::default())
                .unwrap_err()
                .to_string(),
            "argument 7 of do_unlinkat is not passed in a register on x86_64"
        );
        ev.args[0].fetch = Fetch::Retval;
        assert!(
            ev.definition(&ABI, Syntax::default())
                .unwrap_err()
                .to_string()
                .starts_with("$retval is only known at a function's return")
        );
        let mut ev = unlink_entry();
        ev.args[0].name = "a b".into();
        assert!(ev.definition(&ABI, Syntax::default()).is_err());
        let mut ev = unlink_entry();
        ev.args[0].ty = FetchType::Signed(3);
        assert!(ev.definition(&ABI, Syntax::default()).is_err());
    }

    #[test]
    fn readme_tells_ustring() {
        let new = "           $stack<index>, $stack, $retval, $comm, $arg<N>,\n     type: s8/16/32/64, u8/16/32/64, x8/16/32/64, string, symbol,\n           b<bit-width>@<bit-offset>/<container-size>, ustring,\n";
        assert_eq!(
            Syntax::from_readme(new),
            Syntax {
                ustring: true,
                comm: true
            }
        );
        let old = "     type: s8/16/32/64, u8/16/32/64, x8/16/32/64, string, symbol\n";
        assert_eq!(Syntax::from_readme(old), Syntax::default());
    }

    #[test]
    fn filters() {
        assert_eq!(pid_filter(&[7]), "common_pid == 7");
        assert_eq!(pid_filter(&[7, 9]), "common_pid == 7 || common_pid == 9");
    }

    #[test]
    fn lines_of_every_kernel_shape() {
        // 5.10: irq flags; 6.x: five flag columns; a comm with `-` and spaces.
        let line = r#"              rm-99      [001] d...     3.402624: nobtf_9_p_do_unlinkat_0: (do_unlinkat+0x0/0x2b0) refcnt=1 name="/tmp/a b.txt""#;
        let parsed = parse_line(line).unwrap();
        assert_eq!(
            parsed,
            PipeLine {
                comm: "rm",
                tid: 99,
                cpu: 1,
                ts_ns: 3_402_624_000,
                event: "nobtf_9_p_do_unlinkat_0",
                args: r#"refcnt=1 name="/tmp/a b.txt""#,
            }
        );
        let args = unlink_entry().args;
        assert_eq!(
            parse_args(&args, parsed.args).unwrap(),
            [Value::Int(1), Value::Str("/tmp/a b.txt".into())]
        );
        let ret = r#"  my-prog [x]-12 [000] d..2.    10.000001: nobtf_9_r_do_unlinkat_1: (do_syscall_64+0x38/0x90 <- do_unlinkat) ret=-2"#;
        let parsed = parse_line(ret).unwrap();
        assert_eq!(
            (parsed.comm, parsed.tid, parsed.cpu),
            ("my-prog [x]", 12, 0)
        );
        assert_eq!(parsed.event, "nobtf_9_r_do_unlinkat_1");
        let ret_args = [FetchArg {
            name: "ret".into(),
            fetch: Fetch::Retval,
            ty: FetchType::Signed(4),
        }];
        assert_eq!(
            parse_args(&ret_args, parsed.args).unwrap(),
            [Value::Int(-2)]
        );
        // No flags column (irq-info off).
        let plain = "rm-5 [003] 1.5: ev: (f+0x0/0x10) x=0x1f";
        let parsed = parse_line(plain).unwrap();
        assert_eq!(parsed.ts_ns, 1_500_000_000);
        let hex = [FetchArg {
            name: "x".into(),
            fetch: Fetch::Arg(1),
            ty: FetchType::Unsigned(8),
        }];
        assert_eq!(parse_args(&hex, parsed.args).unwrap(), [Value::Int(31)]);
        assert_eq!(parse_line("sh-2 [000] .... garbage"), None);
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("CPU:1 [LOST 3 EVENTS]"), None);
    }

    #[test]
    fn strings_hold_what_looks_like_arguments() {
        let args = unlink_entry().args;
        let text = r#"refcnt=1 name="/tmp/x" refcnt=2 "y""#;
        assert_eq!(
            parse_args(&args, text).unwrap(),
            [Value::Int(1), Value::Str(r#"/tmp/x" refcnt=2 "y"#.into())]
        );
        let faulted = "refcnt=1 name=(fault)";
        assert_eq!(
            parse_args(&args, faulted).unwrap(),
            [Value::Int(1), Value::Fault]
        );
        assert!(parse_args(&args, "refcnt=x name=\"a\"").is_err());
        assert!(parse_args(&args, "name=\"a\"").is_err());
    }

    proptest::proptest! {
        /// Whatever a trace pipe holds, reading it never panics.
        #[test]
        fn any_line_reads_without_panic(line in "\\PC{0,120}", text in "[a-z =\"()0-9x-]{0,60}") {
            if let Some(parsed) = parse_line(&line) {
                let _ = parse_args(&unlink_entry().args, parsed.args);
            }
            let _ = parse_args(&unlink_entry().args, &text);
            // Any comm and any arguments, in a well-formed line, read back.
            let shaped = format!("x{}-7 [001] d... 1.5: ev: (f) {text}", line.replace('[', ""));
            let parsed = parse_line(&shaped);
            proptest::prop_assert!(parsed.is_some(), "{}", shaped);
            let parsed = parsed.unwrap();
            proptest::prop_assert_eq!((parsed.tid, parsed.cpu, parsed.event, parsed.args), (7, 1, "ev", text.as_str()));
        }
    }
}
