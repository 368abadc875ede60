//! Probe providers as one table: how each attach point is written, what it
//! attaches to, what its context is, and which builtins it offers.

use crate::ast::Attach;
use crate::diag::Error;
use crate::glob;

/// Where a compiled probe attaches, for the loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachPoint {
    Kprobe(String),
    Kretprobe(String),
    /// One program on every function of a probe's list or wildcard, at
    /// their entries or (`ret`) returns, through one kprobe_multi link
    /// (5.18+): `func` is the address the link fired for
    /// ([`crate::compile`] decides; [`crate::expand::group_multi`] groups).
    KprobeMulti {
        /// The attach points as written (`kprobe:vfs_*`), for messages.
        written: String,
        functions: Vec<String>,
        ret: bool,
    },
    Tracepoint {
        category: String,
        name: String,
    },
    /// A syscall tracepoint this kernel lacks, as a k(ret)probe on the
    /// syscall's entry function ([`crate::syscalls`]).
    Syscall(crate::syscalls::Lowered),
    /// A user-space function's entry: `binary` as the loader resolved it
    /// (`uprobe:libc:f` names libc's path), `func` a symbol or `0xADDRESS`.
    Uprobe {
        binary: String,
        func: String,
    },
    /// A user-space function's return.
    Uretprobe {
        binary: String,
        func: String,
    },
    /// Run in user space by the loader before attaching anything.
    Begin,
    /// Run in user space by the loader after detaching.
    End,
    /// A timer: a software `cpu-clock` perf event on one CPU.
    Interval {
        nanos: u64,
    },
    /// `profile:`, `software:`, `hardware:`: a perf event on every online CPU.
    Sampling(crate::sampling::Sampling),
}

impl AttachPoint {
    /// `bpf_prog_type` of the program, or `None` for BEGIN/END.
    pub fn prog_type(&self) -> Option<u32> {
        use kernel_headers::bpf::prog_type;
        match self {
            AttachPoint::Kprobe(_)
            | AttachPoint::Kretprobe(_)
            | AttachPoint::KprobeMulti { .. }
            | AttachPoint::Syscall(_)
            | AttachPoint::Uprobe { .. }
            | AttachPoint::Uretprobe { .. } => Some(prog_type::KPROBE),
            AttachPoint::Tracepoint { .. } => Some(prog_type::TRACEPOINT),
            AttachPoint::Interval { .. } | AttachPoint::Sampling(_) => Some(prog_type::PERF_EVENT),
            AttachPoint::Begin | AttachPoint::End => None,
        }
    }

    /// `func`: the function name, or the probe's name where there is none.
    pub fn func(&self) -> String {
        match self {
            AttachPoint::Kprobe(f) | AttachPoint::Kretprobe(f) => f.clone(),
            // The program's name only: `func` itself is read at run time.
            AttachPoint::KprobeMulti { functions, .. } => {
                functions.first().cloned().unwrap_or_default()
            }
            AttachPoint::Uprobe { func, .. } | AttachPoint::Uretprobe { func, .. } => func.clone(),
            _ => self.to_string(),
        }
    }

    /// A probe in user space: its arguments and `retval` are user addresses.
    pub fn in_user_space(&self) -> bool {
        matches!(
            self,
            AttachPoint::Uprobe { .. } | AttachPoint::Uretprobe { .. }
        )
    }
}

impl core::fmt::Display for AttachPoint {
    /// bpftrace's `probe` builtin: the full probe name.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AttachPoint::Kprobe(func) => write!(f, "kprobe:{func}"),
            AttachPoint::Kretprobe(func) => write!(f, "kretprobe:{func}"),
            AttachPoint::KprobeMulti { written, .. } => f.write_str(written),
            AttachPoint::Tracepoint { category, name } => write!(f, "tracepoint:{category}:{name}"),
            AttachPoint::Syscall(lowered) => write!(
                f,
                "tracepoint:{}:{}",
                crate::syscalls::CATEGORY,
                lowered.tracepoint
            ),
            AttachPoint::Uprobe { binary, func } => write!(f, "uprobe:{binary}:{func}"),
            AttachPoint::Uretprobe { binary, func } => write!(f, "uretprobe:{binary}:{func}"),
            AttachPoint::Begin => write!(f, "BEGIN"),
            AttachPoint::End => write!(f, "END"),
            AttachPoint::Interval { nanos } => match nanos {
                n if n % 1_000_000_000 == 0 => write!(f, "interval:s:{}", n / 1_000_000_000),
                n if n % 1_000_000 == 0 => write!(f, "interval:ms:{}", n / 1_000_000),
                n => write!(f, "interval:us:{}", n / 1_000),
            },
            AttachPoint::Sampling(sampling) => f.write_str(&sampling.name),
        }
    }
}

