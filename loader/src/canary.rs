//! The canary: before any event is shown, nobtf removes a file of its own
//! with a known unique name and checks that the probes read back exactly what
//! it knows is true (the path through `filename.name`, `refcnt`'s value, a
//! return of 0). A wrong offset does not crash anything; it prints plausible
//! garbage, so this is what turns a wrong profile into a refusal.
//!
//! The judgement is pure (tested here); run.rs does the unlink and the wait.

use std::fmt;
use std::time::Duration;

/// How long to wait for the canary's events.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// `refcnt` of the `struct filename` that `getname()` has just built for
/// unlink(2): its only reference, 1, when `do_unlinkat` starts. Seen on
/// 5.10, 6.1 and 6.12 (an int until 6.7, an atomic_t after; the same value).
/// Audit takes a second reference (`__audit_getname`) only when syscall
/// audit rules are loaded; 2 is then right, but indistinguishable from a
/// wrong offset that happens to read 2, so it is refused with a hint.
pub const FRESH_REFCNT: i32 = 1;

/// What the probes reported for nobtf's own process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Entry {
        filename: String,
        /// `None` when the probe does not report it (trace pipe, user path).
        refcnt: Option<i32>,
    },
    Exit {
        ret: i64,
    },
}

/// What the canary knows to be true, and where the offsets came from.
#[derive(Debug, Clone)]
pub struct Expected {
    pub filename: String,
    /// Where the path was read, e.g. `filename.name (offset 0)`.
    pub name_field: String,
    /// Where refcnt was read, when the probe reads one.
    pub refcnt_field: Option<String>,
    /// The profile, as the user named it (`--offsets FILE` or builtin).
    pub profile: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanaryError {
    #[error(
        "the probe did not fire: no {probe} event for nobtf's own unlink of {path} within {secs} s{note}; check that unlink(2) reaches do_unlinkat here (`nobtf check`), or pass --no-verify"
    )]
    NoEvent {
        probe: &'static str,
        path: String,
        secs: u64,
        note: String,
    },
    #[error(
        "the offsets profile ({profile}) does not fit this kernel: {field} read {read}, expected {expected}{hint}; generate one for this kernel with `offsets gen` (see docs/offsets.md) and pass it with --offsets FILE, or pass --no-verify to print anyway"
    )]
    Mismatch {
        profile: String,
        field: String,
        read: String,
        expected: String,
        hint: &'static str,
    },
}

struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Judges what was seen. `note` explains a missing event (e.g. samples lost).
pub fn verify(expected: &Expected, seen: &[Seen], note: &str) -> Result<(), CanaryError> {
    let missing = |probe| CanaryError::NoEvent {
        probe,
        path: expected.filename.to_string(),
        secs: TIMEOUT.as_secs(),
        note: note.to_string(),
    };
    let mismatch = |field: String, read: String, want: String, hint| CanaryError::Mismatch {
        profile: expected.profile.to_string(),
        field,
        read,
        expected: want,
        hint,
    };
    let Some((filename, refcnt)) = seen.iter().find_map(|s| match s {
        Seen::Entry { filename, refcnt } => Some((filename, *refcnt)),
        Seen::Exit { .. } => None,
    }) else {
        return Err(missing("entry"));
    };
    if *filename != expected.filename {
        return Err(mismatch(
            expected.name_field.clone(),
            Quoted(filename).to_string(),
            Quoted(&expected.filename).to_string(),
            "",
        ));
    }
    if let (Some(read), Some(field)) = (refcnt, &expected.refcnt_field)
        && read != FRESH_REFCNT
    {
        let hint = if read == 2 {
            " (2 is also what audit makes of it when syscall audit rules are loaded: see `auditctl -l`)"
        } else {
            ""
        };
        return Err(mismatch(
            field.clone(),
            read.to_string(),
            FRESH_REFCNT.to_string(),
            hint,
        ));
    }
    let Some(ret) = seen.iter().find_map(|s| match s {
        Seen::Exit { ret } => Some(*ret),
        Seen::Entry { .. } => None,
    }) else {
        return Err(missing("return"));
    };
    if ret != 0 {
        return Err(mismatch(
            "do_unlinkat's return value".into(),
            ret.to_string(),
            "0 (the file was removed)".into(),
            "",
        ));
    }
    Ok(())
}