/// What a program's context is, which decides the builtins it can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// `struct pt_regs` at a function's entry: `arg0`..`arg5`.
    Entry,
    /// `struct pt_regs` at a function's return: `retval`.
    Return,
    /// The tracepoint's record: `args`.
    Tracepoint,
    /// `struct bpf_perf_event_data`: no arguments.
    Timer,
    /// Evaluated in user space: constants only.
    UserSpace,
}

struct Provider {
    names: &'static [&'static str],
    /// What follows the provider name, for the error message.
    usage: &'static str,
    context: Context,
    make: fn(&[String]) -> Option<AttachPoint>,
}

const PROVIDERS: &[Provider] = &[
    Provider {
        names: &["kprobe", "k"],
        usage: "kprobe:FUNCTION",
        context: Context::Entry,
        make: |rest| match rest {
            [f] if is_symbol(f) => Some(AttachPoint::Kprobe(f.clone())),
            _ => None,
        },
    },
    Provider {
        names: &["kretprobe", "kr"],
        usage: "kretprobe:FUNCTION",
        context: Context::Return,
        make: |rest| match rest {
            [f] if is_symbol(f) => Some(AttachPoint::Kretprobe(f.clone())),
            _ => None,
        },
    },
    Provider {
        names: &["tracepoint", "t"],
        usage: "tracepoint:CATEGORY:NAME",
        context: Context::Tracepoint,
        make: |rest| match rest {
            [c, n] if is_symbol(c) && is_symbol(n) => Some(AttachPoint::Tracepoint {
                category: c.clone(),
                name: n.clone(),
            }),
            // `tracepoint:*exec*`: a wildcard name in any category, as bpftrace.
            [n] if is_symbol(n) && glob::has_wildcard(n) => Some(AttachPoint::Tracepoint {
                category: "*".into(),
                name: n.clone(),
            }),
            _ => None,
        },
    },
    Provider {
        names: &["uprobe", "u"],
        usage: "uprobe:BINARY:SYMBOL, uprobe:BINARY:SYMBOL+OFFSET or uprobe:BINARY:0xADDRESS (BINARY a path or a library's name, e.g. libc)",
        context: Context::Entry,
        make: |rest| match rest {
            [binary, func] if !binary.is_empty() && is_user_function(func) => {
                Some(AttachPoint::Uprobe {
                    binary: binary.clone(),
                    func: func.clone(),
                })
            }
            _ => None,
        },
    },
    Provider {
        names: &["uretprobe", "ur"],
        usage: "uretprobe:BINARY:SYMBOL or uretprobe:BINARY:0xADDRESS (BINARY a path or a library's name, e.g. libc)",
        context: Context::Return,
        make: |rest| match rest {
            [binary, func] if !binary.is_empty() && is_user_function(func) => {
                Some(AttachPoint::Uretprobe {
                    binary: binary.clone(),
                    func: func.clone(),
                })
            }
            _ => None,
        },
    },
    Provider {
        names: &["BEGIN"],
        usage: "BEGIN",
        context: Context::UserSpace,
        make: |rest| rest.is_empty().then_some(AttachPoint::Begin),
    },
    Provider {
        names: &["END"],
        usage: "END",
        context: Context::UserSpace,
        make: |rest| rest.is_empty().then_some(AttachPoint::End),
    },
    Provider {
        names: &["interval", "i"],
        usage: "interval:s:N, interval:ms:N, interval:us:N, interval:hz:N or interval:DURATION (1s, 100ms)",
        context: Context::Timer,
        make: |rest| {
            let nanos = match rest {
                [unit, n] => {
                    let n: u64 = n.parse().ok().filter(|&n| n > 0)?;
                    match unit.as_str() {
                        "s" => n.checked_mul(1_000_000_000)?,
                        "ms" => n.checked_mul(1_000_000)?,
                        "us" => n.checked_mul(1_000)?,
                        "hz" => (1_000_000_000 / n).max(1),
                        _ => return None,
                    }
                }
                [duration] => duration_nanos(duration)?,
                _ => return None,
            };
            Some(AttachPoint::Interval { nanos })
        },
    },
    Provider {
        names: &["profile", "p"],
        usage: "profile:hz:N, profile:s:N, profile:ms:N or profile:us:N",
        context: Context::Timer,
        make: |rest| crate::sampling::profile(rest).map(AttachPoint::Sampling),
    },
    Provider {
        names: &["software", "s"],
        usage: "software:EVENT or software:EVENT:PERIOD, EVENT one of alignment-faults, bpf-output, context-switches (cs), cpu-clock (cpu), cpu-migrations, dummy, emulation-faults, major-faults, minor-faults, page-faults (faults), task-clock",
        context: Context::Timer,
        make: |rest| crate::sampling::software(rest).map(AttachPoint::Sampling),
    },
    Provider {
        names: &["hardware", "h"],
        usage: "hardware:EVENT or hardware:EVENT:PERIOD, EVENT one of backend-stalls, branch-instructions (branches), branch-misses, bus-cycles, cache-misses, cache-references, cpu-cycles (cycles), frontend-stalls, instructions, ref-cycles",
        context: Context::Timer,
        make: |rest| crate::sampling::hardware(rest).map(AttachPoint::Sampling),
    },
];

/// `1s`, `100ms`, `5us`, `2m`: a number and a unit (newer bpftrace's
/// `interval:1s`); at least a microsecond, as there.
fn duration_nanos(text: &str) -> Option<u64> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let per = match &text[digits.len()..] {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return None,
    };
    let n: u64 = digits.replace('_', "").parse().ok()?;
    n.checked_mul(per).filter(|&nanos| nanos >= 1_000)
}

/// A function or tracepoint name, or a wildcard pattern of one
/// ([`crate::expand`] replaces those by what they match).
/// A uprobe's function: a symbol (a wildcard too), an address, or
/// `SYMBOL+OFFSET` (see [`split_offset`]).
fn is_user_function(s: &str) -> bool {
    is_symbol(s)
        || split_offset(s).is_some_and(|(sym, _)| is_symbol(sym) && !glob::has_wildcard(sym))
}

/// `SYMBOL+OFFSET` as its symbol and offset (decimal, or hex after `0x`).
pub fn split_offset(func: &str) -> Option<(&str, u64)> {
    let (symbol, offset) = func.split_once('+')?;
    let offset = match offset.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => offset.parse().ok()?,
    };
    Some((symbol, offset))
}

fn is_symbol(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '*'))
}

/// Resolve an attach point as written through the provider table; a
/// wildcard stays in the names (see [`crate::expand::points`]).
pub fn resolve(attach: &Attach) -> Result<(AttachPoint, Context), Error> {
    let written = attach.parts.join(":");
    let (name, rest) = attach.parts.split_first().expect("split yields one part");
    if name == "usdt" {
        return Err(Error::at(
            attach.span,
            "`usdt` probes are not supported by nobtf trace yet (it does not read .note.stapsdt): use a uprobe on the function",
        ));
    }
    let Some(provider) = PROVIDERS.iter().find(|p| p.names.contains(&name.as_str())) else {
        let known: Vec<&str> = PROVIDERS.iter().map(|p| p.names[0]).collect();
        return Err(Error::at(
            attach.span,
            format!(
                "unknown probe type `{name}`: nobtf trace knows {}",
                known.join(", ")
            ),
        ));
    };
    let point = (provider.make)(rest).ok_or_else(|| {
        Error::at(
            attach.span,
            format!("`{written}`: expected {}", provider.usage),
        )
    })?;
    Ok((point, provider.context))
}