/// The pid and content of one of the probes' trace-pipe lines
/// (`... KPROBE ENTRY pid = N, filename = F` or `... KPROBE EXIT: pid = N, ret = R`).
pub fn seen_in_line(line: &str) -> Option<(u32, Seen)> {
    if let Some((_, rest)) = line.split_once("KPROBE ENTRY pid = ") {
        // An empty filename loses its space to the line's trim.
        let (pid, filename) = rest.split_once(", filename =")?;
        let seen = Seen::Entry {
            filename: filename.strip_prefix(' ').unwrap_or(filename).to_string(),
            refcnt: None,
        };
        return Some((pid.parse().ok()?, seen));
    }
    let (_, rest) = line.split_once("KPROBE EXIT: pid = ")?;
    let (pid, ret) = rest.split_once(", ret = ")?;
    Some((
        pid.parse().ok()?,
        Seen::Exit {
            ret: ret.trim().parse().ok()?,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/tmp/.nobtf-canary-1-ab";

    fn expected() -> Expected {
        Expected {
            filename: PATH.into(),
            name_field: "filename.name (offset 0)".into(),
            refcnt_field: Some("filename.refcnt (offset 16)".into()),
            profile: "builtin".into(),
        }
    }

    fn entry(filename: &str, refcnt: i32) -> Seen {
        Seen::Entry {
            filename: filename.into(),
            refcnt: Some(refcnt),
        }
    }

    #[test]
    fn the_truth_passes() {
        let seen = [entry(PATH, 1), Seen::Exit { ret: 0 }];
        assert_eq!(verify(&expected(), &seen, ""), Ok(()));
        // The trace pipe shows no refcnt: only the rest is checked.
        let seen = [
            Seen::Entry {
                filename: PATH.into(),
                refcnt: None,
            },
            Seen::Exit { ret: 0 },
        ];
        assert_eq!(verify(&expected(), &seen, ""), Ok(()));
    }

    #[test]
    fn each_wrong_field_is_named() {
        let err = verify(&expected(), &[entry("", 1), Seen::Exit { ret: 0 }], "")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "the offsets profile (builtin) does not fit this kernel: filename.name (offset 0) read \"\", expected \"/tmp/.nobtf-canary-1-ab\"; generate one"
            ),
            "{err}"
        );
        assert!(err.contains("`offsets gen`") && err.contains("--no-verify"));
        let err = verify(&expected(), &[entry(PATH, 0), Seen::Exit { ret: 0 }], "")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("filename.refcnt (offset 16) read 0, expected 1;"),
            "{err}"
        );
        let err = verify(&expected(), &[entry(PATH, 2), Seen::Exit { ret: 0 }], "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("read 2, expected 1 (2 is also"), "{err}");
        let err = verify(&expected(), &[entry(PATH, 1), Seen::Exit { ret: -2 }], "")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("do_unlinkat's return value read -2, expected 0"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn missing_events_say_the_probe_did_not_fire() {
        let err = verify(&expected(), &[], " (3 samples lost)")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("the probe did not fire: no entry event for nobtf's own unlink of /tmp/.nobtf-canary-1-ab within 5 s (3 samples lost);"),
            "{err}"
        );
        let err = verify(&expected(), &[entry(PATH, 1)], "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no return event"), "{err}");
    }

    #[test]
    fn trace_pipe_lines() {
        assert_eq!(
            seen_in_line(
                "nobtf-7 [001] d... 1.0: bpf_trace_printk: KPROBE ENTRY pid = 7, filename = /tmp/a b"
            ),
            Some((
                7,
                Seen::Entry {
                    filename: "/tmp/a b".into(),
                    refcnt: None
                }
            ))
        );
        assert_eq!(
            seen_in_line("x-7 [001] d... 1.0: 0: KPROBE EXIT: pid = 7, ret = -2"),
            Some((7, Seen::Exit { ret: -2 }))
        );
        assert_eq!(
            seen_in_line("x-7 [001] d... 1.0: 0: KPROBE ENTRY pid = 7, filename ="),
            Some((
                7,
                Seen::Entry {
                    filename: String::new(),
                    refcnt: None
                }
            ))
        );
        assert_eq!(seen_in_line("KPROBE EXIT: pid = x, ret = 0"), None);
        assert_eq!(seen_in_line("sched_switch"), None);
    }
}
